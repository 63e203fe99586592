//! Pooled outgoing HTTP over real connections: a guest's requests to one
//! destination reuse a keep-alive connection, a p3 guest's too, and the
//! grants are checked on every request, pooled or not.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchyard_tests::{P2_PROXY_COMPONENT, P3_HANDLER_COMPONENT, Server, config_dir, get};

use crate::SWITCHYARD;

/// An HTTP/1.1 upstream that keeps connections alive and counts them and
/// the requests on them; it serves until the test ends.
struct Upstream {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (counted, served) = (connections.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                counted.fetch_add(1, Ordering::SeqCst);
                let served = served.clone();
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(Duration::from_secs(60))).ok();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    loop {
                        // A GET: its head, up to the empty line.
                        let mut line = String::new();
                        let mut lines = 0;
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) if line == "\r\n" => break,
                                Ok(_) => lines += 1,
                            }
                        }
                        if lines == 0 {
                            return;
                        }
                        let n = served.fetch_add(1, Ordering::SeqCst) + 1;
                        let body = format!("answer {n}");
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncontent-type: text/plain\r\n\r\n",
                            body.len()
                        );
                        if writer.write_all(head.as_bytes()).is_err()
                            || writer.write_all(body.as_bytes()).is_err()
                        {
                            return;
                        }
                    }
                });
            }
        });
        Upstream {
            address,
            connections,
            requests,
        }
    }
}

#[test]
fn requests_to_one_destination_reuse_a_keep_alive_connection() {
    for component in [P2_PROXY_COMPONENT, P3_HANDLER_COMPONENT] {
        let upstream = Upstream::start();
        let dir = config_dir(&format!(
            "[grants]\noutgoing_http = [\"{}\"]\n",
            upstream.address
        ));
        let server = Server::start(
            SWITCHYARD,
            &["serve", component, "--listen", "127.0.0.1:0"],
            Some(dir.path()),
            &[],
        );
        let url = format!("/fetch?url=http://{}/data", upstream.address);
        for n in 1..=10 {
            let response = get(server.address, &url);
            assert_eq!(response.status, 200, "{}", response.text());
            assert_eq!(response.text(), format!("upstream 200\nanswer {n}"));
        }
        assert_eq!(upstream.requests.load(Ordering::SeqCst), 10);
        // One, or two if a connection went back to the pool a moment
        // after the next request looked (it goes back from a task).
        let connections = upstream.connections.load(Ordering::SeqCst);
        assert!(
            connections <= 2,
            "{component}: {connections} connections for ten requests in a row"
        );

        // The grants hold for every request: the same server under a name
        // that is not granted is refused, pooled connection or not.
        let other = format!(
            "/fetch?url=http://localhost:{}/data",
            upstream.address.port()
        );
        let refused = get(server.address, &other);
        assert_eq!(refused.status, 502, "{}", refused.text());
        assert_eq!(upstream.requests.load(Ordering::SeqCst), 10);
    }
}

#[test]
fn a_connection_the_upstream_closed_is_not_reused() {
    // An upstream that closes each connection after its answer, as
    // `Connection: close` servers do: every request gets a new one.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        }
    });
    let dir = config_dir(&format!("[grants]\noutgoing_http = [\"{address}\"]\n"));
    let server = Server::start(
        SWITCHYARD,
        &["serve", P2_PROXY_COMPONENT, "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[],
    );
    for _ in 0..5 {
        let response = get(server.address, &format!("/fetch?url=http://{address}/"));
        assert_eq!(response.text(), "upstream 200\nok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 5);
}
