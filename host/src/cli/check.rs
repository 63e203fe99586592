//! `switchyard check`: load the config and the app as `serve` would (the
//! admin address and TLS files too), report, and start no server.

use super::AppArgs;
use clap::Args;
use switchyard::config::Variable;
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
        for (router, kind) in app.chain() {
            println!("{kind}: `{}` ({})", router.display(), kind.describe());
        }
        let config = app.config().unwrap_or_default();
        // What `serve` would refuse at start, refused here too.
        if let Some(listen) = &config.admin.listen {
            super::serve::parse_listen(listen, "`[admin] listen` in the config")?;
            println!("admin: on {listen} (/metrics, /healthz, /readyz)");
        }
        if let Some(files) = &config.server.tls {
            switchyard::server::Tls::load(
                &config.resolve(&files.cert),
                &config.resolve(&files.key),
            )?;
            println!("tls: `{}`", config.resolve(&files.cert).display());
        }
        let (cache, compression) = (&config.cache, config.server.compression);
        let compression = if compression { "on" } else { "off" };
        if cache.enabled {
            let shared = match &cache.shared {
                Some(url) => format!(", shared with the other replicas through {}", redis(url)),
                None => String::new(),
            };
            println!(
                "cache: on, {} at most, entries up to {} (for responses that ask: \
                 `Cache-Control: public, s-maxage=N`){shared}; compression {compression}",
                bytesize::ByteSize(cache.max_size).display().iec(),
                bytesize::ByteSize(cache.max_entry_size).display().iec(),
            );
        } else {
            println!("cache: off; compression {compression}");
        }
        // Names and where values come from, never the values (secrets).
        for (name, store) in &config.keyvalue {
            let backend = match &store.url {
                Some(url) => redis(url),
                None => format!(
                    "embedded, `{}`",
                    app.data_dir()
                        .unwrap_or_default()
                        .join("keyvalue")
                        .join(format!("{name}.redb"))
                        .display()
                ),
            };
            println!("keyvalue.{name}: {backend}");
        }
        for (name, variable) in &config.variables {
            let source = match variable {
                Variable::Value(_) => "set in the config".to_string(),
                Variable::Env { env } => format!("from ${env}"),
            };
            println!("variables.{name}: {source}");
        }
        Ok(())
    }
}

/// A Redis URL, as `check` names it: never the URL (it may hold a password).
fn redis(url: &Variable) -> String {
    match url {
        Variable::Value(_) => "Redis (its URL is not shown)".into(),
        Variable::Env { env } => format!("Redis (its URL from ${env})"),
    }
}
