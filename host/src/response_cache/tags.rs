//! Cache tags: a response names what it shows with a `Cache-Tag` header
//! (`Cache-Tag: post-1, posts`, as CDNs read it), which the cache keeps
//! with the entry and takes off the response, so a guest can later drop
//! every entry of a tag (`revalidate-tag`).

use http::HeaderMap;

/// The response header that tags a response.
pub(crate) const CACHE_TAG: &str = "cache-tag";
/// The longest tag, in bytes.
pub(crate) const MAX_TAG: usize = 256;
/// The most tags one response keeps; the rest are dropped.
const MAX_TAGS: usize = 64;

/// Whether `tag` may be a tag: 1 to [`MAX_TAG`] visible ASCII characters
/// but `,` (which separates them).
pub(crate) fn is_tag(tag: &str) -> bool {
    (1..=MAX_TAG).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// The tags of a response, taken off its headers (invalid ones dropped).
pub(crate) fn take(headers: &mut HeaderMap) -> Box<[Box<str>]> {
    let mut tags: Vec<Box<str>> = Vec::new();
    for value in headers.get_all(CACHE_TAG) {
        let Ok(value) = value.to_str() else { continue };
        for tag in value.split(',').map(str::trim).filter(|t| is_tag(t)) {
            if tags.len() < MAX_TAGS && !tags.iter().any(|t| **t == *tag) {
                tags.push(tag.into());
            }
        }
    }
    headers.remove(CACHE_TAG);
    tags.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_and_taken_off() {
        let mut headers = HeaderMap::new();
        headers.append(CACHE_TAG, "post-1, posts".parse().unwrap());
        headers.append(CACHE_TAG, "posts,,bad tag,x".parse().unwrap());
        let tags = take(&mut headers);
        assert_eq!(
            &*tags,
            &["post-1".into(), "posts".into(), "x".into()] as &[Box<str>]
        );
        assert!(headers.get(CACHE_TAG).is_none());
        assert!(!is_tag(&"a".repeat(MAX_TAG + 1)));
    }
}
