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
use std::task::{Context, Poll};

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
/// shorter messages are copied into the frame that carries them.
const SHARE_FROM: usize = 16 * 1024;

/// Messages ready together are joined into one frame up to this size, as
/// tonic's `yield_threshold` does; the frame is freed once written.
const BATCH: usize = 32 * 1024;

/// The response body of one spoke stream: the messages of `source` as
/// gRPC frames, then trailers with the status (`grpc-status: 0` when
/// `source` ends, the status of an `Err` item otherwise).
pub struct MessageBody<S> {
    source: S,
    /// The data of a chunk whose prefix ended the last frame.
    next: Option<Bytes>,
    /// The status to send once the frames before it are out.
    end: Option<Status>,
    /// Largest encoded message, the limit tonic's `max_encoding_message_size` set.
    max: usize,
    done: bool,
}

impl<S> MessageBody<S> {
    pub fn new(source: S, max: usize) -> Self {
        Self {
            source,
            next: None,
            end: None,
            max,
            done: false,
        }
    }
}

/// Appends one message's gRPC frame to `buf`; for a chunk of at least
/// [`SHARE_FROM`] bytes only the bytes before its data, which is returned
/// to be sent next as it is.
fn encode(m: &pb::HubMessage, max: usize, buf: &mut BytesMut) -> Result<Option<Bytes>, Status> {
    let len = m.encoded_len();
    if len > max {
        return Err(Status::out_of_range(format!(
            "Error, encoded message length too large: found {len} bytes, the limit is: {max} bytes"
        )));
    }
    if let Some(pb::hub_message::Msg::Chunk(c)) = &m.msg
        && c.data.len() >= SHARE_FROM
    {
        buf.reserve(PREFIX + 24);
        buf.put_u8(0);
        buf.put_u32(len as u32);
        // HubMessage.chunk (field 2, length-delimited), then StateChunk's
        // index (field 1, varint; 0 is left out) and data's tag and length.
        let index = if c.index == 0 {
            0
        } else {
            1 + encoded_len_varint(u64::from(c.index))
        };
        let data = 1 + encoded_len_varint(c.data.len() as u64) + c.data.len();
        buf.put_u8(0x12);
        encode_varint((index + data) as u64, buf);
        if c.index != 0 {
            buf.put_u8(0x08);
            encode_varint(u64::from(c.index), buf);
        }
        buf.put_u8(0x12);
        encode_varint(c.data.len() as u64, buf);
        return Ok(Some(c.data.clone()));
    }
    buf.reserve(PREFIX + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    m.encode_raw(buf);
    Ok(None)
}

fn trailers(status: &Status) -> Result<Frame<Bytes>, Status> {
    let mut map = http::HeaderMap::new();
    status.add_header(&mut map)?;
    Ok(Frame::trailers(map))
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
        if let Some(status) = self.end.take() {
            self.done = true;
            return Poll::Ready(Some(trailers(&status)));
        }
        if self.done {
            return Poll::Ready(None);
        }
        let mut buf = BytesMut::new();
        while buf.len() < BATCH {
            let status = match self.source.poll_next_unpin(cx) {
                Poll::Pending if buf.is_empty() => return Poll::Pending,
                Poll::Pending => break,
                Poll::Ready(Some(Ok(m))) => match encode(&m, self.max, &mut buf) {
                    Ok(None) => continue,
                    Ok(Some(data)) => {
                        self.next = Some(data);
                        break;
                    }
                    Err(status) => status,
                },
                Poll::Ready(Some(Err(status))) => status,
                Poll::Ready(None) => Status::ok(""),
            };
            if buf.is_empty() {
                self.done = true;
                return Poll::Ready(Some(trailers(&status)));
            }
            self.end = Some(status);
            break;
        }
        Poll::Ready(Some(Ok(Frame::data(buf.freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
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
        assert_eq!(
            data[0].len(),
            PREFIX + 1 + 3 + 2 + 1 + 3,
            "the prefix is the bytes before the data"
        );
        assert_eq!(data[1].as_ptr(), big.as_ptr(), "the data is not copied");
        assert_eq!(data[1].len(), big.len());
    }

    #[tokio::test]
    async fn messages_ready_together_go_out_in_one_frame() {
        let ms = vec![header("sha256:abc"), chunk(0, Bytes::from(vec![3u8; 6000]))];
        let (data, _) = collect(ms.iter().cloned().map(Ok).collect(), 4 << 20).await;
        assert_eq!(data.len(), 1);
        assert_eq!(data[0], grpc_bytes(&ms));
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
