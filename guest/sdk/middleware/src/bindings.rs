//! Bindings generated for the standard `wasi:http/middleware@0.3.2` world
//! (`wit/middleware`): the `handler` it imports (the next link) and the one
//! it exports. Every other interface is the `wasip3` crate's, so requests
//! and responses are `wasip3`'s types.

#![allow(
    missing_docs,
    unreachable_pub,
    unsafe_code,
    clippy::all,
    reason = "generated code"
)]

wasip3::wit_bindgen::generate!({
    path: "../../../wit/middleware",
    world: "wasi:http/middleware@0.3.2",
    with: {
        "wasi:http/types@0.3.2": wasip3::http::types,
        "wasi:http/client@0.3.2": wasip3::http::client,
        "wasi:clocks/types@0.3.2": wasip3::clocks::types,
        "wasi:clocks/monotonic-clock@0.3.2": wasip3::clocks::monotonic_clock,
        "wasi:clocks/system-clock@0.3.2": wasip3::clocks::system_clock,
        "wasi:cli/types@0.3.2": wasip3::cli::types,
        "wasi:cli/stdout@0.3.2": wasip3::cli::stdout,
        "wasi:cli/stderr@0.3.2": wasip3::cli::stderr,
        "wasi:cli/stdin@0.3.2": wasip3::cli::stdin,
        "wasi:random/random@0.3.2": wasip3::random::random,
        "wasi:random/insecure@0.3.2": wasip3::random::insecure,
        "wasi:random/insecure-seed@0.3.2": wasip3::random::insecure_seed,
    },
    runtime_path: "wasip3::wit_bindgen::rt",
    generate_all,
    pub_export_macro: true,
    export_macro_name: "export_middleware",
    default_bindings_module: "::switchyard_middleware::bindings",
});
