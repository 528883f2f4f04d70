//! A connection without a client certificate: one `Enroll`, answered with a certificate or a
//! refusal, then closed. Failed enrollments are limited per source address
//! ([`crate::ingest::ratelimit::FailureLimit`]): past the limit a request is refused without its token
//! being looked at. Each refusal is logged with the address by the accept loop, rate-limited.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use nines_common::proto::io::{FrameReader, FrameWriter};
use nines_common::proto::{CertificateReply, ErrorCode, Message, PROTOCOL_VERSION};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::ingest::{Conn, IngestError, Limits, refuse, unsupported};

/// Serves one enrollment from `peer`.
pub(crate) async fn enroll<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    conn: Conn,
    limits: &Limits,
    peer: IpAddr,
) -> Result<(), IngestError> {
    let connections = conn.connections.clone();
    let refused = &connections.refused;
    let (r, w) = tokio::io::split(stream);
    let mut reader = FrameReader::new(r, limits.max_frame);
    let mut writer = FrameWriter::new(w, limits.max_frame);
    let first = tokio::time::timeout(limits.handshake_timeout, reader.read()).await;
    let request = match first {
        Ok(Ok(Some(Message::Enroll(e)))) if e.protocol == PROTOCOL_VERSION => e,
        Ok(Ok(Some(Message::Enroll(e)))) => {
            refused.enroll_refused.fetch_add(1, Ordering::Relaxed);
            return Err(unsupported(&mut writer, e.protocol).await);
        }
        Ok(Ok(None)) => {
            refused.no_certificate.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        Ok(Err(e)) => {
            refused.no_certificate.fetch_add(1, Ordering::Relaxed);
            return Err(refuse(&mut writer, e.code(), e.to_string()).await);
        }
        _ => {
            refused.no_certificate.fetch_add(1, Ordering::Relaxed);
            let msg = "no client certificate: this connection may only enroll \
                       (`nines-agent enroll`); send a certificate signed by the nines CA"
                .to_owned();
            return Err(refuse(&mut writer, ErrorCode::UnexpectedMessage, msg).await);
        }
    };
    // A token is taken before the request is looked at, so that concurrent guesses cannot all
    // pass; a success gives it back.
    if let Err(wait) = connections.enroll_limit.take(peer, Instant::now()) {
        refused.enroll_rate.fetch_add(1, Ordering::Relaxed);
        let message = format!(
            "too many failed enrollments from {peer}: try again in {} s",
            wait.as_secs().max(1)
        );
        writer
            .write(&Message::Certificate(CertificateReply::Refused {
                message: message.clone(),
            }))
            .await?;
        let _ = writer.shutdown().await;
        return Err(IngestError::Refused {
            code: ErrorCode::UnexpectedMessage,
            message,
        });
    }
    let reply = match conn.enroller.clone() {
        Some(e) => tokio::task::spawn_blocking(move || e.enroll(&request.token, &request.csr_der))
            .await
            .unwrap_or_else(|_| CertificateReply::Refused {
                message: "internal error".into(),
            }),
        None => CertificateReply::Refused {
            message: "enrollment is not offered here".into(),
        },
    };
    let outcome = match &reply {
        CertificateReply::Issued { .. } => {
            connections.enroll_limit.succeeded(peer);
            refused.enrolled.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        CertificateReply::Refused { message } => {
            refused.enroll_refused.fetch_add(1, Ordering::Relaxed);
            Err(IngestError::Refused {
                code: ErrorCode::UnexpectedMessage,
                message: format!("enrollment refused: {message}"),
            })
        }
    };
    writer.write(&Message::Certificate(reply)).await?;
    let _ = writer.shutdown().await;
    outcome
}
