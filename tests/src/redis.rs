//! A real Redis (or Valkey) server for a test: Debian's `redis-server` (or
//! `valkey-server`), on a free port of 127.0.0.1, keeping nothing on disk,
//! killed on drop. `just install-redis` installs it when missing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the server may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running Redis server.
pub struct Redis {
    child: Child,
    /// Where it listens.
    pub address: SocketAddr,
}

impl Redis {
    /// Start one; panics, saying how to install it, when there is none.
    pub fn start() -> Redis {
        let program = ["redis-server", "valkey-server"]
            .into_iter()
            .find(|program| {
                Command::new(program)
                    .arg("--version")
                    .output()
                    .is_ok_and(|output| output.status.success())
            })
            .expect(
                "neither `redis-server` nor `valkey-server` is installed: run `just install-redis`",
            );
        // Redis cannot be given port 0: take a free port, then let it go.
        // Another process taking it in between fails the PING below.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("no free port")
            .port();
        let child = Command::new(program)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("failed to start {program}: {e}"));
        let redis = Redis {
            child,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let started = Instant::now();
        while redis.command("PING\r\n").as_deref() != Some("+PONG\r\n") {
            assert!(
                started.elapsed() < START_TIMEOUT,
                "{program} did not answer on {}",
                redis.address
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    /// Its URL, `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.address)
    }

    /// Send one inline command and read what comes back in a short while.
    pub fn command(&self, command: &str) -> Option<String> {
        let mut stream = TcpStream::connect(self.address).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .ok()?;
        stream.write_all(command.as_bytes()).ok()?;
        let mut buffer = [0; 4096];
        let n = stream.read(&mut buffer).ok()?;
        Some(String::from_utf8_lossy(&buffer[..n]).into_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
