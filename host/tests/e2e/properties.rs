//! Property tests of the query parser and the route matcher, through the
//! library's public API.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use std::path::Path;
use switchyard::Config;
use switchyard::parse_query;
use switchyard::routing::{RouteTable, Routed};

fn table(text: &str) -> RouteTable {
    let config = Config::parse(text, Path::new("switchyard.toml")).unwrap();
    RouteTable::new(&config.routes, &config.redirects).unwrap()
}

#[test]
fn an_encoded_ampersand_is_part_of_its_name() {
    assert_eq!(
        parse_query("%26=1&a%26b=2"),
        [
            ("&".to_string(), "1".to_string()),
            ("a&b".into(), "2".into())
        ]
    );
}

proptest! {
    /// Whatever pairs are encoded, parsing gives them back, in order.
    #[test]
    fn query_round_trips(pairs in proptest::collection::vec((".*", ".*"), 0..8)) {
        let encoded = form_urlencoded::Serializer::new(String::new()).extend_pairs(&pairs).finish();
        prop_assert_eq!(parse_query(&encoded), pairs);
    }

    /// Parsing any string never panics, and every raw `&` separates: one
    /// pair per non-empty `&`-separated part (a name or value has an `&`
    /// only when it came encoded, as `%26`).
    #[test]
    fn query_parsing_is_total(query in "([a-z=&]|%26|%2|%)*") {
        let parts = query.split('&').filter(|part| !part.is_empty()).count();
        prop_assert_eq!(parse_query(&query).len(), parts);
    }

    /// A segment parameter gets back exactly the segment, percent-decoded.
    #[test]
    fn segment_parameters_decode_any_segment(segment in "[^/?#]{1,20}") {
        let table = table("[[routes]]\npath = \"/blog/{slug}\"\npage = \"/p\"\nquery = { id = \"{slug}\" }\n");
        let encoded: String = utf8_percent_encode(&segment, NON_ALPHANUMERIC).to_string();
        let routed = table.route(&format!("/blog/{encoded}"), "");
        let Some(Routed::Page { page, query }) = routed else {
            return Err(TestCaseError::fail(format!("not routed: {routed:?}")));
        };
        prop_assert_eq!(page, "/p");
        prop_assert_eq!(query, vec![("slug".to_string(), segment.clone()), ("id".to_string(), segment)]);
    }

    /// Exact routes win over a parameter, and over a catch-all, in any
    /// order in the file.
    #[test]
    fn exact_beats_parameters(exact_first in any::<bool>(), catch_all in any::<bool>(), tail in "[a-z]{1,8}") {
        let exact = "[[routes]]\npath = \"/x/exact\"\npage = \"/exact\"\n";
        let param = if catch_all {
            "[[routes]]\npath = \"/x/{*rest}\"\npage = \"/param\"\n"
        } else {
            "[[routes]]\npath = \"/x/{one}\"\npage = \"/param\"\n"
        };
        let text = if exact_first { format!("{exact}{param}") } else { format!("{param}{exact}") };
        let table = table(&text);
        let page = |path: &str| match table.route(path, "") {
            Some(Routed::Page { page, .. }) => page,
            other => panic!("{path}: {other:?}"),
        };
        prop_assert_eq!(page("/x/exact"), "/exact");
        if tail != "exact" {
            prop_assert_eq!(page(&format!("/x/{tail}")), "/param");
        }
    }
}
