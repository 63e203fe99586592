//! The component's exports, implemented once for any [`App`].

use crate::bindings::exports::switchyard::server::renderer;
use crate::bindings::exports::wasi::http::incoming_handler;
use crate::bindings::switchyard::server::types::{Page, RequestInfo};
use crate::bindings::wasi::http::types::{IncomingRequest, ResponseOutparam};
use crate::pages::Mode;
use crate::{App, Pages, Request, Response};
use std::marker::PhantomData;
use std::sync::OnceLock;

/// The type [`export!`](crate::export) exports for an app `A`.
pub struct Exports<A>(PhantomData<A>);

/// The app's table, built once per instance (a component exports one app,
/// so one static serves).
fn pages<A: App>() -> &'static Pages {
    static PAGES: OnceLock<Pages> = OnceLock::new();
    PAGES.get_or_init(A::pages)
}

impl<A: App> incoming_handler::Guest for Exports<A> {
    fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
        let response = match crate::http::read_request(incoming) {
            Ok(request) => {
                let if_none_match = request.header("if-none-match").map(str::to_string);
                pages::<A>()
                    .respond(request, Mode::from_env())
                    .finish(if_none_match.as_deref())
            }
            Err(error) => Response::text(format!("bad request: {error}"))
                .with_status(400)
                .finish(None),
        };
        crate::http::write_response(out, response);
    }
}

impl<A: App> renderer::Guest for Exports<A> {
    /// A page the app does not have renders its `/404` page, here and
    /// only here (the host and routers leave the fallback to the app).
    fn render(
        page: String,
        query: Vec<(String, String)>,
        info: RequestInfo,
    ) -> Result<Page, String> {
        let request = Request::rendering(info, query);
        let if_none_match = request.header("if-none-match").map(str::to_string);
        let pages = pages::<A>();
        let response = match pages.render(&page, &request, Mode::from_env()) {
            None => pages.not_found(&request),
            Some(Ok(response)) => response,
            Some(Err(error)) => return Err(format!("{error:#}")),
        };
        Ok(response.finish(if_none_match.as_deref()).into())
    }

    fn pages() -> Vec<String> {
        pages::<A>().patterns()
    }
}
