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
#[derive(Debug)]
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
    // Sized once: a fetch answer of a megabyte would otherwise be copied
    // again at each doubling.
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + body.compute_size(version)?))
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let mut out = BytesMut::with_capacity(4 + size);
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

#[cfg(test)]
mod tests {
    //! Fuzzing of the framing and of every request decoder the listener
    //! uses: whatever the bytes, an error, never a panic.
    //!
    //! kafka-protocol 0.18 sizes a decoded array from its count on the
    //! wire before reading an element (a few bytes can ask for hundreds of
    //! GiB, which aborts the process), so the bodies of requests whose
    //! decoders read arrays are fuzzed by cutting and extending valid
    //! encodings; array-free requests get arbitrary bytes.

    use kafka_protocol::{messages::*, protocol::StrBytes};
    use proptest::prelude::*;

    use super::*;
    use crate::kafka::SUPPORTED;

    /// Decodes `frame`'s body as its API's request type.
    fn decode_body(frame: &Frame) -> Result<(), FrameError> {
        macro_rules! decode {
            ($($api:ident => $ty:ty),* $(,)?) => {
                match frame.api {
                    $(ApiKey::$api => frame.body::<$ty>().map(drop),)*
                    other => panic!("{other:?} is served: add its decoder here"),
                }
            };
        }
        decode!(
            Produce => ProduceRequest,
            Fetch => FetchRequest,
            ListOffsets => ListOffsetsRequest,
            Metadata => MetadataRequest,
            ApiVersions => ApiVersionsRequest,
            CreateTopics => CreateTopicsRequest,
            InitProducerId => InitProducerIdRequest,
            SaslHandshake => SaslHandshakeRequest,
            SaslAuthenticate => SaslAuthenticateRequest,
            DescribeConfigs => DescribeConfigsRequest,
            DescribeCluster => DescribeClusterRequest,
            FindCoordinator => FindCoordinatorRequest,
            JoinGroup => JoinGroupRequest,
            SyncGroup => SyncGroupRequest,
            Heartbeat => HeartbeatRequest,
            LeaveGroup => LeaveGroupRequest,
            OffsetCommit => OffsetCommitRequest,
            OffsetFetch => OffsetFetchRequest,
            ListGroups => ListGroupsRequest,
            DescribeGroups => DescribeGroupsRequest,
        )
    }

    /// Requests whose decoders read no arrays (at the versions served).
    fn array_free(api: ApiKey, version: i16) -> bool {
        matches!(
            api,
            ApiKey::ApiVersions
                | ApiKey::SaslHandshake
                | ApiKey::SaslAuthenticate
                | ApiKey::InitProducerId
                | ApiKey::DescribeCluster
                | ApiKey::Heartbeat
        ) || (api == ApiKey::FindCoordinator && version <= 3)
            || (api == ApiKey::LeaveGroup && version <= 2)
    }

    fn header(api: ApiKey, version: i16) -> BytesMut {
        let mut out = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(1)
            .with_client_id(Some(StrBytes::from_static_str("fuzz")))
            .encode(&mut out, api.request_header_version(version))
            .unwrap();
        out
    }

    /// A valid encoding of a default request of `api` at `version` (the
    /// crate's encoder), with a non-empty array where the type has one.
    fn valid(api: ApiKey, version: i16) -> Bytes {
        let mut out = header(api, version);
        let name = || TopicName(StrBytes::from_static_str("t"));
        let result = match api {
            ApiKey::Metadata => MetadataRequest::default()
                .with_topics(Some(vec![
                    metadata_request::MetadataRequestTopic::default().with_name(Some(name())),
                ]))
                .encode(&mut out, version),
            ApiKey::Produce => ProduceRequest::default()
                .with_topic_data(vec![
                    produce_request::TopicProduceData::default()
                        .with_name(name())
                        .with_partition_data(vec![Default::default()]),
                ])
                .encode(&mut out, version),
            ApiKey::Fetch => FetchRequest::default()
                .with_topics(vec![
                    fetch_request::FetchTopic::default()
                        .with_topic(name())
                        .with_partitions(vec![Default::default()]),
                ])
                .encode(&mut out, version),
            _ => {
                macro_rules! default {
                    ($($key:ident => $ty:ty),* $(,)?) => {
                        match api {
                            $(ApiKey::$key => <$ty>::default().encode(&mut out, version),)*
                            other => panic!("{other:?} is served: add it here"),
                        }
                    };
                }
                default!(
                    ListOffsets => ListOffsetsRequest,
                    ApiVersions => ApiVersionsRequest,
                    CreateTopics => CreateTopicsRequest,
                    InitProducerId => InitProducerIdRequest,
                    SaslHandshake => SaslHandshakeRequest,
                    SaslAuthenticate => SaslAuthenticateRequest,
                    DescribeConfigs => DescribeConfigsRequest,
                    DescribeCluster => DescribeClusterRequest,
                    FindCoordinator => FindCoordinatorRequest,
                    JoinGroup => JoinGroupRequest,
                    SyncGroup => SyncGroupRequest,
                    Heartbeat => HeartbeatRequest,
                    LeaveGroup => LeaveGroupRequest,
                    OffsetCommit => OffsetCommitRequest,
                    OffsetFetch => OffsetFetchRequest,
                    ListGroups => ListGroupsRequest,
                    DescribeGroups => DescribeGroupsRequest,
                )
            }
        };
        result.unwrap();
        out.freeze()
    }

    fn served() -> impl Strategy<Value = (ApiKey, i16)> {
        prop::sample::select(SUPPORTED.to_vec())
            .prop_flat_map(|(api, min, max)| (Just(api), min..=max))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn parse_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(frame) = Frame::parse(Bytes::from(bytes.clone())) {
                prop_assert!(bytes.len() >= 8);
                prop_assert_eq!(frame.api as i16, i16::from_be_bytes([bytes[0], bytes[1]]));
            }
        }

        #[test]
        fn parse_takes_any_header_of_a_known_api(
            (api, version) in served(),
            tail in prop::collection::vec(any::<u8>(), 0..48),
        ) {
            let mut bytes = (api as i16).to_be_bytes().to_vec();
            bytes.extend_from_slice(&version.to_be_bytes());
            bytes.extend_from_slice(&tail);
            let _ = Frame::parse(Bytes::from(bytes));
        }

        #[test]
        fn array_free_decoders_take_any_body(
            (api, version) in served().prop_filter("array-free", |&(a, v)| array_free(a, v)),
            body in prop::collection::vec(any::<u8>(), 0..96),
        ) {
            let mut bytes = header(api, version);
            bytes.extend_from_slice(&body);
            let frame = Frame::parse(bytes.freeze()).unwrap();
            let _ = decode_body(&frame);
        }

        #[test]
        fn every_decoder_takes_a_cut_or_extended_valid_request(
            (api, version) in served(),
            cut in any::<prop::sample::Index>(),
            extra in prop::collection::vec(any::<u8>(), 0..8),
        ) {
            // Cut or extended, never both: bytes written where a cut one
            // had an array count would hit the crate's gap.
            let valid = valid(api, version);
            let whole = cut.index(valid.len() + 1) == valid.len();
            let mut bytes = valid.slice(..cut.index(valid.len() + 1)).to_vec();
            if whole {
                bytes.extend_from_slice(&extra);
            }
            if let Ok(frame) = Frame::parse(Bytes::from(bytes)) {
                let decoded = decode_body(&frame);
                if whole {
                    // All of it decodes; anything more is left over.
                    prop_assert_eq!(decoded.is_ok(), extra.is_empty(), "{:?} v{}", api, version);
                }
            }
        }
    }

    #[test]
    fn every_served_request_decodes_from_the_crates_encoding() {
        for &(api, min, max) in SUPPORTED {
            for version in min..=max {
                let frame = Frame::parse(valid(api, version)).unwrap();
                assert!(decode_body(&frame).is_ok(), "{api:?} v{version}");
            }
        }
    }
}
