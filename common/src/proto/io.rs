//! Moving frames over an async byte stream (a TLS stream, or `tokio::io::duplex` in tests).

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{Message, ProtoError, codec, frame};

/// Reads frames from a stream.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    buf: Vec<u8>,
    max: u32,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps `inner`, refusing frames larger than `max` bytes.
    pub fn new(inner: R, max: u32) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(8 * 1024),
            max,
        }
    }

    /// Reads the next message. `Ok(None)` means the peer closed the stream between frames.
    pub async fn read(&mut self) -> Result<Option<Message>, ProtoError> {
        match self.read_payload().await? {
            Some(payload) => Ok(Some(codec::decode(&payload)?)),
            None => Ok(None),
        }
    }

    /// Reads the next raw payload, for callers that need to inspect undecodable bytes.
    pub async fn read_payload(&mut self) -> Result<Option<Vec<u8>>, ProtoError> {
        loop {
            if let Some(len) = frame::payload_len(&self.buf, self.max)? {
                let total = frame::HEADER_LEN + len;
                if self.buf.len() >= total {
                    let payload = self.buf[frame::HEADER_LEN..total].to_vec();
                    self.buf.drain(..total);
                    return Ok(Some(payload));
                }
                // Read only up to the end of this frame's announced length, never more than
                // `max` is ever buffered.
                self.buf.reserve(total - self.buf.len());
            }
            let mut chunk = [0u8; 16 * 1024];
            let n = self.inner.read(&mut chunk).await?;
            if n == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(ProtoError::Truncated)
                };
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Gives back the stream.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// Writes frames to a stream.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    buf: Vec<u8>,
    max: u32,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps `inner`, refusing to send frames larger than `max` bytes.
    pub fn new(inner: W, max: u32) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            max,
        }
    }

    /// Writes one message and flushes it.
    pub async fn write(&mut self, msg: &Message) -> Result<(), ProtoError> {
        self.buf.clear();
        frame::encode(msg, self.max, &mut self.buf)?;
        self.inner.write_all(&self.buf).await?;
        self.inner.flush().await?;
        Ok(())
    }

    /// Gives back the stream.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// Shuts the write half down (TLS close_notify).
    pub async fn shutdown(&mut self) -> Result<(), ProtoError> {
        self.inner.shutdown().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Ack, DEFAULT_MAX_FRAME_BYTES, ErrorCode, ErrorMsg};

    #[tokio::test]
    async fn messages_cross_a_duplex_stream_in_order() {
        let (a, b) = tokio::io::duplex(64);
        let mut w = FrameWriter::new(a, DEFAULT_MAX_FRAME_BYTES);
        let mut r = FrameReader::new(b, DEFAULT_MAX_FRAME_BYTES);
        let sent: Vec<Message> = (0..100)
            .map(|i| Message::Ack(Ack { through_seq: i }))
            .chain(std::iter::once(Message::Error(ErrorMsg {
                code: ErrorCode::ShuttingDown,
                message: "x".repeat(1000),
            })))
            .collect();
        let expect = sent.clone();
        let writer = tokio::spawn(async move {
            for m in &sent {
                w.write(m).await.unwrap();
            }
        });
        for m in expect {
            assert_eq!(r.read().await.unwrap(), Some(m));
        }
        writer.await.unwrap();
        assert_eq!(r.read().await.unwrap(), None, "clean close between frames");
    }

    #[tokio::test]
    async fn a_stream_cut_inside_a_frame_is_an_error() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 10, 1, 2]).await.unwrap();
        drop(a);
        let mut r = FrameReader::new(b, DEFAULT_MAX_FRAME_BYTES);
        assert!(matches!(r.read().await, Err(ProtoError::Truncated)));
    }

    #[tokio::test]
    async fn an_oversized_header_is_refused_without_waiting_for_the_body() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
        let mut r = FrameReader::new(b, 1024);
        assert!(matches!(
            r.read().await,
            Err(ProtoError::FrameTooLarge { .. })
        ));
    }
}
