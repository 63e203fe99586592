//! Three `switchyard serve` replicas behind a real load balancer, Debian's
//! nginx with the repository's `deploy/cluster/nginx.conf`: restarted one at
//! a time under load without a failed request, then one killed outright while
//! nginx's retries still answer every GET. And two replicas behind it sharing
//! a real Redis: the example's comments, its counter and the cache.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use switchyard_tests::client::{request, try_request, wait_for_status};
use switchyard_tests::redis::Redis;
use switchyard_tests::{APP_COMPONENT, Server, config_dir};

use crate::SWITCHYARD;

/// The nginx configuration that `just cluster` runs too.
const NGINX_CONF: &str = include_str!("../../../deploy/cluster/nginx.conf");

/// The page the load asks for.
const PAGE: &str = "/";

#[test]
fn two_replicas_behind_nginx_share_comments_the_counter_and_the_cache_through_redis() {
    let redis = Redis::start();
    let ports = free_ports(3);
    let (replica_ports, nginx_port) = (&ports[..2], ports[2]);
    let url = redis.url();
    let config = config_dir(&format!(
        "[keyvalue.site]\nurl = \"{url}\"\n[cache]\nshared = \"{url}\"\n"
    ));
    let _replicas: Vec<Replica> = replica_ports
        .iter()
        .map(|&port| Replica::start(port, config.path()))
        .collect();
    let nginx = Nginx::start(replica_ports, nginx_port);
    let get = |path: &str| request(nginx.address, "GET", path, &[], b"");

    // The visit counter counts every visit, whichever replica served it.
    let mut upstreams = std::collections::HashSet::new();
    let mut visits = Vec::new();
    for _ in 0..6 {
        let home = get("/");
        upstreams.insert(home.header("x-upstream").unwrap_or_default().to_string());
        let text = home.text();
        let count = text
            .split("<strong id=\"visits\">")
            .nth(1)
            .and_then(|rest| rest.split('<').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no counter in {text}"));
        visits.push(count);
    }
    assert_eq!(upstreams.len(), 2, "nginx spread the visits: {upstreams:?}");
    assert!(visits.windows(2).all(|w| w[1] > w[0]), "{visits:?}");

    // The post page is rendered once for both replicas, then shared.
    let caches: Vec<String> = (0..4)
        .map(|_| {
            get("/posts/caching")
                .header("x-cache")
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(
        caches.iter().filter(|c| *c == "MISS").count(),
        1,
        "{caches:?}"
    );

    // A comment through one replica revalidates the page on both.
    let posted = request(
        nginx.address,
        "POST",
        "/api/comments",
        &[("content-type", "application/x-www-form-urlencoded")],
        b"post=caching&author=Lin&text=Shared",
    );
    assert_eq!(posted.status, 303, "{}", posted.text());
    let deadline = Instant::now() + Duration::from_secs(5);
    for _ in 0..4 {
        loop {
            let page = get("/posts/caching");
            if page.text().contains("<strong>Lin</strong>") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} still shows the page without the comment ({:?})",
                page.header("x-upstream").unwrap_or_default(),
                page.header("x-cache")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn three_replicas_behind_nginx_restart_one_at_a_time_without_losing_a_request() {
    let started = Instant::now();
    let ports = free_ports(4);
    let (replica_ports, nginx_port) = (&ports[..3], ports[3]);
    // Drained in-flight requests get 5 s, not the default 30 s.
    let config = config_dir("[server]\nshutdown_timeout = \"5s\"\n");
    let dir = config.path();
    let mut replicas: Vec<Replica> = std::thread::scope(|scope| {
        let starting: Vec<_> = replica_ports
            .iter()
            .map(|&port| scope.spawn(move || Replica::start(port, dir)))
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    });
    let nginx = Nginx::start(replica_ports, nginx_port);
    let mut load = Load::start(nginx.address, 4);
    load.wait_for_traffic(replica_ports, "every replica gets traffic through nginx");

    // (a) Rolling restart: one replica at a time leaves (SIGTERM, drained,
    // exit 0) and a new one takes its port; the next goes only once nginx
    // sends the new one traffic.
    for (replica, &port) in replicas.iter_mut().zip(replica_ports) {
        let served = load.succeeded();
        replica.terminate();
        let new = Replica::start(port, dir);
        let old = std::mem::replace(replica, new);
        drop(old);
        load.wait_for_traffic(&[port], "nginx sends the restarted replica traffic");
        assert!(
            load.succeeded() > served,
            "no request was answered while the replica on port {port} restarted"
        );
        assert_eq!(load.failed(), 0, "{}", load.failures());
    }
    let after_restarts = load.figures();

    // (b) One replica killed outright: what it had in flight and every
    // connection refused afterwards go to the others.
    replicas[1].server.signal("KILL");
    let killed_at = load.succeeded();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        load.succeeded() > killed_at,
        "no request was answered after a replica was killed"
    );
    let (requests, failed) = load.stop();
    eprintln!(
        "cluster: {requests} GET {PAGE} through nginx, {failed} failed; {} during the rolling \
         restart ({} failed), {} after one replica was killed; {:.1?} in all",
        after_restarts.0,
        after_restarts.1,
        requests - after_restarts.0,
        started.elapsed()
    );
    assert_eq!(failed, 0, "{}", load.failures());
}

/// One `switchyard serve` replica on a fixed port, with an admin listener.
struct Replica {
    server: Server,
    admin: SocketAddr,
}

impl Replica {
    /// Start it on `127.0.0.1:port` (its admin listener on a free port) and
    /// wait for `/readyz` to answer 200.
    fn start(port: u16, dir: &Path) -> Replica {
        let listen = format!("127.0.0.1:{port}");
        let args = [
            "serve",
            APP_COMPONENT,
            "--listen",
            &listen,
            "--admin-listen",
            "127.0.0.1:0",
        ];
        let server = Server::start(SWITCHYARD, &args, Some(dir), &[]);
        assert_eq!(server.address.port(), port, "it listens where it was told");
        // The admin line comes before the ready line, so it is in the output.
        let admin = server.admin_address();
        wait_for_status(
            admin,
            "/readyz",
            200,
            Duration::from_secs(10),
            "a replica that printed its ready line",
        );
        Replica { server, admin }
    }

    /// SIGTERM: wait for `/readyz` to turn 503 (or the process to be gone
    /// already), then for it to exit 0 once drained.
    fn terminate(&mut self) {
        let port = self.server.address.port();
        self.server.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.server.wait(Duration::from_millis(20)).is_some() {
                break;
            }
            let ready = try_request(self.admin, "GET", "/readyz", &[], b"").map(|r| r.status);
            if let Ok(503) = ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "after SIGTERM the replica on port {port} neither exited nor said 503 on \
                 /readyz (last: {ready:?})"
            );
        }
        let status = self
            .server
            .wait(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("the replica on port {port} did not exit after draining"));
        assert_eq!(
            status.code(),
            Some(0),
            "the replica on port {port} exits 0 on SIGTERM"
        );
    }
}

/// nginx in front of the replicas, in a directory of its own; stopped on
/// drop, its error log printed when the test failed.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    address: SocketAddr,
}

impl Nginx {
    fn start(upstreams: &[u16], port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        // Workers started by root run as `nobody`: they must reach the
        // temporary directories nginx makes in here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let upstream: String = upstreams
            .iter()
            .map(|port| format!("server 127.0.0.1:{port} max_fails=1 fail_timeout=1s;\n"))
            .collect();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("nginx.conf", NGINX_CONF);
        write("upstream.conf", &upstream);
        write("listen.conf", &format!("listen 127.0.0.1:{port};\n"));
        let output = std::fs::File::create(dir.path().join("nginx.out")).unwrap();
        let child = Command::new(nginx())
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("failed to start nginx");
        let mut nginx = Nginx {
            child,
            dir,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        // Ready once a page comes through it from a replica (`X-Upstream`):
        // not merely something else listening on the port.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let answer = try_request(nginx.address, "GET", PAGE, &[], b"");
            if answer
                .as_ref()
                .is_ok_and(|r| r.header("x-upstream").is_some())
            {
                return nginx;
            }
            let exited = nginx.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "nginx did not answer on {} (exit: {exited:?}; last answer: {answer:?})",
                nginx.address
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its output and error log so far.
    fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name));
        format!(
            "{}{}",
            read("nginx.out").unwrap_or_default(),
            read("error.log").unwrap_or_default()
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, so that the master stops its workers too (SIGKILL would
        // leave them running, listening); SIGKILL if that takes too long.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- nginx error log ----\n{}", self.log());
        }
    }
}

/// The nginx binary: `$NGINX`, else `nginx` on the path or in `/usr/sbin`.
/// Never skipped: without it the test fails with the command that installs it.
fn nginx() -> PathBuf {
    if let Some(nginx) = std::env::var_os("NGINX") {
        return nginx.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|nginx| nginx.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx is needed for this test; install it: `just install-nginx` (Debian's nginx)"
            )
        })
}

/// `count` distinct ports of 127.0.0.1 that were free a moment ago.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect()
}

/// Client threads asking nginx for [`PAGE`] in a loop until stopped,
/// counting the answers: 200 (by the replica's port that answered, from
/// nginx's `X-Upstream`) or a failure (any other status, or an I/O error).
struct Load {
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

#[derive(Default)]
struct Tally {
    succeeded: AtomicU64,
    failed: AtomicU64,
    by_port: Mutex<HashMap<u16, u64>>,
    /// The first few failures, for the message.
    failures: Mutex<Vec<String>>,
}

impl Load {
    fn start(address: SocketAddr, threads: usize) -> Load {
        let tally = Arc::new(Tally::default());
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..threads)
            .map(|_| {
                let (tally, stop) = (tally.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        tally.count(try_request(address, "GET", PAGE, &[], b""));
                        // Bounded load: a few hundred requests a second at
                        // most, on a machine other tests share.
                        std::thread::sleep(Duration::from_millis(5));
                    }
                })
            })
            .collect();
        Load {
            tally,
            stop,
            threads,
        }
    }

    fn succeeded(&self) -> u64 {
        self.tally.succeeded.load(Ordering::SeqCst)
    }

    fn failed(&self) -> u64 {
        self.tally.failed.load(Ordering::SeqCst)
    }

    /// Requests so far, and how many failed.
    fn figures(&self) -> (u64, u64) {
        let failed = self.failed();
        (self.succeeded() + failed, failed)
    }

    fn failures(&self) -> String {
        let failures = self.tally.failures.lock().unwrap();
        format!(
            "{} failed requests; the first: {failures:#?}",
            self.failed()
        )
    }

    /// Wait (up to 10 s) until each of `ports` answers a request through
    /// nginx, from now on.
    fn wait_for_traffic(&self, ports: &[u16], what: &str) {
        let count = |port| *self.tally.by_port.lock().unwrap().get(&port).unwrap_or(&0);
        let seen: Vec<u64> = ports.iter().map(|&port| count(port)).collect();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let idle: Vec<u16> = (ports.iter().zip(&seen))
                .filter(|&(&port, &seen)| count(port) == seen)
                .map(|(&port, _)| port)
                .collect();
            if idle.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: none through nginx answered by {idle:?} within 10 s ({})",
                self.failures()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the threads; the requests made, and how many failed.
    fn stop(&mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            thread.join().unwrap();
        }
        self.figures()
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Tally {
    fn count(&self, answer: std::io::Result<switchyard_tests::Response>) {
        let failure = match answer {
            Ok(response) if response.status == 200 => {
                self.succeeded.fetch_add(1, Ordering::SeqCst);
                // `127.0.0.1:A, 127.0.0.1:B` when nginx retried: B answered.
                let port = response
                    .header("x-upstream")
                    .and_then(|upstreams| upstreams.rsplit(':').next())
                    .and_then(|port| port.trim().parse().ok());
                if let Some(port) = port {
                    *self.by_port.lock().unwrap().entry(port).or_default() += 1;
                }
                return;
            }
            Ok(response) => format!(
                "{} (upstream {:?}): {}",
                response.status,
                response.header("x-upstream"),
                response.text().chars().take(200).collect::<String>()
            ),
            Err(error) => format!("I/O error: {error}"),
        };
        self.failed.fetch_add(1, Ordering::SeqCst);
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 10 {
            failures.push(failure);
        }
    }
}
