//! What `Cache-Control` says, as far as a shared cache cares (RFC 9111
//! section 5.2), read once per response without allocating.

use http::{HeaderMap, header};

/// The directives of a response's `Cache-Control`.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Directives {
    pub(super) public: bool,
    pub(super) private: bool,
    pub(super) no_store: bool,
    pub(super) no_cache: bool,
    pub(super) max_age: Option<u64>,
    pub(super) s_maxage: Option<u64>,
    pub(super) stale_while_revalidate: u64,
    pub(super) stale_if_error: u64,
}

impl Directives {
    pub(super) fn of(headers: &HeaderMap) -> Self {
        let mut directives = Directives::default();
        for value in headers.get_all(header::CACHE_CONTROL) {
            let Ok(value) = value.to_str() else { continue };
            for directive in value.split(',') {
                let (name, argument) = match directive.split_once('=') {
                    Some((name, argument)) => (name, Some(argument.trim().trim_matches('"'))),
                    None => (directive, None),
                };
                let seconds = argument.and_then(|a| a.parse::<u64>().ok());
                let name = name.trim();
                let is = |directive: &str| name.eq_ignore_ascii_case(directive);
                if is("public") {
                    directives.public = true;
                } else if is("private") {
                    directives.private = true;
                } else if is("no-store") {
                    directives.no_store = true;
                } else if is("no-cache") {
                    directives.no_cache = true;
                } else if is("max-age") {
                    directives.max_age = seconds;
                } else if is("s-maxage") {
                    directives.s_maxage = seconds;
                } else if is("stale-while-revalidate") {
                    directives.stale_while_revalidate = seconds.unwrap_or(0);
                } else if is("stale-if-error") {
                    directives.stale_if_error = seconds.unwrap_or(0);
                }
            }
        }
        directives
    }

    /// How long a shared cache may keep it fresh, if it may store it at all.
    pub(super) fn shared_lifetime(&self) -> Option<u64> {
        if self.private || self.no_store || self.no_cache {
            return None;
        }
        self.s_maxage
            .or(if self.public { self.max_age } else { None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn directives(value: &str) -> Directives {
        let mut headers = HeaderMap::new();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_str(value).unwrap());
        Directives::of(&headers)
    }

    #[test]
    fn lifetimes_follow_the_shared_cache_rules() {
        assert_eq!(
            directives("public, s-maxage=10, stale-while-revalidate=59").shared_lifetime(),
            Some(10)
        );
        assert_eq!(directives("public, max-age=5").shared_lifetime(), Some(5));
        assert_eq!(
            directives("s-maxage=7, max-age=1").shared_lifetime(),
            Some(7)
        );
        assert_eq!(
            directives("max-age=5").shared_lifetime(),
            None,
            "not public"
        );
        assert_eq!(directives("private, s-maxage=10").shared_lifetime(), None);
        assert_eq!(
            directives("public, no-store, max-age=10").shared_lifetime(),
            None
        );
        assert_eq!(
            directives("public, s-maxage=10, stale-if-error=300").stale_if_error,
            300
        );
    }
}
