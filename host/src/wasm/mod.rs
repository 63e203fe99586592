//! The wasmtime side: engines, components (read, compiled, cached), their
//! kinds, the store each instance gets, instance pools, the bindings of our
//! WIT, compositions of routers and apps, and the WASIp3 handler glue.

pub(crate) mod bindings;
pub(crate) mod compile_cache;
pub mod component;
pub mod composition;
pub(crate) mod connection_pool;
pub(crate) mod engine;
pub(crate) mod kind;
pub(crate) mod middleware;
pub(crate) mod outgoing;
pub mod output;
pub(crate) mod p3;
pub(crate) mod pool;
pub(crate) mod store;
