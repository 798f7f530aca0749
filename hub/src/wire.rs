//! The spoke stream as gRPC frames, both ways, without a buffer that
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
//!
//! tonic's decoder does the same on the request side: its buffer starts at
//! the codec's size, is reserved up front to the length a message's prefix
//! claims, and is kept while the spoke is connected. [`Inbound`] holds bytes
//! only while a message is partly received, and grows with the bytes that
//! came up to the length the prefix claims, never ahead of them: an idle
//! stream holds no buffer, and a spoke cannot make the hub reserve the limit
//! by sending a prefix alone.

use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use fleet_proto::v1 as pb;
use futures_util::{Stream, StreamExt as _};
use http_body::{Body as _, Frame};
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

/// The messages of a request body: the decoding half of tonic's
/// `Streaming`, with the same errors, that holds a buffer only while a
/// message is partly received.
pub struct Inbound<M> {
    body: tonic::body::Body,
    /// Bytes received and not yet decoded: always less than one message.
    buf: BytesMut,
    /// Largest encoded message, as tonic's `max_decoding_message_size`.
    max: usize,
    done: bool,
    _message: PhantomData<fn() -> M>,
}

impl<M> Inbound<M> {
    pub fn new(body: tonic::body::Body, max: usize) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            max,
            done: false,
            _message: PhantomData,
        }
    }

    /// Bytes the stream holds between messages (for tests).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.buf.capacity()
    }
}

impl<M: prost::Message + Default> Inbound<M> {
    /// The next message; `None` once the spoke has closed its side.
    pub async fn message(&mut self) -> Result<Option<M>, Status> {
        std::future::poll_fn(|cx| self.poll_message(cx)).await
    }

    /// Adds received bytes. The buffer doubles as bytes come, as a `Vec`
    /// does, but not past the message its prefix claims (or the bytes
    /// that came, if more): a message that stays partly received holds no
    /// more than its own length.
    fn append(&mut self, data: &[u8]) {
        let need = self.buf.len() + data.len();
        if need > self.buf.capacity() {
            let claimed = self.claimed().map_or(need, |len| PREFIX + len);
            let cap = (2 * self.buf.capacity()).min(claimed).max(need);
            let mut grown = BytesMut::with_capacity(cap);
            grown.extend_from_slice(&self.buf);
            self.buf = grown;
        }
        self.buf.extend_from_slice(data);
    }

    /// The length the prefix at the front of `buf` claims, once it is there.
    fn claimed(&self) -> Option<usize> {
        let p = self.buf.get(..PREFIX)?;
        Some(u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize)
    }

    /// Ends the stream: nothing more is read, and the buffer is freed.
    fn finish(&mut self) {
        self.done = true;
        self.buf = BytesMut::new();
    }

    /// A whole message from the front of `buf`, if one is there.
    fn decode(&mut self) -> Result<Option<M>, Status> {
        let Some(len) = self.claimed() else {
            return Ok(None);
        };
        match self.buf[0] {
            0 => {}
            1 => {
                return Err(Status::internal(
                    "protocol error: received message with compressed-flag but no grpc-encoding was specified",
                ));
            }
            f => {
                return Err(Status::internal(format!(
                    "protocol error: received message with invalid compression flag: {f} (valid flags are 0 and 1), while sending request"
                )));
            }
        }
        if len > self.max {
            return Err(Status::out_of_range(format!(
                "Error, decoded message length too large: found {len} bytes, the limit is: {} bytes",
                self.max
            )));
        }
        if self.buf.len() < PREFIX + len {
            return Ok(None);
        }
        self.buf.advance(PREFIX);
        let m = M::decode(self.buf.split_to(len)).map_err(|e| Status::internal(e.to_string()))?;
        if self.buf.is_empty() {
            self.buf = BytesMut::new();
        }
        Ok(Some(m))
    }

    fn poll_message(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<M>, Status>> {
        loop {
            if self.done {
                return Poll::Ready(Ok(None));
            }
            match self.decode() {
                Ok(Some(m)) => return Poll::Ready(Ok(Some(m))),
                Ok(None) => {}
                Err(e) => {
                    self.finish();
                    return Poll::Ready(Err(e));
                }
            }
            let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
            match frame {
                Some(Ok(frame)) => {
                    // Trailers from a client carry nothing fleet reads.
                    if let Ok(data) = frame.into_data() {
                        self.append(&data);
                    }
                }
                // The spoke reset its stream: it has gone, as at the end.
                Some(Err(e)) if e.code() == tonic::Code::Cancelled => self.finish(),
                Some(Err(e)) => {
                    self.finish();
                    return Poll::Ready(Err(e));
                }
                None => {
                    let partial = !self.buf.is_empty();
                    self.finish();
                    if partial {
                        return Poll::Ready(Err(Status::internal(
                            "Unexpected EOF decoding stream.",
                        )));
                    }
                }
            }
        }
    }
}

impl<M: prost::Message + Default> Stream for Inbound<M> {
    type Item = Result<M, Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_message(cx).map(Result::transpose)
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
    fn grpc_bytes<M: prost::Message>(ms: &[M]) -> Vec<u8> {
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

    fn report(n: usize) -> pb::SpokeMessage {
        pb::SpokeMessage {
            msg: Some(pb::spoke_message::Msg::Hello(pb::Hello {
                revision: "r".repeat(n),
                digest: "sha256:abc".into(),
                agent_version: "1".into(),
            })),
        }
    }

    /// A request body that yields `frames`, then ends.
    fn body(frames: Vec<Result<Frame<Bytes>, Status>>) -> tonic::body::Body {
        tonic::body::Body::new(http_body_util::StreamBody::new(futures_util::stream::iter(
            frames,
        )))
    }

    fn data(b: &[u8]) -> Result<Frame<Bytes>, Status> {
        Ok(Frame::data(Bytes::copy_from_slice(b)))
    }

    #[tokio::test]
    async fn messages_split_anywhere_or_joined_decode_as_sent() {
        let ms = vec![report(10), report(5000), report(0)];
        let bytes = grpc_bytes(&ms);
        // One byte a frame, then everything in one frame.
        for frames in [
            bytes.iter().map(|b| data(&[*b])).collect::<Vec<_>>(),
            vec![data(&bytes)],
        ] {
            let mut inbound = Inbound::<pb::SpokeMessage>::new(body(frames), 1 << 20);
            let mut got = Vec::new();
            while let Some(m) = inbound.message().await.expect("a message") {
                got.push(m);
            }
            assert_eq!(got, ms);
        }
    }

    #[tokio::test]
    async fn no_buffer_is_held_between_messages() {
        let bytes = grpc_bytes(&[report(6000), report(20)]);
        let (first, rest) = bytes.split_at(3000);
        let (rest, last) = rest.split_at(rest.len() - 7);
        let mut inbound = Inbound::<pb::SpokeMessage>::new(
            body(vec![data(first), data(rest), data(last)]),
            1 << 20,
        );
        assert_eq!(inbound.message().await.unwrap(), Some(report(6000)));
        assert!(inbound.held() > 0, "part of the second message is buffered");
        assert_eq!(inbound.message().await.unwrap(), Some(report(20)));
        assert_eq!(inbound.held(), 0, "an idle stream holds no buffer");
        assert_eq!(inbound.message().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_prefix_over_the_limit_is_refused_before_its_bytes_come() {
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&(2048u32).to_be_bytes());
        let mut inbound = Inbound::<pb::SpokeMessage>::new(body(vec![data(&prefix)]), 1024);
        let e = inbound.message().await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::OutOfRange);
        assert_eq!(
            e.message(),
            "Error, decoded message length too large: found 2048 bytes, the limit is: 1024 bytes"
        );
        assert_eq!(inbound.held(), 0);
        assert_eq!(
            inbound.message().await.unwrap(),
            None,
            "an error ends the stream"
        );
    }

    #[tokio::test]
    async fn a_claimed_length_reserves_nothing_ahead_of_its_bytes() {
        use futures_util::FutureExt as _;
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&(1u32 << 20).to_be_bytes());
        prefix.extend_from_slice(b"abc");
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let body = tonic::body::Body::new(http_body_util::StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let mut inbound = Inbound::<pb::SpokeMessage>::new(body, 4 << 20);
        tx.send(data(&prefix)).await.unwrap();
        assert!(
            inbound.message().now_or_never().is_none(),
            "the message is not all here"
        );
        assert!(inbound.held() < 1024, "held {} bytes", inbound.held());
        drop(tx);
        let e = inbound.message().await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Internal);
        assert_eq!(e.message(), "Unexpected EOF decoding stream.");
        assert_eq!(inbound.held(), 0);
    }

    #[tokio::test]
    async fn a_message_received_in_pieces_is_held_in_no_more_than_its_length() {
        use futures_util::FutureExt as _;
        let whole = grpc_bytes(&[report(100_000)]);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let body = tonic::body::Body::new(http_body_util::StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        let mut inbound = Inbound::<pb::SpokeMessage>::new(body, 4 << 20);
        // All but its last byte, in HTTP/2-sized frames.
        for piece in whole[..whole.len() - 1].chunks(16 * 1024) {
            tx.send(data(piece)).await.unwrap();
        }
        assert!(inbound.message().now_or_never().is_none());
        assert!(
            inbound.held() <= whole.len(),
            "held {} bytes for a message of {}",
            inbound.held(),
            whole.len()
        );
        tx.send(data(&whole[whole.len() - 1..])).await.unwrap();
        assert_eq!(inbound.message().await.unwrap(), Some(report(100_000)));
        assert_eq!(inbound.held(), 0);
    }

    #[tokio::test]
    async fn compressed_or_unknown_flags_and_junk_are_internal_errors() {
        let mut junk = vec![0u8, 0, 0, 0, 3];
        junk.extend_from_slice(&[0x0a, 0x05, 0x01]);
        for (bytes, want) in [
            (
                vec![1u8, 0, 0, 0, 0],
                "compressed-flag but no grpc-encoding",
            ),
            (vec![7u8, 0, 0, 0, 0], "invalid compression flag: 7"),
            (junk, "failed to decode Protobuf message"),
        ] {
            let mut inbound = Inbound::<pb::SpokeMessage>::new(body(vec![data(&bytes)]), 1024);
            let e = inbound.message().await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::Internal, "{}", e.message());
            assert!(e.message().contains(want), "{}", e.message());
        }
    }

    #[tokio::test]
    async fn a_reset_ends_the_stream_and_other_errors_pass_through() {
        let sent = grpc_bytes(&[report(1)]);
        let mut inbound = Inbound::<pb::SpokeMessage>::new(
            body(vec![data(&sent), Err(Status::cancelled("gone"))]),
            1024,
        );
        assert_eq!(inbound.message().await.unwrap(), Some(report(1)));
        assert_eq!(inbound.message().await.unwrap(), None);
        let mut inbound = Inbound::<pb::SpokeMessage>::new(
            body(vec![Err(Status::unknown("h2 protocol error: x"))]),
            1024,
        );
        let e = inbound.message().await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::Unknown);
        assert_eq!(inbound.message().await.unwrap(), None);
    }
}
