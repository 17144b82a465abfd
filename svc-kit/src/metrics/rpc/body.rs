//! The answer's body, watched on its way through: it counts the gRPC
//! messages in it and reads the status from its trailers.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prometheus_client::metrics::counter::Counter;
use tonic::{Code, codegen::Bytes};

use super::Call;

pin_project! {
    /// A response body that counts its messages into `messages` and, at its
    /// end, records the call with the status its trailers carry. Dropped
    /// before its end, it records the call as CANCELLED (through [`Call`]'s
    /// drop).
    pub struct MeteredBody<B> {
        #[pin]
        inner: B,
        // `None` once the call is recorded, or from the start when the
        // status came in the headers (a trailers-only answer).
        call: Option<Call>,
        messages: Option<Counter>,
        frames: Frames,
    }
}

impl<B> MeteredBody<B> {
    /// A body whose call is recorded already, or is not recorded at all.
    pub(super) fn passing(inner: B) -> Self {
        Self {
            inner,
            call: None,
            messages: None,
            frames: Frames::default(),
        }
    }

    /// A body that records `call` at its end.
    pub(super) fn watching(inner: B, call: Call) -> Self {
        let messages = Some(call.messages());
        Self {
            inner,
            call: Some(call),
            messages,
            frames: Frames::default(),
        }
    }
}

impl<B> Body for MeteredBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = std::task::ready!(this.inner.poll_frame(cx));
        let Some(call) = this.call.as_mut() else {
            return Poll::Ready(polled.map(|frame| frame.map_err(Into::into)));
        };
        match polled {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let done = this.frames.feed(data);
                    if done > 0
                        && let Some(messages) = this.messages
                    {
                        messages.inc_by(done);
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    // A trailer block without a status breaks the protocol;
                    // the peer would call that UNKNOWN too.
                    let code = super::status_in(trailers).unwrap_or(Code::Unknown);
                    call.finish(code);
                    *this.call = None;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                let error = error.into();
                call.finish(super::code_of_error(&*error));
                *this.call = None;
                Poll::Ready(Some(Err(error)))
            }
            None => {
                // The body ended without trailers: no status was sent.
                call.finish(Code::Unknown);
                *this.call = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Finds the gRPC messages in a body's data, whose frames may split a
/// message anywhere, its 5-byte prefix (a compression flag and a big-endian
/// length) included.
#[derive(Debug, Default)]
pub(super) struct Frames {
    /// The prefix read so far, while `left` is 0.
    prefix: [u8; 5],
    prefix_len: usize,
    /// The bytes of the current message still to come.
    left: usize,
    /// Whether a prefix has been read and its message is not over yet.
    in_message: bool,
}

impl Frames {
    /// Reads `data` and returns how many messages ended in it.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut ended = 0;
        while !data.is_empty() {
            if self.in_message {
                let taken = self.left.min(data.len());
                self.left -= taken;
                data = &data[taken..];
                if self.left == 0 {
                    self.in_message = false;
                    ended += 1;
                }
                continue;
            }
            let taken = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + taken].copy_from_slice(&data[..taken]);
            self.prefix_len += taken;
            data = &data[taken..];
            if self.prefix_len == 5 {
                self.prefix_len = 0;
                let [_, a, b, c, d] = self.prefix;
                // A u32 always fits a usize on the targets tonic runs on.
                self.left = usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
                if self.left == 0 {
                    ended += 1;
                } else {
                    self.in_message = true;
                }
            }
        }
        ended
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &[u8]) -> Vec<u8> {
        let mut framed = vec![0];
        framed.extend_from_slice(&u32::try_from(payload.len()).expect("small").to_be_bytes());
        framed.extend_from_slice(payload);
        framed
    }

    #[test]
    fn messages_in_one_frame_are_each_counted() {
        let mut data = message(b"first");
        data.extend(message(b""));
        data.extend(message(&[7; 300]));

        assert_eq!(Frames::default().feed(&data), 3);
    }

    #[test]
    fn a_message_split_anywhere_is_counted_once_when_it_ends() {
        let mut data = message(b"hello");
        data.extend(message(b"world!"));
        for cut in 0..=data.len() {
            for second_cut in cut..=data.len() {
                let mut frames = Frames::default();
                let counted = frames.feed(&data[..cut])
                    + frames.feed(&data[cut..second_cut])
                    + frames.feed(&data[second_cut..]);
                assert_eq!(counted, 2, "cut at {cut} and {second_cut}");
            }
        }
    }

    #[test]
    fn byte_by_byte_still_counts_exactly() {
        let mut data = message(&[1; 70_000]);
        data.extend(message(b"x"));
        let mut frames = Frames::default();

        let counted: u64 = data.iter().map(|byte| frames.feed(&[*byte])).sum();

        assert_eq!(counted, 2);
    }

    #[test]
    fn a_message_not_yet_over_is_not_counted() {
        let data = message(b"truncated");

        assert_eq!(Frames::default().feed(&data[..8]), 0);
    }
}
