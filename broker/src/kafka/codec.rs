//! Framing of the Kafka protocol: a 4-byte big-endian size, then a request
//! header and body (`kafka-protocol` encodes and decodes both; nothing
//! here parses message fields by hand).
//!
//! Invariants: a frame longer than the cap is refused before it is read
//! into memory; nothing in a frame is trusted to be long enough until
//! checked (the crate's header decoder peeks at fixed positions).

use bytes::{Bytes, BytesMut};
use kafka_protocol::{
    messages::{ApiKey, RequestHeader, ResponseHeader},
    protocol::{Decodable, Encodable},
};
use tokio_util::codec::LengthDelimitedCodec;

/// Why a frame cannot be answered; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is too short for a request header")]
    Short(usize),
    #[error("unknown API key {0}")]
    UnknownApi(i16),
    #[error("malformed {api:?} v{version}: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("encoding the response: {0}")]
    Encode(String),
}

/// Length-prefixed frames of at most `max` bytes.
pub fn frames(max: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(max)
        .new_codec()
}

/// A request frame's header, and its body still encoded.
pub struct Frame {
    pub api: ApiKey,
    pub header: RequestHeader,
    pub body: Bytes,
}

impl Frame {
    /// Splits a frame into its header and body. The version is not checked
    /// here: ApiVersions must answer an unsupported one.
    pub fn parse(mut frame: Bytes) -> Result<Self, FrameError> {
        if frame.len() < 8 {
            return Err(FrameError::Short(frame.len()));
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let api = ApiKey::try_from(key).map_err(|()| FrameError::UnknownApi(key))?;
        let header = RequestHeader::decode(&mut frame, api.request_header_version(version))
            .map_err(|e| FrameError::Malformed {
                api,
                version,
                reason: e.to_string(),
            })?;
        Ok(Self {
            api,
            header,
            body: frame,
        })
    }

    pub fn version(&self) -> i16 {
        self.header.request_api_version
    }

    /// Decodes the body as `T` at the frame's version.
    pub fn body<T: Decodable>(&self) -> Result<T, FrameError> {
        let malformed = |reason: String| FrameError::Malformed {
            api: self.api,
            version: self.version(),
            reason,
        };
        let mut body = self.body.clone();
        let decoded = T::decode(&mut body, self.version()).map_err(|e| malformed(e.to_string()))?;
        if !body.is_empty() {
            return Err(malformed(format!("{} bytes after the body", body.len())));
        }
        Ok(decoded)
    }
}

/// A whole response frame: size, header, body at `version`.
pub fn response<T: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<Bytes, FrameError> {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_version = api.response_header_version(version);
    let mut out = BytesMut::new();
    out.extend_from_slice(&[0; 4]);
    header
        .encode(&mut out, header_version)
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    body.encode(&mut out, version)
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let size = u32::try_from(out.len() - 4).map_err(|_| FrameError::Encode("too long".into()))?;
    out[..4].copy_from_slice(&size.to_be_bytes());
    Ok(out.freeze())
}
