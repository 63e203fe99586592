//! HTTP/2 clients, frame by frame (the `h2` crate): streams that are reset
//! free their guest and slot at once, and a connection may not open more
//! streams than the server allows.

use bytes::Bytes;
use http::Request;
use std::time::Duration;
use switchyard_tests::client::wait_for_status;
use switchyard_tests::{FIXTURES_COMPONENT, Server, config_dir};

use crate::SWITCHYARD;

fn fixtures(config: &str) -> (Server, tempfile::TempDir) {
    let dir = config_dir(config);
    let args = ["serve", FIXTURES_COMPONENT, "--listen", "127.0.0.1:0"];
    (Server::start(SWITCHYARD, &args, Some(dir.path()), &[]), dir)
}

/// An HTTP/2 connection to `server` (prior knowledge, no TLS).
async fn connect(server: &Server) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(server.address)
        .await
        .unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client.ready().await.unwrap()
}

fn get_request(path: &str) -> Request<()> {
    Request::get(format!("http://localhost{path}"))
        .body(())
        .unwrap()
}

#[test]
fn reset_streams_free_their_slots_at_once() {
    let (server, _dir) = fixtures("[limits]\nmax_concurrent_requests = 2\n");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = connect(&server).await;
        // Rapid reset: open slow requests and cancel each at once.
        for _ in 0..20 {
            let (response, mut stream) = client
                .send_request(get_request("/slow?ms=20000"), true)
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            stream.send_reset(h2::Reason::CANCEL);
            drop(response);
            client = client.ready().await.unwrap();
        }
    });
    let within = Duration::from_secs(5);
    wait_for_status(
        server.address,
        "/",
        200,
        within,
        "reset streams kept their slots",
    );
}

#[test]
fn a_guest_that_fails_after_its_head_resets_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "serve",
        switchyard_tests::P2_PROXY_COMPONENT,
        "--listen",
        "127.0.0.1:0",
    ];
    let server = Server::start(SWITCHYARD, &args, Some(dir.path()), &[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = connect(&server).await;
        let (response, _) = client
            .send_request(get_request("/trap-after-head"), true)
            .unwrap();
        // The server's 500 page if nothing had gone out yet; else the
        // stream must not end as if the body were whole.
        let ended_cleanly = match response.await {
            Err(_) => false,
            Ok(response) if response.status() == 500 => false,
            Ok(response) => {
                let mut body = response.into_body();
                let mut failed = false;
                while let Some(chunk) = body.data().await {
                    if chunk.is_err() {
                        failed = true;
                        break;
                    }
                }
                !failed
            }
        };
        assert!(!ended_cleanly, "a failed body ended cleanly over HTTP/2");
    });
}

#[test]
fn an_http2_client_is_served_and_told_the_stream_limit() {
    let (server, _dir) = fixtures("[limits]\nmax_concurrent_requests = 4\n");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = connect(&server).await;
        let (response, _) = client.send_request(get_request("/"), true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            text.extend_from_slice(&chunk.unwrap());
        }
        assert_eq!(text, b"fixtures");
        // The server's SETTINGS cap streams in line with its request limit.
        assert_eq!(client.current_max_send_streams(), 4);
    });
}

#[test]
fn idle_connections_of_either_protocol_are_closed_and_free_their_slot() {
    let (server, _dir) = fixtures("[server]\nidle_timeout = \"1s\"\nmax_connections = 2\n");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // An HTTP/2 client that answers pings and sends nothing, beside an
        // HTTP/1 one that asked once and keeps its connection.
        let tcp = tokio::net::TcpStream::connect(server.address)
            .await
            .unwrap();
        let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
        let driver = tokio::spawn(connection);
        let (response, _) = client.send_request(get_request("/"), true).unwrap();
        assert_eq!(response.await.unwrap().status(), 200);
        let mut http1 = tokio::net::TcpStream::connect(server.address)
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        http1
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = vec![0; 4096];
        let read = http1.read(&mut answer).await.unwrap();
        assert!(answer[..read].starts_with(b"HTTP/1.1 200"));
        // Both slots are taken; after the idle timeout both are closed
        // (HTTP/2 with GOAWAY), within a margin, and the slots are back.
        let started = std::time::Instant::now();
        let ended = tokio::time::timeout(Duration::from_secs(5), driver).await;
        assert!(ended.is_ok(), "the idle HTTP/2 connection stayed open");
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "closed too early"
        );
        let closed = tokio::time::timeout(Duration::from_secs(5), http1.read(&mut answer)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "the idle HTTP/1 connection stayed open"
        );
    });
    wait_for_status(
        server.address,
        "/",
        200,
        Duration::from_secs(5),
        "the idle connections kept their slots",
    );
}

#[test]
fn a_stream_its_client_takes_nothing_of_is_cut_and_frees_its_slot() {
    let (server, _dir) =
        fixtures("[server]\nwrite_timeout = \"1s\"\n[limits]\nmax_concurrent_requests = 1\n");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let address = server.address;
    runtime.block_on(async {
        // A client that opens its window to nothing and answers pings: its
        // connection moves (pings, settings), its stream never does.
        let tcp = tokio::net::TcpStream::connect(address).await.unwrap();
        let (client, connection) = h2::client::Builder::new()
            .initial_window_size(0)
            .handshake::<_, Bytes>(tcp)
            .await
            .unwrap();
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let (response, _) = client
            .send_request(get_request("/huge?mb=4"), true)
            .unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        // The guest is blocked on the stream, in the only slot.
        let refused = switchyard_tests::get(address, "/");
        assert_eq!(refused.status, 503);
        // Past the write timeout, the stream is cut and the slot is back.
        tokio::task::spawn_blocking(move || {
            wait_for_status(
                address,
                "/",
                200,
                Duration::from_secs(10),
                "a stalled stream kept its slot",
            )
        })
        .await
        .unwrap();
        drop(response);
    });
}
