//! `switchyard compose`: write routers + app as one component, for
//! `wasmtime serve` or any other wasi:http host; with no router, the app
//! alone, Switchyard's own imports (revalidation) filled in.

use clap::Args;
use std::path::PathBuf;
use switchyard::wasm::composition::{self, Target};
use wasmtime::Result;
use wasmtime::error::Context;

#[derive(Debug, Args)]
pub(crate) struct ComposeCommand {
    /// The page app component.
    app: PathBuf,
    /// A router component; repeat for a chain, outermost first. None: the
    /// app alone, made to run on any wasi:http host.
    #[arg(long, value_name = "ROUTER.wasm")]
    router: Vec<PathBuf>,
    /// Where to write the composition.
    #[arg(short, long, value_name = "OUT.wasm")]
    output: PathBuf,
}

impl ComposeCommand {
    pub(crate) fn execute(self) -> Result<()> {
        let app = switchyard::read_component(&self.app)?;
        let composed = composition::compose_files(&self.app, &app, &self.router, Target::AnyHost)?;
        std::fs::write(&self.output, &composed)
            .with_context(|| format!("failed to write `{}`", self.output.display()))?;
        println!(
            "wrote `{}` ({} bytes)",
            self.output.display(),
            composed.len()
        );
        Ok(())
    }
}
