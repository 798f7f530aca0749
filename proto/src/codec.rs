//! The gRPC codec of fleet's services: prost, with small per-call buffers.
//!
//! tonic allocates an encode and a decode buffer of `buffer_size` for every
//! call and keeps them for the call's life; a spoke's stream lives as long as
//! the spoke is connected. fleet's stream messages are small (headers, acks,
//! status reports) except state chunks, and a buffer grows to fit a larger
//! message, so a small starting size costs nothing. (The hub frames its side
//! of the spoke stream itself, `hub/src/wire.rs`; the spoke's side and every
//! admin call use this codec.)

use std::marker::PhantomData;

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// Starting size of a call's encode and decode buffers (tonic's default is 8 KiB).
pub const BUFFER_SIZE: usize = 1024;
/// Encoded bytes gathered before they are handed to HTTP/2 (tonic's default).
pub const YIELD_THRESHOLD: usize = 32 * 1024;

fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_SIZE, YIELD_THRESHOLD)
}

/// Named by the generated services (`codec_path` in build.rs).
#[derive(Debug, Clone)]
pub struct FleetCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for FleetCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for FleetCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstDecoder::new(settings())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::codec::{Decoder, Encoder};

    #[test]
    fn both_directions_start_small() {
        // BufferSettings' fields are private; its Debug text names them.
        let mut c = FleetCodec::<crate::v1::HubMessage, crate::v1::SpokeMessage>::default();
        let want = format!("buffer_size: {BUFFER_SIZE}, yield_threshold: {YIELD_THRESHOLD}");
        assert!(format!("{:?}", c.encoder().buffer_settings()).contains(&want));
        assert!(format!("{:?}", c.decoder().buffer_settings()).contains(&want));
        assert_ne!(
            format!("{:?}", BufferSettings::default()),
            format!("{:?}", settings()),
            "tonic's default is what this codec exists to change"
        );
    }
}
