//! Variables from the server's `[variables]` (a value, or one read from the
//! server's environment), through the standard `wasi:config`.
//!
//! ```no_run
//! # fn main() -> switchyard_guest::Result<()> {
//! let greeting = switchyard_guest::config::get("greeting")?.unwrap_or_else(|| "Hello".into());
//! # Ok(())
//! # }
//! ```

use crate::bindings::wasi::config0_2_0_rc_1::store;
use anyhow::anyhow;

fn error(error: store::Error) -> anyhow::Error {
    match error {
        store::Error::Upstream(reason) | store::Error::Io(reason) => anyhow!(reason),
    }
}

/// The variable `name`; `None` when the server grants no such variable.
pub fn get(name: &str) -> anyhow::Result<Option<String>> {
    store::get(name).map_err(error)
}

/// Every variable the server grants, as (name, value) pairs.
pub fn get_all() -> anyhow::Result<Vec<(String, String)>> {
    store::get_all().map_err(error)
}
