//! Bindings generated from our WIT (`wit/`): the `switchyard:server/guest`
//! world, imports only (the wasi:http types, the outgoing handler and
//! `switchyard:server/types`). The app and router SDKs generate their own
//! worlds and map these interfaces to this module, so a request or a page
//! is one type wherever it goes.

#![allow(missing_docs, unreachable_pub, clippy::all, reason = "generated code")]

wit_bindgen::generate!({
    path: "../../../wit",
    world: "switchyard:server/guest",
    generate_all,
});
