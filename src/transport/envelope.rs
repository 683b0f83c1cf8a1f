//! The wire envelope: what every datagram and stream between two nodes carries.
//!
//! An [`Envelope`] says who sends (cluster, config digest, node name, incarnation) and carries
//! one [`Body`]. It is MessagePack with named fields (`rmp_serde::to_vec_named`), so a field
//! added later is ignored by an older reader instead of shifting every field after it.
//!
//! Decoding is total: [`Envelope::decode`] turns any input — truncated, oversized, garbage,
//! another protocol version, another cluster, a sender other than the one the connection
//! authenticated — into a [`DecodeError`] that the caller logs and drops. It never panics.
//! The version is read first, from the envelope's header alone, so a peer running a newer
//! protocol is reported as such rather than as garbage.

use serde::{Deserialize, Serialize};

use crate::policy::message::{Heartbeat, Message};

/// The protocol version this build speaks. Peers with another version are refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// The largest envelope accepted on a stream (a raft snapshot of the cluster state fits with
/// room to spare). Larger input is refused without being read further.
pub const MAX_ENVELOPE_BYTES: usize = 16 * 1024 * 1024;

/// One unit of traffic between two nodes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub version: u16,
    /// The sender's cluster name; a node refuses envelopes of another cluster.
    pub cluster: String,
    /// The digest of the sender's config. A differing digest is not refused here: the node
    /// core reports it and takes over nothing until the files agree (design.md §2).
    pub digest: u64,
    /// The sender's node name (checked against the name its certificate is valid for).
    pub sender: String,
    /// The sender's incarnation: changes when its daemon restarts.
    pub incarnation: u64,
    /// What it says.
    pub body: Body,
}

/// What an envelope carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Body {
    /// The first thing a dialing node sends on a new connection, on its first stream.
    Hello,
    /// The accepting node's answer: the connection is up for both sides.
    HelloAck,
    /// A heartbeat (sent as a QUIC datagram).
    Heartbeat(Heartbeat),
    /// A control or consensus message (sent on a QUIC stream).
    Message(Message),
}

impl Body {
    /// The body's kind, for log lines.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Hello => "hello",
            Body::HelloAck => "hello-ack",
            Body::Heartbeat(_) => "heartbeat",
            Body::Message(_) => "message",
        }
    }
}

/// Why an envelope was dropped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// More bytes than [`MAX_ENVELOPE_BYTES`] (or the stream's own bound).
    #[error("envelope of {len} bytes is over the limit of {max} bytes")]
    TooLarge {
        /// The size seen (at least).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not a MessagePack envelope, or a body this build does not know.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// Another protocol version.
    #[error("protocol version {got}, this node speaks {PROTOCOL_VERSION}")]
    WrongVersion {
        /// The sender's version.
        got: u16,
    },
    /// Another cluster's name.
    #[error("cluster \"{got}\", this node is in cluster \"{expected}\"")]
    WrongCluster {
        /// The sender's cluster.
        got: String,
        /// Ours.
        expected: String,
    },
    /// A sender other than the node this connection was authenticated as.
    #[error("sender \"{got}\" on a connection authenticated as \"{expected}\"")]
    WrongSender {
        /// The name in the envelope.
        got: String,
        /// The name of the connection's peer.
        expected: String,
    },
}

/// What a received envelope must match.
#[derive(Clone, Copy, Debug)]
pub struct Expect<'a> {
    /// Our cluster's name.
    pub cluster: &'a str,
    /// The authenticated peer, when known (always, except for a Hello, whose sender is checked
    /// against the certificate by the caller).
    pub sender: Option<&'a str>,
}

/// The fields read before the body, so a version mismatch is told apart from garbage. Serde
/// skips the fields this struct does not name.
#[derive(Deserialize)]
struct Header {
    version: u16,
}

impl Envelope {
    /// Encodes with named fields. Fails only if a body cannot be represented (never for our
    /// types); the caller logs and drops the send.
    pub fn encode(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(self)
    }

    /// Decodes and checks an envelope. Total: every input gives a value or a [`DecodeError`].
    pub fn decode(bytes: &[u8], expect: Expect<'_>) -> Result<Envelope, DecodeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let header: Header =
            rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if header.version != PROTOCOL_VERSION {
            return Err(DecodeError::WrongVersion {
                got: header.version,
            });
        }
        let env: Envelope =
            rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if env.cluster != expect.cluster {
            return Err(DecodeError::WrongCluster {
                got: env.cluster,
                expected: expect.cluster.to_string(),
            });
        }
        if let Some(expected) = expect.sender {
            if env.sender != expected {
                return Err(DecodeError::WrongSender {
                    got: env.sender,
                    expected: expected.to_string(),
                });
            }
        }
        Ok(env)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::lease::Grant;

    fn env(body: Body) -> Envelope {
        Envelope {
            version: PROTOCOL_VERSION,
            cluster: "db-pair".to_string(),
            digest: 0xfeed,
            sender: "alpha".to_string(),
            incarnation: 7,
            body,
        }
    }

    const EXPECT: Expect<'static> = Expect {
        cluster: "db-pair",
        sender: Some("alpha"),
    };

    #[test]
    fn every_body_round_trips() {
        let bodies = [
            Body::Hello,
            Body::HelloAck,
            Body::Heartbeat(Heartbeat {
                incarnation: 7,
                digest: 0xfeed,
            }),
            Body::Message(Message::LeaseRequest { stamp_us: 42 }),
            Body::Message(Message::LeaseGrant(Grant {
                term: 3,
                echo_us: 9,
                valid_us: 150_000,
                commit: 12,
            })),
        ];
        for body in bodies {
            let e = env(body);
            let bytes = e.encode().unwrap();
            assert_eq!(Envelope::decode(&bytes, EXPECT), Ok(e));
        }
    }

    #[test]
    fn fields_are_named_on_the_wire() {
        let bytes = env(Body::Hello).encode().unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for field in [
            "version",
            "cluster",
            "digest",
            "sender",
            "incarnation",
            "body",
        ] {
            assert!(text.contains(field), "{field} missing");
        }
    }

    #[test]
    fn wrong_cluster_sender_and_version_are_typed_errors() {
        let mut e = env(Body::HelloAck);
        e.cluster = "other".to_string();
        let got = Envelope::decode(&e.encode().unwrap(), EXPECT);
        assert!(matches!(got, Err(DecodeError::WrongCluster { ref got, .. }) if got == "other"));

        let mut e = env(Body::HelloAck);
        e.sender = "mallory".to_string();
        let got = Envelope::decode(&e.encode().unwrap(), EXPECT);
        assert!(matches!(got, Err(DecodeError::WrongSender { ref got, .. }) if got == "mallory"));
        // Without an expected sender (a Hello), any sender passes here.
        let any = Expect {
            sender: None,
            ..EXPECT
        };
        assert!(Envelope::decode(&e.encode().unwrap(), any).is_ok());

        let mut e = env(Body::HelloAck);
        e.version = 2;
        let got = Envelope::decode(&e.encode().unwrap(), EXPECT);
        assert_eq!(got, Err(DecodeError::WrongVersion { got: 2 }));
    }

    #[test]
    fn a_newer_version_with_an_unknown_body_is_reported_as_a_version() {
        #[derive(Serialize)]
        struct Future {
            version: u16,
            cluster: &'static str,
            body: &'static str,
            extra: u32,
        }
        let bytes = rmp_serde::to_vec_named(&Future {
            version: 9,
            cluster: "db-pair",
            body: "Teleport",
            extra: 1,
        })
        .unwrap();
        assert_eq!(
            Envelope::decode(&bytes, EXPECT),
            Err(DecodeError::WrongVersion { got: 9 })
        );
    }

    #[test]
    fn garbage_truncation_and_size_never_panic() {
        let good = env(Body::Message(Message::LeaseRequest { stamp_us: 1 }))
            .encode()
            .unwrap();
        for cut in 0..good.len() {
            assert!(Envelope::decode(&good[..cut], EXPECT).is_err(), "cut {cut}");
        }
        // Deterministic pseudo-random garbage (xorshift), plus bit flips of a good envelope.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..2000 {
            let mut bytes = if round % 2 == 0 {
                vec![0u8; (round % 97) + 1]
            } else {
                good.clone()
            };
            for b in bytes.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if round % 2 == 0 || x % 11 == 0 {
                    *b ^= x as u8;
                }
            }
            let _ = Envelope::decode(&bytes, EXPECT);
        }
        // A MessagePack array header claiming four billion elements must not allocate them.
        assert!(Envelope::decode(&[0xdd, 0xff, 0xff, 0xff, 0xff], EXPECT).is_err());
        let big = vec![0u8; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(
            Envelope::decode(&big, EXPECT),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
