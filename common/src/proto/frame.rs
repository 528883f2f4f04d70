//! Frames on byte buffers: a `u32` big-endian payload length, then the payload.

use super::{Message, ProtoError, codec};

/// Bytes of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Appends one frame holding `msg` to `out`.
pub fn encode(msg: &Message, max: u32, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    let payload = codec::encode(msg, u64::from(max))?;
    let len = u32::try_from(payload.len()).map_err(|_| ProtoError::FrameTooLarge {
        len: payload.len() as u64,
        max,
    })?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

/// The payload length a frame header announces, checked against `max`. `None` if fewer than
/// [`HEADER_LEN`] bytes are available.
pub fn payload_len(buf: &[u8], max: u32) -> Result<Option<usize>, ProtoError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let mut b = [0u8; HEADER_LEN];
    b.copy_from_slice(header);
    let len = u32::from_be_bytes(b);
    if len > max {
        return Err(ProtoError::FrameTooLarge {
            len: u64::from(len),
            max,
        });
    }
    Ok(Some(len as usize))
}

/// Decodes the first complete frame of `buf`. Returns the message and the number of bytes it
/// used, or `None` if `buf` does not yet hold a whole frame.
pub fn decode(buf: &[u8], max: u32) -> Result<Option<(Message, usize)>, ProtoError> {
    let Some(len) = payload_len(buf, max)? else {
        return Ok(None);
    };
    let Some(payload) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    let msg = codec::decode(payload)?;
    Ok(Some((msg, HEADER_LEN + len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::*;
    use proptest::prelude::*;

    fn samples() -> Vec<Message> {
        vec![
            Message::Hello(Hello {
                protocol: PROTOCOL_VERSION,
                agent_version: "0.1.0".into(),
                host_id: "web-1".into(),
                boot_id: "b0a7".into(),
                os: "Debian GNU/Linux 12".into(),
                arch: "aarch64".into(),
                kernel: "6.1.0".into(),
                interval_ms: 10_000,
            }),
            Message::Welcome(Welcome {
                server_time_ms: 1_700_000_000_000,
                resume_from_seq: 42,
            }),
            Message::Batch(Batch {
                seq: 43,
                series_defs: vec![SeriesDef {
                    id: 0,
                    name: "cpu_usage_ratio".into(),
                    labels: vec![("cpu".into(), "total".into())],
                }],
                points: vec![
                    Point {
                        series: 0,
                        ts_ms: 1_700_000_000_000,
                        value: 0.25,
                    },
                    Point {
                        series: 0,
                        ts_ms: 1_700_000_010_000,
                        value: f64::NAN,
                    },
                ],
            }),
            Message::Ack(Ack { through_seq: 43 }),
            Message::Error(ErrorMsg {
                code: ErrorCode::HostMismatch,
                message: "no".into(),
            }),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for msg in samples() {
            let mut buf = Vec::new();
            encode(&msg, DEFAULT_MAX_FRAME_BYTES, &mut buf).unwrap();
            let (back, used) = decode(&buf, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
            assert_eq!(used, buf.len());
            // NaN != NaN, so compare the encodings.
            let mut again = Vec::new();
            encode(&back, DEFAULT_MAX_FRAME_BYTES, &mut again).unwrap();
            assert_eq!(buf, again, "{msg:?}");
        }
    }

    #[test]
    fn truncated_frames_wait_for_more_bytes() {
        for msg in samples() {
            let mut buf = Vec::new();
            encode(&msg, DEFAULT_MAX_FRAME_BYTES, &mut buf).unwrap();
            for cut in 0..buf.len() {
                assert!(
                    decode(&buf[..cut], DEFAULT_MAX_FRAME_BYTES)
                        .unwrap()
                        .is_none()
                );
            }
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_reading_the_payload() {
        let buf = (DEFAULT_MAX_FRAME_BYTES + 1).to_be_bytes();
        match decode(&buf, DEFAULT_MAX_FRAME_BYTES) {
            Err(ProtoError::FrameTooLarge { .. }) => {}
            other => panic!("expected FrameTooLarge, got {other:?}"),
        }
        let big = Message::Error(ErrorMsg {
            code: ErrorCode::BadFrame,
            message: "x".repeat(100),
        });
        assert!(matches!(
            encode(&big, 50, &mut Vec::new()),
            Err(ProtoError::FrameTooLarge { .. })
        ));
    }

    #[test]
    fn trailing_bytes_inside_a_frame_are_malformed() {
        let mut buf = Vec::new();
        encode(&Message::Ack(Ack { through_seq: 1 }), 1024, &mut buf).unwrap();
        buf.push(0);
        let len = (buf.len() - HEADER_LEN) as u32;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(decode(&buf, 1024), Err(ProtoError::Malformed(_))));
    }

    #[test]
    fn a_newer_hello_reveals_its_protocol_version() {
        #[derive(serde::Serialize)]
        enum Future {
            Hello {
                protocol: u16,
                something_new: Vec<u64>,
            },
        }
        let bytes = codec::encode(
            &Future::Hello {
                protocol: 7,
                something_new: vec![1, 2],
            },
            1024,
        )
        .unwrap();
        assert!(codec::decode::<Message>(&bytes).is_err());
        assert_eq!(codec::peek_hello_protocol(&bytes), Some(7));
        let ack = codec::encode(&Message::Ack(Ack { through_seq: 1 }), 1024).unwrap();
        assert_eq!(codec::peek_hello_protocol(&ack), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes, 256);
            let _ = codec::peek_hello_protocol(&bytes);
        }

        #[test]
        fn random_payloads_with_valid_headers_never_panic(
            payload in proptest::collection::vec(any::<u8>(), 0..512)
        ) {
            let mut buf = (payload.len() as u32).to_be_bytes().to_vec();
            buf.extend_from_slice(&payload);
            match decode(&buf, DEFAULT_MAX_FRAME_BYTES) {
                Ok(Some((_, used))) => prop_assert_eq!(used, buf.len()),
                Ok(None) => prop_assert!(false, "a whole frame must decode or fail"),
                Err(_) => {}
            }
        }

        #[test]
        fn batches_round_trip(
            seq in any::<u64>(),
            pts in proptest::collection::vec((any::<u32>(), any::<i64>(), -1e12f64..1e12), 0..64),
            name in "[a-z_]{1,20}",
        ) {
            let msg = Message::Batch(Batch {
                seq,
                series_defs: vec![SeriesDef { id: 0, name, labels: vec![] }],
                points: pts.into_iter().map(|(series, ts_ms, value)| Point { series, ts_ms, value }).collect(),
            });
            let mut buf = Vec::new();
            encode(&msg, DEFAULT_MAX_FRAME_BYTES, &mut buf).unwrap();
            let (back, _) = decode(&buf, DEFAULT_MAX_FRAME_BYTES).unwrap().unwrap();
            prop_assert_eq!(back, msg);
        }
    }
}
