//! The app's default handler: hand the request to the guest's
//! `wasi:http/incoming-handler` export (or the routers' in front of it), in
//! a fresh instance.

use crate::admission::Admitted;
use crate::body::Body;
use crate::error::Error;
use crate::instance::Host;
use crate::limited_body::LimitedBody;
use crate::prepared::Handler;
use bytes::Bytes;
use http::{Request, Response, header};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use wasmtime::format_err;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// Run the default handler for `request`. The guest runs in a task of its
/// own, so it can go on streaming the body after the response head is sent;
/// `limits.request_timeout` bounds all of it, and the request counts as in
/// flight until it ends. A body over `limits.max_request_body` answers 413,
/// whether its length was announced or it was streamed.
pub(crate) async fn handle<B>(
    prepared: Admitted,
    request: Request<B>,
) -> Result<Response<Body>, Error>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    let max_body = prepared.resolved.config.limits.max_request_body;
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|length| length > max_body) {
        return Err(Error::PayloadTooLarge(max_body));
    }
    let too_large = Arc::new(AtomicBool::new(false));
    let mut request = request.map(|body| LimitedBody::new(body, max_body, too_large.clone()));
    if request.uri().authority().is_none() && !request.headers().contains_key(header::HOST) {
        // HTTP/1.0 clients may send no Host; wasi:http requires an authority.
        request
            .headers_mut()
            .insert(header::HOST, header::HeaderValue::from_static("localhost"));
    }
    let pre = match &prepared.handler {
        Handler::P2(pre) => pre.clone(),
        Handler::P3(p3) => {
            let p3 = p3.clone();
            let answer = p3.handle(prepared, request).await;
            if too_large.load(Ordering::Relaxed) {
                return Err(Error::PayloadTooLarge(max_body));
            }
            return answer;
        }
    };
    let mut reusable = prepared
        .idle_handlers
        .take_or(|| Host::store(&prepared.engine, &prepared.store))?;
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let http = &mut reusable.store.data_mut().http();
    let incoming = http.new_incoming_request(Scheme::Http, request)?;
    let out = http.new_response_outparam(sender)?;
    let timeout = prepared.timeout;
    let task = tokio::spawn(async move {
        tokio::time::timeout(timeout, async move {
            let proxy = match reusable.instance.take() {
                Some(proxy) => proxy,
                None => pre.instantiate_async(&mut reusable.store).await?,
            };
            proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut reusable.store, incoming, out)
                .await?;
            // Only an instance that returned normally may serve again.
            reusable.instance = Some(proxy);
            prepared.idle_handlers.give_back(reusable);
            Ok::<_, wasmtime::Error>(())
        })
        .await
    });
    let answer = receiver.await;
    if too_large.load(Ordering::Relaxed) {
        return Err(Error::PayloadTooLarge(max_body));
    }
    match answer {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(code)) => Err(Error::Guest(format_err!(
            "the app answered with an error: {code:?}"
        ))),
        // The guest dropped the response-outparam: find out why.
        Err(_) => Err(match task.await {
            Ok(Ok(Ok(()))) => {
                Error::Guest(format_err!("the app returned without sending a response"))
            }
            Ok(Ok(Err(error))) => Error::Guest(error),
            Ok(Err(_elapsed)) => Error::Timeout(timeout),
            Err(join) => Error::Guest(format_err!("the app's task failed: {join}")),
        }),
    }
}
