//! Bindings generated from our WIT (`wit/`): the `switchyard:server/app`
//! world, or with the `router` feature the `switchyard:server/router` world.
//! Both share the `wasi:http` and `switchyard:server/types` modules, so the
//! rest of the SDK is written once.

#![allow(missing_docs, unreachable_pub, clippy::all, reason = "generated code")]

#[cfg(all(feature = "app", feature = "router"))]
compile_error!(
    "switchyard-guest: enable one of the features `app` and `router`: build apps and routers in separate cargo runs"
);

#[cfg(not(feature = "router"))]
wit_bindgen::generate!({
    path: "../../wit",
    world: "switchyard:server/app",
    generate_all,
    pub_export_macro: true,
    export_macro_name: "export_app",
    default_bindings_module: "::switchyard_guest::bindings",
});

#[cfg(feature = "router")]
wit_bindgen::generate!({
    path: "../../wit",
    world: "switchyard:server/router",
    generate_all,
    pub_export_macro: true,
    export_macro_name: "export_router",
    default_bindings_module: "::switchyard_guest::bindings",
});
