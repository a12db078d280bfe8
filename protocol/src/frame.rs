//! The binary produce protocol.
//!
//! What the node's TCP port (`--tcp-listen`) and `yak-client` say to each
//! other: the HTTP API's `POST /produce/batch` without HTTP. One record
//! batch per request, in the storage format (`docs/storage.md`), many
//! requests in flight on one connection, answered in any order and matched
//! by the request id the client chose. `docs/api.md` describes it for
//! people writing other clients.
//!
//! Every frame is a 4-byte big-endian length followed by that many bytes
//! ([`codec`]). Inside, integers are big-endian:
//!
//! ```text
//! request  = kind:u8 id:u64 body
//!   kind 1 Hello      body = token (UTF-8, may be empty)
//!   kind 2 Produce    body = topic_len:u16 topic partition:u32 batch
//!   kind 3 Replicate  body = topic_len:u16 topic partition:u32 epoch:u64
//!                            prev:u64 hwm:u64 log_start:u64
//!                            leader_len:u16 leader batches
//! response = id:u64 kind:u8 body
//!   kind 1 Ready      body = (empty)
//!   kind 2 Stored     body = offset:u64 count:u32 epoch:u64
//!   kind 4 Error      body = json   (the HTTP API's error body)
//!   kind 5 Replicated body = end:u64
//! ```
//!
//! `Replicate` is the leader → follower link between nodes, not for
//! clients: a leader's round for one partition of the follower, with the
//! fields of `POST /internal/replicate` ([`ReplicateParams`]). A node
//! queues the `Replicate` requests of one connection to its partitions in
//! the order they arrive, so a leader may send several rounds without
//! waiting. With a cluster token set, only a connection whose `Hello`
//! carried it may send them.
//!
//! An `Error`'s body is the JSON error body the same failure has on the
//! HTTP API — `{"error": <code>, "message", "written", ...}` — and nothing
//! else: this port is not HTTP and carries no HTTP status. A client decides
//! from the code ([`ErrorCode`](crate::ErrorCode)) and `written`
//! ([`Written`](crate::Written)) what to do.
//!
//! Response kind 3 was the first `Error` frame, `status:u16 json` (the HTTP
//! status before the body). It is retired and never reused: a node or client that
//! still speaks it reads the other side's kind as unknown and drops the
//! connection, rather than misreading two bytes of JSON as a status.
//!
//! Invariant: [`Request::decode`] and [`Response::decode`] accept exactly
//! what `encode` produces; anything else is a [`FrameError`], never a
//! panic.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio_util::codec::LengthDelimitedCodec;

/// Longest topic name a frame can carry (the node accepts 249 bytes).
const MAX_TOPIC_BYTES: usize = u16::MAX as usize;

/// The kind of an `Error` answer. Kind 3 (an HTTP status, then the body)
/// is retired: never sent, never read.
const ERROR_KIND: u8 = 4;

/// The length-prefixed framing, refusing frames longer than `max_frame`.
pub fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .length_field_type::<u32>()
        .max_frame_length(max_frame)
        .new_codec()
}

/// Bytes a request adds around its batch (kind, id, topic length, topic,
/// partition): a node's frame limit is its body limit plus this.
pub fn request_overhead(topic: &str) -> usize {
    1 + 8 + 2 + topic.len() + 4
}

/// A frame that is not a request or response of this protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is too short")]
    TooShort(usize),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("{0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("topic name of {0} bytes is too long")]
    TopicTooLong(usize),
}

/// Where a leader's round goes and what the follower learns with it: the
/// fields of a `Replicate` request, and the query of
/// `POST /internal/replicate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicateParams {
    pub topic: String,
    pub partition: u32,
    pub epoch: u64,
    /// Offset of the first record in the body (the follower's expected end).
    pub prev: u64,
    pub hwm: u64,
    /// The leader's log start: the follower deletes below it.
    #[serde(default)]
    pub log_start: u64,
    /// The leader's node id.
    pub leader: String,
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Presents the client token; a node started with `--client-token`
    /// answers nothing else on a connection before it.
    Hello { token: String },
    /// Stores one record batch in `topic`/`partition`.
    Produce {
        topic: String,
        partition: u32,
        batch: Bytes,
    },
    /// A leader's round for one partition of a follower: its batches,
    /// byte for byte, starting at `params.prev`.
    Replicate {
        params: ReplicateParams,
        batches: Bytes,
    },
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The Hello was accepted.
    Ready,
    /// The batch is stored and replicated: its first record's offset, its
    /// record count and the leader epoch that acknowledged it.
    Stored { offset: u64, count: u32, epoch: u64 },
    /// The request failed: the JSON error body the same failure has on
    /// the HTTP API (`{"error", "message", "written", ...}`).
    Error { body: Bytes },
    /// The follower appended a `Replicate`'s batches: its log end now.
    Replicated { end: u64 },
}

impl Request {
    pub fn encode(&self, id: u64) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Request::Hello { token } => {
                out.reserve(9 + token.len());
                out.put_u8(1);
                out.put_u64(id);
                out.put_slice(token.as_bytes());
            }
            Request::Produce {
                topic,
                partition,
                batch,
            } => {
                let topic = &topic.as_bytes()[..topic.len().min(MAX_TOPIC_BYTES)];
                out.reserve(15 + topic.len() + batch.len());
                out.put_u8(2);
                out.put_u64(id);
                out.put_u16(topic.len() as u16);
                out.put_slice(topic);
                out.put_u32(*partition);
                out.put_slice(batch);
            }
            Request::Replicate { params, batches } => {
                let topic = &params.topic.as_bytes()[..params.topic.len().min(MAX_TOPIC_BYTES)];
                let leader = &params.leader.as_bytes()[..params.leader.len().min(MAX_TOPIC_BYTES)];
                out.reserve(51 + topic.len() + leader.len() + batches.len());
                out.put_u8(3);
                out.put_u64(id);
                out.put_u16(topic.len() as u16);
                out.put_slice(topic);
                out.put_u32(params.partition);
                out.put_u64(params.epoch);
                out.put_u64(params.prev);
                out.put_u64(params.hwm);
                out.put_u64(params.log_start);
                out.put_u16(leader.len() as u16);
                out.put_slice(leader);
                out.put_slice(batches);
            }
        }
        out.freeze()
    }

    /// The request id and the request. A frame whose id could be read but
    /// whose body could not gives `Err((Some(id), _))`, so the error can be
    /// answered to that request.
    pub fn decode(mut frame: Bytes) -> Result<(u64, Request), (Option<u64>, FrameError)> {
        let len = frame.len();
        if len < 9 {
            return Err((None, FrameError::TooShort(len)));
        }
        let kind = frame.get_u8();
        let id = frame.get_u64();
        let fail = |e| (Some(id), e);
        let request = match kind {
            1 => Request::Hello {
                token: utf8(frame, "token").map_err(fail)?,
            },
            2 => {
                let topic = string16(&mut frame, "topic", len).map_err(fail)?;
                let partition = get(&mut frame, len, Bytes::get_u32).map_err(fail)?;
                Request::Produce {
                    topic,
                    partition,
                    batch: frame,
                }
            }
            3 => {
                let topic = string16(&mut frame, "topic", len).map_err(fail)?;
                let partition = get(&mut frame, len, Bytes::get_u32).map_err(fail)?;
                let mut u64s = [0; 4];
                for n in &mut u64s {
                    *n = get(&mut frame, len, Bytes::get_u64).map_err(fail)?;
                }
                let [epoch, prev, hwm, log_start] = u64s;
                let leader = string16(&mut frame, "leader", len).map_err(fail)?;
                let params = ReplicateParams {
                    topic,
                    partition,
                    epoch,
                    prev,
                    hwm,
                    log_start,
                    leader,
                };
                Request::Replicate {
                    params,
                    batches: frame,
                }
            }
            other => return Err(fail(FrameError::UnknownKind(other))),
        };
        Ok((id, request))
    }
}

impl Response {
    pub fn encode(&self, id: u64) -> Bytes {
        let mut out = BytesMut::with_capacity(29);
        out.put_u64(id);
        match self {
            Response::Ready => out.put_u8(1),
            Response::Stored {
                offset,
                count,
                epoch,
            } => {
                out.put_u8(2);
                out.put_u64(*offset);
                out.put_u32(*count);
                out.put_u64(*epoch);
            }
            Response::Error { body } => {
                out.reserve(body.len());
                out.put_u8(ERROR_KIND);
                out.put_slice(body);
            }
            Response::Replicated { end } => {
                out.put_u8(5);
                out.put_u64(*end);
            }
        }
        out.freeze()
    }

    pub fn decode(mut frame: Bytes) -> Result<(u64, Response), FrameError> {
        let len = frame.len();
        let need = |n: usize, frame: &Bytes| {
            if frame.remaining() < n {
                Err(FrameError::TooShort(len))
            } else {
                Ok(())
            }
        };
        need(9, &frame)?;
        let id = frame.get_u64();
        let response = match frame.get_u8() {
            1 => Response::Ready,
            2 => {
                need(20, &frame)?;
                Response::Stored {
                    offset: frame.get_u64(),
                    count: frame.get_u32(),
                    epoch: frame.get_u64(),
                }
            }
            ERROR_KIND => Response::Error { body: frame },
            5 => {
                need(8, &frame)?;
                Response::Replicated {
                    end: frame.get_u64(),
                }
            }
            other => return Err(FrameError::UnknownKind(other)),
        };
        Ok((id, response))
    }
}

fn utf8(bytes: Bytes, what: &'static str) -> Result<String, FrameError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| FrameError::NotUtf8(what))
}

/// A fixed-size integer, or `TooShort` (of the whole frame, `len`).
fn get<T>(frame: &mut Bytes, len: usize, read: fn(&mut Bytes) -> T) -> Result<T, FrameError> {
    if frame.remaining() < size_of::<T>() {
        return Err(FrameError::TooShort(len));
    }
    Ok(read(frame))
}

/// A string after its `u16` length.
fn string16(frame: &mut Bytes, what: &'static str, len: usize) -> Result<String, FrameError> {
    let n = usize::from(get(frame, len, Bytes::get_u16)?);
    if frame.remaining() < n {
        return Err(FrameError::TooShort(len));
    }
    utf8(frame.split_to(n), what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn produce_round_trips() {
        let request = Request::Produce {
            topic: "orders".into(),
            partition: 7,
            batch: Bytes::from_static(b"batch bytes"),
        };
        let frame = request.encode(42);
        assert_eq!(frame.len(), request_overhead("orders") + 11);
        assert_eq!(Request::decode(frame), Ok((42, request)));
    }

    #[test]
    fn short_and_unknown_frames_are_errors_with_the_id_when_known() {
        assert_eq!(
            Request::decode(Bytes::from_static(&[2, 0, 0])),
            Err((None, FrameError::TooShort(3)))
        );
        let mut unknown = vec![9];
        unknown.extend_from_slice(&5u64.to_be_bytes());
        assert_eq!(
            Request::decode(Bytes::from(unknown)),
            Err((Some(5), FrameError::UnknownKind(9)))
        );
        let mut bad_topic = vec![2];
        bad_topic.extend_from_slice(&6u64.to_be_bytes());
        bad_topic.extend_from_slice(&[0, 2, 0xff, 0xfe, 0, 0, 0, 0]);
        assert_eq!(
            Request::decode(Bytes::from(bad_topic)),
            Err((Some(6), FrameError::NotUtf8("topic")))
        );
        assert_eq!(
            Response::decode(Bytes::from_static(&[0; 9])),
            Err(FrameError::UnknownKind(0))
        );
    }

    #[test]
    fn responses_round_trip() {
        for response in [
            Response::Ready,
            Response::Stored {
                offset: u64::MAX,
                count: 3,
                epoch: 9,
            },
            Response::Error {
                body: Bytes::from_static(br#"{"error":"no_leader"}"#),
            },
            Response::Replicated { end: 1 << 40 },
        ] {
            assert_eq!(Response::decode(response.encode(1)), Ok((1, response)));
        }
    }

    /// An error answer is the JSON body after the kind, with no status
    /// before it; the retired kind 3 is not read.
    #[test]
    fn an_error_is_its_json_body_alone() {
        let body = br#"{"error":"not_leader","written":"no"}"#;
        let frame = Response::Error {
            body: Bytes::from_static(body),
        }
        .encode(7);
        assert_eq!(frame[8], 4);
        assert_eq!(&frame[9..], body);
        let mut old = frame.to_vec();
        old[8] = 3;
        assert_eq!(
            Response::decode(Bytes::from(old)),
            Err(FrameError::UnknownKind(3))
        );
    }

    proptest! {
        /// No input makes a decoder panic.
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Request::decode(Bytes::from(bytes.clone()));
            let _ = Response::decode(Bytes::from(bytes));
        }

        #[test]
        fn produce_requests_round_trip(
            id in any::<u64>(),
            topic in "[a-z.]{0,40}",
            partition in any::<u32>(),
            batch in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let request = Request::Produce { topic, partition, batch: Bytes::from(batch) };
            prop_assert_eq!(Request::decode(request.encode(id)), Ok((id, request)));
        }

        #[test]
        fn replicate_requests_round_trip(
            id in any::<u64>(),
            topic in "[a-z.]{0,40}",
            leader in "[a-z0-9-]{0,20}",
            (partition, epoch, prev, hwm, log_start) in any::<(u32, u64, u64, u64, u64)>(),
            batches in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let params = ReplicateParams { topic, partition, epoch, prev, hwm, log_start, leader };
            let body = batches.len();
            let request = Request::Replicate { params, batches: Bytes::from(batches) };
            let frame = request.encode(id);
            // A frame cut anywhere before its batches is refused with its
            // id, never misread.
            for cut in 9..frame.len() - body {
                prop_assert_eq!(
                    Request::decode(frame.slice(..cut)),
                    Err((Some(id), FrameError::TooShort(cut)))
                );
            }
            prop_assert_eq!(Request::decode(frame), Ok((id, request)));
        }
    }
}
