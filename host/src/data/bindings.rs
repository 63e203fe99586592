//! Host bindings for the `switchyard:server/host-data` world (`wit/`):
//! both drafts of `wasi:keyvalue`, `wasi:config` and `revalidate`. The two
//! drafts' buckets are one Rust type, so a store behaves the same through
//! either.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "switchyard:server/host-data",
    imports: { default: async | trappable },
    require_store_data_send: true,
    with: {
        "wasi:keyvalue/store.bucket": super::keyvalue::Bucket,
        "wasi:keyvalue/atomics.cas": super::keyvalue::Cas,
    },
});
