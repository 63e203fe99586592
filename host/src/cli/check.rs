//! `switchyard check`: load the config and the app as `serve` would, report,
//! and start no server.

use super::AppArgs;
use clap::Args;
use wasmtime::Result;

#[derive(Debug, Args)]
pub(crate) struct CheckCommand {
    #[command(flatten)]
    app: AppArgs,
}

impl CheckCommand {
    pub(crate) fn execute(self) -> Result<()> {
        let app = self.app.builder().build();
        super::runtime()?.block_on(app.prepare())?;
        let component = app.component().unwrap_or_default();
        let routes = app.routes().len();
        println!(
            "ok: `{}` is a Switchyard app with {} pages; {routes} routes and redirects",
            component.display(),
            app.pages().len(),
        );
        Ok(())
    }
}
