//! Host-side routing: `[[routes]]` and `[[redirects]]` from the config.
//!
//! Paths are matchit patterns: exact (`/a`), one segment (`/blog/{slug}`) or
//! the rest of the path (`/docs/{*rest}`). Precedence does not depend on the
//! order in the file: an exact path beats a parameter. Patterns that could
//! match the same path with no winner (`/x/{a}` and `/x/{b}`, or `/x/{a}`
//! and `/x/{*rest}`) are refused as conflicts, naming both.
//! Parameters are percent-decoded and passed to the page as query entries.
//!
//! ```
//! use switchyard::{Config, routing::{RouteTable, Routed}};
//! let config = Config::parse(r#"
//!     [[routes]]
//!     path = "/blog/{slug}"
//!     page = "/posts/[id]"
//!     query = { id = "{slug}" }
//! "#, "switchyard.toml".as_ref()).unwrap();
//! let table = RouteTable::new(&config.routes, &config.redirects).unwrap();
//! let Some(Routed::Page { page, query }) = table.route("/blog/hello%20world", "") else { panic!() };
//! assert_eq!(page, "/posts/[id]");
//! assert!(query.contains(&("id".into(), "hello world".into())));
//! ```

mod labels;

pub use labels::RouteLabels;

use percent_encoding::percent_decode_str;
use serde::Deserialize;
use std::collections::BTreeMap;

/// `[[routes]]`: render `page` for requests whose path matches `path`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `/a` (exact), `/blog/{slug}` (a segment), `/docs/{*rest}` (the rest).
    pub path: String,
    /// The page to render, by its pattern in the app (`/a`, `/posts/[id]`).
    pub page: String,
    /// Extra query entries; `{param}` in a value is the path parameter.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
}

/// `[[redirects]]`: answer `source` with a redirect to `destination`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// A path pattern, as for routes.
    pub source: String,
    /// Where to send the client; `{param}` is the path parameter.
    pub destination: String,
    /// 308 when true, 307 when false.
    #[serde(default)]
    pub permanent: bool,
}

/// A bad route or redirect: the config key it is under, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError {
    /// `routes[1].path`, `redirects[0].destination`, ...
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Ordered query entries, names may repeat.
pub type Pairs = Vec<(String, String)>;

/// What the host does with a request, before any guest runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routed {
    /// Render `page` with `query` through the app's renderer.
    Page {
        /// The page pattern.
        page: String,
        /// The request's query, then the path parameters, then the route's
        /// `query` entries (each replacing entries of the same name).
        query: Pairs,
    },
    /// Redirect to `location` with `status` (307 or 308).
    Redirect {
        /// 307 or 308.
        status: u16,
        /// The destination, with the request's query kept.
        location: String,
    },
}

#[derive(Debug, Clone)]
struct Route {
    page: String,
    query: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct Redirect {
    destination: String,
    status: u16,
}

/// The routes and redirects of a config, ready to match.
#[derive(Clone, Default)]
pub struct RouteTable {
    routes: matchit::Router<Route>,
    redirects: matchit::Router<Redirect>,
    listing: Vec<(String, String)>,
}

impl RouteTable {
    /// Build the table, refusing bad or conflicting patterns with an error
    /// naming the key (`routes[1].path`).
    pub fn new(routes: &[RouteConfig], redirects: &[RedirectConfig]) -> Result<Self, RouteError> {
        let mut table = Self::default();
        for (i, redirect) in redirects.iter().enumerate() {
            let key = |field: &str| format!("redirects[{i}].{field}");
            let invalid = |field: &str| {
                let key = key(field);
                move |reason| RouteError { key, reason }
            };
            check_pattern(&redirect.source).map_err(invalid("source"))?;
            check_template(&redirect.destination, &redirect.source)
                .map_err(invalid("destination"))?;
            let status = if redirect.permanent { 308 } else { 307 };
            let target = Redirect {
                destination: redirect.destination.clone(),
                status,
            };
            table
                .redirects
                .insert(&redirect.source, target)
                .map_err(|e| invalid("source")(insert_error(e)))?;
            table.listing.push((
                redirect.source.clone(),
                format!("redirect {status} -> {}", redirect.destination),
            ));
        }
        for (i, route) in routes.iter().enumerate() {
            let invalid = |field: &str| {
                let key = format!("routes[{i}].{field}");
                move |reason| RouteError { key, reason }
            };
            check_pattern(&route.path).map_err(invalid("path"))?;
            if !route.page.starts_with('/') {
                return Err(invalid("page")(format!(
                    "`{}` must start with `/`, like `/a` or `/posts/[id]`",
                    route.page
                )));
            }
            for (name, value) in &route.query {
                check_template(value, &route.path).map_err(invalid(&format!("query.{name}")))?;
            }
            let target = Route {
                page: route.page.clone(),
                query: route.query.clone().into_iter().collect(),
            };
            table
                .routes
                .insert(&route.path, target)
                .map_err(|e| invalid("path")(insert_error(e)))?;
            table
                .listing
                .push((route.path.clone(), format!("page {}", route.page)));
        }
        Ok(table)
    }

    /// Route a request by its raw (percent-encoded) `path` and raw `query`.
    /// `None`: the request goes on to the app's default handler.
    pub fn route(&self, path: &str, query: &str) -> Option<Routed> {
        if let Ok(found) = self.redirects.at(path) {
            // Parameters go into a URL as they came (still encoded), with
            // anything that could end the path escaped.
            let params: Pairs = found
                .params
                .iter()
                .map(|(name, value)| (name.to_string(), escape_raw(value)))
                .collect();
            let mut location = no_protocol_relative(fill(&found.value.destination, &params));
            if !query.is_empty() && !location.contains('?') {
                location = format!("{location}?{query}");
            }
            return Some(Routed::Redirect {
                status: found.value.status,
                location,
            });
        }
        let found = self.routes.at(path).ok()?;
        let params = decoded(&found.params);
        let mut pairs: Pairs = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        override_pairs(&mut pairs, params.clone());
        let extra = found
            .value
            .query
            .iter()
            .map(|(name, value)| (name.clone(), fill(value, &params)))
            .collect();
        override_pairs(&mut pairs, extra);
        Some(Routed::Page {
            page: found.value.page.clone(),
            query: pairs,
        })
    }

    /// The table as `(pattern, target)` lines, redirects first.
    pub fn listing(&self) -> &[(String, String)] {
        &self.listing
    }
}

impl std::fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteTable")
            .field("listing", &self.listing)
            .finish()
    }
}

/// Parse a raw query string like Node's `url.parse(url, true)`: `+` is a
/// space, escapes are decoded, repeated names are kept in order.
pub fn parse_query(query: &str) -> Pairs {
    form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

/// Replace entries named like those of `new` with `new`.
fn override_pairs(pairs: &mut Pairs, new: Pairs) {
    pairs.retain(|(name, _)| !new.iter().any(|(n, _)| n == name));
    pairs.extend(new);
}

fn decoded(params: &matchit::Params<'_, '_>) -> Pairs {
    params
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                percent_decode_str(value).decode_utf8_lossy().into_owned(),
            )
        })
        .collect()
}

/// `template` with each `{name}` replaced by the parameter's value.
/// In one pass, so a value that holds `{other}` stays as it is.
fn fill(template: &str, params: &Pairs) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = after[..close].trim_start_matches('*');
        match params.iter().find(|(param, _)| param == name) {
            Some((_, value)) => out.push_str(value),
            None => out.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

/// What a raw path parameter must escape to stay a path: controls, space,
/// and the characters that end a path or are not allowed in one (its `%`
/// escapes and, in a `{*rest}`, its `/` are kept).
const NOT_IN_PATH: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

fn escape_raw(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, NOT_IN_PATH).to_string()
}

/// A path that starts with `//` or `/\` would send a browser to another
/// host: keep one slash.
fn no_protocol_relative(location: String) -> String {
    if location.starts_with("//") || location.starts_with("/\\") {
        let rest = location.trim_start_matches(['/', '\\']);
        format!("/{rest}")
    } else {
        location
    }
}

/// The canonical form of a request path (RFC 3986 section 6.2.2): escapes
/// of unreserved characters decoded (`/%61` is `/a`), the hex digits of the
/// others in upper case, and a `%` that starts no escape escaped itself
/// (`%25`), so that the form is stable. Host routes, redirects, static
/// files and guests all see this one form. `None` when the path is
/// canonical already.
pub fn canonical_path(path: &str) -> Option<String> {
    if !path.contains('%') {
        return None;
    }
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escape {
            Some(byte) if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) => {
                out.push(byte as char);
                i += 3;
            }
            Some(byte) => {
                out.push_str(&format!("%{byte:02X}"));
                i += 3;
            }
            None if bytes[i] == b'%' => {
                out.push_str("%25");
                i += 1;
            }
            None => {
                // Not an escape: copy the whole character.
                let c = path[i..].chars().next().unwrap_or_default();
                out.push(c);
                i += c.len_utf8().max(1);
            }
        }
    }
    (out != path).then_some(out)
}

/// A matchit insertion error in the words of the config.
fn insert_error(error: matchit::InsertError) -> String {
    match error {
        matchit::InsertError::Conflict { with } => {
            format!("conflicts with `{with}`, defined above")
        }
        other => format!("invalid pattern: {other}"),
    }
}

fn check_pattern(pattern: &str) -> Result<(), String> {
    if !pattern.starts_with('/') {
        return Err(format!(
            "`{pattern}` must start with `/`, like `/a` or `/blog/{{slug}}`"
        ));
    }
    Ok(())
}

/// Every `{name}` in `template` must be a parameter of `pattern`.
fn check_template(template: &str, pattern: &str) -> Result<(), String> {
    let params = param_names(pattern);
    for name in param_names(template) {
        if !params.contains(&name) {
            return Err(format!(
                "`{{{name}}}` in `{template}` is not a parameter of `{pattern}`"
            ));
        }
    }
    Ok(())
}

fn param_names(text: &str) -> Vec<String> {
    text.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
        .map(|(name, _)| name.trim_start_matches('*').to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Tables {
        #[serde(default)]
        routes: Vec<RouteConfig>,
        #[serde(default)]
        redirects: Vec<RedirectConfig>,
    }

    fn table(text: &str) -> RouteTable {
        let tables: Tables = toml::from_str(text).unwrap();
        RouteTable::new(&tables.routes, &tables.redirects).unwrap()
    }

    fn page(table: &RouteTable, path: &str, query: &str) -> (String, Pairs) {
        match table.route(path, query) {
            Some(Routed::Page { page, query }) => (page, query),
            other => panic!("{path}: {other:?}"),
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Pairs {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    const CONFIG: &str = r#"
        [[routes]]
        path = "/a"
        page = "/a"
        [[routes]]
        path = "/blog/{slug}"
        page = "/posts/[id]"
        query = { id = "{slug}", from = "blog" }
        [[routes]]
        path = "/blog/latest"
        page = "/b"
        [[routes]]
        path = "/docs/{*rest}"
        page = "/a"
        [[redirects]]
        source = "/old/{x}"
        destination = "/blog/{x}"
        permanent = true
    "#;

    #[test]
    fn exact_beats_parameter_and_query_is_merged() {
        let table = table(CONFIG);
        assert_eq!(page(&table, "/blog/latest", "").0, "/b");
        let (name, query) = page(&table, "/blog/hello%20world", "id=no&x=1+2");
        assert_eq!(name, "/posts/[id]");
        assert_eq!(
            query,
            pairs(&[
                ("x", "1 2"),
                ("slug", "hello world"),
                ("from", "blog"),
                ("id", "hello world")
            ])
        );
        assert_eq!(page(&table, "/docs/a/b", "").1, pairs(&[("rest", "a/b")]));
        assert_eq!(page(&table, "/a", "name=x").1, pairs(&[("name", "x")]));
        assert_eq!(table.route("/nope", ""), None);
        assert_eq!(table.route("/a/", ""), None);
    }

    #[test]
    fn redirects_fill_parameters_and_keep_the_query() {
        let table = table(CONFIG);
        assert_eq!(
            table.route("/old/x%20y", "q=1"),
            Some(Routed::Redirect {
                status: 308,
                location: "/blog/x%20y?q=1".into()
            })
        );
    }

    fn location(table: &RouteTable, path: &str) -> String {
        match table.route(path, "") {
            Some(Routed::Redirect { location, .. }) => location,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn redirect_parameters_cannot_leave_the_site_or_inject() {
        let table = table(
            "[[redirects]]\nsource = \"/go/{x}\"\ndestination = \"/{x}\"\n\
             [[redirects]]\nsource = \"/two/{a}/{b}\"\ndestination = \"/t/{a}/{b}\"\n\
             [[redirects]]\nsource = \"/docs/{*rest}\"\ndestination = \"/d/{rest}\"\n",
        );
        assert_eq!(location(&table, "/go/%2Fevil.example"), "/%2Fevil.example");
        assert_eq!(location(&table, "/go/%5Cevil.example"), "/%5Cevil.example");
        assert_eq!(
            location(&table, "/go/%0d%0aSet-Cookie:x"),
            "/%0d%0aSet-Cookie:x"
        );
        assert_eq!(location(&table, "/two/%7Bb%7D/x"), "/t/%7Bb%7D/x");
        assert_eq!(location(&table, "/docs/a/b%20c"), "/d/a/b%20c");
    }

    #[test]
    fn empty_parameters_cannot_make_a_protocol_relative_location() {
        assert_eq!(
            no_protocol_relative("//evil.example".into()),
            "/evil.example"
        );
        assert_eq!(
            no_protocol_relative("/\\evil.example".into()),
            "/evil.example"
        );
        assert_eq!(no_protocol_relative("/fine//x".into()), "/fine//x");
    }

    #[test]
    fn canonical_paths_decode_unreserved_escapes_only() {
        assert_eq!(canonical_path("/%61"), Some("/a".into()));
        assert_eq!(canonical_path("/a%2fb%2Fc"), Some("/a%2Fb%2Fc".into()));
        assert_eq!(canonical_path("/x%7E%20y"), Some("/x~%20y".into()));
        assert_eq!(canonical_path("/plain"), None);
        assert_eq!(canonical_path("/bad%zz"), Some("/bad%25zz".into()));
        // Stable: once canonical, always canonical.
        let once = canonical_path("/%4%31").unwrap();
        assert_eq!(once, "/%2541");
        assert_eq!(canonical_path(&once), None);
    }

    #[test]
    fn bad_tables_name_the_key() {
        let error = |text| {
            let tables: Tables = toml::from_str(text).unwrap();
            let error = RouteTable::new(&tables.routes, &tables.redirects).unwrap_err();
            format!("{}: {}", error.key, error.reason)
        };
        assert_eq!(
            error("[[routes]]\npath = \"a\"\npage = \"/a\""),
            "routes[0].path: `a` must start with `/`, like `/a` or `/blog/{slug}`"
        );
        assert!(
            error(
                "[[routes]]\npath = \"/a\"\npage = \"/a\"\n[[routes]]\npath = \"/a\"\npage = \"/b\""
            )
            .starts_with("routes[1].path: ")
        );
        assert_eq!(
            error("[[routes]]\npath = \"/b/{x}\"\npage = \"/a\"\nquery = { id = \"{y}\" }"),
            "routes[0].query.id: `{y}` in `{y}` is not a parameter of `/b/{x}`"
        );
    }
}
