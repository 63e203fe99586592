//! The store of one instance: WASI contexts, resource table and limits.
//!
//! A guest gets no ambient authority: an empty environment (but for the
//! `SWITCHYARD_*` settings the host passes on), no preopened directories, no
//! sockets, and outgoing HTTP requests are refused, unless `[grants]` in the
//! config grants them one by one. Its stdout and stderr go to the server's,
//! line by line, prefixed and escaped (`output`).

use super::middleware::{Next, NextHooks};
use super::outgoing::Outgoing;
use super::output::OutputLabel;
use crate::data::{DataView, Granted};
use crate::telemetry;
use opentelemetry::Context as TraceContext;
use std::path::PathBuf;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime::error::Context;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::FsPerms;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{
    RequestOptions, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

/// What each store is given: decided once, at prepare time.
#[derive(Debug, Clone)]
pub(crate) struct StoreSettings {
    /// Environment variables the guest sees (only these).
    pub(crate) env: Arc<[(String, String)]>,
    /// Directories the guest may read: (host path, guest path).
    pub(crate) dirs: Arc<[(PathBuf, String)]>,
    /// Where the guest may send HTTP requests.
    pub(crate) outgoing_http: Outgoing,
    /// The most linear memory one instance may have, in bytes.
    pub(crate) max_memory: usize,
    /// The key-value stores, variables and cache the guest may use.
    pub(crate) data: Granted,
}

/// The `T` of `Store<T>`: one per instance.
pub(crate) struct Host {
    wasi: WasiCtx,
    /// What the guest's output lines are prefixed with.
    output: OutputLabel,
    http: WasiHttpCtx,
    table: ResourceTable,
    limits: StoreLimits,
    hooks: OutgoingPolicy,
    /// A middleware's next link.
    next: NextHooks,
    data: Granted,
    open_cas: usize,
}

impl Host {
    /// A store for one request, with its limits and an epoch deadline that
    /// yields to the runtime at every tick (the wall-clock timeout is the
    /// caller's, so a looping guest never holds a worker thread).
    pub(crate) fn store(
        engine: &Engine,
        settings: &StoreSettings,
    ) -> wasmtime::Result<Store<Host>> {
        let (stdout, stderr, output) = super::output::streams();
        let mut wasi = WasiCtx::builder();
        wasi.envs(&settings.env).stdout(stdout).stderr(stderr);
        for (host, guest) in settings.dirs.iter() {
            wasi.preopened_dir(host, guest, FsPerms::ReadOnly)
                .with_context(|| format!("failed to open `{}` for the guest", host.display()))?;
        }
        let wasi = wasi.build();
        let limits = StoreLimitsBuilder::new()
            .memory_size(settings.max_memory)
            .trap_on_grow_failure(true)
            .build();
        let host = Host {
            wasi,
            output,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            limits,
            hooks: OutgoingPolicy {
                outgoing: settings.outgoing_http.clone(),
                trace: None,
            },
            next: NextHooks::default(),
            data: settings.data.clone(),
            open_cas: 0,
        };
        let mut store = Store::new(engine, host);
        store.limiter(|host| &mut host.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        Ok(store)
    }
}

impl Host {
    /// The guest's output lines are about this request from now on, and
    /// its outgoing requests continue `trace` (the request's span, when
    /// traces are on).
    pub(crate) fn serving(&mut self, method: &str, path: &str, trace: Option<TraceContext>) {
        self.output.set_request(method, path);
        self.hooks.trace = trace;
    }

    /// A middleware's requests to its `wasi:http/handler` import go to
    /// `next`.
    pub(crate) fn pass_on_to(&mut self, next: Option<Next>) {
        self.next.next = next;
    }

    /// The `wasi:http` view of a middleware's calls to its next link.
    pub(crate) fn next_http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.next,
        }
    }

    /// The data interfaces' view of this store.
    pub(crate) fn data(&mut self) -> DataView<'_> {
        DataView {
            granted: &self.data,
            table: &mut self.table,
            open_cas: &mut self.open_cas,
        }
    }
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// `wasi:http` hooks: outgoing requests go through the grants, in a
/// client span of the request being served when traces are on.
struct OutgoingPolicy {
    outgoing: Outgoing,
    trace: Option<TraceContext>,
}

impl WasiHttpHooks for OutgoingPolicy {
    fn send_request(
        &mut self,
        request: http::Request<HyperOutgoingBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<HyperOutgoingBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        let outgoing = self.outgoing.clone();
        let mut request = request;
        let span =
            (self.trace.as_ref()).and_then(|trace| telemetry::outgoing_span(trace, &mut request));
        Box::new(async move {
            let answer = outgoing.send(request, options).await;
            if let Some(span) = span {
                match &answer {
                    Ok((response, _)) => span.set(
                        "http.response.status_code",
                        i64::from(response.status().as_u16()),
                    ),
                    Err(error) => telemetry::failed(Some(&span), error),
                }
            }
            answer
        })
    }
}
