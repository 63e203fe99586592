//! `switchyard check`: load the config and the app as `serve` would, report,
//! and start no server.

use super::AppArgs;
use clap::Args;
use wasmtime::Result;
use wasmtime::error::Context;

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
        let kind = app.kind().context("the app was not prepared")?;
        let pages = if kind.has_renderer() {
            format!(" with {} pages", app.pages().len())
        } else {
            String::new()
        };
        println!(
            "ok: `{}` is a {kind}{pages}; {routes} routes and redirects",
            component.display(),
        );
        println!("kind: {}", kind.describe());
        let config = app.config().unwrap_or_default();
        let (cache, compression) = (&config.cache, config.server.compression);
        let compression = if compression { "on" } else { "off" };
        if cache.enabled {
            println!(
                "cache: on, {} at most, entries up to {} (for responses that ask: \
                 `Cache-Control: public, s-maxage=N`); compression {compression}",
                bytesize::ByteSize(cache.max_size).display().iec(),
                bytesize::ByteSize(cache.max_entry_size).display().iec(),
            );
        } else {
            println!("cache: off; compression {compression}");
        }
        Ok(())
    }
}
