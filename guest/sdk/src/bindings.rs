//! Bindings generated from the `switchyard:server/app` world (`wit/`).

#![allow(missing_docs, unreachable_pub, clippy::all, reason = "generated code")]

wit_bindgen::generate!({
    path: "../../wit",
    world: "switchyard:server/app",
    generate_all,
    pub_export_macro: true,
    export_macro_name: "export_app",
    default_bindings_module: "::switchyard_guest::bindings",
});
