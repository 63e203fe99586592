//! The app's default handler: hand the request to the guest's wasi:http
//! handler (`incoming-handler@0.2`, the routers' composed in front of it,
//! or `handler@0.3`), through the middleware the host links in front of
//! it, with the request body limited and each guest bounded by the request
//! timeout.

use super::admission::Admitted;
use crate::body::{Body, BodyError, BoxError, GuestBody, announced_length, read_ahead};
use crate::build::{Build, HttpExport};
use crate::metrics::InstanceEvent;
use crate::pipeline::error::Error;
use crate::server::ReadDeadline;
use crate::telemetry;
use crate::wasm::middleware::Next;
use crate::wasm::p3::{self, P3Handler};
use crate::wasm::store::Host;
use bytes::Bytes;
use http::{Request, Response, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::format_err;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// Run the default handler for `request`. The guest goes on streaming the
/// response body after its head is sent; `limits.request_timeout` bounds
/// all of it, and the request counts as in flight until it ends. A body over
/// `limits.max_request_body` answers 413, whether its length was announced
/// or it was streamed.
pub(super) async fn handle<B>(
    admitted: Admitted,
    request: Request<B>,
) -> Result<Response<Body>, Error>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let max_body = admitted.settings.max_request_body;
    let announced = announced_length(request.headers());
    if announced.is_some_and(|length| length > max_body) {
        return Err(Error::PayloadTooLarge(max_body));
    }
    let too_large = Arc::new(AtomicBool::new(false));
    let quiet_for = admitted.settings.body_read_timeout;
    let mut request = request.map(|body| {
        limited(
            ReadDeadline::new(body, quiet_for),
            max_body,
            too_large.clone(),
        )
    });
    if request.uri().authority().is_none() && !request.headers().contains_key(header::HOST) {
        // HTTP/1.0 clients may send no Host; wasi:http requires an authority.
        request
            .headers_mut()
            .insert(header::HOST, header::HeaderValue::from_static("localhost"));
    }
    // Held until the response ends: while it is, the middleware may call
    // the links behind it.
    let serving = Arc::new(());
    let calls = Calls::new(&serving);
    let build = Arc::clone(&admitted);
    let answer = link(build, 0, request, &too_large, &calls)
        .await
        // The body holds the admission (the instances may live on), and
        // with it the middleware's right to call the links behind it.
        .map(|response| {
            let guard = (admitted, serving);
            response.map(|body| GuestBody::new(body, guard).boxed_unsync())
        });
    // A link behind a middleware that failed is why the middleware did.
    let answer = match (answer, calls.first_failure()) {
        (Err(_), Some(first)) => Err(first),
        (Ok(response), Some(first)) => {
            tracing::warn!(
                "a middleware answered after the handler behind it failed: {}",
                crate::log_text::Escaped(&first.to_string())
            );
            Ok(response)
        }
        (answer, None) => answer,
    };
    if too_large.load(Ordering::Relaxed) {
        return Err(Error::PayloadTooLarge(max_body));
    }
    // A guest that failed before any of its answer went out (a trap right
    // after its head, a body shorter than it said) gets the error page, not
    // a connection closed with no answer at all.
    let (head, body) = answer?.into_parts();
    let body = match read_ahead(body).await {
        Ok(body) => body,
        Err(_) if too_large.load(Ordering::Relaxed) => {
            return Err(Error::PayloadTooLarge(max_body));
        }
        Err(error) => {
            return Err(Error::Guest(format_err!(
                "the app failed before its response went out: {error}"
            )));
        }
    };
    // Cut off later, the guest may have taken the cut for the end: the
    // body fails then (`GuestBody::failed_if_too_large`).
    Ok(Response::from_parts(head, body))
}

/// `body`, failing past `max` bytes; `too_large` is set then, so the server
/// can answer 413 whatever the guest made of the error.
fn limited<B>(body: B, max: u64, too_large: Arc<AtomicBool>) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    Limited::new(body, max)
        .map_err(move |error| {
            if error.is::<LengthLimitError>() {
                too_large.store(true, Ordering::Relaxed);
                return BodyError::HttpRequestBodySize(None);
            }
            match error.downcast::<hyper::Error>() {
                Ok(error) => BodyError::from(*error),
                Err(error) => BodyError::InternalError(Some(error.to_string())),
            }
        })
        .boxed_unsync()
}

/// Hand `request` to link `index` of the chain: the build's middleware in
/// order, then the app's own handler. A middleware's calls to the next
/// link come back here with `index + 1`, under `calls`' rules.
fn link(
    build: Arc<Build>,
    index: usize,
    request: Request<Body>,
    too_large: &Arc<AtomicBool>,
    calls: &Calls,
) -> Pin<Box<dyn Future<Output = Result<Response<Body>, Error>> + Send>> {
    let (too_large, calls) = (too_large.clone(), calls.clone());
    Box::pin(async move {
        let Some(middleware) = build.middleware.get(index) else {
            return match &build.http {
                HttpExport::P2(pre) => {
                    let pre = pre.clone();
                    p2(build, pre, request, too_large).await
                }
                HttpExport::P3(handler) => {
                    let handler = handler.clone();
                    p3(&build, &handler, request, None, too_large).await
                }
            };
        };
        let handler = middleware.handler.clone();
        let path = middleware.path.clone();
        let next = next_link(build.clone(), index + 1, too_large.clone(), calls);
        p3(&build, &handler, request, Some(next), too_large)
            .await
            .map_err(|error| match error {
                Error::Guest(error) => Error::Guest(
                    error.context(format!("the middleware `{}` failed", path.display())),
                ),
                other => other,
            })
    })
}

/// What a middleware's `handler` import calls: link `index`, one call at a
/// time (each holds an instance of every link behind it, which the pool
/// and `limits` count once a request), and only while the request is
/// being served.
fn next_link(build: Arc<Build>, index: usize, too_large: Arc<AtomicBool>, calls: Calls) -> Next {
    let gate = Arc::new(tokio::sync::Semaphore::new(1));
    Next::new(move |mut request| {
        let (build, too_large, calls, gate) = (
            build.clone(),
            too_large.clone(),
            calls.clone(),
            gate.clone(),
        );
        Box::pin(async move {
            let refused = |why: &str| BodyError::InternalError(Some(why.to_string()));
            let Some(_alive) = calls.alive.upgrade() else {
                return Err(refused("the request this middleware served has ended"));
            };
            let Ok(permit) = gate.try_acquire_owned() else {
                return Err(refused(
                    "this middleware already has a call to the next handler open",
                ));
            };
            // The middleware speaks for the connection: what it passes on as
            // `https` is served as such.
            if request.uri().scheme() == Some(&http::uri::Scheme::HTTPS) {
                request.extensions_mut().insert(crate::server::Https);
            }
            match link(build, index, request, &too_large, &calls).await {
                // The call is open until its body ends.
                Ok(response) => {
                    Ok(response.map(|body| GuestBody::new(body, permit).boxed_unsync()))
                }
                Err(error) => {
                    let code = error.code();
                    calls.record(error);
                    Err(code)
                }
            }
        })
    })
}

/// One request's calls through its chain: whether it is still being
/// served, and the first failure of a link behind a middleware.
#[derive(Clone)]
struct Calls {
    /// Alive while the request is being served.
    alive: std::sync::Weak<()>,
    failure: Arc<std::sync::Mutex<Option<Error>>>,
}

impl Calls {
    fn new(serving: &Arc<()>) -> Self {
        Self {
            alive: Arc::downgrade(serving),
            failure: Arc::default(),
        }
    }

    /// Keep `error` if it is the first.
    fn record(&self, error: Error) {
        let mut first = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        first.get_or_insert(error);
    }

    fn first_failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

/// The p3 path: `handler`'s instances serve the request; a middleware's
/// calls to its next link go to `next`.
async fn p3(
    build: &Build,
    handler: &P3Handler,
    request: Request<Body>,
    next: Option<Next>,
    too_large: Arc<AtomicBool>,
) -> Result<Response<Body>, Error> {
    let timeout = build.settings.timeout;
    // The request's own deadline: its instance may be serving others
    // (and be kept alive by them) long after.
    let deadline = tokio::time::Instant::now() + timeout;
    let span = telemetry::child("guest handle");
    let answer = handler.handle(request, next).await;
    if let Err(error) = &answer {
        telemetry::failed(span.as_ref(), error);
    }
    drop(span);
    match answer {
        Ok((response, failure)) => Ok(response.map(|body| {
            GuestBody::new(body, ())
                .cut_at(deadline)
                .failed_by(failure)
                .failed_if_too_large(too_large)
                .boxed_unsync()
        })),
        Err(error) if p3::is_timeout(&error) => Err(Error::Timeout(timeout)),
        Err(error) => Err(Error::Guest(error)),
    }
}

/// The p2 path: the guest runs in a task of its own, in a fresh instance
/// or an idle one with instance reuse.
async fn p2(
    build: Arc<Build>,
    pre: ProxyPre<Host>,
    request: Request<Body>,
    too_large: Arc<AtomicBool>,
) -> Result<Response<Body>, Error> {
    let mut reusable = build
        .idle_handlers
        .take_or(|| Host::store(&build.engine, &build.store))
        .map_err(Error::Host)?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let (failed, failure) = tokio::sync::oneshot::channel();
    let trace = telemetry::current();
    reusable.store.data_mut().serving(
        request.method().as_str(),
        request.uri().path(),
        trace.clone(),
    );
    let http = &mut reusable.store.data_mut().http();
    let scheme = match request.extensions().get::<crate::server::Https>() {
        Some(_) => Scheme::Https,
        None => Scheme::Http,
    };
    let incoming = http.new_incoming_request(scheme, request)?;
    let out = http.new_response_outparam(sender)?;
    let timeout = build.settings.timeout;
    let metrics = build.metrics.clone();
    let task = tokio::spawn(telemetry::within(trace, async move {
        let run = tokio::time::timeout(timeout, async {
            let proxy = match reusable.instance.take() {
                Some(proxy) => {
                    metrics.instance(InstanceEvent::Reused);
                    proxy
                }
                None => {
                    metrics.instance(InstanceEvent::Created);
                    let _span = telemetry::child("instantiate");
                    pre.instantiate_async(&mut reusable.store).await?
                }
            };
            let span = telemetry::child("guest handle");
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut reusable.store, incoming, out)
                .await
                .inspect_err(|error| telemetry::failed(span.as_ref(), error))?;
            Ok::<_, wasmtime::Error>(proxy)
        })
        .await;
        let (error, timed_out) = match run {
            Ok(Ok(proxy)) => {
                // Only an instance that returned normally may serve again.
                reusable.instance = Some(proxy);
                build.idle_handlers.give_back(reusable);
                return Ok(());
            }
            Ok(Err(error)) => {
                metrics.instance(InstanceEvent::Trapped);
                (error, false)
            }
            Err(_elapsed) => {
                metrics.instance(InstanceEvent::TimedOut);
                (format_err!("the guest ran past the request timeout"), true)
            }
        };
        // Tell the body before the instance is dropped, which ends it.
        let _ = failed.send(format!("{error:#}"));
        drop(reusable);
        Err((error, timed_out))
    }));
    // A client that leaves before the head stops the guest at once (and
    // frees its slot); after the head, the body takes this over.
    let abandoned = AbortOnDrop(Some(task.abort_handle()));
    let answer = receiver.await;
    abandoned.disarm();
    match answer {
        Ok(Ok(response)) => Ok(response.map(|body| {
            GuestBody::new(body, ())
                .failed_by(failure)
                .failed_if_too_large(too_large)
                .abort_when_abandoned(task.abort_handle())
                .boxed_unsync()
        })),
        Ok(Err(code)) => {
            // Nothing it does after this reaches the client.
            task.abort();
            Err(Error::Guest(format_err!(
                "the app answered with an error: {code:?}"
            )))
        }
        // The guest dropped the response-outparam: find out why.
        Err(_) => Err(match task.await {
            Ok(Ok(())) => Error::Guest(format_err!("the app returned without sending a response")),
            Ok(Err((_, true))) => Error::Timeout(timeout),
            Ok(Err((error, false))) => Error::Guest(error),
            Err(join) => Error::Guest(format_err!("the app's task failed: {join}")),
        }),
    }
}

/// Aborts a task when dropped, unless disarmed first.
struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl AbortOnDrop {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}
