//! `switchyard serve`: start the admin listener (if asked), prepare the
//! app, listen (over TLS if asked), serve until SIGINT/SIGTERM, then turn
//! `/readyz` to 503 while the requests in flight drain. Traces go to the
//! OTLP endpoint of the `OTEL_*` variables, when set.

use super::AppArgs;
use clap::Args;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard::App;
use switchyard::admin::Admin;
use switchyard::server::{self, ServerSettings, Tls};
use tokio::sync::oneshot;
use wasmtime::{Result, bail};

#[derive(Debug, Args)]
pub(crate) struct ServeCommand {
    #[command(flatten)]
    app: AppArgs,
    /// Where to listen, `HOST:PORT` [default: the config's `[server]`,
    /// else `localhost:3000`]. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR", env = "SWITCHYARD_LISTEN")]
    listen: Option<String>,
    /// Where the admin listener (`/metrics`, `/healthz`, `/readyz`)
    /// listens, `HOST:PORT` [default: the config's `[admin] listen`, else
    /// none]. Keep it off the public address.
    #[arg(long, value_name = "ADDR", env = "SWITCHYARD_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Serve HTTPS with this certificate chain (PEM) [default: the
    /// config's `[server.tls] cert`]; needs `--tls-key`.
    #[arg(
        long,
        value_name = "FILE",
        env = "SWITCHYARD_TLS_CERT",
        requires = "tls_key"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `--tls-cert`.
    #[arg(
        long,
        value_name = "FILE",
        env = "SWITCHYARD_TLS_KEY",
        requires = "tls_cert"
    )]
    tls_key: Option<PathBuf>,
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
            let (hostname, port) = parse_listen(listen, "`--listen` (SWITCHYARD_LISTEN)")?;
            builder = builder.hostname(hostname).port(port);
        }
        let config = builder.load_config()?;
        let traces = switchyard::telemetry::install_from_env()?;
        let app = builder.build();
        let handle = app.request_handler();
        // The admin listener answers while the app compiles: alive, not ready.
        let admin = match (&self.admin_listen, &config.admin.listen) {
            (Some(listen), _) => {
                let what = "`--admin-listen` (SWITCHYARD_ADMIN_LISTEN)";
                Some(AdminListener::start(&app, parse_listen(listen, what)?).await?)
            }
            (None, Some(listen)) => {
                let what = "`[admin] listen` in the config";
                Some(AdminListener::start(&app, parse_listen(listen, what)?).await?)
            }
            (None, None) => None,
        };
        let tls = match (&self.tls_cert, &self.tls_key, &config.server.tls) {
            (Some(cert), Some(key), _) => Some(Arc::new(Tls::load(cert, key)?)),
            (_, _, Some(files)) => Some(Arc::new(Tls::load(
                &config.resolve(&files.cert),
                &config.resolve(&files.key),
            )?)),
            _ => None,
        };
        // Everything is compiled, linked and checked before the socket is bound.
        app.prepare().await?;
        release_freed_memory();
        let hostname = app.hostname().unwrap_or_default();
        let listener = server::bind(&hostname, app.port().unwrap_or_default()).await?;
        let port = listener.local_addr()?.port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("> Ready on {scheme}://{}:{port}", shown(&hostname));
        std::io::stdout().flush()?;
        let settings = app.server_settings().unwrap_or_default().with_tls(tls);
        let shutdown = {
            let app = app.clone();
            async move {
                server::shutdown_signal().await;
                app.begin_shutdown();
                tracing::info!("shutting down: finishing the requests in flight");
            }
        };
        let served = server::serve(listener, handle, settings, shutdown).await;
        if let Some(admin) = admin {
            admin.stop().await;
        }
        // Interrupted mid-drain: exit now, without the last batch.
        if let Some(traces) = traces.filter(|_| served.is_ok()) {
            traces.shutdown().await;
        }
        served
    }
}

/// The admin listener, serving until stopped.
struct AdminListener {
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<Result<()>>,
}

impl AdminListener {
    /// Listen on `HOST:PORT` and serve `app`'s admin endpoints; prints `> Admin
    /// on http://HOST:PORT`.
    async fn start(app: &App, (hostname, port): (String, u16)) -> Result<Self> {
        let listener = server::bind(&hostname, port).await?;
        let port = listener.local_addr()?.port();
        println!("> Admin on http://{}:{port}", shown(&hostname));
        std::io::stdout().flush()?;
        let (stop, stopped) = oneshot::channel::<()>();
        // Probes and scrapers need few connections; no one client may take
        // them all. It drains last and briefly: what it answers is quick.
        let settings = ServerSettings::default()
            .with_workers(1)
            .with_max_connections(256)
            .with_max_connections_per_ip(Some(16))
            .with_shutdown_timeout(Duration::from_secs(1));
        let served = tokio::spawn(server::serve(
            listener,
            Admin::new(app.clone()),
            settings,
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Self { stop, served })
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        match self.served.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!("admin listener: {error:#}"),
            Err(error) => tracing::warn!("admin listener: {error}"),
        }
    }
}

/// A host name as it goes in a URL.
fn shown(hostname: &str) -> String {
    if hostname.contains(':') {
        format!("[{hostname}]")
    } else {
        hostname.to_string()
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

/// `HOST:PORT`, `[V6]:PORT` or `:PORT` (all interfaces), from the setting
/// `what` names (`--listen`): its errors name it.
pub(super) fn parse_listen(listen: &str, what: &str) -> Result<(String, u16)> {
    let Some((host, port)) = listen.rsplit_once(':') else {
        bail!("invalid {what} `{listen}`: write it as HOST:PORT, like 127.0.0.1:3000");
    };
    let Ok(port) = port.parse() else {
        bail!("invalid {what} `{listen}`: `{port}` is not a port number");
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
            parse_listen("127.0.0.1:0", "`--listen`").unwrap(),
            ("127.0.0.1".into(), 0)
        );
        assert_eq!(
            parse_listen("[::1]:80", "`--listen`").unwrap(),
            ("::1".into(), 80)
        );
        assert_eq!(
            parse_listen(":8080", "`--listen`").unwrap(),
            ("0.0.0.0".into(), 8080)
        );
        assert!(parse_listen("localhost", "`--listen`").is_err());
        assert!(parse_listen("localhost:http", "`--listen`").is_err());
    }
}
