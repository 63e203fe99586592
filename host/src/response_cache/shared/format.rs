//! The format entries cross Redis in: a small binary encoding (no crate
//! for it: a dozen fields, and the point is what reading it refuses). What
//! comes back is not trusted more than a guest: every length is checked
//! against what is left (a forged count allocates nothing), every header
//! name and value is validated, statuses a cache does not store, framing
//! and hop-by-hop headers and `Set-Cookie` are refused, and every time is
//! bounded, so a tampered entry is a miss, never a header the server would
//! not send.

use super::{MAX_TTL, unix_now};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// The format's first bytes (its version).
const MAGIC: &[u8; 4] = b"SYC1";

/// What the second tier keeps of an entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SharedEntry {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// When it was stored, as a Unix time in seconds, and its age then.
    pub(crate) stored_at: u64,
    pub(crate) age_at_store: u64,
    pub(crate) lifetime: u64,
    pub(crate) stale_while_revalidate: u64,
    pub(crate) stale_if_error: u64,
    pub(crate) vary: Vec<HeaderName>,
    pub(crate) path: String,
    pub(crate) tags: Vec<String>,
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

pub(super) fn encode(entry: &SharedEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(entry.body.len() + 512);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&entry.status.as_u16().to_le_bytes());
    for n in [
        entry.stored_at,
        entry.age_at_store,
        entry.lifetime,
        entry.stale_while_revalidate,
        entry.stale_if_error,
    ] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(&(entry.headers.len() as u32).to_le_bytes());
    for (name, value) in &entry.headers {
        put_bytes(&mut out, name.as_str().as_bytes());
        put_bytes(&mut out, value.as_bytes());
    }
    out.extend_from_slice(&(entry.vary.len() as u32).to_le_bytes());
    for name in &entry.vary {
        put_bytes(&mut out, name.as_str().as_bytes());
    }
    put_bytes(&mut out, entry.path.as_bytes());
    out.extend_from_slice(&(entry.tags.len() as u32).to_le_bytes());
    for tag in &entry.tags {
        put_bytes(&mut out, tag.as_bytes());
    }
    put_bytes(&mut out, &entry.body);
    out
}

/// Headers no stored entry has: the host owns framing and hop-by-hop
/// headers, and a response with a cookie is never stored.
pub(crate) const NEVER_STORED: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "set-cookie",
    "x-cache",
];

/// A reader of the format that fails (with `None`) on anything short,
/// long or invalid.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    /// A count of items, each at least `min` bytes long, that fits in
    /// what is left (so a forged count cannot make a large allocation).
    fn count(&mut self, min: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.checked_mul(min)? <= self.0.len()).then_some(n)
    }
}

pub(super) fn decode(bytes: &[u8]) -> Option<SharedEntry> {
    let mut r = Reader(bytes);
    if r.take(4)? != MAGIC {
        return None;
    }
    let status = r.u16()?;
    if !crate::response_cache::CACHEABLE.contains(&status) {
        return None;
    }
    let status = StatusCode::from_u16(status).ok()?;
    // Times bounded, so that no sum of them overflows.
    let stored_at = r.u64()?.min(unix_now());
    let [
        age_at_store,
        lifetime,
        stale_while_revalidate,
        stale_if_error,
    ] = [r.u64()?, r.u64()?, r.u64()?, r.u64()?].map(|n| n.min(MAX_TTL));
    let mut headers = HeaderMap::new();
    for _ in 0..r.count(8)? {
        let name = HeaderName::from_bytes(r.bytes()?).ok()?;
        let value = HeaderValue::from_bytes(r.bytes()?).ok()?;
        // Framing and cookies are never stored: such an entry was not
        // written by a replica. (The length is the body's, set when sent.)
        if NEVER_STORED.contains(&name.as_str()) {
            return None;
        }
        if name != http::header::CONTENT_LENGTH {
            headers.append(name, value);
        }
    }
    let mut vary = Vec::new();
    for _ in 0..r.count(4)? {
        vary.push(HeaderName::from_bytes(r.bytes()?).ok()?);
    }
    let path = r.text()?;
    let mut tags = Vec::new();
    for _ in 0..r.count(4)? {
        tags.push(r.text()?);
    }
    let body = Bytes::copy_from_slice(r.bytes()?);
    r.0.is_empty().then_some(SharedEntry {
        status,
        headers,
        body,
        stored_at,
        age_at_store,
        lifetime,
        stale_while_revalidate,
        stale_if_error,
        vary,
        path,
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> SharedEntry {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("text/html"));
        headers.append("link", HeaderValue::from_static("</a>"));
        headers.append("link", HeaderValue::from_static("</b>"));
        SharedEntry {
            status: StatusCode::OK,
            headers,
            body: Bytes::from_static(b"<p>hi</p>"),
            stored_at: 1_700_000_000,
            age_at_store: 3,
            lifetime: 60,
            stale_while_revalidate: 30,
            stale_if_error: 0,
            vary: vec![http::header::ACCEPT_LANGUAGE],
            path: "/posts/1".into(),
            tags: vec!["posts".into(), "post-1".into()],
        }
    }

    #[test]
    fn entries_round_trip() {
        assert_eq!(decode(&encode(&entry())), Some(entry()));
    }

    #[test]
    fn anything_else_is_refused_without_panicking() {
        let good = encode(&entry());
        for end in 0..good.len() {
            assert_eq!(decode(&good[..end]), None, "cut at {end}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(decode(&longer), None);
        // A header value with a newline is not let through.
        let mut bad = entry();
        bad.headers
            .insert("x-fine", HeaderValue::from_static("aaaaaaaa"));
        let mut bytes = encode(&bad);
        let at = bytes.windows(8).position(|w| w == b"aaaaaaaa").unwrap();
        bytes[at..at + 8].copy_from_slice(b"a\r\nb: c1");
        assert_eq!(decode(&bytes), None);
        // A count larger than what follows allocates nothing.
        let mut huge = good[..4 + 2 + 40].to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), None);
    }
}
