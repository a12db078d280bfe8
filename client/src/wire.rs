//! What goes over HTTP, both ways: request [`Body`]s, how a successful
//! answer's body becomes a value ([`Decode`], [`BatchFetch`]), and the
//! percent-encoding of path and query components.
//!
//! Invariants: a `Body` is encoded once, so retries and redirects resend
//! the same bytes; nothing here knows about leaders or retries (that is
//! [`cluster`](crate::cluster)).

use bytes::Bytes;
use serde::de::DeserializeOwned;
use yak_protocol::BATCH_CONTENT_TYPE;

/// How the body of a successful answer becomes a value: JSON for every
/// `Deserialize` type; record batches for [`BatchFetch`].
pub trait Decode: Sized {
    fn decode(
        headers: &reqwest::header::HeaderMap,
        body: bytes::Bytes,
    ) -> std::result::Result<Self, String>;
}

impl<T: DeserializeOwned> Decode for T {
    fn decode(
        _: &reqwest::header::HeaderMap,
        body: bytes::Bytes,
    ) -> std::result::Result<Self, String> {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    }
}

/// A `GET /consume/batch` answer: the stored batches and the partition's
/// state from the headers.
#[derive(Debug)]
pub struct BatchFetch {
    pub batches: bytes::Bytes,
    pub high_water_mark: u64,
    pub log_start_offset: u64,
}

impl Decode for BatchFetch {
    fn decode(
        headers: &reqwest::header::HeaderMap,
        body: bytes::Bytes,
    ) -> std::result::Result<Self, String> {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("missing or bad header {name}"))
        };
        Ok(Self {
            batches: body,
            high_water_mark: number("yak-high-water-mark")?,
            log_start_offset: number("yak-log-start-offset")?,
        })
    }
}

/// A request body, encoded once: retries and redirects resend the same
/// bytes.
#[derive(Debug, Clone)]
pub struct Body {
    bytes: bytes::Bytes,
    content_type: &'static str,
}

impl Body {
    pub fn json(value: &impl serde::Serialize) -> Self {
        // Only maps with non-string keys fail to serialize; request bodies
        // are structs and `json!` values.
        let json = serde_json::to_vec(value).expect("a request body serializes to JSON");
        Self {
            bytes: json.into(),
            content_type: "application/json",
        }
    }

    /// A record batch in the storage format, for `POST /produce/batch`.
    pub fn batch(bytes: impl Into<Bytes>) -> Self {
        Self {
            bytes: bytes.into(),
            content_type: BATCH_CONTENT_TYPE,
        }
    }

    /// The encoded bytes (a cheap clone of a shared buffer).
    pub(crate) fn bytes(&self) -> Bytes {
        self.bytes.clone()
    }

    pub(crate) fn content_type(&self) -> &'static str {
        self.content_type
    }
}

/// Percent-encodes a path or query component. Topic names are restricted
/// to `[A-Za-z0-9._-]`, which need none, but callers may pass anything.
pub(crate) fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_components() {
        assert_eq!(encode("a.b_c-1"), "a.b_c-1");
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }
}
