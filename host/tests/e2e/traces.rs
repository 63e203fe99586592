//! Traces over OTLP: `switchyard serve` with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! sends its spans to an OTLP/HTTP receiver started here, which decodes
//! them with the OpenTelemetry protocol's own message types. A client's
//! `traceparent` is continued by the server span, the cache and guest
//! steps are its children, and the guest's outgoing request carries the
//! trace on to its upstream.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard_tests::{P2_PROXY_COMPONENT, P3_HANDLER_COMPONENT, Server, config_dir, request};

use crate::SWITCHYARD;

/// The client's trace and span, as a W3C `traceparent` carries them.
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN_ID: &str = "00f067aa0ba902b7";

#[test]
fn spans_continue_the_clients_trace_and_reach_the_guests_upstream() {
    for (name, component) in [
        ("p2-proxy", P2_PROXY_COMPONENT),
        ("p3-handler", P3_HANDLER_COMPONENT),
    ] {
        let receiver = Receiver::start();
        let upstream = Upstream::start();
        let dir = config_dir(&format!(
            "[grants]\noutgoing_http = [\"{}\"]\n",
            upstream.address
        ));
        let endpoint = format!("http://{}", receiver.address);
        let mut server = Server::start(
            SWITCHYARD,
            &["serve", component, "--listen", "127.0.0.1:0"],
            Some(dir.path()),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("OTEL_SERVICE_NAME", "shop"),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ],
        );
        let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN_ID}-01");
        let fetched = request(
            server.address,
            "GET",
            &format!("/fetch?url=http://{}/", upstream.address),
            &[("traceparent", &traceparent)],
            b"",
        );
        assert_eq!(fetched.status, 200, "{name}: {}", fetched.text());

        let spans = receiver.wait_for(|spans| spans.iter().any(is_client_span), name);
        let server_span = spans
            .iter()
            .find(|span| span.kind == SpanKind::Server as i32)
            .unwrap_or_else(|| panic!("{name}: no server span in {spans:#?}"));
        assert_eq!(hex(&server_span.trace_id), TRACE_ID, "{name}");
        assert_eq!(hex(&server_span.parent_span_id), CLIENT_SPAN_ID, "{name}");
        // No route declared: named by the method alone, never the raw path.
        assert_eq!(server_span.name, "GET", "{name}");
        assert_eq!(
            attribute(server_span, "http.request.method"),
            Some("GET".into()),
            "{name}"
        );
        assert_eq!(
            attribute(server_span, "url.path"),
            Some("/fetch".into()),
            "{name}"
        );
        assert_eq!(
            attribute(server_span, "http.response.status_code"),
            Some("200".into()),
            "{name}"
        );
        let names: Vec<&str> = spans.iter().map(|span| span.name.as_str()).collect();
        for step in ["response cache", "guest handle"] {
            let span = spans
                .iter()
                .find(|span| span.name == step)
                .unwrap_or_else(|| panic!("{name}: no `{step}` span in {names:?}"));
            assert_eq!(hex(&span.trace_id), TRACE_ID, "{name}: {step}");
        }
        let client = spans.iter().find(|span| is_client_span(span)).unwrap();
        assert_eq!(hex(&client.trace_id), TRACE_ID, "{name}");
        // The upstream was told the client span is its parent.
        let sent = upstream
            .traceparent()
            .unwrap_or_else(|| panic!("{name}: no traceparent upstream"));
        assert_eq!(
            sent,
            format!("00-{TRACE_ID}-{}-01", hex(&client.span_id)),
            "{name}"
        );
        assert_eq!(receiver.service_names(), ["shop"], "{name}");

        // The last batch goes out before the process exits.
        let before = receiver.spans().len();
        assert_eq!(
            request(server.address, "GET", "/", &[], b"").status,
            200,
            "{name}"
        );
        server.signal("TERM");
        assert!(
            server
                .wait(Duration::from_secs(30))
                .is_some_and(|s| s.success()),
            "{name}"
        );
        assert!(
            receiver.spans().len() > before,
            "{name}: the last span was not sent"
        );
    }
}

#[test]
fn without_an_endpoint_nothing_is_sent_and_grpc_is_refused_clearly() {
    let receiver = Receiver::start();
    let upstream = Upstream::start();
    let dir = config_dir(&format!(
        "[grants]\noutgoing_http = [\"{}\"]\n",
        upstream.address
    ));
    let server = Server::start(
        SWITCHYARD,
        &["serve", P2_PROXY_COMPONENT, "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[("OTEL_SERVICE_NAME", "shop")],
    );
    let path = format!("/fetch?url=http://{}/", upstream.address);
    assert_eq!(request(server.address, "GET", &path, &[], b"").status, 200);
    // Traces off: the guest's request carries no trace of ours.
    assert_eq!(upstream.traceparent(), None);
    drop(server);
    assert!(receiver.spans().is_empty());

    let endpoint = format!("http://{}", receiver.address);
    let (status, _, stderr) = switchyard_tests::process::run_with(
        SWITCHYARD,
        &["serve", P2_PROXY_COMPONENT, "--listen", "127.0.0.1:0"],
        Some(dir.path()),
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=grpc") && stderr.contains("4318"),
        "{stderr}"
    );
}

fn is_client_span(span: &Span) -> bool {
    span.kind == SpanKind::Client as i32
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A span attribute's value, as text.
fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?;
    match value.value.as_ref()? {
        Value::StringValue(text) => Some(text.clone()),
        Value::IntValue(number) => Some(number.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// An OTLP/HTTP receiver on 127.0.0.1: `POST /v1/traces` with protobuf.
struct Receiver {
    address: SocketAddr,
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let received = requests.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let received = received.clone();
                let service = hyper::service::service_fn(
                    move |request: http::Request<hyper::body::Incoming>| {
                        let received = received.clone();
                        async move {
                            let path = request.uri().path().to_string();
                            let content_type = request.headers().get("content-type").cloned();
                            let body = request.into_body().collect().await?.to_bytes();
                            let status = if path != "/v1/traces"
                                || content_type
                                    .as_ref()
                                    .is_none_or(|t| t != "application/x-protobuf")
                            {
                                404
                            } else {
                                match ExportTraceServiceRequest::decode(body) {
                                    Ok(export) => {
                                        received.lock().unwrap().push(export);
                                        200
                                    }
                                    Err(_) => 400,
                                }
                            };
                            let mut response = http::Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                            response.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static("application/x-protobuf"),
                            );
                            Ok::<_, hyper::Error>(response)
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service),
                );
            }
        });
        Receiver {
            address,
            requests,
            _runtime: runtime,
        }
    }

    fn spans(&self) -> Vec<Span> {
        let requests = self.requests.lock().unwrap();
        requests
            .iter()
            .flat_map(|export| &export.resource_spans)
            .flat_map(|resource| &resource.scope_spans)
            .flat_map(|scope| scope.spans.clone())
            .collect()
    }

    fn service_names(&self) -> Vec<String> {
        let requests = self.requests.lock().unwrap();
        let mut names: Vec<String> = requests
            .iter()
            .flat_map(|export| &export.resource_spans)
            .filter_map(|resource| resource.resource.as_ref())
            .flat_map(|resource| &resource.attributes)
            .filter(|kv| kv.key == "service.name")
            .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(name) => Some(name.clone()),
                _ => None,
            })
            .collect();
        names.dedup();
        names
    }

    /// The spans, once `done` says they are all here (within 30 seconds).
    fn wait_for(&self, done: impl Fn(&[Span]) -> bool, what: &str) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: spans never came: {spans:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// An upstream on 127.0.0.1 that answers every request with 200 and keeps
/// the `traceparent` of the last one.
struct Upstream {
    address: SocketAddr,
    traceparent: Arc<Mutex<Option<String>>>,
}

impl Upstream {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let traceparent = Arc::new(Mutex::new(None));
        let seen = traceparent.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).is_ok_and(|n| n == 1) {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                *seen.lock().unwrap() = head.lines().find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("traceparent")
                        .then(|| value.trim().to_string())
                });
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 8\r\nconnection: close\r\n\r\nupstream",
                );
            }
        });
        Upstream {
            address,
            traceparent,
        }
    }

    fn traceparent(&self) -> Option<String> {
        self.traceparent.lock().unwrap().clone()
    }
}
