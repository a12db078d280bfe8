//! How a [`YakClient`](crate::YakClient) retries and proves who it is:
//! [`ClientConfig`], [`read_ca`], and the `reqwest` client built from them.
//!
//! Invariants: the token never reaches a log line (`ClientConfig`'s `Debug`
//! is written by hand and the header value is marked sensitive), and the
//! HTTP client never follows redirects itself — the client follows
//! `not_leader` answers on its own (see [`cluster`](crate::cluster)).

use std::{net::IpAddr, time::Duration};

use crate::error::{ClientError, Result};

/// How the client retries, and how it proves who it is.
#[derive(Clone)]
pub struct ClientConfig {
    /// Give up retrying a call after this long.
    pub deadline: Duration,
    pub min_backoff: Duration,
    /// Longest wait between retries. Short, because during a failover the
    /// new leader is usually known a fraction of a second after a retry
    /// starts waiting: a long wait adds directly to the unavailability.
    pub max_backoff: Duration,
    /// Timeout of one HTTP request (long polls add their wait).
    pub request_timeout: Duration,
    /// Sent as `Authorization: Bearer <token>` on every request, for nodes
    /// started with `--client-token`.
    pub token: Option<String>,
    /// PEM certificates of extra CAs to trust for `https://` nodes (see
    /// [`read_ca`]); the usual public roots are trusted as well.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// Send binary batches ([`Producer::send_records`](crate::Producer::send_records))
    /// over the leader's binary produce port when it has one, else (and
    /// when false) over HTTP.
    pub tcp: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            deadline: Duration::from_secs(30),
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            request_timeout: Duration::from_secs(10),
            token: None,
            tls_ca_pem: None,
            tcp: true,
        }
    }
}

// By hand, so that the token never reaches a log line.
impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("deadline", &self.deadline)
            .field("min_backoff", &self.min_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("request_timeout", &self.request_timeout)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls_ca_pem", &self.tls_ca_pem.as_ref().map(Vec::len))
            .field("tcp", &self.tcp)
            .finish()
    }
}

impl ClientConfig {
    /// The same retry policy with `other`'s token and CA: for a second
    /// client of the same cluster with other deadlines.
    pub fn with_access_of(self, other: &ClientConfig) -> Self {
        Self {
            token: other.token.clone(),
            tls_ca_pem: other.tls_ca_pem.clone(),
            ..self
        }
    }
}

/// Reads a PEM file of CA certificates for [`ClientConfig::tls_ca_pem`].
pub fn read_ca(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| ClientError::Config(format!("reading the CA file {}: {e}", path.display())))
}

/// The HTTP client every call goes through: no automatic redirects (the
/// client follows `not_leader` itself), the token as a default header,
/// the extra CAs trusted.
pub(crate) fn http_client(
    config: &ClientConfig,
    local_address: Option<IpAddr>,
) -> Result<reqwest::Client> {
    let invalid = |e: &dyn std::fmt::Display| ClientError::Config(e.to_string());
    let mut builder = reqwest::Client::builder()
        .local_address(local_address)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(1))
        // Below the servers' keep-alive (75 s by default), so an idle
        // connection is dropped here before the server closes it.
        .pool_idle_timeout(Duration::from_secs(30))
        .tcp_nodelay(true);
    if let Some(token) = &config.token {
        let mut value = reqwest::header::HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|e| invalid(&format!("the token is not a valid header value: {e}")))?;
        value.set_sensitive(true);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::AUTHORIZATION, value);
        builder = builder.default_headers(headers);
    }
    if let Some(pem) = &config.tls_ca_pem {
        let certificates = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| invalid(&format!("the CA file holds no usable certificate: {e}")))?;
        if certificates.is_empty() {
            return Err(invalid(&"the CA file holds no certificate"));
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| invalid(&e))
}
