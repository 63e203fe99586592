//! The `http.route` of a request, for its metrics and spans: the pattern
//! that matched its path, from the config (`[[redirects]]` sources,
//! `[[routes]]` paths) or, failing those, from the app's own page list
//! (`/posts/[id]`). A path that matches none is labelled with the empty
//! string: the label set stays as small as what the config and the app
//! declare, whatever paths clients send.

use std::collections::HashMap;
use std::sync::Arc;

/// Patterns past this many pages are not labelled (an app listing more
/// pages than that is not declaring routes).
const MAX_PAGES: usize = 1000;

/// The longest pattern that becomes a label.
const MAX_LABEL: usize = 256;

/// Finds the pattern a path matches.
#[derive(Clone, Default)]
pub struct RouteLabels {
    config: matchit::Router<Arc<str>>,
    pages: matchit::Router<Arc<str>>,
    /// The pages by name, for pages rendered by name.
    by_name: HashMap<String, Arc<str>>,
    unmatched: Arc<str>,
}

impl RouteLabels {
    /// The labels of `patterns` (matchit patterns from the config, redirects
    /// first) and `pages` (the app's page patterns, `/posts/[id]`).
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>, pages: &[String]) -> Self {
        let mut labels = Self::default();
        for pattern in patterns.into_iter().filter(|p| is_label(p)) {
            // A pattern both a redirect and a route have is labelled once.
            let _ = labels.config.insert(pattern, Arc::from(pattern));
        }
        for page in pages.iter().take(MAX_PAGES).filter(|p| is_label(p)) {
            let label = Arc::<str>::from(page.as_str());
            // Pages matchit cannot hold (conflicts, braces) go unlabelled.
            if labels
                .pages
                .insert(matchit_pattern(page), label.clone())
                .is_ok()
            {
                labels.by_name.insert(page.clone(), label);
            }
        }
        labels
    }

    /// The route of a request for `path` (its canonical form).
    pub fn route(&self, path: &str) -> Arc<str> {
        let found = self.config.at(path).or_else(|_| self.pages.at(path));
        match found {
            Ok(found) => found.value.clone(),
            Err(_) => self.unmatched.clone(),
        }
    }

    /// The route of a page rendered by name: the page, if the app has it.
    pub fn page(&self, page: &str) -> Arc<str> {
        match self.by_name.get(page) {
            Some(label) => label.clone(),
            None => self.unmatched.clone(),
        }
    }
}

/// Whether `pattern` may be a label value as it is: short, and printable
/// without escaping (the metrics text format writes label values raw, and
/// a guest names its pages).
fn is_label(pattern: &str) -> bool {
    pattern.len() <= MAX_LABEL
        && !pattern
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
}

impl std::fmt::Debug for RouteLabels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteLabels").finish_non_exhaustive()
    }
}

/// `/posts/[id]` is matchit's `/posts/{id}`; `/docs/[...slug]` is
/// `/docs/{*slug}`.
fn matchit_pattern(page: &str) -> String {
    page.split('/')
        .map(
            |segment| match segment.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                Some(name) => match name.strip_prefix("...") {
                    Some(rest) => format!("{{*{rest}}}"),
                    None => format!("{{{name}}}"),
                },
                None => segment.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::RouteLabels;

    #[test]
    fn paths_are_labelled_by_the_pattern_they_match_and_nothing_else() {
        let pages = [
            "/".to_string(),
            "/posts/[id]".into(),
            "/docs/[...slug]".into(),
        ];
        let labels = RouteLabels::new(["/old/{rest}", "/blog/{slug}"], &pages);
        assert_eq!(&*labels.route("/blog/hello"), "/blog/{slug}");
        assert_eq!(&*labels.route("/old/x"), "/old/{rest}");
        assert_eq!(&*labels.route("/posts/7"), "/posts/[id]");
        assert_eq!(&*labels.route("/docs/a/b"), "/docs/[...slug]");
        assert_eq!(&*labels.route("/"), "/");
        assert_eq!(&*labels.route("/attacker/chosen/path"), "");
        assert_eq!(&*labels.page("/posts/[id]"), "/posts/[id]");
        // A name that only matches a page's pattern is not that page.
        assert_eq!(&*labels.page("/posts/7"), "");
    }

    #[test]
    fn patterns_that_would_need_escaping_or_are_too_long_are_not_labels() {
        let long = format!("/{}", "a".repeat(300));
        let pages = [
            "/a\"b".to_string(),
            "/x\\y".into(),
            "/new\nline".into(),
            long.clone(),
        ];
        let labels = RouteLabels::new(["/q\"{x}"], &pages);
        for path in ["/a\"b", "/x\\y", "/new\nline", &long, "/q\"1"] {
            assert_eq!(&*labels.route(path), "", "{path:?}");
        }
        for page in &pages {
            assert_eq!(&*labels.page(page), "", "{page:?}");
        }
    }
}
