//! Any request path and query against a table of routes and redirects:
//! nothing panics, a redirect stays on this site with no control
//! characters, and the canonical form of a path is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use switchyard::Config;
use switchyard::routing::{RouteTable, Routed, canonical_path};

fn table() -> &'static RouteTable {
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let config = Config::parse(
            r#"
            [[redirects]]
            source = "/go/{x}"
            destination = "/{x}"
            [[redirects]]
            source = "/docs/{*rest}"
            destination = "/d/{rest}?from=docs"
            [[routes]]
            path = "/blog/{slug}"
            page = "/posts/[id]"
            query = { id = "{slug}" }
            [[routes]]
            path = "/a"
            page = "/a"
            "#,
            "switchyard.toml".as_ref(),
        )
        .unwrap();
        RouteTable::new(&config.routes, &config.redirects).unwrap()
    })
}

fuzz_target!(|input: (&str, &str)| {
    let (path, query) = input;
    let path = canonical_path(path).unwrap_or_else(|| path.to_string());
    assert_eq!(canonical_path(&path), None, "canonical twice: {path:?}");
    let _ = switchyard::parse_query(query);
    if let Some(Routed::Redirect { location, .. }) = table().route(&path, query) {
        assert!(location.starts_with('/'), "{location:?}");
        assert!(!location.starts_with("//") && !location.starts_with("/\\"), "{location:?}");
        assert!(!location.chars().any(char::is_control), "{location:?}");
    }
});
