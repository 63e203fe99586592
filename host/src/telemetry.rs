//! Traces: OpenTelemetry spans exported over OTLP, configured by the
//! standard `OTEL_*` variables and off unless an endpoint is set.
//!
//! Each request gets a server span (`GET /a/{id}`, named after its route,
//! never its raw path) that continues the client's W3C `traceparent`;
//! under it, spans for the response cache, an instance made, the guest's
//! call, and each of the guest's outgoing HTTP requests, which carry the
//! trace on in their own `traceparent`. Spans are made only when
//! [`install_from_env`] found an endpoint: otherwise none of this costs a
//! request anything but a load of one flag.
//!
//! Export is OTLP as `OTEL_EXPORTER_OTLP_PROTOCOL` says: `http/protobuf`
//! (the default) or `http/json` with hyper, `grpc` with tonic, over TLS
//! for an `https://` endpoint. The SDK's batch processor runs on a thread
//! of its own and hands each export to the server's runtime.

use crate::metrics::method_label;
use http::{HeaderMap, Request};
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::hyper::HyperClient;
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig};
use opentelemetry_otlp::{
    Protocol, SpanExporter, WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SpanData;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use std::borrow::Cow;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_util::either::Either;

/// The tracer, once traces are on.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// What exports the spans; shut it down before the process exits, so the
/// last batch is sent.
#[derive(Debug)]
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// Send what is still buffered (for up to 3 seconds) and stop.
    pub async fn shutdown(self) {
        let provider = self.provider;
        // The export waits on a task of this runtime: block another thread.
        let flush = move || provider.shutdown_with_timeout(Duration::from_secs(3));
        let _ = tokio::task::spawn_blocking(flush).await;
    }
}

/// Turn traces on if `OTEL_EXPORTER_OTLP_ENDPOINT` (or
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, and neither
/// `OTEL_SDK_DISABLED=true` nor `OTEL_TRACES_EXPORTER=none` says otherwise.
/// The service is `OTEL_SERVICE_NAME`, `switchyard` when unset. Must be
/// called within a tokio runtime; once per process.
pub fn install_from_env() -> wasmtime::Result<Option<Traces>> {
    let var = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let endpoint =
        var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"));
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
    if endpoint.is_none() || disabled {
        return Ok(None);
    }
    // `http/protobuf` is the specification's default, whatever the
    // exporter crate's features would pick.
    let protocol = [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .into_iter()
    .find_map(|name| var(name).map(|value| (name, value)))
    .map(|(name, value)| match value.as_str() {
        "http/protobuf" => Ok(Protocol::HttpBinary),
        "http/json" => Ok(Protocol::HttpJson),
        "grpc" => Ok(Protocol::Grpc),
        other => Err(wasmtime::format_err!(
            "{name}={other:?}: expected `http/protobuf`, `http/json` or `grpc`"
        )),
    })
    .transpose()?
    .unwrap_or(Protocol::HttpBinary);
    let timeout = [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .into_iter()
    .find_map(|name| var(name).map(|value| (name, value)))
    .map(|(name, value)| {
        value
            .parse()
            .map(Duration::from_millis)
            .map_err(|_| wasmtime::format_err!("{name}={value:?}: expected milliseconds"))
    })
    .transpose()?
    .unwrap_or(Duration::from_secs(10));
    let roots = roots(&var)?;
    let exporter = match protocol {
        Protocol::Grpc => {
            let mut tls = ClientTlsConfig::new().with_webpki_roots();
            for pem in &roots.pems {
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            SpanExporter::builder()
                .with_tonic()
                .with_tls_config(tls)
                .with_timeout(timeout)
                .build()
        }
        protocol => SpanExporter::builder()
            .with_http()
            .with_http_client(HyperClient::new(connector(roots.store), timeout, None))
            .with_protocol(protocol)
            .with_timeout(timeout)
            .build(),
    }
    .map_err(|error| wasmtime::format_err!("failed to set up the OTLP trace exporter: {error}"))?;
    let exporter = OnRuntime {
        inner: Arc::new(exporter),
        runtime: tokio::runtime::Handle::current(),
        failures: Failures::default(),
    };
    let mut resource = Resource::builder();
    let named = var("OTEL_SERVICE_NAME").is_some()
        || var("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|a| a.contains("service.name="));
    if !named {
        resource = resource.with_service_name("switchyard");
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build();
    let tracer = opentelemetry::trace::TracerProvider::tracer_with_scope(
        &provider,
        opentelemetry::InstrumentationScope::builder("switchyard")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    );
    if TRACER.set(tracer).is_err() {
        wasmtime::bail!("traces are already on in this process");
    }
    Ok(Some(Traces { provider }))
}

/// The certificate authorities an HTTPS or gRPC-over-TLS collector is
/// checked against: the usual web roots, and the PEM file that
/// `OTEL_EXPORTER_OTLP_CERTIFICATE` names (a collector with a private CA).
struct Roots {
    store: rustls::RootCertStore,
    /// The PEM files' certificates, for tonic.
    pems: Vec<Vec<u8>>,
}

fn roots(var: &impl Fn(&str) -> Option<String>) -> wasmtime::Result<Roots> {
    let mut roots = Roots {
        store: rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        },
        pems: Vec::new(),
    };
    let Some((name, path)) = [
        "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE",
        "OTEL_EXPORTER_OTLP_CERTIFICATE",
    ]
    .into_iter()
    .find_map(|name| var(name).map(|path| (name, path))) else {
        return Ok(roots);
    };
    let certificates = CertificateDer::pem_file_iter(&path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|error| wasmtime::format_err!("{name}: failed to read `{path}`: {error}"))?;
    if certificates.is_empty() {
        wasmtime::bail!("{name}: `{path}` holds no PEM certificate");
    }
    for certificate in certificates {
        roots
            .store
            .add(certificate)
            .map_err(|error| wasmtime::format_err!("{name}: `{path}`: {error}"))?;
    }
    let pem = std::fs::read(&path)
        .map_err(|error| wasmtime::format_err!("{name}: failed to read `{path}`: {error}"))?;
    roots.pems.push(pem);
    Ok(roots)
}

/// The HTTP exporter's connector: HTTP, or HTTPS checked against `roots`.
fn connector(roots: rustls::RootCertStore) -> Connector {
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build()
}

type Connector = hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

/// The tracer, if traces are on.
fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// Whether spans are made at all.
pub(crate) fn enabled() -> bool {
    TRACER.get().is_some()
}

/// A request's server span, continuing the client's `traceparent` (and
/// `tracestate`) when it sent a valid one; `None` when traces are off.
pub(crate) fn server_span<B>(request: &Request<B>, route: &str) -> Option<Context> {
    let tracer = tracer()?;
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(request.headers()));
    let uri = request.uri();
    // Methods outside the standard ones are `_OTHER`, named `HTTP`.
    let method = method_label(request.method());
    let mut attributes = vec![
        KeyValue::new("http.request.method", method),
        KeyValue::new("url.path", truncated(uri.path().to_string())),
        KeyValue::new("url.scheme", crate::server::scheme_of(request).to_string()),
        KeyValue::new(
            "network.protocol.version",
            protocol_version(request.version()),
        ),
    ];
    if let Some(served_on) = request.extensions().get::<crate::server::ServedOn>() {
        attributes.push(KeyValue::new("server.port", i64::from(served_on.0.port())));
    }
    // Named `GET /posts/[id]`; only `GET` when no declared route matched
    // (never the raw path, which would make every URL a span name).
    let method = if method == "_OTHER" { "HTTP" } else { method };
    let name = if route.is_empty() {
        method.to_string()
    } else {
        attributes.push(KeyValue::new("http.route", route.to_string()));
        format!("{method} {route}")
    };
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_attributes(attributes)
        .start_with_context(tracer, &parent);
    Some(parent.with_span(span))
}

/// End a server span with its response's status: 5xx is an error.
pub(crate) fn end_server_span(span: &Context, status: u16, complete: bool) {
    let span = span.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status),
    ));
    if status >= 500 {
        span.set_attribute(KeyValue::new("error.type", status.to_string()));
        span.set_status(Status::error(""));
    } else if !complete {
        span.set_attribute(KeyValue::new("error.type", "incomplete"));
        span.set_status(Status::error("the response body was not sent whole"));
    }
    span.end();
}

/// A child of the current span (an internal step: cache, instance, guest
/// call), ended when dropped; nothing when traces are off or no request
/// span is current.
pub(crate) fn child(name: &'static str) -> Option<Child> {
    let tracer = tracer()?;
    let parent = Context::current();
    if !parent.has_active_span() {
        return None;
    }
    let span = tracer.start_with_context(name, &parent);
    Some(Child(parent.with_span(span)))
}

/// The most of a text a span keeps from a client or a guest (a path, an
/// error): spans wait in memory for their batch.
const MAX_TEXT: usize = 1024;

/// `text`, cut to [`MAX_TEXT`] bytes.
fn truncated(mut text: String) -> String {
    if text.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Mark `span`, if there is one, failed by `error`.
pub(crate) fn failed(span: Option<&Child>, error: &impl std::fmt::Display) {
    if let Some(span) = span {
        span.failed(truncated(format!("{error:#}")));
    }
}

/// A span that ends when dropped.
pub(crate) struct Child(Context);

impl Child {
    /// Add an attribute.
    pub(crate) fn set(&self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        self.0.span().set_attribute(KeyValue::new(key, value));
    }

    /// Mark it failed.
    pub(crate) fn failed(&self, reason: impl Into<Cow<'static, str>>) {
        self.0.span().set_status(Status::error(reason));
    }

    /// Its context, for what runs under it.
    pub(crate) fn context(&self) -> &Context {
        &self.0
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.0.span().end();
    }
}

/// `future`, with `context` current whenever it runs (a request's spans
/// follow it across `.await`s and into the tasks it hands its context to).
pub(crate) fn within<F: Future>(
    context: Option<Context>,
    future: F,
) -> Either<opentelemetry::context::WithContext<F>, F> {
    match context {
        Some(context) => Either::Left(future.with_context(context)),
        None => Either::Right(future),
    }
}

/// The current context, if a request's span is in it (to carry into a
/// task spawned for the request).
pub(crate) fn current() -> Option<Context> {
    if !enabled() {
        return None;
    }
    let context = Context::current();
    context.has_active_span().then_some(context)
}

/// A client span for a guest's outgoing request under `parent`, with the
/// request's headers given its `traceparent` (replacing any the guest
/// set: the host's span is the parent of record).
pub(crate) fn outgoing_span(parent: &Context, request: &mut Request<impl Sized>) -> Option<Child> {
    let tracer = tracer()?;
    let uri = request.uri();
    let method = method_label(request.method());
    let mut attributes = vec![KeyValue::new("http.request.method", method)];
    if let Some(host) = uri.host() {
        attributes.push(KeyValue::new("server.address", host.to_string()));
    }
    if let Some(port) = uri.port_u16() {
        attributes.push(KeyValue::new("server.port", i64::from(port)));
    }
    let span = tracer
        .span_builder(if method == "_OTHER" { "HTTP" } else { method })
        .with_kind(SpanKind::Client)
        .with_attributes(attributes)
        .start_with_context(tracer, parent);
    let context = parent.with_span(span);
    inject(&context, request.headers_mut());
    Some(Child(context))
}

/// Write `context`'s `traceparent` (and `tracestate`) into `headers`.
fn inject(context: &Context, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(context, &mut HeaderInjector(headers));
}

fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// An exporter whose exports run on the server's runtime: the batch
/// processor calls it from a thread of its own, where neither hyper nor
/// tonic has a runtime.
#[derive(Debug)]
struct OnRuntime {
    inner: Arc<SpanExporter>,
    runtime: tokio::runtime::Handle,
    failures: Failures,
}

/// Failed exports, logged at most once a minute (a collector that is down
/// fails every batch).
#[derive(Debug, Default)]
struct Failures {
    /// When one was last logged, and the spans lost since.
    state: std::sync::Mutex<(Option<std::time::Instant>, usize)>,
}

impl Failures {
    fn report(&self, spans: usize, error: &OTelSdkError) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (last, lost) = &mut *state;
        *lost += spans;
        if last.is_some_and(|last| last.elapsed() < Duration::from_secs(60)) {
            return;
        }
        tracing::warn!("failed to export {lost} spans to the OTLP collector: {error}");
        *last = Some(std::time::Instant::now());
        *lost = 0;
    }
}

impl opentelemetry_sdk::trace::SpanExporter for OnRuntime {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let inner = self.inner.clone();
        let spans = batch.len();
        let export = self.runtime.spawn(async move { inner.export(batch).await });
        let result = export
            .await
            .map_err(|error| OTelSdkError::InternalFailure(error.to_string()))?;
        if let Err(error) = &result {
            self.failures.report(spans, error);
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        // Called once, when the provider is built, before any export.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.set_resource(resource);
        }
    }
}
