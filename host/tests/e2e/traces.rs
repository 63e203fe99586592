//! Traces over OTLP: `switchyard serve` with `OTEL_EXPORTER_OTLP_ENDPOINT`
//! sends its spans to an OTLP/HTTP receiver started here, which decodes
//! them with the OpenTelemetry protocol's own message types. A client's
//! `traceparent` is continued by the server span, the cache and guest
//! steps are its children, and the guest's outgoing request carries the
//! trace on to its upstream.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
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
    let cases = [
        ("p2-proxy", P2_PROXY_COMPONENT, Otlp::HttpProtobuf),
        ("p3-handler", P3_HANDLER_COMPONENT, Otlp::HttpProtobuf),
        ("p2-proxy over gRPC", P2_PROXY_COMPONENT, Otlp::Grpc),
    ];
    for (name, component, otlp) in cases {
        let receiver = Receiver::start(otlp);
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
                ("OTEL_EXPORTER_OTLP_PROTOCOL", otlp.protocol()),
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

        // The server span ends last, once the response body is sent.
        let spans = receiver.wait_for(
            |spans| spans.iter().any(is_client_span) && spans.iter().any(is_server_span),
            name,
        );
        let server_span = spans.iter().find(|span| is_server_span(span)).unwrap();
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
fn without_an_endpoint_nothing_is_sent_and_a_bad_setting_is_named() {
    let receiver = Receiver::start(Otlp::HttpProtobuf);
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
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
        ],
        Duration::from_secs(60),
    );
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"thrift\": expected"),
        "{stderr}"
    );
}

fn is_client_span(span: &Span) -> bool {
    span.kind == SpanKind::Client as i32
}

fn is_server_span(span: &Span) -> bool {
    span.kind == SpanKind::Server as i32
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

/// How spans travel to the receiver.
#[derive(Debug, Clone, Copy)]
enum Otlp {
    /// `POST /v1/traces` with protobuf, over HTTP/1.1.
    HttpProtobuf,
    /// The `TraceService/Export` gRPC call, over HTTP/2.
    Grpc,
}

impl Otlp {
    /// Its `OTEL_EXPORTER_OTLP_PROTOCOL`.
    fn protocol(self) -> &'static str {
        match self {
            Otlp::HttpProtobuf => "http/protobuf",
            Otlp::Grpc => "grpc",
        }
    }
}

/// An OTLP receiver on 127.0.0.1, keeping what it decodes.
struct Receiver {
    address: SocketAddr,
    requests: Exports,
    _runtime: tokio::runtime::Runtime,
}

type Exports = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

impl Receiver {
    fn start(otlp: Otlp) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Exports::default();
        let received = requests.clone();
        runtime.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let stream = TokioIo::new(stream);
                match otlp {
                    Otlp::HttpProtobuf => {
                        let received = received.clone();
                        let service =
                            service_fn(move |request| http_export(request, received.clone()));
                        tokio::spawn(http1::Builder::new().serve_connection(stream, service));
                    }
                    Otlp::Grpc => {
                        let service = TraceServiceServer::new(Collector(received.clone()));
                        let service = TowerToHyperService::new(service);
                        let connection = http2::Builder::new(TokioExecutor::new())
                            .serve_connection(stream, service);
                        tokio::spawn(connection);
                    }
                }
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

/// One OTLP/HTTP export: protobuf at `/v1/traces`, else 404 (or 400 when
/// it does not decode).
async fn http_export(
    request: http::Request<Incoming>,
    received: Exports,
) -> Result<http::Response<Full<Bytes>>, hyper::Error> {
    let path = request.uri().path().to_string();
    let protobuf = request
        .headers()
        .get("content-type")
        .is_some_and(|t| t == "application/x-protobuf");
    let body = request.into_body().collect().await?.to_bytes();
    let status = if path != "/v1/traces" || !protobuf {
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
    Ok(response)
}

/// The gRPC collector service, from the protocol's own definitions.
struct Collector(Exports);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
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
