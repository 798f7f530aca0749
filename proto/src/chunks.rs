//! Reassembly of a desired state the hub sends in pieces: a [`pb::StateHeader`]
//! announcing `total_size` bytes in `chunks` pieces, then that many
//! [`pb::StateChunk`]s, in index order, whose data concatenated is an encoded
//! `DesiredState` (decode it with [`crate::convert::decode_state`]).
//!
//! A header with `total_size == 0` carries no content: the spoke already holds
//! a state with the announced digest, and only the revision is new.
//!
//! [`Reassembly`] only checks the framing (sizes, counts, order); the bytes
//! are verified when they are decoded. It does no I/O and never allocates
//! more than the bytes it has been sent plus a bounded reserve, whatever a
//! header announces.

use bytes::{Bytes, BytesMut};

use crate::v1 as pb;

/// Largest state a header may announce.
pub const MAX_STATE_BYTES: u64 = 1024 * 1024 * 1024;

/// Most bytes reserved up front for a state, whatever its header announces;
/// the buffer grows as chunks arrive.
const MAX_RESERVE: u64 = 4 * crate::CHUNK_SIZE as u64;

/// Why a state transfer was refused. The partial state is dropped; the next
/// header starts a new one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("hub announced a {size} byte state, over the {max} byte limit")]
    TooLarge { size: u64, max: u64 },
    #[error("hub announced a {size} byte state in zero chunks")]
    NoChunks { size: u64 },
    #[error("hub sent a chunk without a header")]
    NoHeader,
    #[error("hub sent chunk {got} of {chunks} where chunk {want} was due")]
    OutOfOrder { got: u32, want: u32, chunks: u32 },
    #[error("hub sent more bytes than announced: {got} of {announced} after chunk {index}")]
    TooManyBytes {
        got: u64,
        announced: u64,
        index: u32,
    },
    #[error("hub sent {got} bytes, announced {announced}")]
    WrongSize { got: u64, announced: u64 },
}

/// What a header or chunk completed.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// More chunks are due.
    Pending,
    /// A header without content (`total_size == 0`): the state with the
    /// header's digest, at the header's commit.
    SameContent(pb::StateHeader),
    /// Every chunk arrived: the header and the encoded state, exactly
    /// `total_size` bytes.
    Complete(pb::StateHeader, Bytes),
}

#[derive(Debug)]
struct Pending {
    header: pb::StateHeader,
    buf: BytesMut,
    /// Index of the chunk due next.
    next: u32,
}

/// One link's state transfer in progress. Feed it every header and chunk the
/// hub sends, in order.
#[derive(Debug, Default)]
pub struct Reassembly {
    pending: Option<Pending>,
}

impl Reassembly {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a header has been received and its chunks are still due.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Bytes received so far of the pending state.
    pub fn received(&self) -> u64 {
        self.pending.as_ref().map_or(0, |p| p.buf.len() as u64)
    }

    /// Drops a pending state (the stream ended).
    pub fn reset(&mut self) {
        self.pending = None;
    }

    /// Starts a state transfer. A header always ends the transfer before it,
    /// complete or not.
    pub fn header(&mut self, h: pb::StateHeader) -> Result<Step, ChunkError> {
        self.pending = None;
        if h.total_size == 0 {
            return Ok(Step::SameContent(h));
        }
        if h.total_size > MAX_STATE_BYTES {
            return Err(ChunkError::TooLarge {
                size: h.total_size,
                max: MAX_STATE_BYTES,
            });
        }
        if h.chunks == 0 {
            return Err(ChunkError::NoChunks { size: h.total_size });
        }
        let reserve = h.total_size.min(MAX_RESERVE) as usize;
        self.pending = Some(Pending {
            header: h,
            buf: BytesMut::with_capacity(reserve),
            next: 0,
        });
        Ok(Step::Pending)
    }

    /// Adds the next chunk of the pending state.
    pub fn chunk(&mut self, c: pb::StateChunk) -> Result<Step, ChunkError> {
        let Some(mut p) = self.pending.take() else {
            return Err(ChunkError::NoHeader);
        };
        if c.index != p.next {
            return Err(ChunkError::OutOfOrder {
                got: c.index,
                want: p.next,
                chunks: p.header.chunks,
            });
        }
        let announced = p.header.total_size;
        let got = p.buf.len() as u64 + c.data.len() as u64;
        if got > announced {
            return Err(ChunkError::TooManyBytes {
                got,
                announced,
                index: c.index,
            });
        }
        // `next < chunks` while pending, so this does not overflow.
        p.next += 1;
        if p.next < p.header.chunks {
            p.buf.extend_from_slice(&c.data);
            self.pending = Some(p);
            return Ok(Step::Pending);
        }
        if got != announced {
            return Err(ChunkError::WrongSize { got, announced });
        }
        // A state in one chunk is passed on without a copy.
        let bytes = if p.buf.is_empty() {
            c.data
        } else {
            p.buf.extend_from_slice(&c.data);
            p.buf.freeze()
        };
        Ok(Step::Complete(p.header, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(total_size: u64, chunks: u32) -> pb::StateHeader {
        pb::StateHeader {
            commit: Some(pb::CommitMeta {
                id: "abc".into(),
                ..Default::default()
            }),
            digest: "d1".into(),
            total_size,
            chunks,
            ..Default::default()
        }
    }

    fn chunk(index: u32, data: &[u8]) -> pb::StateChunk {
        pb::StateChunk {
            index,
            data: Bytes::copy_from_slice(data),
        }
    }

    #[test]
    fn chunks_in_order_make_the_announced_bytes() {
        let mut r = Reassembly::new();
        assert_eq!(r.header(header(7, 3)), Ok(Step::Pending));
        assert!(r.is_pending());
        assert_eq!(r.chunk(chunk(0, b"abc")), Ok(Step::Pending));
        assert_eq!(r.chunk(chunk(1, b"de")), Ok(Step::Pending));
        assert_eq!(r.received(), 5);
        assert_eq!(
            r.chunk(chunk(2, b"fg")),
            Ok(Step::Complete(header(7, 3), Bytes::from_static(b"abcdefg")))
        );
        assert!(!r.is_pending());
        // The next state starts afresh.
        assert_eq!(r.header(header(2, 1)), Ok(Step::Pending));
        assert_eq!(
            r.chunk(chunk(0, b"xy")),
            Ok(Step::Complete(header(2, 1), Bytes::from_static(b"xy")))
        );
    }

    #[test]
    fn a_header_without_content_means_same_content_new_revision() {
        let mut r = Reassembly::new();
        assert_eq!(r.header(header(0, 0)), Ok(Step::SameContent(header(0, 0))));
        assert!(!r.is_pending());
        // It also ends a transfer in progress.
        r.header(header(4, 2)).unwrap();
        r.chunk(chunk(0, b"ab")).unwrap();
        assert_eq!(r.header(header(0, 0)), Ok(Step::SameContent(header(0, 0))));
        assert_eq!(r.chunk(chunk(1, b"cd")), Err(ChunkError::NoHeader));
    }

    #[test]
    fn a_new_header_restarts_the_transfer() {
        let mut r = Reassembly::new();
        r.header(header(4, 2)).unwrap();
        r.chunk(chunk(0, b"ab")).unwrap();
        r.header(header(3, 1)).unwrap();
        assert_eq!(r.received(), 0);
        assert_eq!(
            r.chunk(chunk(0, b"xyz")),
            Ok(Step::Complete(header(3, 1), Bytes::from_static(b"xyz")))
        );
    }

    #[test]
    fn framing_errors_are_named_and_drop_the_partial_state() {
        let mut r = Reassembly::new();
        assert_eq!(r.chunk(chunk(0, b"a")), Err(ChunkError::NoHeader));

        let e = r.header(header(MAX_STATE_BYTES + 1, 1025)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "hub announced a 1073741825 byte state, over the 1073741824 byte limit"
        );
        assert!(!r.is_pending());
        assert_eq!(
            r.header(header(5, 0)),
            Err(ChunkError::NoChunks { size: 5 })
        );

        r.header(header(4, 2)).unwrap();
        assert_eq!(
            r.chunk(chunk(1, b"ab")),
            Err(ChunkError::OutOfOrder {
                got: 1,
                want: 0,
                chunks: 2
            })
        );
        assert!(!r.is_pending());

        r.header(header(4, 3)).unwrap();
        r.chunk(chunk(0, b"ab")).unwrap();
        let e = r.chunk(chunk(0, b"ab")).unwrap_err();
        assert_eq!(e.to_string(), "hub sent chunk 0 of 3 where chunk 1 was due");

        r.header(header(4, 2)).unwrap();
        r.chunk(chunk(0, b"abc")).unwrap();
        let e = r.chunk(chunk(1, b"de")).unwrap_err();
        assert_eq!(
            e,
            ChunkError::TooManyBytes {
                got: 5,
                announced: 4,
                index: 1
            }
        );
        assert!(
            e.to_string()
                .starts_with("hub sent more bytes than announced")
        );

        r.header(header(4, 2)).unwrap();
        r.chunk(chunk(0, b"a")).unwrap();
        let e = r.chunk(chunk(1, b"b")).unwrap_err();
        assert_eq!(e.to_string(), "hub sent 2 bytes, announced 4");
        assert!(!r.is_pending());
        assert_eq!(r.chunk(chunk(2, b"cd")), Err(ChunkError::NoHeader));
    }

    #[test]
    fn extreme_indexes_and_sizes_do_not_overflow_or_allocate() {
        let mut r = Reassembly::new();
        r.header(header(MAX_STATE_BYTES, u32::MAX)).unwrap();
        assert!(matches!(
            r.chunk(chunk(u32::MAX, b"a")),
            Err(ChunkError::OutOfOrder { .. })
        ));
        r.header(header(1, u32::MAX)).unwrap();
        assert_eq!(r.chunk(chunk(0, b"a")), Ok(Step::Pending));
        assert_eq!(r.chunk(chunk(1, b"")), Ok(Step::Pending));
        assert!(matches!(
            r.chunk(chunk(2, b"b")),
            Err(ChunkError::TooManyBytes { .. })
        ));
    }

    #[test]
    fn the_hub_split_reassembles_to_the_same_bytes() {
        let state: Vec<u8> = (0..(2 * crate::CHUNK_SIZE + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let state = Bytes::from(state);
        let n = state.len().div_ceil(crate::CHUNK_SIZE);
        let mut r = Reassembly::new();
        r.header(header(state.len() as u64, n as u32)).unwrap();
        let mut last = Step::Pending;
        for i in 0..n {
            let start = i * crate::CHUNK_SIZE;
            let end = (start + crate::CHUNK_SIZE).min(state.len());
            last = r
                .chunk(pb::StateChunk {
                    index: i as u32,
                    data: state.slice(start..end),
                })
                .unwrap();
        }
        assert_eq!(
            last,
            Step::Complete(header(state.len() as u64, n as u32), state)
        );
    }
}
