//! Host bindings for the `switchyard:server/app` world (`wit/`).
//!
//! The wasi interfaces map to wasmtime-wasi and wasmtime-wasi-http; what is
//! generated here is the typed `renderer` export and the app's handler export.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "switchyard:server/app",
    exports: { default: async },
    require_store_data_send: true,
    ownership: Borrowing { duplicate_if_necessary: true },
    with: {
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:random": wasmtime_wasi::p2::bindings::random,
        "wasi:cli": wasmtime_wasi::p2::bindings::cli,
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
    },
});

pub(crate) use exports::switchyard::server::renderer::{Page, RequestInfo};
