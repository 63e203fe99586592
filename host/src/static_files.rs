//! Static files from `public_dir`, served by the host before any guest runs
//! (Next.js's `public/`).
//!
//! Only GET and HEAD. The request path is percent-decoded and must stay
//! inside the folder: `..`, absolute paths, backslashes, NULs and symlinks
//! that lead outside answer "not here" (the request goes on to the app, which
//! answers 404). Responses carry `content-type`, a weak `ETag` and
//! `Last-Modified` (a matching `If-None-Match` gets 304) and
//! `Cache-Control: public, max-age=0`, as Next.js sends for `public/`.

use crate::body::{Body, full};
use http::{HeaderMap, Method, Response, StatusCode, header};
use percent_encoding::percent_decode_str;
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

/// A folder of static files.
#[derive(Debug, Clone)]
pub(crate) struct PublicDir {
    /// The folder, canonicalized at startup.
    root: PathBuf,
}

impl PublicDir {
    /// The folder at `root`, which must exist.
    pub(crate) fn new(root: &Path) -> std::io::Result<Self> {
        Ok(Self {
            root: root.canonicalize()?,
        })
    }

    /// The response for the file at request path `path`, or `None` when
    /// there is no such file in the folder (or the method is not GET/HEAD).
    pub(crate) async fn serve(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<Response<Body>> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let file = self.resolve(path)?;
        let metadata = tokio::fs::metadata(&file).await.ok()?;
        if !metadata.is_file() {
            return None;
        }
        let modified = metadata.modified().ok();
        let seconds = modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let etag = format!("W/\"{:x}-{seconds:x}\"", metadata.len());
        let mut response = Response::builder()
            .header(header::ETAG, &etag)
            .header(header::CACHE_CONTROL, "public, max-age=0");
        if let Some(modified) = modified {
            response = response.header(header::LAST_MODIFIED, httpdate::fmt_http_date(modified));
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
        let bytes = tokio::fs::read(&file).await.ok()?;
        response
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, bytes.len())
            .body(full(bytes))
            .ok()
    }

    /// The file for request path `path`, if it is inside the folder.
    fn resolve(&self, path: &str) -> Option<PathBuf> {
        let decoded = percent_decode_str(path).decode_utf8().ok()?;
        let relative = decoded.strip_prefix('/')?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hello.txt"), "hi").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a b.txt"), "x").unwrap();
        let public = PublicDir::new(dir.path()).unwrap();
        assert!(public.resolve("/hello.txt").is_some());
        assert!(public.resolve("/sub/a%20b.txt").is_some());
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
            assert!(public.resolve(bad).is_none(), "{bad}");
        }
    }
}
