//! Static files from `public_dir`, served by the host before any guest runs
//! (Next.js's `public/`).
//!
//! Only GET and HEAD. The request path is percent-decoded and must stay
//! inside the folder: `..`, absolute paths, backslashes, NULs and symlinks
//! that lead outside answer "not here" (the request goes on to the app, which
//! answers 404). Responses carry `content-type`, a weak `ETag` and
//! `Last-Modified` (a matching `If-None-Match` gets 304),
//! `Cache-Control: public, max-age=0` and `Accept-Ranges: bytes`, as Next.js
//! sends for `public/`. Files are streamed in chunks (tower-http's
//! `ServeFile`), never read whole, and `Range` requests get 206 or 416
//! (`If-Range` with a date that no longer matches gets the whole file).
//!
//! Outside dev mode, as in Next.js, the files are the ones there at startup
//! (and at each reload): the folder is listed once, so a request for
//! anything else (every page) passes on without touching the file system.
//!
//! Files and folders whose names start with `.` (`/.env`, `/.git/config`,
//! `/%2egit/config`) are not served (the request goes on to the app, which
//! answers 404), but under `/.well-known/`, unless `public_dotfiles = true`.
//! A `Range` of more than [`MAX_RANGES`] ranges gets 416 before anything
//! else looks at it (nginx's `max_ranges`).

use crate::body::{Body, BodyError, full};
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use percent_encoding::percent_decode_str;
use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;
use tower::ServiceExt;
use tower_http::services::ServeFile;

/// How much of a file is read at a time.
const CHUNK: usize = 64 << 10;

/// A folder with more files than this is not listed: every request looks.
const MAX_LISTED: usize = 100_000;

/// The most ranges one request may ask for.
const MAX_RANGES: usize = 8;

/// A folder of static files.
#[derive(Debug, Clone)]
pub(crate) struct PublicDir {
    /// The folder, canonicalized at startup.
    root: PathBuf,
    /// Its files' request paths (`css/site.css`), when listed.
    listed: Option<HashSet<String>>,
    /// Whether names that start with `.` are served.
    dotfiles: bool,
}

impl PublicDir {
    /// The folder at `root`, which must exist; `list` it once (outside dev
    /// mode) or look for each request's file as it comes; serve `dotfiles`
    /// or not.
    pub(crate) fn new(root: &Path, list: bool, dotfiles: bool) -> std::io::Result<Self> {
        let root = root.canonicalize()?;
        let listed = if list { list_files(&root)? } else { None };
        Ok(Self {
            root,
            listed,
            dotfiles,
        })
    }

    /// The response for the file at the request's path, or `None` when
    /// there is no such file in the folder (or the method is not GET/HEAD).
    pub(crate) async fn serve(&self, request: &Parts) -> Option<Response<Body>> {
        let (method, headers) = (&request.method, &request.headers);
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let decoded = percent_decode_str(request.uri.path()).decode_utf8().ok()?;
        let relative = decoded.strip_prefix('/')?;
        if !self.dotfiles && is_hidden(relative) {
            return None;
        }
        if let Some(listed) = &self.listed
            && !listed.contains(relative)
        {
            return None;
        }
        let file = self.resolve(relative)?;
        let metadata = tokio::fs::metadata(&file).await.ok()?;
        if !metadata.is_file() {
            return None;
        }
        let modified = metadata.modified().ok();
        let seconds = modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let etag = format!("W/\"{:x}-{seconds:x}\"", metadata.len());
        let last_modified = modified.map(httpdate::fmt_http_date);
        let mut response = Response::builder()
            .header(header::ETAG, &etag)
            .header(header::CACHE_CONTROL, "public, max-age=0");
        if let Some(last_modified) = &last_modified {
            response = response.header(header::LAST_MODIFIED, last_modified);
        }
        let not_modified = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|tags| {
                tags.split(',')
                    .any(|tag| tag.trim() == etag || tag.trim() == "*")
            });
        if not_modified {
            return response
                .status(StatusCode::NOT_MODIFIED)
                .body(full(""))
                .ok();
        }
        let content_type = mime_guess::from_path(&file).first_or_octet_stream();
        let content_type = match content_type.type_() {
            mime_guess::mime::TEXT => format!("{content_type}; charset=utf-8"),
            _ => content_type.to_string(),
        };
        // What ServeFile needs to know: the method, and the range asked for
        // while the file is still the one the client has (a weak ETag never
        // matches `If-Range`; a date must be the file's own).
        let mut forwarded = Request::builder().method(method).uri(&request.uri);
        let range_applies = match headers.get(header::IF_RANGE) {
            None => true,
            Some(validator) => last_modified
                .as_deref()
                .is_some_and(|date| validator.as_bytes() == date.as_bytes()),
        };
        if range_applies && let Some(range) = headers.get(header::RANGE) {
            if range.as_bytes().iter().filter(|b| **b == b',').count() >= MAX_RANGES {
                return response
                    .status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header(header::CONTENT_RANGE, format!("bytes */{}", metadata.len()))
                    .body(full(""))
                    .ok();
            }
            forwarded = forwarded.header(header::RANGE, range);
        }
        let forwarded = forwarded.body(()).ok()?;
        let served = ServeFile::new(&file)
            .with_buf_chunk_size(CHUNK)
            .oneshot(forwarded)
            .await
            .ok()?;
        let (parts, body) = served.into_parts();
        let mut response = response
            .status(parts.status)
            .body(
                body.map_err(|error| BodyError::InternalError(Some(error.to_string())))
                    .boxed_unsync(),
            )
            .ok()?;
        let headers = response.headers_mut();
        for (name, value) in parts.headers {
            if let Some(name) = name {
                headers.insert(name, value);
            }
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&content_type).ok()?,
        );
        Some(response)
    }

    /// The file at `relative` (a decoded request path without its leading
    /// `/`), if it is inside the folder.
    fn resolve(&self, relative: &str) -> Option<PathBuf> {
        if relative.contains('\\') || relative.contains('\0') {
            return None;
        }
        let relative = Path::new(relative);
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return None;
        }
        // Symlinks may lead anywhere: where the path really goes must still
        // be inside the folder.
        let file = self.root.join(relative).canonicalize().ok()?;
        file.starts_with(&self.root).then_some(file)
    }
}

/// Whether `relative` names a file or folder that starts with `.`, but
/// for what is under `.well-known/`.
fn is_hidden(relative: &str) -> bool {
    let mut segments = relative.split('/');
    if relative.starts_with(".well-known/") {
        segments.next();
    }
    segments.any(|segment| segment.starts_with('.'))
}

/// The request paths of the regular files under `root` (symlinks to
/// files included, symlinked folders not entered); `None` past
/// [`MAX_LISTED`].
fn list_files(root: &Path) -> std::io::Result<Option<HashSet<String>>> {
    let mut files = HashSet::new();
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(root.join(&folder))? {
            let entry = entry?;
            let relative = folder.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                folders.push(relative);
            } else if entry.path().is_file()
                && let Some(path) = relative.to_str()
            {
                files.insert(path.replace(std::path::MAIN_SEPARATOR, "/"));
                if files.len() > MAX_LISTED {
                    return Ok(None);
                }
            }
        }
    }
    Ok(Some(files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_start_with_a_dot_are_hidden_but_well_known() {
        for hidden in [
            ".env",
            ".git/config",
            "a/.git/config",
            ".well-known/.x",
            "..a",
        ] {
            assert!(is_hidden(hidden), "{hidden}");
        }
        for shown in [".well-known/security.txt", "a.b/c", "style.css", "a/b.c"] {
            assert!(!is_hidden(shown), "{shown}");
        }
    }

    #[test]
    fn paths_must_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.txt"), "hi").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a b.txt"), "x").unwrap();
        let public = PublicDir::new(dir.path(), true, false).unwrap();
        let listed = public.listed.as_ref().unwrap();
        assert!(listed.contains("hello.txt") && listed.contains("sub/a b.txt"));
        assert_eq!(listed.len(), 2);
        // As `serve` decodes a request path.
        let resolve = |path: &str| {
            let decoded = percent_decode_str(path).decode_utf8().ok()?;
            public.resolve(decoded.strip_prefix('/')?)
        };
        assert!(resolve("/hello.txt").is_some());
        assert!(resolve("/sub/a%20b.txt").is_some());
        for bad in [
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/sub/%2E%2E/%2E%2E/x",
            "//etc/passwd",
            "/sub\\..\\x",
            "/a%00b",
            "hello.txt",
            "/./hello.txt",
        ] {
            assert!(resolve(bad).is_none(), "{bad}");
        }
    }
}
