//! Query strings and paths, decoded the way Node's `url.parse(url, true)` does.

use percent_encoding::percent_decode_str;

/// Parse a query string (without the `?`) into ordered pairs.
///
/// `+` is a space, escapes are decoded (invalid UTF-8 becomes U+FFFD),
/// repeated names are kept in order and a name without `=` has an empty value.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect()
}

/// Percent-decode a URL path (`/posts/hello%20world` is `/posts/hello world`).
pub fn decode_path(path: &str) -> String {
    percent_decode_str(path).decode_utf8_lossy().into_owned()
}

/// Split a request target into its path and its raw query (without the `?`).
pub(crate) fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_decodes_like_node() {
        assert_eq!(
            parse_query("name=hello%20w%C3%B6rld%26x"),
            pairs(&[("name", "hello wörld&x")])
        );
        assert_eq!(
            parse_query("a=1+2&a=3&flag"),
            pairs(&[("a", "1 2"), ("a", "3"), ("flag", "")])
        );
        assert_eq!(parse_query("a=%zz&&b="), pairs(&[("a", "%zz"), ("b", "")]));
        assert!(parse_query("").is_empty());
    }

    #[test]
    fn path_decodes_escapes_only() {
        assert_eq!(decode_path("/posts/hello%20world"), "/posts/hello world");
        assert_eq!(decode_path("/a+b"), "/a+b");
        assert_eq!(decode_path("/%FF"), "/\u{FFFD}");
    }

    #[test]
    fn target_splits_on_first_question_mark() {
        assert_eq!(split_target("/a?x=1?y"), ("/a", "x=1?y"));
        assert_eq!(split_target("/a"), ("/a", ""));
    }
}
