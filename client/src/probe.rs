//! Asking one server directly: a node's or a UI's `GET /health`, a node's
//! `GET /metrics`. For tools that look after the processes themselves
//! (`yak up` waits until each answers, `yak bench` reads the leader's
//! timings), not for using the cluster: a [`Probe`] does no leader
//! discovery, follows no redirect and retries nothing — one request to the
//! URL it was given, and the answer or why there is none.
//!
//! A probe's HTTP client is built from a [`ClientConfig`] exactly as a
//! [`YakClient`](crate::YakClient)'s is (`config`): it sends the token as
//! `Authorization: Bearer` and trusts the extra CAs, so a probe works
//! wherever the other calls do. One request may take
//! [`ClientConfig::request_timeout`]; the retry policy (deadline,
//! backoff) is not used — a caller that waits for a server to come up
//! polls.
//!
//! ```no_run
//! # async fn demo() -> yak_client::Result<()> {
//! use yak_client::{ClientConfig, probe};
//!
//! let health = probe::health("http://127.0.0.1:5001", &ClientConfig::default()).await?;
//! println!("the node is {}", health["role"]);
//! # Ok(()) }
//! ```

use std::time::Duration;

use serde_json::Value;

use crate::{
    config::{ClientConfig, http_client},
    error::{ClientError, Result},
};

/// One server (a node or a UI) at a fixed URL, asked directly. Cheap to
/// clone; keep one to ask the same server again (its connections are
/// reused).
#[derive(Debug, Clone)]
pub struct Probe {
    http: reqwest::Client,
    url: String,
    timeout: Duration,
}

impl Probe {
    /// A probe of the server at `url` (`http://host:port`, `https://…`;
    /// a trailing `/` is ignored), with `config`'s token, CAs and request
    /// timeout. Fails ([`ClientError::Config`]) for a URL without an
    /// `http://` or `https://` scheme, and for a token or CA file the
    /// client cannot use.
    pub fn new(url: &str, config: &ClientConfig) -> Result<Self> {
        Ok(Self {
            url: base_url(url)?,
            http: http_client(config, None)?,
            timeout: config.request_timeout,
        })
    }

    /// The server's URL, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `GET /health`: the JSON the server answers (a node's
    /// `{"status", "node_id", "role"}`, a UI's `{"status", "service"}`).
    /// An error when it does not answer ([`ClientError::Transport`]),
    /// answers other than 2xx ([`ClientError::Api`]) or not with JSON
    /// ([`ClientError::Decode`]).
    pub async fn health(&self) -> Result<Value> {
        let (url, body) = self.get("/health").await?;
        serde_json::from_slice(&body).map_err(|e| ClientError::Decode {
            url,
            message: format!("/health is not JSON: {e}"),
        })
    }

    /// `GET /metrics`: a node's metrics in the Prometheus text format.
    /// The endpoint needs the client token on a node started with
    /// `--client-token`.
    pub async fn metrics_text(&self) -> Result<String> {
        let (url, body) = self.get("/metrics").await?;
        String::from_utf8(body.into()).map_err(|e| ClientError::Decode {
            url,
            message: format!("/metrics is not UTF-8: {e}"),
        })
    }

    /// One GET of `path`; the full URL asked and the body of a 2xx answer.
    async fn get(&self, path: &str) -> Result<(String, bytes::Bytes)> {
        let url = endpoint(&self.url, path);
        let transport = |e: reqwest::Error| ClientError::Transport {
            url: url.clone(),
            message: e.to_string(),
        };
        let response = self
            .http
            .get(&url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            return Err(ClientError::from_answer(status, &body));
        }
        Ok((url, body))
    }
}

/// [`Probe::health`] of the server at `url`, with a probe built for this
/// one call.
pub async fn health(url: &str, config: &ClientConfig) -> Result<Value> {
    Probe::new(url, config)?.health().await
}

/// [`Probe::metrics_text`] of the node at `url`, with a probe built for
/// this one call.
pub async fn metrics_text(url: &str, config: &ClientConfig) -> Result<String> {
    Probe::new(url, config)?.metrics_text().await
}

/// `url` without surrounding blanks and trailing `/`, if it has an
/// `http://` or `https://` scheme and something after it.
fn base_url(url: &str) -> Result<String> {
    let url = url.trim().trim_end_matches('/');
    let has_scheme = ["http://", "https://"].iter().any(|scheme| {
        url.len() > scheme.len()
            && url
                .get(..scheme.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
    });
    if !has_scheme {
        return Err(ClientError::Config(format!(
            "{url:?} is not a server URL: it starts with http:// or https:// and names a host"
        )));
    }
    Ok(url.to_owned())
}

/// The URL of `path` (which starts with `/`) on the server at `base` (a
/// [`base_url`]).
fn endpoint(base: &str, path: &str) -> String {
    format!("{base}{path}")
}

#[cfg(test)]
mod tests {
    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    #[test]
    fn urls_are_joined_without_double_slashes() {
        let base = base_url("http://127.0.0.1:5001/").unwrap();
        assert_eq!(base, "http://127.0.0.1:5001");
        assert_eq!(endpoint(&base, "/health"), "http://127.0.0.1:5001/health");
        assert_eq!(
            base_url(" https://node.example:8443// ").unwrap(),
            "https://node.example:8443"
        );
        // A server behind a path prefix keeps it.
        let prefixed = base_url("http://proxy/yak/").unwrap();
        assert_eq!(endpoint(&prefixed, "/metrics"), "http://proxy/yak/metrics");
        assert_eq!(base_url("HTTP://h:1").unwrap(), "HTTP://h:1");
    }

    #[test]
    fn a_url_without_scheme_or_host_is_a_configuration_error() {
        for bad in [
            "",
            "/",
            "127.0.0.1:5001",
            "http://",
            "https:///",
            "ftp://h",
            "é",
        ] {
            let e = Probe::new(bad, &ClientConfig::default()).unwrap_err();
            assert!(matches!(e, ClientError::Config(_)), "{bad:?}: {e:?}");
        }
    }

    #[test]
    fn the_probe_is_built_like_every_client_from_the_config() {
        let bad_ca = ClientConfig {
            tls_ca_pem: Some(b"not a certificate".to_vec()),
            ..ClientConfig::default()
        };
        let e = Probe::new("https://h:1", &bad_ca).unwrap_err();
        assert!(matches!(e, ClientError::Config(_)), "{e:?}");
        let bad_token = ClientConfig {
            token: Some("two\nlines".to_owned()),
            ..ClientConfig::default()
        };
        let e = Probe::new("http://h:1", &bad_token).unwrap_err();
        assert!(matches!(e, ClientError::Config(_)), "{e:?}");
    }

    /// A whole HTTP/1.1 answer that closes the connection.
    fn answer(status: &str, content_type: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{body}",
            body.len()
        )
    }

    /// Serves one connection with `answer`; returns the server's URL and
    /// the request head it received.
    async fn answer_once(answer: String) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = socket.read(&mut buf).await.unwrap();
                assert!(n > 0, "the request ended early");
                head.extend_from_slice(&buf[..n]);
            }
            socket.write_all(answer.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (url, served)
    }

    #[tokio::test]
    async fn health_asks_the_url_given_with_the_token() {
        let body = r#"{"status":"ok","role":"leader"}"#;
        let (url, served) = answer_once(answer("200 OK", "application/json", body)).await;
        let config = ClientConfig {
            token: Some("s3cret".to_owned()),
            ..ClientConfig::default()
        };
        let health = health(&format!("{url}/"), &config).await.unwrap();
        assert_eq!(health["role"], "leader");
        let head = served.await.unwrap().to_ascii_lowercase();
        assert!(head.starts_with("get /health http/1.1\r\n"), "{head}");
        assert!(
            head.contains("\r\nauthorization: bearer s3cret\r\n"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_refusal_is_an_api_error_with_its_code() {
        let body = r#"{"error":"unauthorized","message":"send the token"}"#;
        let (url, served) = answer_once(answer("401 Unauthorized", "application/json", body)).await;
        let e = metrics_text(&url, &ClientConfig::default())
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("unauthorized"), "{e:?}");
        let head = served.await.unwrap();
        assert!(head.starts_with("GET /metrics HTTP/1.1\r\n"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("authorization"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn metrics_are_the_text_answered() {
        let body = "# TYPE yak_up gauge\nyak_up 1\n";
        let (url, _served) = answer_once(answer("200 OK", "text/plain", body)).await;
        let text = Probe::new(&url, &ClientConfig::default())
            .unwrap()
            .metrics_text()
            .await
            .unwrap();
        assert_eq!(text, body);
    }

    #[tokio::test]
    async fn an_answer_that_is_not_json_is_a_decode_error() {
        let (url, _served) = answer_once(answer("200 OK", "text/html", "<html>")).await;
        let e = health(&url, &ClientConfig::default()).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Decode { url: u, .. } if *u == format!("{url}/health")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn no_server_is_a_transport_error_naming_the_endpoint() {
        // A port that was free a moment ago: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let e = health(&url, &ClientConfig::default()).await.unwrap_err();
        assert!(
            matches!(&e, ClientError::Transport { url: u, .. } if *u == format!("{url}/health")),
            "{e:?}"
        );
    }
}
