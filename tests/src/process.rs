//! A `switchyard` (or other server) process under test: started with a
//! listen address of port 0, ready once it prints its `> Ready on` line,
//! killed on drop, its output printed when the test failed.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long a server may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// What `switchyard serve` prints, before its ready line, when it has an
/// admin listener (`--admin-listen`): this, then `HOST:PORT`.
pub const ADMIN_LINE: &str = "> Admin on http://";

/// A running server process.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
    output: Output,
    stderr: Output,
}

/// What a process printed so far, appended to by the threads reading it.
type Output = Arc<Mutex<String>>;

impl Server {
    /// Start `program` with `args` (in `dir` if given) and wait for its
    /// `> Ready on http://HOST:PORT` line; panics with its output if it exits
    /// or does not get ready.
    pub fn start(
        program: impl AsRef<Path>,
        args: &[&str],
        dir: Option<&Path>,
        envs: &[(&str, &str)],
    ) -> Server {
        Self::start_announcing(program, args, dir, envs, "> Ready on http://")
    }

    /// Like [`Server::start`], for a server whose ready line (on stdout or
    /// stderr) is `ready` followed by `HOST:PORT` (`wasmtime serve` says
    /// `Serving HTTP on http://`).
    pub fn start_announcing(
        program: impl AsRef<Path>,
        args: &[&str],
        dir: Option<&Path>,
        envs: &[(&str, &str)],
        ready: &str,
    ) -> Server {
        let (mut child, output, stderr, lines) = spawn(program.as_ref(), args, dir, envs);
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.find(ready).map(|at| &line[at + ready.len()..]) {
                        let url = url.trim_end_matches('/');
                        let address = url
                            .to_socket_addrs()
                            .ok()
                            .and_then(|mut a| {
                                a.find(SocketAddr::is_ipv4)
                                    .or_else(|| url.to_socket_addrs().ok()?.next())
                            })
                            .unwrap_or_else(|| panic!("bad ready line {line:?}"));
                        return Server {
                            child,
                            address,
                            output,
                            stderr,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    let output = output.lock().unwrap().clone();
                    panic!(
                        "{} did not get ready (exit: {status:?}); output:\n{output}",
                        program.as_ref().display()
                    );
                }
            }
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it printed so far, stdout and stderr.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Everything it printed so far on stderr alone (its log lines).
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The address of its admin listener, from the [`ADMIN_LINE`] it
    /// printed; panics with its output when there is none.
    pub fn admin_address(&self) -> SocketAddr {
        let output = self.output();
        output
            .lines()
            .find_map(|line| line.split_once(ADMIN_LINE))
            .and_then(|(_, address)| address.trim().trim_end_matches('/').parse().ok())
            .unwrap_or_else(|| panic!("no `{ADMIN_LINE}HOST:PORT` line in:\n{output}"))
    }

    /// Whether its output comes to contain `text` within a few seconds (its
    /// output is read on other threads, so a log line may trail the response
    /// it belongs to).
    pub fn printed(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.output().contains(text) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Send `signal` (`"TERM"`, `"INT"`) to it.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("failed to run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Wait up to `timeout` for it to exit.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("failed to wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- server output ----\n{}", self.output());
        }
    }
}

/// The host's wasmtime version: `wasmtime serve` must be the same.
pub const WASMTIME_VERSION: &str = "50.0.1";

/// The stock `wasmtime` CLI (`$WASMTIME`, else `wasmtime` on the path).
/// Never skipped: a missing or mismatched CLI fails the test with the
/// command that installs it.
pub fn wasmtime_cli() -> String {
    let wasmtime = std::env::var("WASMTIME").unwrap_or_else(|_| "wasmtime".to_string());
    let version = Command::new(&wasmtime).arg("--version").output();
    let install = format!(
        "install it: `cargo install --locked wasmtime-cli@{WASMTIME_VERSION}` (or `just install-wasmtime`)"
    );
    let version = match version {
        Ok(output) => String::from_utf8_lossy(&output.stdout).into_owned(),
        Err(error) => panic!("the `wasmtime` CLI is needed for this test ({error}); {install}"),
    };
    assert!(
        version.split_whitespace().nth(1) == Some(WASMTIME_VERSION),
        "`wasmtime --version` is {version:?}, not {WASMTIME_VERSION}; {install}"
    );
    wasmtime
}

/// `wasmtime serve -Scli ARGS COMPONENT` in `dir`, on a free port of 127.0.0.1.
pub fn wasmtime_serve(component: &str, args: &[&str], dir: &Path) -> Server {
    // `-Skeyvalue -Sconfig`: the example app imports wasi:keyvalue and
    // wasi:config (its pages work on without a store there).
    let mut all = vec![
        "serve",
        "-Scli",
        "-Skeyvalue",
        "-Sconfig",
        "--addr",
        "127.0.0.1:0",
    ];
    all.extend_from_slice(args);
    all.push(component);
    Server::start_announcing(
        wasmtime_cli(),
        &all,
        Some(dir),
        &[],
        "Serving HTTP on http://",
    )
}

/// Run `program args` in `dir` (for a minute at most), which must fail:
/// exit code 1, before it printed a ready line. Returns its stderr.
pub fn run_failing(program: impl AsRef<Path>, args: &[&str], dir: &Path) -> String {
    let (status, stdout, stderr) = run(program, args, Some(dir), Duration::from_secs(60));
    assert_eq!(
        status.code(),
        Some(1),
        "expected exit code 1; stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(!stdout.contains("Ready"), "it got ready: {stdout}");
    stderr
}

/// Run `program` to completion (bounded by `timeout`); returns its status,
/// stdout and stderr.
pub fn run(
    program: impl AsRef<Path>,
    args: &[&str],
    dir: Option<&Path>,
    timeout: Duration,
) -> (ExitStatus, String, String) {
    run_with(program, args, dir, &[], timeout)
}

/// [`run`], with `envs` added to its environment.
pub fn run_with(
    program: impl AsRef<Path>,
    args: &[&str],
    dir: Option<&Path>,
    envs: &[(&str, &str)],
    timeout: Duration,
) -> (ExitStatus, String, String) {
    let mut child = command(program.as_ref(), args, dir, envs)
        .spawn()
        .expect("failed to start the program");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{} ran past {timeout:?}", program.as_ref().display());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status, out.join().unwrap(), err.join().unwrap())
}

/// `program args` in `dir`, with `envs` added, its output piped, and no
/// `RUST_BACKTRACE` (a backtrace in an error message would break the tests'
/// exact comparisons).
fn command(program: &Path, args: &[&str], dir: Option<&Path>, envs: &[(&str, &str)]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    command
}

fn spawn(
    program: &Path,
    args: &[&str],
    dir: Option<&Path>,
    envs: &[(&str, &str)],
) -> (Child, Output, Output, mpsc::Receiver<String>) {
    let mut child = command(program, args, dir, envs)
        .spawn()
        .unwrap_or_else(|error| panic!("failed to start {}: {error}", program.display()));
    let output = Arc::new(Mutex::new(String::new()));
    let stderr_text = Arc::new(Mutex::new(String::new()));
    let (sender, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    for (stream, sender, apart) in [
        (
            Box::new(stdout) as Box<dyn Read + Send>,
            sender.clone(),
            None,
        ),
        (Box::new(stderr), sender, Some(stderr_text.clone())),
    ] {
        let output = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                output.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(apart) = &apart {
                    apart.lock().unwrap().push_str(&format!("{line}\n"));
                }
                let _ = sender.send(line);
            }
        });
    }
    (child, output, stderr_text, lines)
}
