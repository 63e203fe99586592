//! The app's default handler: hand the request to the guest's
//! `wasi:http/incoming-handler` export, in a fresh instance.

use crate::body::Body;
use crate::error::Error;
use crate::instance::Host;
use crate::prepared::Prepared;
use bytes::Bytes;
use http::{Request, Response, header};
use wasmtime::format_err;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// Run the default handler for `request`. The guest runs in a task of its
/// own, so it can go on streaming the body after the response head is sent;
/// `limits.request_timeout` bounds all of it.
pub(crate) async fn handle<B>(
    prepared: &Prepared,
    mut request: Request<B>,
) -> Result<Response<Body>, Error>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<wasmtime_wasi_http::Error>,
{
    if request.uri().authority().is_none() && !request.headers().contains_key(header::HOST) {
        // HTTP/1.0 clients may send no Host; wasi:http requires an authority.
        request
            .headers_mut()
            .insert(header::HOST, header::HeaderValue::from_static("localhost"));
    }
    let mut store = Host::store(&prepared.engine, &prepared.store);
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let incoming = store
        .data_mut()
        .http()
        .new_incoming_request(Scheme::Http, request)?;
    let out = store.data_mut().http().new_response_outparam(sender)?;
    let pre = prepared.handler.clone();
    let timeout = prepared.timeout;
    let task = tokio::spawn(async move {
        tokio::time::timeout(timeout, async move {
            let app = pre.instantiate_async(&mut store).await?;
            app.wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, out)
                .await
        })
        .await
    });
    match receiver.await {
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
