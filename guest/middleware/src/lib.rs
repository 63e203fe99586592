//! The seed's `server.js` as a `wasi:http/middleware@0.3` component, in
//! front of any app:
//!
//! - `/a` and `/b` go to the app's pages of those names, with the query;
//! - `/old/{*rest}` is served as `/{rest}` (a rewrite: the address bar
//!   keeps `/old/...`);
//! - `/admin/{*rest}` needs `Authorization: Bearer $ADMIN_TOKEN` (from the
//!   environment the host grants), else the middleware answers 401 itself;
//! - everything else goes to the app unchanged;
//! - every response goes out with `x-middleware: site`.
//!
//! `just serve-middleware` serves the example app behind it; `switchyard
//! compose --router build/middleware.wasm P3_APP.wasm -o out.wasm` makes
//! one component of it and a p3 app.

use switchyard_middleware::{ErrorCode, Middleware, Request, Response, next};

struct Site;

impl Middleware for Site {
    async fn handle(mut request: Request) -> Result<Response, ErrorCode> {
        if let Some(rest) = request.path().strip_prefix("/old/") {
            let rewritten = format!("/{}", rest.trim_start_matches('/'));
            request.set_path(&rewritten)?;
        }
        // `//admin/` is `/admin/` to a lenient router: guard both.
        let guarded = request.path().trim_start_matches('/').starts_with("admin/");
        if guarded && !authorized(&request) {
            let denied = Response::text(401, "unauthorized: send Authorization: Bearer <token>\n");
            return Ok(stamped(denied.with_header("www-authenticate", "Bearer")));
        }
        // `/a`, `/b` and the rest: the app's pages and handler, with the query.
        Ok(stamped(next(request).await?))
    }
}

/// Whether `request` carries the bearer token the environment sets.
fn authorized(request: &Request) -> bool {
    let Ok(token) = std::env::var("ADMIN_TOKEN") else {
        return false;
    };
    let sent = request.header("authorization").unwrap_or_default();
    let Some(sent) = sent.strip_prefix("Bearer ") else {
        return false;
    };
    // Compare in constant time: every byte, whatever differs first.
    sent.len() == token.len()
        && sent
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

fn stamped(response: Response) -> Response {
    response.with_header("x-middleware", "site")
}

switchyard_middleware::export!(Site);
