//! The WASIp3 handler path: apps exporting `wasi:http/handler@0.3.x`, served
//! through wasmtime-wasi-http's [`ProxyHandler`] (as `wasmtime serve` does).
//!
//! A p3 instance runs its own event loop (`Store::run_concurrent`) for as
//! long as it has work: the response body streams from it after `handle`
//! returned. So the instance is a worker that may take more requests, one
//! after the other (`[performance] instance_reuse`) and at once
//! (`[performance] instance_concurrency`); by default each request gets a
//! fresh one, like the p2 path.
//!
//! Deadlines: a request that has no response head by `request_timeout`
//! answers 504; a worker still busy `request_timeout` after its latest
//! request started is dropped. A worker that fails (trap, deadline) after
//! a response head was sent fails the bodies it was still writing, so the
//! client sees an aborted transfer rather than a clean, truncated one.

use super::middleware::Next;
use super::store::{Host, StoreSettings};
use crate::body::{Body, BodyError};
use crate::metrics::{InstanceEvent, Metrics};
use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use wasmtime::component::TaskGroupId;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    ExpirationError, HandlerState, Instance, Proxy, ProxyHandler, ShouldAccept, WorkerExpiration,
    WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p3::bindings::ServicePre;

/// How long an idle instance kept for reuse waits for another request.
const IDLE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a p3 app is served with; cheap to clone.
#[derive(Clone)]
pub(crate) struct P3Handler {
    handler: ProxyHandler<Instances>,
}

/// How the p3 path makes and retires instances.
pub(crate) struct P3Settings {
    pub(crate) engine: Engine,
    pub(crate) store: StoreSettings,
    /// `limits.request_timeout`.
    pub(crate) timeout: Duration,
    /// Requests one instance may serve in all (`[performance] instance_reuse`).
    pub(crate) max_uses: usize,
    /// Requests one instance may serve at once (`[performance] instance_concurrency`).
    pub(crate) max_concurrent: usize,
    /// The app's metrics, which count the instances made.
    pub(crate) metrics: Arc<Metrics>,
}

impl P3Handler {
    pub(crate) fn new(pre: ServicePre<Host>, settings: P3Settings) -> Self {
        Self {
            handler: ProxyHandler::new(Instances { pre, settings }),
        }
    }

    /// Answer `request`: the response, and where a reason comes if the
    /// worker fails before its body ends (for [`GuestBody::failed_by`]).
    /// [`is_timeout`] tells an error that is the request timeout (or the
    /// worker's deadline). A middleware's calls to its `handler` import go
    /// to `next`.
    ///
    /// [`GuestBody::failed_by`]: crate::body::GuestBody::failed_by
    pub(crate) async fn handle<B>(
        &self,
        request: Request<B>,
        next: Option<Next>,
    ) -> wasmtime::Result<(http::Response<Body>, oneshot::Receiver<String>)>
    where
        B: http_body::Body<Data = Bytes, Error = BodyError> + Send + 'static,
    {
        let request = with_absolute_uri(request).map(BodyExt::boxed_unsync);
        let (failed, failure) = oneshot::channel();
        let started = Instant::now();
        let start = RequestStart {
            failed,
            method: request.method().to_string(),
            path: request.uri().path().to_string(),
            trace: crate::telemetry::current(),
            next,
        };
        let response = match self.handler.handle(start, request).await {
            Ok(response) => response,
            // The worker's deadline came first: still the request's timeout.
            Err(error) if started.elapsed() >= self.handler.state().settings.timeout => {
                return Err(error.context(ExpirationError));
            }
            Err(error) => return Err(error),
        };
        Ok((response, failure))
    }
}

/// Whether `error`, from [`P3Handler::handle`], is the request timeout.
pub(crate) fn is_timeout(error: &wasmtime::Error) -> bool {
    error.is::<ExpirationError>()
}

/// A p3 guest sees the request's scheme and authority as the p2 path gives
/// them (`http`, or `https` over TLS; the authority from `Host`); hyper leaves an origin-form URI without
/// either, and wasi:http@0.3 hides the `Host` header from the guest.
fn with_absolute_uri<B>(mut request: Request<B>) -> Request<B> {
    if request.uri().authority().is_some() {
        return request;
    }
    let Some(authority) = request
        .headers()
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok()?.parse::<http::uri::Authority>().ok())
    else {
        return request;
    };
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(crate::server::scheme_of(&request));
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
    request
}

/// Makes instances for the [`ProxyHandler`].
struct Instances {
    pre: ServicePre<Host>,
    settings: P3Settings,
}

impl HandlerState for Instances {
    type StoreData = Host;
    type WorkerExpiration = Expiry;
    type WorkerState = Worker;

    async fn instantiate(&self) -> wasmtime::Result<Instance<Host, Expiry, Worker>> {
        let settings = &self.settings;
        settings.metrics.instance(InstanceEvent::Created);
        let mut store = Host::store(&settings.engine, &settings.store)?;
        let instantiate = self.pre.instantiate_async(&mut store);
        let service = tokio::time::timeout(settings.timeout, instantiate)
            .await
            .map_err(|_| ExpirationError)??;
        Ok(Instance {
            store,
            proxy: Proxy::P3(service),
            view: <Host as WasiHttpView>::http,
            expiration: Expiry {
                timeout: settings.timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
            },
            state: Worker {
                timeout: settings.timeout,
                max_uses: settings.max_uses,
                max_concurrent: settings.max_concurrent,
                failures: Mutex::new(Vec::new()),
                started: AtomicUsize::new(0),
                metrics: settings.metrics.clone(),
            },
        })
    }
}

/// When an instance is retired: idle past [`IDLE_TIMEOUT`], or busy past
/// the request timeout since its latest request started.
struct Expiry {
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Expiry {
    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let this = self.get_mut();
        let limit = match status {
            WorkerStatus::Idle => IDLE_TIMEOUT,
            WorkerStatus::Requests | WorkerStatus::PostReturn => this.timeout,
        };
        let Some(deadline) = start.checked_add(limit) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if this.sleep.deadline() != deadline {
            this.sleep.as_mut().reset(deadline);
        }
        this.sleep.as_mut().poll(cx)
    }
}

/// One instance's share of requests, and the bodies to fail if it fails.
struct Worker {
    timeout: Duration,
    max_uses: usize,
    max_concurrent: usize,
    failures: Mutex<Vec<oneshot::Sender<String>>>,
    /// Requests it has taken.
    started: AtomicUsize,
    /// Count its reuse and its end.
    metrics: Arc<Metrics>,
}

/// What a worker learns of a request as it takes it.
struct RequestStart {
    /// Told why, if the instance fails while the request's body streams.
    failed: oneshot::Sender<String>,
    /// For the guest's output lines.
    method: String,
    path: String,
    /// The request's span, for the guest's outgoing requests.
    trace: Option<opentelemetry::Context>,
    /// A middleware's next link.
    next: Option<Next>,
}

impl WorkerState for Worker {
    type StoreData = Host;
    type RequestData = RequestStart;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.max_uses {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, Host>,
        start: RequestStart,
        _task: TaskGroupId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        // An instance serving several requests at once cannot tell whose
        // its outgoing requests are: they continue no trace then.
        let trace = start.trace.filter(|_| self.max_concurrent == 1);
        store.data_mut().serving(&start.method, &start.path, trace);
        store.data_mut().pass_on_to(start.next);
        if self.started.fetch_add(1, Ordering::Relaxed) > 0 {
            self.metrics.instance(InstanceEvent::Reused);
        }
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.retain(|failed| !failed.is_closed());
        failures.push(start.failed);
        // The response head is due by the request timeout.
        Box::pin(tokio::time::sleep(self.timeout))
    }

    fn drop(&self, store: Store<Host>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            // Counted here, once per instance, whether it failed before a
            // response head or after.
            self.metrics.instance(match is_timeout(&error) {
                true => InstanceEvent::TimedOut,
                false => InstanceEvent::Trapped,
            });
            let failures =
                std::mem::take(&mut *self.failures.lock().unwrap_or_else(|e| e.into_inner()));
            let reason = format!("{error:#}");
            for failed in failures {
                let _ = failed.send(reason.clone());
            }
        }
        // Only now do the bodies it was writing see their end.
        drop(store);
    }
}
