//! `just bench`'s in-process figure: what one `App::render` costs with no
//! HTTP around it, on a reused instance and on a fresh one.
//!
//! `cargo run --release --example render_call -- build/app.wasm` prints the
//! median over 5 runs of microseconds per call, for `/a` rendered with
//! `?name=bench` and the one `Host` header wrk sends.

use http::Request;
use std::time::Instant;
use switchyard::{App, Config};

/// Calls per run.
const CALLS: u32 = 20_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let component = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "build/app.wasm".into());
    for (label, reuse) in [("reused instance", CALLS * 10), ("fresh instance", 1)] {
        let conf = Config::parse(
            &format!("[performance]\ninstance_reuse = {reuse}\n"),
            "render_call.toml".as_ref(),
        )?;
        let app = App::builder()
            .dev(false)
            .quiet(true)
            .conf(conf)
            .component(&component)
            .build();
        app.prepare().await?;
        let mut runs = Vec::new();
        for _ in 0..6 {
            runs.push(micros_per_call(&app).await?);
        }
        // The first run warms up.
        runs.remove(0);
        runs.sort_by(f64::total_cmp);
        println!(
            "App::render in process, {label}: {:.2} us per call",
            runs[2]
        );
    }
    Ok(())
}

async fn micros_per_call(app: &App) -> anyhow::Result<f64> {
    let request = Request::builder()
        .uri("/a?name=bench")
        .header("host", "127.0.0.1:3000")
        .body(())?;
    let query = vec![("name".to_string(), "bench".to_string())];
    let start = Instant::now();
    for _ in 0..CALLS {
        let response = app.render(&request, "/a", query.clone()).await?;
        assert!(response.status().is_success());
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS))
}
