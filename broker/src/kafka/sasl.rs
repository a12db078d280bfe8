//! SASL/PLAIN on the Kafka listener: with a client token set
//! (`--client-token`), a connection authenticates with the token as its
//! password before it may send anything but ApiVersions (KIP-43's
//! SaslHandshake, then KIP-152's SaslAuthenticate; after a v0 handshake,
//! KIP-43's bare token frame). The user name is free text, only logged.
//!
//! Invariants:
//! - With a token, no request but ApiVersions, SaslHandshake and
//!   SaslAuthenticate reaches the node before the connection has
//!   authenticated: any other one closes the connection unanswered, and a
//!   failed authentication is answered, then closed.
//! - Without a token, every request is served; SaslHandshake and
//!   SaslAuthenticate are answered ILLEGAL_SASL_STATE, as a Kafka broker
//!   answers them on a listener without SASL (or once authenticated).
//! - The token is compared in constant time and never logged.
//! - Before authenticating, a frame is capped at [`UNAUTHENTICATED_MAX_FRAME`]
//!   (Kafka's `sasl.server.max.receive.size`), so that a client without
//!   the token cannot make the node buffer a whole produce request.

use std::net::SocketAddr;

use bytes::Bytes;
use kafka_protocol::{
    ResponseError,
    messages::{
        ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
        SaslHandshakeResponse,
    },
    protocol::StrBytes,
};

use super::codec::{self, Frame, FrameError};

/// The one mechanism served.
pub const MECHANISM: &str = "PLAIN";

/// Largest frame read from a connection that has not authenticated.
pub const UNAUTHENTICATED_MAX_FRAME: usize = 512 * 1024;

/// Longest user name written to the log (the name is the client's text).
const MAX_LOGGED_USER: usize = 128;

/// Why SASL closed a connection.
#[derive(Debug, thiserror::Error)]
pub enum SaslError {
    #[error("{0:?} before authenticating")]
    Unauthenticated(ApiKey),
    #[error("SASL mechanism {0:?} is not served (only PLAIN)")]
    Mechanism(String),
    #[error("{0:?} out of the SASL sequence")]
    OutOfSequence(ApiKey),
    #[error("a PLAIN token is authzid NUL user NUL password")]
    MalformedToken,
    #[error("wrong password for user {0:?}")]
    WrongPassword(String),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

/// Where a connection is in the exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No token: nothing to authenticate.
    Open,
    /// Token set, no handshake yet.
    Start,
    /// PLAIN chosen; `raw` after a v0 handshake (the token comes as a bare
    /// frame, not in a SaslAuthenticate request).
    Handshaken {
        raw: bool,
    },
    Authenticated,
}

/// What to do with a frame.
#[derive(Debug)]
pub enum Gate {
    /// Serve it as usual.
    Serve(Frame),
    /// Send this answer and carry on.
    Answer(Bytes),
    /// Send this answer, then close the connection.
    Refuse(Bytes, SaslError),
}

/// One connection's SASL state.
#[derive(Debug)]
pub struct Sasl {
    token: Option<String>,
    peer: Option<SocketAddr>,
    state: State,
}

impl Sasl {
    /// A connection from `peer` to a node with client token `token`.
    pub fn new(token: Option<String>, peer: Option<SocketAddr>) -> Self {
        let state = match token {
            Some(_) => State::Start,
            None => State::Open,
        };
        Self { token, peer, state }
    }

    /// The largest frame to read next, given the listener's own cap.
    pub fn max_frame(&self, cap: usize) -> usize {
        match self.state {
            State::Open | State::Authenticated => cap,
            State::Start | State::Handshaken { .. } => cap.min(UNAUTHENTICATED_MAX_FRAME),
        }
    }

    /// Decides what becomes of one frame. An error closes the connection
    /// without an answer.
    pub fn gate(&mut self, bytes: Bytes) -> Result<Gate, SaslError> {
        if self.state == (State::Handshaken { raw: true }) {
            // KIP-43 v0: this frame is the bare token, and success is an
            // empty (size 0) frame; failure closes without an answer.
            self.check(&bytes)?;
            self.state = State::Authenticated;
            return Ok(Gate::Answer(Bytes::from_static(&[0; 4])));
        }
        let frame = Frame::parse(bytes)?;
        // A version not served is left to the dispatcher, which closes the
        // connection: nothing in such a frame is read here.
        if matches!(frame.api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
            && !super::supports(frame.api, frame.version())
        {
            return Ok(Gate::Serve(frame));
        }
        match (frame.api, self.state) {
            (ApiKey::SaslHandshake, _) => self.handshake(&frame),
            (ApiKey::SaslAuthenticate, _) => self.authenticate(&frame),
            (ApiKey::ApiVersions, _) | (_, State::Open | State::Authenticated) => {
                Ok(Gate::Serve(frame))
            }
            (api, State::Start | State::Handshaken { .. }) => Err(SaslError::Unauthenticated(api)),
        }
    }

    fn handshake(&mut self, frame: &Frame) -> Result<Gate, SaslError> {
        let request: SaslHandshakeRequest = frame.body()?;
        let answer = |error: Option<ResponseError>| {
            let mechanisms = match self.token {
                Some(_) => vec![StrBytes::from_static_str(MECHANISM)],
                None => Vec::new(),
            };
            let body = SaslHandshakeResponse::default()
                .with_error_code(error.map_or(0, |e| e.code()))
                .with_mechanisms(mechanisms);
            codec::response(
                frame.api,
                frame.version(),
                frame.header.correlation_id,
                &body,
            )
        };
        match self.state {
            State::Start if request.mechanism.as_str() == MECHANISM => {
                self.state = State::Handshaken {
                    raw: frame.version() == 0,
                };
                Ok(Gate::Answer(answer(None)?))
            }
            State::Start => Ok(Gate::Refuse(
                answer(Some(ResponseError::UnsupportedSaslMechanism))?,
                SaslError::Mechanism(printable(request.mechanism.as_bytes())),
            )),
            State::Open | State::Authenticated => {
                Ok(Gate::Answer(answer(Some(ResponseError::IllegalSaslState))?))
            }
            State::Handshaken { .. } => Ok(Gate::Refuse(
                answer(Some(ResponseError::IllegalSaslState))?,
                SaslError::OutOfSequence(frame.api),
            )),
        }
    }

    fn authenticate(&mut self, frame: &Frame) -> Result<Gate, SaslError> {
        let request: SaslAuthenticateRequest = frame.body()?;
        let answer = |error: Option<(ResponseError, &str)>| {
            let body = SaslAuthenticateResponse::default()
                .with_error_code(error.map_or(0, |(e, _)| e.code()))
                .with_error_message(
                    error.map(|(_, message)| StrBytes::from_string(message.to_owned())),
                );
            codec::response(
                frame.api,
                frame.version(),
                frame.header.correlation_id,
                &body,
            )
        };
        match self.state {
            State::Handshaken { raw: false } => match self.check(&request.auth_bytes) {
                Ok(()) => {
                    self.state = State::Authenticated;
                    // Session lifetime 0: no re-authentication (KIP-368).
                    Ok(Gate::Answer(answer(None)?))
                }
                Err(e) => {
                    let failed = (
                        ResponseError::SaslAuthenticationFailed,
                        "Authentication failed: invalid username or password (PLAIN: the \
                         password is the node's client token)",
                    );
                    Ok(Gate::Refuse(answer(Some(failed))?, e))
                }
            },
            State::Open | State::Authenticated => Ok(Gate::Answer(answer(Some((
                ResponseError::IllegalSaslState,
                "no SASL authentication is expected on this connection",
            )))?)),
            State::Start | State::Handshaken { raw: true } => Ok(Gate::Refuse(
                answer(Some((
                    ResponseError::IllegalSaslState,
                    "SaslAuthenticate before a PLAIN SaslHandshake v1",
                )))?,
                SaslError::OutOfSequence(frame.api),
            )),
        }
    }

    /// Checks a PLAIN token (RFC 4616: authzid NUL authcid NUL password)
    /// against the client token.
    fn check(&self, token: &[u8]) -> Result<(), SaslError> {
        let mut parts = token.split(|&b| b == 0);
        let (Some(_authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            tracing::info!(peer = ?self.peer, "kafka: malformed SASL/PLAIN token");
            return Err(SaslError::MalformedToken);
        };
        let user = printable(user);
        let expected = self.token.as_deref().unwrap_or_default().as_bytes();
        if !expected.is_empty() && constant_time_eq::constant_time_eq(password, expected) {
            tracing::info!(peer = ?self.peer, %user, "kafka: client authenticated");
            Ok(())
        } else {
            tracing::info!(peer = ?self.peer, %user, "kafka: authentication failed");
            Err(SaslError::WrongPassword(user))
        }
    }
}

/// A client-sent name, safe and short enough to log.
fn printable(name: &[u8]) -> String {
    String::from_utf8_lossy(name)
        .chars()
        .take(MAX_LOGGED_USER)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::{
        messages::{ApiVersionsRequest, MetadataRequest, RequestHeader},
        protocol::{Decodable, Encodable},
    };

    use super::*;

    fn frame<T: Encodable>(api: ApiKey, version: i16, body: &T) -> Bytes {
        let mut out = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .encode(&mut out, api.request_header_version(version))
            .unwrap();
        body.encode(&mut out, version).unwrap();
        out.freeze()
    }

    fn handshake(version: i16, mechanism: &'static str) -> Bytes {
        let body =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        frame(ApiKey::SaslHandshake, version, &body)
    }

    fn authenticate(token: &'static [u8]) -> Bytes {
        let body = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(token));
        frame(ApiKey::SaslAuthenticate, 2, &body)
    }

    fn metadata() -> Bytes {
        frame(ApiKey::Metadata, 12, &MetadataRequest::default())
    }

    /// The error code of an answer (after size and correlation id, and
    /// the flexible header's tag byte when `flexible`).
    fn error_code(answer: &Bytes, flexible: bool) -> i16 {
        let at = 8 + usize::from(flexible);
        i16::from_be_bytes([answer[at], answer[at + 1]])
    }

    fn guarded() -> Sasl {
        Sasl::new(Some("s3cret".to_owned()), None)
    }

    #[test]
    fn plain_with_the_token_authenticates_and_opens_the_connection() {
        let mut sasl = guarded();
        assert_eq!(sasl.max_frame(1 << 30), UNAUTHENTICATED_MAX_FRAME);
        let api_versions = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
        assert!(matches!(sasl.gate(api_versions), Ok(Gate::Serve(_))));
        let Ok(Gate::Answer(answer)) = sasl.gate(handshake(1, "PLAIN")) else {
            panic!("the handshake is answered");
        };
        assert_eq!(error_code(&answer, false), 0);
        let answer = match sasl.gate(authenticate(b"\0anyone\0s3cret")) {
            Ok(Gate::Answer(answer)) => answer,
            other => panic!("{other:?}"),
        };
        assert_eq!(error_code(&answer, true), 0);
        assert!(matches!(sasl.gate(metadata()), Ok(Gate::Serve(_))));
        assert_eq!(sasl.max_frame(1 << 30), 1 << 30);
        // A second handshake is refused but harmless, as in Kafka.
        let Ok(Gate::Answer(answer)) = sasl.gate(handshake(1, "PLAIN")) else {
            panic!("answered");
        };
        assert_eq!(
            error_code(&answer, false),
            ResponseError::IllegalSaslState.code()
        );
    }

    #[test]
    fn a_wrong_password_is_answered_then_closed() {
        for token in [
            &b"\0anyone\0wrong"[..],
            b"\0anyone\0",
            b"s3cret",
            b"\0a\0s3cret\0",
        ] {
            let mut sasl = guarded();
            assert!(matches!(
                sasl.gate(handshake(1, "PLAIN")),
                Ok(Gate::Answer(_))
            ));
            let body =
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(token));
            match sasl.gate(frame(ApiKey::SaslAuthenticate, 2, &body)) {
                Ok(Gate::Refuse(answer, _)) => assert_eq!(
                    error_code(&answer, true),
                    ResponseError::SaslAuthenticationFailed.code()
                ),
                other => panic!("{token:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn nothing_but_api_versions_passes_before_authentication() {
        let mut sasl = guarded();
        assert!(matches!(
            sasl.gate(metadata()),
            Err(SaslError::Unauthenticated(ApiKey::Metadata))
        ));
        let mut sasl = guarded();
        assert!(matches!(
            sasl.gate(handshake(1, "PLAIN")),
            Ok(Gate::Answer(_))
        ));
        assert!(matches!(
            sasl.gate(metadata()),
            Err(SaslError::Unauthenticated(_))
        ));
        let mut sasl = guarded();
        assert!(matches!(
            sasl.gate(authenticate(b"\0u\0s3cret")),
            Ok(Gate::Refuse(_, SaslError::OutOfSequence(_)))
        ));
    }

    #[test]
    fn another_mechanism_is_refused_with_plain_offered() {
        let mut sasl = guarded();
        let Ok(Gate::Refuse(answer, _)) = sasl.gate(handshake(1, "SCRAM-SHA-256")) else {
            panic!("refused");
        };
        let mut body = answer.slice(8..);
        let decoded = SaslHandshakeResponse::decode(&mut body, 1).unwrap();
        assert_eq!(
            decoded.error_code,
            ResponseError::UnsupportedSaslMechanism.code()
        );
        assert_eq!(decoded.mechanisms, vec![StrBytes::from_static_str("PLAIN")]);
    }

    #[test]
    fn a_v0_handshake_takes_the_bare_token() {
        let mut sasl = guarded();
        assert!(matches!(
            sasl.gate(handshake(0, "PLAIN")),
            Ok(Gate::Answer(_))
        ));
        let Ok(Gate::Answer(empty)) = sasl.gate(Bytes::from_static(b"\0u\0s3cret")) else {
            panic!("accepted");
        };
        assert_eq!(&empty[..], &[0; 4]);
        assert!(matches!(sasl.gate(metadata()), Ok(Gate::Serve(_))));
        let mut sasl = guarded();
        assert!(matches!(
            sasl.gate(handshake(0, "PLAIN")),
            Ok(Gate::Answer(_))
        ));
        assert!(matches!(
            sasl.gate(Bytes::from_static(b"\0u\0nope")),
            Err(SaslError::WrongPassword(_))
        ));
    }

    #[test]
    fn without_a_token_everything_is_served_and_sasl_is_refused() {
        let mut sasl = Sasl::new(None, None);
        assert!(matches!(sasl.gate(metadata()), Ok(Gate::Serve(_))));
        let Ok(Gate::Answer(answer)) = sasl.gate(handshake(1, "PLAIN")) else {
            panic!("answered");
        };
        assert_eq!(
            error_code(&answer, false),
            ResponseError::IllegalSaslState.code()
        );
        let Ok(Gate::Answer(answer)) = sasl.gate(authenticate(b"\0u\0")) else {
            panic!("answered");
        };
        assert_eq!(
            error_code(&answer, true),
            ResponseError::IllegalSaslState.code()
        );
        assert!(matches!(sasl.gate(metadata()), Ok(Gate::Serve(_))));
    }
}
