//! fleet's wire contract: generated protobuf and gRPC code for `fleet.v1`.
//!
//! This crate does no I/O. Conversions to domain types live in the crates that
//! own those types, at their service edges.

#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("fleet.v1");
}

/// Size of one `StateChunk`. States larger than this are split.
pub const CHUNK_SIZE: usize = 1024 * 1024;

/// Upper bound of one gRPC message on fleet's links: a chunk plus framing.
pub const MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

pub mod age;
pub mod bundle;
pub mod chunks;
pub mod codec;
pub mod convert;
pub mod display;
pub mod identity;
pub mod limits;
pub mod provenance;
pub mod sops;
pub mod sshsig;
