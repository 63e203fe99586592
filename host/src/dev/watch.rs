//! Watching files for dev mode: batches of real changes to the paths a
//! caller cares about, for the component reload and the source build alike.

use notify::event::{EventKind, ModifyKind};
use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmtime::Result;
use wasmtime::error::Context;

/// Watch `dirs` and run `on_change` once per batch of changes to the paths
/// `matches` accepts: the first change, and every other one that comes
/// within `settle` of it (a build or an editor writes in several steps).
/// The watch ends when `on_change` returns false.
pub(super) fn on_changes<M, F, Fut>(
    dirs: &[PathBuf],
    mode: RecursiveMode,
    settle: Duration,
    matches: M,
    mut on_change: F,
) -> Result<()>
where
    M: Fn(&Path) -> bool + Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let (changed, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && is_change(&event.kind)
            && event.paths.iter().any(|path| matches(path))
        {
            let _ = changed.send(());
        }
    })
    .context("failed to start watching files for changes")?;
    for dir in dirs {
        watcher
            .watch(dir, mode)
            .with_context(|| format!("failed to watch `{}`", dir.display()))?;
    }
    tokio::spawn(async move {
        let _watcher = watcher;
        while changes.recv().await.is_some() {
            tokio::time::sleep(settle).await;
            while changes.try_recv().is_ok() {}
            if !on_change().await {
                break;
            }
        }
    });
    Ok(())
}

/// Writes, creations, renames and removals change a file; reads (ours
/// included: loading a build opens and reads it) and metadata do not.
fn is_change(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Remove(_)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any)
    )
}
