//! Bindings generated from our WIT (`wit/`): the `switchyard:server/app`
//! world. The wasi:http interfaces and `switchyard:server/types` are the
//! shared crate's (`switchyard_guest::bindings`), so its requests and
//! responses are ours too.

#![allow(missing_docs, unreachable_pub, clippy::all, reason = "generated code")]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "switchyard:server/app",
    with: {
        "wasi:http/types@0.2.12": switchyard_guest::bindings::wasi::http::types,
        "wasi:http/outgoing-handler@0.2.12": switchyard_guest::bindings::wasi::http::outgoing_handler,
        "wasi:io/error@0.2.12": switchyard_guest::bindings::wasi::io::error,
        "wasi:io/poll@0.2.12": switchyard_guest::bindings::wasi::io::poll,
        "wasi:io/streams@0.2.12": switchyard_guest::bindings::wasi::io::streams,
        "wasi:clocks/monotonic-clock@0.2.12": switchyard_guest::bindings::wasi::clocks::monotonic_clock,
        "switchyard:server/types@0.2.0": switchyard_guest::bindings::switchyard::server::types,
    },
    generate_all,
    pub_export_macro: true,
    export_macro_name: "export_app",
    default_bindings_module: "::switchyard_app::bindings",
});
