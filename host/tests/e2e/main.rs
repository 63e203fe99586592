//! Switchyard's end-to-end tests, one module per area, over real HTTP.
//!
//! They are one test binary rather than one per file: each binary links
//! wasmtime and cranelift whole, so a dozen of them cost a dozen links and
//! gigabytes of disk for the same code.

mod browser;
mod cache;
mod cli;
mod cluster;
mod config_ui;
mod custom_server;
mod data;
mod deploy;
mod dev;
mod http2;
mod isolation;
mod library;
mod middleware;
mod outgoing;
mod production;
mod properties;
mod router;
mod shared_cache;
mod standard;
mod traces;

/// The `switchyard` binary cargo built for these tests.
const SWITCHYARD: &str = env!("CARGO_BIN_EXE_switchyard");
