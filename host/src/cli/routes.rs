//! `switchyard routes`: print the effective route table, in the order a
//! request meets it: redirects, routes, the routers (whose routing is code),
//! then the app's own pages.

use super::AppArgs;
use clap::Args;
use std::io::Write;
use wasmtime::Result;
use wasmtime::error::Context;

#[derive(Debug, Args)]
pub(crate) struct RoutesCommand {
    #[command(flatten)]
    app: AppArgs,
}

impl RoutesCommand {
    pub(crate) fn execute(self) -> Result<()> {
        let app = self.app.builder().build();
        super::runtime()?.block_on(app.prepare())?;
        let config = app.config().unwrap_or_default();
        let kind = app.kind().context("the app was not prepared")?;
        let mut table = format!("# {}: {}\n", kind, kind.describe());
        for (router, kind) in app.chain() {
            table.push_str(&format!(
                "{kind} {}  ({})\n",
                router.display(),
                kind.describe()
            ));
        }
        let mut lines = app.routes();
        let file_system = if config.use_file_system_public_routes {
            "app page"
        } else {
            "404 (file-system routes off)"
        };
        lines.extend(
            app.pages()
                .into_iter()
                .map(|page| (page, file_system.to_string())),
        );
        let width = lines
            .iter()
            .map(|(pattern, _)| pattern.len())
            .max()
            .unwrap_or(0);
        for (pattern, target) in lines {
            table.push_str(&format!("{pattern:width$}  {target}\n"));
        }
        // A reader that stops early (`| head`) is not an error.
        match std::io::stdout().write_all(table.as_bytes()) {
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            result => Ok(result?),
        }
    }
}
