//! The prepared app: what `App::prepare` makes (compiled, linked, checked
//! against the config), kept in one [`Shared`] place that the `App`, its
//! request handler and dev-mode reload all hold. A reload swaps a new
//! prepared app in; requests in flight finish on the one they started with.

mod dev;
mod in_flight;
mod options;
#[expect(
    clippy::module_inception,
    reason = "the folder is named for its main type"
)]
mod prepared;
mod reload;
mod resolved;
mod watch;

pub(crate) use dev::DevState;
pub(crate) use options::Options;
pub(crate) use prepared::{Handler, Prepared};

use arc_swap::ArcSwapOption;
use std::sync::Arc;
use wasmtime::Result;

/// The builder's options and the app prepared from them, once it is.
pub(crate) struct Shared {
    pub(crate) options: Options,
    current: ArcSwapOption<Prepared>,
    /// Dev mode's reload events and build errors.
    pub(crate) dev: DevState,
}

impl Shared {
    pub(crate) fn new(options: Options) -> Arc<Self> {
        Arc::new(Self {
            options,
            current: ArcSwapOption::empty(),
            dev: DevState::new(),
        })
    }

    /// Prepare the app from the options and make it current; in dev mode,
    /// also start watching its files and swapping new builds in.
    /// With a build command (dev mode only), it builds the app first; if
    /// that fails, an earlier build serves (with the error page) if there
    /// is one.
    pub(crate) async fn prepare(self: &Arc<Self>) -> Result<()> {
        let resolved = resolved::Resolved::from_options(&self.options)?;
        let build = resolved.dev_build.clone().filter(|_| self.options.dev);
        if let Some(build) = &build
            && let Err(output) = build.run().await
        {
            if !resolved.app.exists() {
                wasmtime::bail!(
                    "the build failed and there is no earlier build of `{}` to serve: {output}",
                    resolved.app.display()
                );
            }
            tracing::error!("the build failed; serving the earlier build");
            self.dev.set_build_error(Some(output));
        }
        let prepared = Prepared::new(resolved).await?;
        let watched = prepared.resolved.clone();
        self.current.store(Some(Arc::new(prepared)));
        if self.options.dev {
            reload::watch(Arc::downgrade(self), &watched)?;
            if let Some(build) = build {
                dev::watch_sources(Arc::downgrade(self), build)?;
            }
        }
        Ok(())
    }

    /// The current prepared app, for as long as the caller holds it.
    pub(crate) fn current(&self) -> Option<Arc<Prepared>> {
        self.current.load_full()
    }

    /// `f` of the current prepared app, without holding it.
    pub(crate) fn with_current<R>(&self, f: impl FnOnce(&Prepared) -> R) -> Option<R> {
        self.current.load().as_deref().map(f)
    }

    /// Make `prepared` current, and reload the open tabs (dev mode).
    fn swap_in(&self, prepared: Prepared) {
        self.current.store(Some(Arc::new(prepared)));
        self.dev.reload();
    }
}
