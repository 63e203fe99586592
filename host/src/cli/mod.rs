//! The `switchyard` subcommands, one file each.

mod check;
mod compose;
mod routes;
mod serve;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use switchyard::App;

/// Serve server-rendered pages from WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
    /// How log lines (the access log among them) are written: `text`, or
    /// `json` (one object a line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SWITCHYARD_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// One line of text each.
    Text,
    /// One JSON object a line, with each field of the event (an access
    /// log line's method, path, route, status, bytes and duration).
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the app (production mode unless `--dev`).
    Serve(serve::ServeCommand),
    /// Serve the app in dev mode: error pages show the error, a new build
    /// is swapped in, sources are rebuilt (`--build`), tabs reload.
    Dev(serve::ServeCommand),
    /// Check the config and the components without starting a server.
    Check(check::CheckCommand),
    /// Print the effective route table.
    Routes(routes::RoutesCommand),
    /// Compose router components in front of an app into one component,
    /// for `wasmtime serve` or any wasi:http host.
    Compose(compose::ComposeCommand),
}

impl Command {
    pub(crate) fn execute(self) -> wasmtime::Result<()> {
        match self {
            Command::Serve(command) => command.execute(),
            Command::Dev(command) => command.dev().execute(),
            Command::Check(command) => command.execute(),
            Command::Routes(command) => command.execute(),
            Command::Compose(command) => command.execute(),
        }
    }
}

/// What every subcommand needs to find the app.
#[derive(Debug, Clone, Args)]
pub(crate) struct AppArgs {
    /// The page app component [default: the config's `app`, else
    /// `build/app.wasm`].
    pub(crate) app: Option<PathBuf>,
    /// The config file [default: `switchyard.toml` if present].
    #[arg(long, value_name = "FILE", env = "SWITCHYARD_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// A router component in front of the app's default handler; repeat
    /// for a chain, outermost first [default: the config's `router`].
    #[arg(long, value_name = "ROUTER.wasm")]
    pub(crate) router: Vec<PathBuf>,
    /// Compile at every start: neither read nor write the compile cache.
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Where the app's embedded key-value stores live [default: the
    /// config's `data_dir`, else `.switchyard` beside the config].
    #[arg(long, value_name = "DIR", env = "SWITCHYARD_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
}

impl AppArgs {
    /// An app builder with these arguments applied.
    pub(crate) fn builder(&self) -> switchyard::AppBuilder {
        // `SWITCHYARD_SERVER_*` count for every command, so that `check`
        // refuses what `serve` would.
        let overrides = switchyard::config::server_overrides(std::env::vars());
        let mut builder = App::builder().server_overrides(overrides);
        if let Some(config) = &self.config {
            builder = builder.config_file(config);
        }
        if let Some(app) = &self.app {
            builder = builder.component(app);
        }
        for router in &self.router {
            builder = builder.router(router);
        }
        if self.no_cache {
            builder = builder.cache_dir(None);
        }
        if let Some(dir) = &self.data_dir {
            builder = builder.data_dir(dir);
        }
        builder
    }
}

/// A runtime for one command.
pub(crate) fn runtime() -> wasmtime::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
