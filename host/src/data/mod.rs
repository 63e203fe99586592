//! Data for pages: what a guest may use beyond computing and HTTP, each only
//! as far as the config grants. `wasi:keyvalue` (both drafts) over the
//! stores of `[keyvalue.NAME]`, `wasi:config` over `[variables]`, and our
//! `revalidate` interface over the response cache.

mod bindings;
pub(crate) mod keyvalue;
mod revalidate;
mod variables;

pub(crate) use revalidate::Revalidator;
pub(crate) use variables::Variables;

use crate::wasm::store::Host;
use wasmtime::component::{HasData, Linker, ResourceTable};

/// What a build grants its instances, shared by all of them.
#[derive(Clone, Default)]
pub(crate) struct Granted {
    pub(crate) stores: keyvalue::Granted,
    pub(crate) variables: Variables,
    pub(crate) revalidator: Revalidator,
}

impl std::fmt::Debug for Granted {
    /// The names only: values may be secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Granted")
            .field("stores", &self.stores.names())
            .field("variables", &self.variables.names())
            .finish_non_exhaustive()
    }
}

/// The data interfaces' view of one instance's store.
pub(crate) struct DataView<'a> {
    pub(crate) granted: &'a Granted,
    pub(crate) table: &'a mut ResourceTable,
    /// The instance's open compare-and-swap handles, each holding a value
    /// in the host's memory: bounded.
    pub(crate) open_cas: &'a mut usize,
}

struct HasDataView;

impl HasData for HasDataView {
    type Data<'a> = DataView<'a>;
}

/// Add the data interfaces to `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<Host>) -> wasmtime::Result<()> {
    bindings::HostData::add_to_linker::<Host, HasDataView>(linker, Host::data)
}
