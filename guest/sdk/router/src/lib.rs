//! Write router components: the Next.js custom server's routing code, as a
//! component composed in front of an app (the `switchyard:server/router`
//! world). It builds in the same cargo run as apps.
//!
//! A router sees each request first and either renders one of the app's
//! pages by name, or passes the request through to the app's default
//! handler. It reads like `server.js`:
//!
//! ```no_run
//! use switchyard_router::{Action, Request, Result, Router, app};
//!
//! struct Server;
//!
//! impl Router for Server {
//!     fn handle(req: &Request) -> Result<Action> {
//!         let query = req.query_pairs().to_vec();
//!         match req.path() {
//!             "/a" => app::render(req, "/a", query),
//!             "/b" => app::render(req, "/b", query),
//!             _ => app::handle(),
//!         }
//!     }
//! }
//!
//! switchyard_router::export!(Server);
//! ```
//!
//! An error returned from `handle` (or a page that fails to render) is
//! logged as `Error occurred handling <url> <error>` and answered with
//! `500 internal server error`.

pub mod bindings;

pub use switchyard_guest::*;

use crate::bindings::exports::wasi::http::incoming_handler;
use std::marker::PhantomData;
use switchyard_guest::bindings::wasi::http::types::{IncomingRequest, ResponseOutparam};

/// What a router does with a request.
#[derive(Debug)]
pub enum Action {
    /// Send this response (a rendered page, a redirect, ...).
    Respond(Response),
    /// Hand the request, body and all, to the app's default handler.
    PassThrough,
}

impl Action {
    /// Send anything a page could answer with.
    ///
    /// ```
    /// use switchyard_router::{Action, Redirect};
    ///
    /// let Action::Respond(response) = Action::respond(Redirect::temporary("/a")).unwrap() else {
    ///     unreachable!()
    /// };
    /// assert_eq!((response.status, response.header("location")), (307, Some("/a")));
    /// ```
    pub fn respond<Via>(response: impl IntoResponse<Via>) -> anyhow::Result<Self> {
        Ok(Self::Respond(response.into_response()?))
    }
}

/// A router: decides, per request, what to do with it.
pub trait Router: 'static {
    /// Route `req`. Its path is percent-decoded and its body is left to the
    /// app.
    fn handle(req: &Request) -> anyhow::Result<Action>;
}

/// The app behind the router: `app.render` and `app.getRequestHandler()`.
pub mod app {
    use super::Action;
    use crate::Request;
    use crate::bindings::switchyard::server::renderer;
    use switchyard_guest::bindings::switchyard::server::types::RequestInfo;

    /// `app.render(req, res, page, query)`: render the app's page named
    /// `page` (`/a`, `/posts/[id]`) with `query`. A page the app does not
    /// have renders its `/404` page with 404 (the app does that); a page
    /// that fails, and whose `/_error` page fails too, is an error.
    pub fn render(
        req: &Request,
        page: &str,
        query: Vec<(String, String)>,
    ) -> anyhow::Result<Action> {
        let info = RequestInfo {
            method: req.method().to_string(),
            path: req.path().to_string(),
            headers: req.headers().to_vec(),
        };
        match renderer::render(page, &query, &info) {
            Ok(page) => Ok(Action::Respond(page.into())),
            Err(message) => anyhow::bail!("page `{page}` failed: {message}"),
        }
    }

    /// `handle(req, res)`: pass the request through to the app's default
    /// handler.
    pub fn handle() -> anyhow::Result<Action> {
        Ok(Action::PassThrough)
    }

    /// The app's page patterns.
    pub fn pages() -> Vec<String> {
        renderer::pages()
    }
}

/// The type [`export!`](crate::export) exports for a router `R`.
#[doc(hidden)]
pub struct RouterExports<R>(PhantomData<R>);

impl<R: Router> incoming_handler::Guest for RouterExports<R> {
    fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
        let mut request = switchyard_guest::http::read_head(&incoming);
        let url = match request.raw_query() {
            "" => request.path().to_string(),
            query => format!("{}?{query}", request.path()),
        };
        request.set_path(switchyard_guest::decode_path(request.path()));
        let response = match R::handle(&request) {
            Ok(Action::PassThrough) => {
                return crate::bindings::wasi::http::incoming_handler::handle(incoming, out);
            }
            Ok(Action::Respond(response)) => response,
            Err(error) => {
                eprintln!("Error occurred handling {url} {error:#}");
                Response::new(500, "text/plain; charset=utf-8", "internal server error")
            }
        };
        let response = match response.header("content-length") {
            Some(_) => response,
            None => response.finish(request.header("if-none-match")),
        };
        switchyard_guest::http::write_response(out, response);
    }
}

/// Export a [`Router`] as the component's `wasi:http/incoming-handler`.
#[macro_export]
macro_rules! export {
    ($router:ty) => {
        type __SwitchyardRouterExports = $crate::RouterExports<$router>;
        $crate::bindings::export_router!(__SwitchyardRouterExports);
    };
}
