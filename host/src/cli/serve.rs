//! `switchyard serve`: prepare the app, listen, serve until SIGINT/SIGTERM.

use super::AppArgs;
use clap::Args;
use std::io::Write;
use wasmtime::{Result, bail};

#[derive(Debug, Args)]
pub(crate) struct ServeCommand {
    #[command(flatten)]
    app: AppArgs,
    /// Where to listen, `HOST:PORT` [default: the config's `[server]`,
    /// else `localhost:3000`]. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Dev mode: error responses show the error.
    #[arg(long)]
    dev: bool,
    /// Do not log request errors.
    #[arg(long)]
    quiet: bool,
    /// Dev mode: the command that rebuilds the app when a watched source
    /// changes (run with `sh -c` in the config's directory, and once at
    /// start) [default: the config's `[dev] build`].
    #[arg(long, value_name = "COMMAND")]
    build: Option<String>,
    /// Dev mode: a glob of the sources to watch, relative to the config's
    /// directory; repeat for more [default: the config's `[dev] watch`].
    #[arg(long, value_name = "GLOB")]
    watch: Vec<String>,
}

impl ServeCommand {
    pub(crate) fn dev(mut self) -> Self {
        self.dev = true;
        self
    }

    pub(crate) fn execute(self) -> Result<()> {
        let runtime = super::runtime()?;
        let served = runtime.block_on(self.serve());
        // Interrupted mid-drain: exit now, without waiting for the workers.
        runtime.shutdown_background();
        served
    }

    async fn serve(self) -> Result<()> {
        if (self.build.is_some() || !self.watch.is_empty()) && !self.dev {
            bail!("`--build` and `--watch` are for dev mode: use `switchyard dev` or `--dev`");
        }
        let mut builder = self.app.builder().dev(self.dev).quiet(self.quiet);
        if let Some(build) = &self.build {
            builder = builder.build_command(build);
        }
        for glob in &self.watch {
            builder = builder.watch(glob);
        }
        if let Some(listen) = &self.listen {
            let (hostname, port) = parse_listen(listen)?;
            builder = builder.hostname(hostname).port(port);
        }
        let app = builder.build();
        let handle = app.request_handler();
        // Everything is compiled, linked and checked before the socket is bound.
        app.prepare().await?;
        release_freed_memory();
        let hostname = app.hostname().unwrap_or_default();
        let listener = switchyard::server::bind(&hostname, app.port().unwrap_or_default()).await?;
        let port = listener.local_addr()?.port();
        let shown = if hostname.contains(':') {
            format!("[{hostname}]")
        } else {
            hostname
        };
        println!("> Ready on http://{shown}:{port}");
        std::io::stdout().flush()?;
        let settings = app.server_settings().unwrap_or_default();
        let shutdown = switchyard::server::shutdown_signal();
        switchyard::server::serve(listener, handle, settings, shutdown).await
    }
}

/// Give the memory compiling freed back to the system: glibc keeps freed
/// memory in its (per-thread) arenas, and compiling a component frees tens
/// of megabytes that would otherwise count in the server's RSS for good.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free heap pages to the kernel; it
    // is thread-safe and touches no live allocation.
    #[expect(unsafe_code, reason = "FFI call to glibc's malloc_trim")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// `HOST:PORT`, `[V6]:PORT` or `:PORT` (all interfaces).
fn parse_listen(listen: &str) -> Result<(String, u16)> {
    let Some((host, port)) = listen.rsplit_once(':') else {
        bail!("invalid `--listen {listen}`: write it as HOST:PORT, like 127.0.0.1:3000");
    };
    let Ok(port) = port.parse() else {
        bail!("invalid `--listen {listen}`: `{port}` is not a port number");
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::parse_listen;

    #[test]
    fn listen_addresses() {
        assert_eq!(
            parse_listen("127.0.0.1:0").unwrap(),
            ("127.0.0.1".into(), 0)
        );
        assert_eq!(parse_listen("[::1]:80").unwrap(), ("::1".into(), 80));
        assert_eq!(parse_listen(":8080").unwrap(), ("0.0.0.0".into(), 8080));
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("localhost:http").is_err());
    }
}
