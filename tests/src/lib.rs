//! Test support for Switchyard: the guest components (built by `build.rs`),
//! a plain HTTP/1.1 client, a handle on a `switchyard` process, and a
//! strict parser of the metrics it exposes, and a real Redis server.

pub mod client;
pub mod openmetrics;
pub mod process;
pub mod redis;

include!(concat!(env!("OUT_DIR"), "/components.rs"));

pub use client::{Response, get, request};
pub use process::Server;

/// A new directory holding a `switchyard.toml` with `text`.
pub fn config_dir(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("failed to make a directory");
    std::fs::write(dir.path().join("switchyard.toml"), text).expect("failed to write the config");
    dir
}
