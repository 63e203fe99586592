//! Dev mode's build command: run it when a watched source changes.
//!
//! A change is a write, creation, rename or removal of a file matching one
//! of the `watch` globs (reads never count). Changes that come together are
//! one build. A build that succeeds writes the component, which
//! [`reload`](super::reload) swaps in; one that fails keeps the last good
//! build serving, prints the compiler's output, and keeps it for the dev
//! error page until a build succeeds.

use super::{Dev, watch};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use notify::RecursiveMode;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use wasmtime::Result;

/// Changes closer together than this are one build (an editor saves a file
/// in several steps; a `git checkout` touches many).
const DEBOUNCE: Duration = Duration::from_millis(150);

/// The most of a build's output kept for the error page (its end).
const MAX_OUTPUT: usize = 256 * 1024;

/// The build command and the sources it builds from.
#[derive(Debug, Clone)]
pub(crate) struct BuildCommand {
    /// Run with `sh -c` in `dir`.
    pub(crate) command: String,
    /// The config's directory: where the command runs and globs start.
    dir: PathBuf,
    globs: GlobSet,
    /// The directories to watch: each glob's fixed leading part.
    roots: Vec<PathBuf>,
}

impl BuildCommand {
    /// `command`, run when a file matching one of `watch` (relative to
    /// `dir`) changes. `Err` says what is wrong with the globs.
    pub(crate) fn new(command: String, watch: &[String], dir: &Path) -> Result<Self, String> {
        if watch.is_empty() {
            return Err(
                "a build command needs sources to watch: list them, like `watch = [\"src/**\"]`"
                    .into(),
            );
        }
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let mut globs = GlobSetBuilder::new();
        let mut roots = Vec::new();
        for pattern in watch {
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|error| format!("`{pattern}`: {error}"))?;
            globs.add(glob);
            let fixed: PathBuf = Path::new(pattern)
                .components()
                .take_while(|part| {
                    !part
                        .as_os_str()
                        .to_string_lossy()
                        .contains(['*', '?', '[', '{'])
                })
                .collect();
            let mut root = dir.join(fixed);
            // Watch the nearest directory that exists.
            while !root.is_dir() && root.pop() {}
            if !roots.contains(&root) {
                roots.push(root);
            }
        }
        let globs = globs.build().map_err(|error| error.to_string())?;
        Ok(Self {
            command,
            dir,
            globs,
            roots,
        })
    }

    /// Whether `path` (absolute) is a watched source.
    fn matches(&self, path: &Path) -> bool {
        path.strip_prefix(&self.dir)
            .is_ok_and(|relative| self.globs.is_match(relative))
    }

    /// Run the command whenever its sources change, for as long as `dev`
    /// lives: a failed build's output goes to the error page, and open
    /// tabs reload.
    pub(crate) fn watch(self, dev: Weak<Dev>) -> Result<()> {
        let matcher = self.clone();
        let matches = move |path: &Path| matcher.matches(path);
        let roots = self.roots.clone();
        watch::on_changes(
            &roots,
            RecursiveMode::Recursive,
            DEBOUNCE,
            matches,
            move || {
                let (dev, build) = (dev.clone(), self.clone());
                async move {
                    let result = build.run().await;
                    let Some(dev) = dev.upgrade() else {
                        return false;
                    };
                    dev.built(result);
                    true
                }
            },
        )
    }

    /// Run the command once, its output going to the terminal as it comes.
    /// `Err` is the output of a build that failed.
    pub(crate) async fn run(&self) -> Result<(), String> {
        tracing::info!("building: {}", self.command);
        let started = Instant::now();
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match child {
            Ok(child) => child,
            Err(error) => return Err(format!("failed to run `{}`: {error}", self.command)),
        };
        let output = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().map(|out| echo(out, output.clone()));
        let stderr = child.stderr.take().map(|err| echo(err, output.clone()));
        let (status, (), ()) = tokio::join!(
            child.wait(),
            async {
                if let Some(stdout) = stdout {
                    stdout.await
                }
            },
            async {
                if let Some(stderr) = stderr {
                    stderr.await
                }
            },
        );
        let output = std::mem::take(&mut *output.lock().unwrap_or_else(|e| e.into_inner()));
        let output = String::from_utf8_lossy(&output).into_owned();
        match status {
            Ok(status) if status.success() => {
                tracing::info!("built in {:.1?}", started.elapsed());
                Ok(())
            }
            Ok(status) => Err(format!("`{}` failed ({status}):\n\n{output}", self.command)),
            Err(error) => Err(format!("`{}` failed: {error}\n\n{output}", self.command)),
        }
    }
}

/// Copy `from` to the terminal's stderr and into `output` (its last
/// [`MAX_OUTPUT`] bytes).
async fn echo(mut from: impl AsyncRead + Unpin, output: Arc<Mutex<Vec<u8>>>) {
    let mut terminal = tokio::io::stderr();
    let mut buffer = vec![0; 8192];
    while let Ok(read) = from.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        let _ = terminal.write_all(&buffer[..read]).await;
        let mut output = output.lock().unwrap_or_else(|e| e.into_inner());
        output.extend_from_slice(&buffer[..read]);
        if output.len() > MAX_OUTPUT {
            let excess = output.len() - MAX_OUTPUT;
            output.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BuildCommand;

    #[test]
    fn globs_match_sources_under_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src/pages")).unwrap();
        let watch = ["src/**/*.rs".to_string(), "templates/*.html".to_string()];
        let build = BuildCommand::new("true".into(), &watch, dir.path()).unwrap();
        let root = dir.path().canonicalize().unwrap();
        assert!(build.matches(&root.join("src/pages/a.rs")));
        assert!(build.matches(&root.join("templates/a.html")));
        assert!(!build.matches(&root.join("templates/deep/a.html")));
        assert!(!build.matches(&root.join("target/debug/a.rs")));
        // `templates/` does not exist yet: its nearest existing parent is watched.
        assert_eq!(build.roots, [root.join("src"), root.clone()]);
    }

    #[test]
    fn bad_globs_and_no_globs_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let error = BuildCommand::new("true".into(), &["src/[".into()], dir.path()).unwrap_err();
        assert!(error.contains("`src/[`"), "{error}");
        let error = BuildCommand::new("true".into(), &[], dir.path()).unwrap_err();
        assert!(error.contains("watch = [\"src/**\"]"), "{error}");
    }

    #[tokio::test]
    async fn a_failed_build_returns_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let build = BuildCommand::new("echo oops >&2; exit 3".into(), &["*".into()], dir.path());
        let error = build.unwrap().run().await.unwrap_err();
        assert!(
            error.contains("oops") && error.contains("exit status: 3"),
            "{error}"
        );
    }
}
