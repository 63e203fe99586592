//! The fair reference for `just bench`: what a user would pick instead of a
//! component, a native hyper server rendering the example app's `/a` and
//! `/b` with the SAME askama templates (`guest/app/templates`, through
//! `host/askama.toml`) and the same work per request: the query parsed, the
//! visitor's cookie read, the page rendered and escaped, with the SSR
//! `Cache-Control`. And `/fetch?url=U`, what the standard p2 proxy's
//! `/fetch` does: a GET of `U` through a pooled client (hyper-util's, keep
//! alive), answered as `upstream STATUS` and the body. Listens on
//! `127.0.0.1:$PORT` (default 0) and prints `> Ready on http://ADDR`.

use askama::Template;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use http_body_util::{BodyExt, Empty};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::convert::Infallible;

/// The pooled client of `/fetch`.
type Fetcher = Client<HttpConnector, Empty<Bytes>>;

/// `/fetch?url=U`: `upstream STATUS` and the body of a GET of `U`.
async fn fetch(client: &Fetcher, query: &str) -> Response<Full<Bytes>> {
    let url = form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "url")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let answer = async {
        let response = client.get(url.parse()?).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, body))
    };
    match answer.await {
        Ok((status, body)) => {
            let mut text = format!("upstream {status}\n").into_bytes();
            text.extend_from_slice(&body);
            Response::new(Full::new(Bytes::from(text)))
        }
        Err(error) => {
            let mut response = Response::new(Full::new(Bytes::from(error.to_string())));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

/// The layout's visitor: the `name` cookie.
struct Visitor(Option<String>);

/// `guest/app/templates/named.html`, as the app's `named` page fills it.
#[derive(Template)]
#[template(path = "named.html")]
struct Named<'a> {
    visitor: Visitor,
    title: &'a str,
    name: &'a str,
}

fn page<B>(request: &Request<B>) -> Response<Full<Bytes>> {
    let title = match request.uri().path() {
        "/a" => "a",
        "/b" => "b",
        _ => {
            let mut response = Response::new(Full::new(Bytes::from_static(b"not found")));
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
    };
    let query = request.uri().query().unwrap_or("");
    let name = form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "name")
        .map(|(_, value)| value.into_owned());
    let visitor = request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == "name")
        .map(|(_, value)| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        });
    let body = Named {
        visitor: Visitor(visitor),
        title,
        name: name.as_deref().unwrap_or("stranger"),
    }
    .render()
    .expect("the template renders");
    Response::builder()
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(
            header::CACHE_CONTROL,
            "private, no-cache, no-store, max-age=0, must-revalidate",
        )
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")
        .unwrap_or_else(|_| "0".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("> Ready on http://{}", listener.local_addr()?);
    let client: Fetcher = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        tokio::spawn(async move {
            let service = service_fn(|request: Request<hyper::body::Incoming>| {
                let client = client.clone();
                async move {
                    Ok::<_, Infallible>(match request.uri().path() {
                        "/fetch" => fetch(&client, request.uri().query().unwrap_or("")).await,
                        _ => page(&request),
                    })
                }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
