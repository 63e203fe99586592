//! The component's exports, implemented once for any [`App`].

use crate::bindings::exports::switchyard::server::renderer;
use crate::bindings::exports::wasi::http::incoming_handler;
use crate::pages::Mode;
use crate::{App, pages};
use std::marker::PhantomData;
use switchyard_guest::bindings::switchyard::server::types::{Page, RequestInfo};
use switchyard_guest::bindings::wasi::http::types::{IncomingRequest, ResponseOutparam};
use switchyard_guest::{Request, Response};

/// The type [`export!`](crate::export) exports for an app `A`.
pub struct Exports<A>(PhantomData<A>);

impl<A: App> incoming_handler::Guest for Exports<A> {
    fn handle(incoming: IncomingRequest, out: ResponseOutparam) {
        let response = match switchyard_guest::http::read_request(incoming) {
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
        switchyard_guest::http::write_response(out, response);
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
        let mut request = Request::rendering(info, query);
        let if_none_match = request.header("if-none-match").map(str::to_string);
        let pages = pages::<A>();
        let response = match pages.render(&page, &mut request, Mode::from_env()) {
            None => pages.not_found(&request),
            Some(Ok(response)) => response,
            Some(Err(error)) => return Err(format!("{error:#}")),
        };
        Ok(response.finish(if_none_match.as_deref()).into())
    }

    fn pages() -> Vec<String> {
        pages::<A>().patterns().map(str::to_string).collect()
    }
}
