//! Dev mode: watch the app component, its routers and middleware (and the
//! config file) and swap a new build in without dropping requests. In-flight requests finish on the
//! build they started with; a build that fails to load is reported and the
//! previous one keeps serving.

use super::{Dev, watch};
use crate::build::AppShared;
use crate::build::{Build, Current, Options, Resolved};
use notify::RecursiveMode;
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;
use wasmtime::Result;

/// Changes closer together than this are one change (a build writes a file
/// in several steps).
const SETTLE: Duration = Duration::from_millis(200);

/// What a reload needs: how to make the new build, and where it goes.
pub(super) struct Reloader {
    pub(super) options: Options,
    pub(super) current: Weak<Current>,
    pub(super) shared: AppShared,
    pub(super) dev: Weak<Dev>,
}

/// Start watching the files of `resolved`; reloads go on for as long as
/// the app is alive.
pub(super) fn watch(resolved: &Resolved, reloader: Reloader) -> Result<()> {
    let reloader = std::sync::Arc::new(reloader);
    let files: Vec<PathBuf> = std::iter::once(resolved.app.clone())
        .chain(resolved.routers.iter().cloned())
        .chain(resolved.config_file.clone())
        .map(|file| std::path::absolute(&file).unwrap_or(file))
        .collect();
    // Watch the directories: builds replace files rather than write them in place.
    let dirs: Vec<PathBuf> = files
        .iter()
        .map(|file| file.parent().unwrap_or(Path::new(".")).to_path_buf())
        .collect();
    let matches = move |path: &Path| files.iter().any(|file| same_file(path, file));
    watch::on_changes(
        &dirs,
        RecursiveMode::NonRecursive,
        SETTLE,
        matches,
        move || {
            let reloader = reloader.clone();
            async move { reloader.reload().await }
        },
    )
}

impl Reloader {
    /// Make a new build and put it in use; `false` once the app is gone.
    async fn reload(&self) -> bool {
        let (Some(current), Some(dev)) = (self.current.upgrade(), self.dev.upgrade()) else {
            return false;
        };
        let reloaded = async {
            let resolved = Resolved::from_options(&self.options)?;
            Build::new(resolved, &self.shared).await
        };
        match reloaded.await {
            Ok(build) => {
                let app = build.resolved.app.display().to_string();
                let serial = build.serial;
                current.swap_in(build);
                dev.swapped_in(serial);
                tracing::info!("reloaded `{app}`");
            }
            Err(error) => {
                tracing::error!("failed to reload, still serving the previous build: {error:#}")
            }
        }
        true
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || (a.file_name() == b.file_name()
            && a.parent().and_then(|p| p.canonicalize().ok())
                == b.parent().and_then(|p| p.canonicalize().ok()))
}
