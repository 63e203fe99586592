//! The seed's `server.js` as a router component: `/a` and `/b` render the
//! app's pages of those names with the parsed query; everything else goes
//! to the app's default handler; a render error becomes a 500.
//!
//! Compose it with an app (`switchyard compose --router router.wasm
//! app.wasm -o composed.wasm`), or plug it in with `switchyard serve
//! --router router.wasm`.

use switchyard_router::{Action, Request, Result, Router, app};

struct Server;

impl Router for Server {
    fn handle(req: &Request) -> Result<Action> {
        let pathname = req.path();
        let query = req.query_pairs().to_vec();
        if pathname == "/a" {
            app::render(req, "/a", query)
        } else if pathname == "/b" {
            app::render(req, "/b", query)
        } else {
            app::handle()
        }
    }
}

switchyard_router::export!(Server);
