//! Dev mode, all of it (`switchyard dev`, `App::builder().dev(true)`):
//! the build command rerun when a source changes ([`command`]), the new
//! component swapped in without dropping a request ([`reload`]), the file
//! watching both share ([`watch`]), and what the browser sees
//! ([`browser`]): the reload event stream, the script every HTML page gets,
//! and the page that shows a failed build. It sits above the prepared
//! build: it makes new builds and puts them in use, and nothing below it
//! knows it exists.

mod browser;
mod command;
mod reload;
mod watch;

pub(crate) use browser::{ReloadScript, ReloadScriptLayer};

use crate::build::AppShared;
use crate::build::{Build, Current, Options, Resolved};
use crate::config::ConfigError;
use arc_swap::ArcSwapOption;
use command::BuildCommand;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use wasmtime::Result;

/// Dev mode's state: what open tabs should show, and the output of the
/// last build if it failed.
pub(crate) struct Dev {
    /// When this server started: it names its builds anew, so the tabs of
    /// an earlier server reload too.
    started: u128,
    /// What the event stream names; changed and announced under the lock,
    /// so that a stream that connects misses nothing.
    shown: Mutex<Shown>,
    events: broadcast::Sender<String>,
    build_error: ArcSwapOption<String>,
}

/// What a tab should show: the build in use ([`Build::serial`]), and how
/// many builds have finished, failed or not (a failed build's page comes
/// and goes with them). A page names what it was served with; the tab
/// reloads when the event stream names something else.
#[derive(Debug, Clone, Copy, Default)]
struct Shown {
    serial: u64,
    outcomes: u64,
}

impl Dev {
    pub(crate) fn new() -> Arc<Self> {
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_millis());
        Arc::new(Self {
            started,
            shown: Mutex::default(),
            events: broadcast::channel(16).0,
            build_error: ArcSwapOption::empty(),
        })
    }

    /// Prepare the app in dev mode: run the build command first, if there
    /// is one (when it fails, an earlier build serves with the error page,
    /// if there is one); put the build in use; then watch the sources, the
    /// component and the config, and swap each new build in as it lands.
    pub(crate) async fn prepare(
        self: &Arc<Self>,
        options: &Options,
        current: &Arc<Current>,
        shared: &AppShared,
    ) -> Result<()> {
        let resolved = Resolved::from_options(options)?;
        let command = build_command(&resolved)?;
        if let Some(command) = &command
            && let Err(output) = command.run().await
        {
            if !resolved.app.exists() {
                wasmtime::bail!(
                    "the build failed and there is no earlier build of `{}` to serve: {output}",
                    resolved.app.display()
                );
            }
            tracing::error!("the build failed; serving the earlier build");
            self.build_error.store(Some(Arc::new(output)));
        }
        let watched = resolved.clone();
        let build = Build::new(resolved, shared).await?;
        let serial = build.serial;
        current.swap_in(build);
        self.swapped_in(serial);
        reload::watch(
            &watched,
            reload::Reloader {
                options: options.clone(),
                current: Arc::downgrade(current),
                shared: shared.clone(),
                dev: Arc::downgrade(self),
            },
        )?;
        if let Some(command) = command {
            command.watch(Arc::downgrade(self))?;
        }
        Ok(())
    }

    /// What the event stream names now, and each change after it.
    fn subscribe(&self) -> (String, broadcast::Receiver<String>) {
        let shown = self.shown();
        (self.name(*shown), self.events.subscribe())
    }

    /// The name of a page of build `serial` (the one in use if `None`),
    /// with the builds finished so far: read before anything else the page
    /// depends on, so that a page that changes meanwhile is named as stale.
    fn page_name(&self, serial: Option<u64>) -> String {
        let shown = *self.shown();
        self.name(Shown {
            serial: serial.unwrap_or(shown.serial),
            outcomes: shown.outcomes,
        })
    }

    fn name(&self, shown: Shown) -> String {
        format!("{}.{}.{}", self.started, shown.serial, shown.outcomes)
    }

    fn shown(&self) -> std::sync::MutexGuard<'_, Shown> {
        self.shown.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Change what tabs should show, and tell them.
    fn show(&self, change: impl FnOnce(&mut Shown)) {
        let mut shown = self.shown();
        change(&mut shown);
        let _ = self.events.send(self.name(*shown));
    }

    /// Build `serial` is in use now.
    fn swapped_in(&self, serial: u64) {
        self.show(|shown| shown.serial = serial);
    }

    /// The output of the last build, if it failed.
    fn build_error(&self) -> Option<Arc<String>> {
        self.build_error.load_full()
    }

    /// A build command finished: `Err` is a failed build's output.
    fn built(&self, result: Result<(), String>) {
        match result {
            Ok(()) => {
                // The new component's swap reloads the tabs; a build that
                // changed nothing still takes the error page away.
                if self.build_error.swap(None).is_some() {
                    self.show(|shown| shown.outcomes += 1);
                }
            }
            Err(output) => {
                tracing::error!("the build failed; still serving the last good build");
                self.build_error.store(Some(Arc::new(output)));
                self.show(|shown| shown.outcomes += 1);
            }
        }
    }
}

/// The build command of `resolved`, if it has one; a bad `watch` glob is
/// the config's error.
fn build_command(resolved: &Resolved) -> Result<Option<BuildCommand>, ConfigError> {
    let Some(command) = resolved.build_command.clone() else {
        return Ok(None);
    };
    BuildCommand::new(command, &resolved.watch, &resolved.config.base_dir)
        .map(Some)
        .map_err(|reason| ConfigError::invalid(&resolved.config_path(), "dev.watch", reason))
}

/// Check what dev mode would use of `resolved` (its `watch` globs), so that
/// `check` and a production start report a mistake there too.
pub(crate) fn check(resolved: &Resolved) -> Result<(), ConfigError> {
    build_command(resolved).map(drop)
}
