//! Dev mode: watch the app component (and the config file) and swap a new
//! build in without dropping requests. In-flight requests finish on the
//! build they started with; a build that fails to load is reported and the
//! previous one keeps serving.

use super::resolved::Resolved;
use super::{Prepared, Shared};
use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Weak;
use std::time::Duration;
use wasmtime::Result;
use wasmtime::error::Context;

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
    let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let watched = files.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && is_change(&event.kind)
            && event
                .paths
                .iter()
                .any(|path| watched.iter().any(|file| same_file(path, file)))
        {
            let _ = changed.send(());
        }
    })
    .context("failed to start watching the app for changes")?;
    // Watch the directories: builds replace files rather than write them in place.
    for file in &files {
        let dir = file.parent().unwrap_or(Path::new("."));
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .with_context(|| format!("failed to watch `{}`", dir.display()))?;
    }
    tokio::spawn(async move {
        let _watcher = watcher;
        while changes.recv().await.is_some() {
            // Let the build finish writing, then take every change so far as one.
            tokio::time::sleep(SETTLE).await;
            while changes.try_recv().is_ok() {}
            let Some(shared) = shared.upgrade() else {
                break;
            };
            reload(&shared).await;
        }
    });
    Ok(())
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

/// Writes, creations, renames and removals change a file; reads (ours
/// included: loading a build opens and reads it) and metadata do not.
pub(super) fn is_change(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
    )
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || (a.file_name() == b.file_name()
            && a.parent().and_then(|p| p.canonicalize().ok())
                == b.parent().and_then(|p| p.canonicalize().ok()))
}
