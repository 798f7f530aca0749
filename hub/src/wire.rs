//! The spoke stream's responses as gRPC frames, without a buffer that
//! outlives a message.
//!
//! tonic encodes a streaming response into one buffer per call, grown to
//! fit the largest batch of messages it has sent and kept for the call's
//! life. A spoke's stream lives as long as the spoke is connected, and its
//! largest message is a state chunk (up to [`fleet_proto::CHUNK_SIZE`]), so
//! every idle spoke kept about the size of its state on the hub after its
//! first sync. [`MessageBody`] gives each message its own allocation, freed
//! once HTTP/2 has written it, and a chunk's data goes out as the `Bytes`
//! the release already holds, not copied. The bytes on the wire are the
//! ones tonic sends (a test compares them with prost's encoding).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{BufMut as _, Bytes, BytesMut};
use fleet_proto::v1 as pb;
use futures_util::{Stream, StreamExt as _};
use http_body::Frame;
use prost::Message as _;
use prost::encoding::{encode_varint, encoded_len_varint};
use tonic::Status;

/// The gRPC message prefix: a compression flag and a big-endian length.
const PREFIX: usize = 5;

/// Chunk data at least this long is sent as its own frame, without a copy;
/// HTTP/2 copies smaller frames into its write buffer anyway.
const SHARE_FROM: usize = 1024;

/// The response body of one spoke stream: each message of `source` as
/// gRPC frames, then trailers with the status (`grpc-status: 0` when
/// `source` ends, the status of an `Err` item otherwise).
pub struct MessageBody<S> {
    source: S,
    /// The data of a chunk whose prefix was the last frame.
    next: Option<Bytes>,
    /// Largest encoded message, the limit tonic's `max_encoding_message_size` set.
    max: usize,
    done: bool,
}

impl<S> MessageBody<S> {
    pub fn new(source: S, max: usize) -> Self {
        Self {
            source,
            next: None,
            max,
            done: false,
        }
    }
}

/// One message as gRPC frames: one, or for a chunk's data, the prefix and
/// the data itself.
fn frames(m: &pb::HubMessage, max: usize) -> Result<(Bytes, Option<Bytes>), Status> {
    let len = m.encoded_len();
    if len > max {
        return Err(Status::out_of_range(format!(
            "Error, encoded message length too large: found {len} bytes, the limit is: {max} bytes"
        )));
    }
    if let Some(pb::hub_message::Msg::Chunk(c)) = &m.msg
        && c.data.len() >= SHARE_FROM
    {
        let mut head = BytesMut::with_capacity(PREFIX + 24);
        head.put_u8(0);
        head.put_u32(len as u32);
        // HubMessage.chunk (field 2, length-delimited), then StateChunk's
        // index (field 1, varint; 0 is left out) and data's tag and length.
        let index = if c.index == 0 {
            0
        } else {
            1 + encoded_len_varint(u64::from(c.index))
        };
        let data = 1 + encoded_len_varint(c.data.len() as u64) + c.data.len();
        head.put_u8(0x12);
        encode_varint((index + data) as u64, &mut head);
        if c.index != 0 {
            head.put_u8(0x08);
            encode_varint(u64::from(c.index), &mut head);
        }
        head.put_u8(0x12);
        encode_varint(c.data.len() as u64, &mut head);
        debug_assert_eq!(head.len() + c.data.len(), PREFIX + len);
        return Ok((head.freeze(), Some(c.data.clone())));
    }
    let mut buf = BytesMut::with_capacity(PREFIX + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    m.encode_raw(&mut buf);
    Ok((buf.freeze(), None))
}

impl<S> http_body::Body for MessageBody<S>
where
    S: Stream<Item = Result<pb::HubMessage, Status>> + Unpin,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if let Some(data) = self.next.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let status = match ready!(self.source.poll_next_unpin(cx)) {
            Some(Ok(m)) => match frames(&m, self.max) {
                Ok((first, rest)) => {
                    self.next = rest;
                    return Poll::Ready(Some(Ok(Frame::data(first))));
                }
                Err(status) => status,
            },
            Some(Err(status)) => status,
            None => Status::ok(""),
        };
        self.done = true;
        let mut trailers = http::HeaderMap::new();
        Poll::Ready(Some(status.add_header(&mut trailers).map(|()| Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.next.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    fn chunk(index: u32, data: Bytes) -> pb::HubMessage {
        pb::HubMessage {
            msg: Some(pb::hub_message::Msg::Chunk(pb::StateChunk { index, data })),
        }
    }

    fn header(digest: &str) -> pb::HubMessage {
        pb::HubMessage {
            msg: Some(pb::hub_message::Msg::Header(pb::StateHeader {
                digest: digest.into(),
                total_size: 3 << 20,
                chunks: 3,
                ..Default::default()
            })),
        }
    }

    /// What tonic puts on the wire for these messages: each prost-encoded
    /// behind its 5-byte prefix.
    fn grpc_bytes(ms: &[pb::HubMessage]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in ms {
            let b = m.encode_to_vec();
            out.push(0);
            out.extend_from_slice(&(b.len() as u32).to_be_bytes());
            out.extend_from_slice(&b);
        }
        out
    }

    async fn collect(
        items: Vec<Result<pb::HubMessage, Status>>,
        max: usize,
    ) -> (Vec<Bytes>, http::HeaderMap) {
        let mut body = MessageBody::new(futures_util::stream::iter(items), max);
        let mut data = Vec::new();
        let mut trailers = None;
        while let Some(f) = body.frame().await {
            let f = f.expect("frame");
            match f.into_data() {
                Ok(d) => data.push(d),
                Err(f) => trailers = Some(f.into_trailers().expect("trailers")),
            }
        }
        assert!(http_body::Body::is_end_stream(&body));
        (data, trailers.expect("the body ends with trailers"))
    }

    #[tokio::test]
    async fn the_frames_are_the_bytes_tonic_sends_and_end_with_status_ok() {
        let big = Bytes::from(vec![7u8; 200_000]);
        let ms = vec![
            header("sha256:abc"),
            chunk(0, big.clone()),
            chunk(1, Bytes::from(vec![1u8; SHARE_FROM])),
            chunk(300, big.slice(..150_000)),
            chunk(2, Bytes::from_static(b"small")),
            chunk(0, Bytes::new()),
        ];
        let (data, trailers) = collect(ms.iter().cloned().map(Ok).collect(), 4 << 20).await;
        assert_eq!(data.concat(), grpc_bytes(&ms));
        assert_eq!(trailers.get("grpc-status").unwrap(), "0");
    }

    #[tokio::test]
    async fn a_chunk_goes_out_as_the_bytes_it_was_given() {
        let big = Bytes::from(vec![9u8; 64 * 1024]);
        let (data, _) = collect(vec![Ok(chunk(5, big.clone()))], 4 << 20).await;
        assert_eq!(data.len(), 2, "prefix, then the data");
        assert_eq!(data[1].as_ptr(), big.as_ptr(), "the data is not copied");
        assert_eq!(data[1].len(), big.len());
    }

    #[tokio::test]
    async fn an_error_item_ends_the_stream_with_its_status() {
        let items = vec![
            Ok(header("sha256:abc")),
            Err(Status::unauthenticated("your certificate was revoked")),
            Ok(header("sha256:never")),
        ];
        let (data, trailers) = collect(items, 4 << 20).await;
        assert_eq!(data.concat(), grpc_bytes(&[header("sha256:abc")]));
        let status = Status::from_header_map(&trailers).expect("a status");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(status.message(), "your certificate was revoked");
    }

    #[tokio::test]
    async fn a_message_over_the_limit_ends_the_stream_out_of_range() {
        let items = vec![
            Ok(header("sha256:abc")),
            Ok(chunk(0, Bytes::from(vec![0u8; 2048]))),
        ];
        let (data, trailers) = collect(items, 1024).await;
        assert_eq!(data.concat(), grpc_bytes(&[header("sha256:abc")]));
        assert_eq!(trailers.get("grpc-status").unwrap(), "11");
    }
}
