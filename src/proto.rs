//! The wire protocol: CBOR (ciborium) messages in a versioned envelope, one request and one
//! response per QUIC stream, each at most [`MESSAGE_BYTES_MAX`] bytes.

use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The protocol version this build speaks; a message with another version is refused.
pub const PROTOCOL_VERSION: u16 = 1;
/// Largest message: the value limit (16 MiB) plus 1 MiB for the key, context and framing.
pub const MESSAGE_BYTES_MAX: usize = (16 << 20) + (1 << 20);

/// How many replicas must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consistency {
    One,
    Quorum,
    All,
}

impl Consistency {
    /// Replies needed out of `n` replicas.
    pub fn required(self, n: usize) -> usize {
        match self {
            Consistency::One => 1.min(n),
            Consistency::Quorum => n / 2 + 1,
            Consistency::All => n,
        }
    }
}

impl FromStr for Consistency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "one" => Ok(Consistency::One),
            "quorum" => Ok(Consistency::Quorum),
            "all" => Ok(Consistency::All),
            other => Err(format!(
                "unknown consistency level '{other}' (one, quorum, all)"
            )),
        }
    }
}

impl std::fmt::Display for Consistency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Consistency::One => "ONE",
            Consistency::Quorum => "QUORUM",
            Consistency::All => "ALL",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberState {
    Joining,
    Normal,
    Leaving,
}

/// What gossip spreads about a node. A newer `(generation, heartbeat)` wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: String,
    pub addr: SocketAddr,
    pub tokens: Vec<u128>,
    pub state: MemberState,
    /// Set when the node process starts (its start time in ms), so a restart supersedes.
    pub generation: u64,
    /// Incremented by the node on every gossip round.
    pub heartbeat: u64,
    /// The random number of the node directory's life (see the node's dot lease): two nodes
    /// that claim one id show different incarnations, and a wiped node comes back with a new one.
    #[serde(default)]
    pub incarnation: u64,
    /// Versions the node has dropped so far while merging over the sibling or size limit (see
    /// `Siblings::trim`): what `kvctl status` shows as "trimmed".
    #[serde(default)]
    pub siblings_trimmed: u64,
}

/// A member as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub member: Member,
    /// Milliseconds since this node last saw the member's heartbeat advance (0 for itself).
    pub heartbeat_age_ms: u64,
    /// Whether this node considers the member reachable.
    pub up: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Read a key, coordinated by the receiving node.
    Get {
        key: ByteBuf,
        consistency: Consistency,
    },
    /// Write (or, with `value: None`, delete) a key, coordinated by the receiving node.
    Put {
        key: ByteBuf,
        value: Option<ByteBuf>,
        /// The causal context token from a previous get.
        context: Option<String>,
        consistency: Consistency,
        lww: bool,
        /// Set by a node that handed the write to a replica: it is never handed on again.
        #[serde(default)]
        forwarded: bool,
    },
    /// Node to node: the replica's stored versions of a key.
    ReplicaRead { key: ByteBuf },
    /// Node to node: merge these versions (encoded siblings) into the replica's.
    ReplicaWrite { key: ByteBuf, siblings: ByteBuf },
    /// Node to node: a gossip exchange.
    Gossip { members: Vec<Member> },
    /// The receiving node's view of the cluster.
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request was malformed or broke a limit.
    BadRequest,
    /// Not enough replicas answered for the consistency level.
    Unavailable,
    /// The node failed (disk, internal error).
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Value {
        found: bool,
        values: Vec<ByteBuf>,
        context: String,
    },
    Written {
        context: String,
    },
    Replica {
        siblings: Option<ByteBuf>,
    },
    Ack,
    Members {
        node: String,
        members: Vec<MemberView>,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u16,
    body: T,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    #[error("message of {len} bytes is over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("undecodable message: {0}")]
    Decode(String),
    #[error("protocol version {got} is not supported (this build speaks {PROTOCOL_VERSION})")]
    Version { got: u16 },
}

pub fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(
        &Envelope {
            v: PROTOCOL_VERSION,
            body,
        },
        &mut out,
    )
    .expect("encoding to a Vec cannot fail");
    out
}

pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ProtoError> {
    if bytes.len() > MESSAGE_BYTES_MAX {
        return Err(ProtoError::TooLarge {
            len: bytes.len(),
            max: MESSAGE_BYTES_MAX,
        });
    }
    #[derive(Deserialize)]
    struct Version {
        v: u16,
    }
    let version: Version =
        ciborium::from_reader(bytes).map_err(|e| ProtoError::Decode(e.to_string()))?;
    if version.v != PROTOCOL_VERSION {
        return Err(ProtoError::Version { got: version.v });
    }
    let envelope: Envelope<T> =
        ciborium::from_reader(bytes).map_err(|e| ProtoError::Decode(e.to_string()))?;
    Ok(envelope.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages survive a round trip; garbage and other versions are errors, not panics.
    #[test]
    fn proto_roundtrip_and_garbage() {
        let req = Request::Put {
            key: ByteBuf::from(b"k".to_vec()),
            value: Some(ByteBuf::from(vec![0u8; 1000])),
            context: Some("ab".into()),
            consistency: Consistency::Quorum,
            lww: false,
            forwarded: false,
        };
        let bytes = encode(&req);
        assert!(bytes.len() < 1100, "bytes are not encoded one integer each");
        assert_eq!(decode::<Request>(&bytes).unwrap(), req);
        assert!(matches!(
            decode::<Request>(b"\xff\x00garbage"),
            Err(ProtoError::Decode(_))
        ));
        let other = {
            let mut out = Vec::new();
            ciborium::into_writer(&Envelope { v: 9, body: &req }, &mut out).unwrap();
            out
        };
        assert!(matches!(
            decode::<Request>(&other),
            Err(ProtoError::Version { got: 9 })
        ));
        assert_eq!(Consistency::Quorum.required(3), 2);
        assert_eq!("ALL".parse::<Consistency>().unwrap(), Consistency::All);
    }
}
