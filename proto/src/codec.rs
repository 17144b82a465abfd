//! The codec the generated servers decode requests with.
//!
//! `tonic_prost::ProstCodec` answers a message that does not decode with
//! INTERNAL, as if the server had failed. On a server that message is the
//! request, so the caller sent bad bytes: [`RequestCodec`] answers
//! INVALID_ARGUMENT instead, naming the message type. Encoding (the answers) is
//! `ProstCodec`'s. Clients keep `ProstCodec` (see `build.rs`): there an answer
//! that does not decode is the server's fault, and INTERNAL is right.

use std::marker::PhantomData;

use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::{ProstCodec, ProstEncoder};

/// Encodes answers `T` like `ProstCodec` and decodes requests `U`, answering
/// INVALID_ARGUMENT to bytes that are not a `U`.
#[derive(Debug, Clone)]
pub struct RequestCodec<T, U> {
    prost: ProstCodec<T, U>,
}

impl<T, U> Default for RequestCodec<T, U> {
    fn default() -> Self {
        Self {
            prost: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for RequestCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + prost::Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.prost.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes one request message `U`; see [`RequestCodec`].
#[derive(Debug, Clone)]
pub struct RequestDecoder<U> {
    _message: PhantomData<U>,
}

impl<U> Decoder for RequestDecoder<U>
where
    U: prost::Message + prost::Name + Default,
{
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|error| {
            Status::invalid_argument(format!(
                "the request is not a valid {} message ({error})",
                U::full_name()
            ))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}
