//! How a layer of the request pipeline is written: [`layer!`] makes the
//! tower `Layer` and the `Service` around its inner service from the one
//! thing that differs, what it does with a request. Every layer takes a
//! `Request<RequestBody>`, answers a `Response<Body>`, never fails (a
//! failure is a response) and is ready whenever its inner service is.
//!
//! ```ignore
//! layer! {
//!     /// Adds a header to every response.
//!     pub(crate) struct StampLayer(());
//!     /// `S`, stamped.
//!     struct Stamp;
//!     fn call(this, request) {
//!         let answer: ResponseFuture = Box::pin(this.inner.call(request));
//!         Box::pin(async move { answer.await })
//!     }
//! }
//! ```

/// A pipeline layer: `struct L(State)` makes `struct Service<S> { inner,
/// state }`, whose `call` is the block, with the service as `this`.
macro_rules! layer {
    (
        $(#[$layer_doc:meta])*
        $vis:vis struct $layer:ident($state:ty);
        $(#[$service_doc:meta])*
        struct $service:ident;
        fn call($this:ident, $request:ident) $body:block
    ) => {
        $(#[$layer_doc])*
        #[derive(Clone)]
        $vis struct $layer(pub(crate) $state);

        impl<S> tower::Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> $service<S> {
                $service {
                    inner,
                    state: self.0.clone(),
                }
            }
        }

        $(#[$service_doc])*
        #[derive(Clone)]
        $vis struct $service<S> {
            inner: S,
            #[allow(dead_code, reason = "a layer without state has `()`")]
            state: $state,
        }

        impl<S> tower::Service<http::Request<$crate::body::RequestBody>> for $service<S>
        where
            S: tower::Service<
                    http::Request<$crate::body::RequestBody>,
                    Response = http::Response<$crate::body::Body>,
                    Error = std::convert::Infallible,
                > + Clone
                + Send
                + 'static,
            S::Future: Send + 'static,
        {
            type Response = http::Response<$crate::body::Body>;
            type Error = std::convert::Infallible;
            type Future = $crate::body::ResponseFuture;

            fn poll_ready(
                &mut self,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<Result<(), std::convert::Infallible>> {
                self.inner.poll_ready(cx)
            }

            fn call(
                &mut self,
                $request: http::Request<$crate::body::RequestBody>,
            ) -> $crate::body::ResponseFuture {
                let $this = self;
                $body
            }
        }
    };
}

pub(crate) use layer;
