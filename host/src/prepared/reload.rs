//! Dev mode: watch the app component (and the config file) and swap a new
//! build in without dropping requests. In-flight requests finish on the
//! build they started with; a build that fails to load is reported and the
//! previous one keeps serving.

use super::resolved::Resolved;
use super::{Prepared, Shared, watch};
use notify::RecursiveMode;
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;
use wasmtime::Result;

/// Changes closer together than this are one change (a build writes a file
/// in several steps).
const SETTLE: Duration = Duration::from_millis(200);

/// Start watching the files of `resolved`; reloads go into `shared` for as
/// long as it is alive.
pub(crate) fn watch(shared: Weak<Shared>, resolved: &Resolved) -> Result<()> {
    let files: Vec<PathBuf> = std::iter::once(resolved.app.clone())
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
            let shared = shared.clone();
            async move {
                let Some(shared) = shared.upgrade() else {
                    return false;
                };
                reload(&shared).await;
                true
            }
        },
    )
}

async fn reload(shared: &Shared) {
    let reloaded = async {
        let resolved = Resolved::from_options(&shared.options)?;
        Prepared::new(resolved).await
    };
    match reloaded.await {
        Ok(prepared) => {
            let app = prepared.resolved.app.display().to_string();
            shared.swap_in(prepared);
            tracing::info!("reloaded `{app}`");
        }
        Err(error) => {
            tracing::error!("failed to reload, still serving the previous build: {error:#}")
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || (a.file_name() == b.file_name()
            && a.parent().and_then(|p| p.canonicalize().ok())
                == b.parent().and_then(|p| p.canonicalize().ok()))
}
