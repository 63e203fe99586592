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
//! Export is OTLP over HTTP (`http/protobuf`, or `http/json`), through a
//! batch processor that runs on a thread of its own and sends each batch
//! with hyper on the server's runtime. `grpc` is refused with a clear
//! error rather than silently ignored: point the endpoint at the
//! collector's HTTP port (4318).

use crate::metrics::method_label;
use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use opentelemetry::context::FutureExt as _;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector, HttpClient, HttpError};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use std::borrow::Cow;
use std::sync::OnceLock;
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
    /// Send what is still buffered (within the exporter's timeout) and stop.
    pub async fn shutdown(self) {
        let provider = self.provider;
        // The export waits on a task of this runtime: block another thread.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
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
    // The specification's default, whatever the exporter crate's features.
    let mut protocol = Protocol::HttpBinary;
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(value) = var(name) {
            match value.as_str() {
                "http/protobuf" => break,
                "http/json" => {
                    protocol = Protocol::HttpJson;
                    break;
                }
                "grpc" => wasmtime::bail!(
                    "{name}=grpc: Switchyard exports OTLP over HTTP; set `http/protobuf` (or \
                     `http/json`) and point the endpoint at the collector's HTTP port (4318)"
                ),
                other => {
                    wasmtime::bail!("{name}={other:?}: expected `http/protobuf` or `http/json`")
                }
            }
        }
    }
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
    let client = OnRuntime {
        inner: opentelemetry_http::hyper::HyperClient::with_default_connector(timeout, None),
        runtime: tokio::runtime::Handle::current(),
    };
    let exporter = SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(protocol)
        .with_timeout(timeout)
        .build()
        .map_err(|error| {
            wasmtime::format_err!("failed to set up the OTLP trace exporter: {error}")
        })?;
    let mut resource = Resource::builder();
    if var("OTEL_SERVICE_NAME").is_none() {
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
        KeyValue::new("url.path", uri.path().to_string()),
        KeyValue::new("url.scheme", uri.scheme_str().unwrap_or("http").to_string()),
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

/// The most of an error's text a span keeps (a guest writes some of it).
const MAX_ERROR_TEXT: usize = 1024;

/// Mark `span`, if there is one, failed by `error`.
pub(crate) fn failed(span: Option<&Child>, error: &impl std::fmt::Display) {
    if let Some(span) = span {
        let mut text = format!("{error:#}");
        if text.len() > MAX_ERROR_TEXT {
            let mut end = MAX_ERROR_TEXT;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        span.failed(text);
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

/// The exporter's HTTP client, run on the server's runtime: the batch
/// processor calls it from a thread of its own, where hyper has no runtime.
#[derive(Debug)]
struct OnRuntime {
    inner: opentelemetry_http::hyper::HyperClient,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let inner = self.inner.clone();
        self.runtime
            .spawn(async move { inner.send_bytes(request).await })
            .await?
    }
}
