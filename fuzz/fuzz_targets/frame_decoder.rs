//! The wire protocol's decoders on arbitrary bytes: the payload codec, the frame splitter on
//! byte buffers, and `FrameReader` over a stream that hands the same bytes out in small pieces.
//!
//! Properties, beyond "does not panic":
//! - a payload that decodes re-encodes to a payload that decodes to the same message, no longer
//!   than the input (the encoding accepts non-minimal integers, so bytes need not be identical);
//! - a decoded `Hello` reveals its protocol version to `peek_hello_protocol`;
//! - the splitter never claims more bytes than it was given, and every frame it splits
//!   re-frames to something it splits back into the same message;
//! - `FrameReader` yields exactly the messages the splitter does, and ends the same way.

#![no_main]

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use nines_common::proto::io::FrameReader;
use nines_common::proto::{DEFAULT_MAX_FRAME_BYTES, Message, ProtoError, codec, frame};
use tokio::io::{AsyncRead, ReadBuf};

/// Small enough that the fuzzer reaches it with short inputs, large enough for real frames.
const MAX: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    payload(data);
    let split = splitter(data);
    // The first byte picks how many bytes each read of the stream returns (1 to 64).
    let chunk = data.first().map_or(1, |b| usize::from(b % 64) + 1);
    let read = reader(data, chunk);
    assert_eq!(split.messages.len(), read.messages.len(), "message count");
    for (a, b) in split.messages.iter().zip(&read.messages) {
        assert_eq!(bytes_of(a), bytes_of(b), "splitter and reader disagree");
    }
    assert_eq!(split.end, read.end, "splitter and reader end differently");
});

/// Encodes for comparison: NaN != NaN, so messages are compared by their encodings.
fn bytes_of(msg: &Message) -> Vec<u8> {
    codec::encode(msg, u64::from(DEFAULT_MAX_FRAME_BYTES)).expect("a decoded message re-encodes")
}

fn payload(data: &[u8]) {
    let _ = codec::peek_hello_protocol(data);
    let Ok(msg) = codec::decode::<Message>(data) else {
        return;
    };
    let again = codec::encode(&msg, data.len() as u64)
        .expect("a decoded message re-encodes within the size it was decoded from");
    let back: Message = codec::decode(&again).expect("a re-encoded message decodes");
    assert_eq!(bytes_of(&back), again, "decode(encode(m)) != m");
    if let Message::Hello(h) = &msg {
        assert_eq!(codec::peek_hello_protocol(data), Some(h.protocol));
    }
}

#[derive(Debug, PartialEq)]
enum End {
    /// Every byte was used by whole frames.
    Clean,
    /// Bytes of an unfinished frame are left.
    Truncated,
    TooLarge,
    Malformed,
}

fn end_of(e: &ProtoError) -> End {
    match e {
        ProtoError::FrameTooLarge { .. } => End::TooLarge,
        ProtoError::Malformed(_) => End::Malformed,
        ProtoError::Truncated => End::Truncated,
        ProtoError::Io(e) => panic!("i/o error from an in-memory stream: {e}"),
    }
}

struct Outcome {
    messages: Vec<Message>,
    end: End,
}

fn splitter(data: &[u8]) -> Outcome {
    let mut rest = data;
    let mut messages = Vec::new();
    let end = loop {
        match frame::decode(rest, MAX) {
            Ok(Some((msg, used))) => {
                assert!(
                    (frame::HEADER_LEN..=rest.len()).contains(&used),
                    "used {used} of {} bytes",
                    rest.len()
                );
                let mut framed = Vec::new();
                frame::encode(&msg, MAX, &mut framed).expect("a split frame re-frames");
                assert!(framed.len() <= used, "re-framed frame grew");
                let (back, n) = frame::decode(&framed, MAX)
                    .expect("a re-framed frame decodes")
                    .expect("a re-framed frame is whole");
                assert_eq!(n, framed.len());
                assert_eq!(bytes_of(&back), bytes_of(&msg));
                messages.push(msg);
                rest = &rest[used..];
            }
            Ok(None) if rest.is_empty() => break End::Clean,
            Ok(None) => break End::Truncated,
            Err(e) => break end_of(&e),
        }
    };
    Outcome { messages, end }
}

/// An in-memory stream that returns at most `chunk` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Trickle<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

fn reader(data: &[u8], chunk: usize) -> Outcome {
    let mut r = FrameReader::new(Trickle { data, chunk }, MAX);
    let mut messages = Vec::new();
    let end = loop {
        // The stream is always ready, so one poll finishes each read; no runtime needed.
        let mut read = std::pin::pin!(r.read());
        let Poll::Ready(result) = read.as_mut().poll(&mut Context::from_waker(Waker::noop()))
        else {
            panic!("FrameReader::read pending on a stream that is always ready");
        };
        match result {
            Ok(Some(msg)) => messages.push(msg),
            Ok(None) => break End::Clean,
            Err(e) => break end_of(&e),
        }
        assert!(messages.len() <= data.len(), "more messages than bytes");
    };
    Outcome { messages, end }
}
