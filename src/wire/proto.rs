//! The wire protocol: CBOR (ciborium) messages in a versioned envelope, one request and one
//! response per QUIC stream, each at most [`MESSAGE_BYTES_MAX`] bytes.
//!
//! Room to grow: a node reads every message of version [`PROTOCOL_VERSION_MIN`] or later,
//! including versions after its own. Messages are maps keyed by field name, so a field it does
//! not know is skipped (new fields are optional, `#[serde(default)]`), and a request it does
//! not know is answered with [`ErrorKind::Unsupported`], which the sender can take as "this
//! node is older: do without". An error kind it does not know decodes as [`ErrorKind::Other`].
//! The envelope of a request carries its time budget (`timeout_ms`, see
//! [`crate::wire::deadline`]).
//!
//! Beside request/response, a bulk transfer ([`Request::ReplicaScan`]) is answered on its
//! stream by a sequence of frames, each a 4-byte big-endian length and a message
//! ([`Response::Chunk`], the final one marked `last`, or a [`Response::Error`]).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::model::layout::{Ballot, Layout, LayoutMember};

/// The protocol version this build speaks (its newest messages are of this version; each
/// message is written with the oldest version that has it, see [`Message`]).
pub const PROTOCOL_VERSION: u16 = 3;
/// The oldest version this build reads; an older message is refused. Version 1 (the first
/// release) had no `timeout_ms` and no `Unsupported`; its messages read as version 2's.
pub const PROTOCOL_VERSION_MIN: u16 = 1;
/// Largest message: the value limit (16 MiB) plus 1 MiB for the key, context and framing.
pub const MESSAGE_BYTES_MAX: usize = (16 << 20) + (1 << 20);

// The lists a message may hold are bounded as they are decoded (see [`crate::wire::bounded_list`]),
// so that no message costs a reader more than a small multiple of its size.

/// Most members a gossip message or a status reply lists (a node knows at most this many).
pub const MEMBERS_MAX: usize = 1024;
/// Most tokens a member owns.
pub const TOKENS_PER_MEMBER_MAX: usize = 256;
/// Most values a get's reply carries: the siblings of a merge, before its trim, from up to
/// four replicas' sets (see `kvctl::model::version::SIBLINGS_MAX`).
pub const VALUES_MAX: usize = 4 * crate::model::version::SIBLINGS_MAX;
/// Most leaves a Merkle tree has.
pub const TREE_LEAVES_MAX: usize = 4096;
/// Most entries one chunk of a bulk transfer carries (a chunk is about
/// [`crate::wire::transport::CHUNK_BYTES`] of entries; each entry takes dozens of bytes at least).
pub const CHUNK_ENTRIES_MAX: usize = 1 << 16;

fn members<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Member>, D::Error> {
    crate::wire::bounded_list::deserialize(d, MEMBERS_MAX, "members")
}

fn member_views<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<MemberView>, D::Error> {
    crate::wire::bounded_list::deserialize(d, MEMBERS_MAX, "members")
}

fn tokens<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u128>, D::Error> {
    crate::wire::bounded_list::deserialize(d, TOKENS_PER_MEMBER_MAX, "tokens")
}

fn values<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ByteBuf>, D::Error> {
    crate::wire::bounded_list::deserialize(d, VALUES_MAX, "values")
}

fn leaves<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ByteBuf>, D::Error> {
    crate::wire::bounded_list::deserialize(d, TREE_LEAVES_MAX, "leaves")
}

fn entries<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ScanEntry>, D::Error> {
    crate::wire::bounded_list::deserialize(d, CHUNK_ENTRIES_MAX, "entries")
}

/// Most ids a layout remembers as removed.
pub const REMOVED_MAX: usize = 1 << 16;
/// Most layout versions live at once in a reply.
pub const LAYOUTS_MAX: usize = 2;

fn layout_members<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<LayoutEntry>, D::Error> {
    crate::wire::bounded_list::deserialize(d, MEMBERS_MAX, "layout members")
}

fn removed<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, u64)>, D::Error> {
    crate::wire::bounded_list::deserialize(d, REMOVED_MAX, "removed ids")
}

fn marks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<(String, u64)>, D::Error> {
    crate::wire::bounded_list::deserialize(d, MEMBERS_MAX + REMOVED_MAX, "sync marks")
}

fn layouts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<WireLayout>, D::Error> {
    crate::wire::bounded_list::deserialize(d, LAYOUTS_MAX, "layouts")
}

/// A layout version as sent (see [`crate::model::layout::Layout`]): its lists bounded while
/// decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireLayout {
    pub version: u64,
    pub replication: u32,
    #[serde(deserialize_with = "layout_members")]
    pub members: Vec<LayoutEntry>,
    #[serde(deserialize_with = "removed")]
    pub removed: Vec<(String, u64)>,
}

/// A member of a [`WireLayout`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutEntry {
    pub id: String,
    pub addr: SocketAddr,
    pub dc: String,
    pub rack: String,
    #[serde(deserialize_with = "tokens")]
    pub tokens: Vec<u128>,
}

impl From<&Layout> for WireLayout {
    fn from(layout: &Layout) -> WireLayout {
        WireLayout {
            version: layout.version,
            replication: layout.replication as u32,
            members: layout
                .members
                .iter()
                .map(|(id, m)| LayoutEntry {
                    id: id.clone(),
                    addr: m.addr,
                    dc: m.dc.clone(),
                    rack: m.rack.clone(),
                    tokens: m.tokens.clone(),
                })
                .collect(),
            removed: layout
                .removed
                .iter()
                .map(|(id, v)| (id.clone(), *v))
                .collect(),
        }
    }
}

impl TryFrom<WireLayout> for Layout {
    type Error = String;

    /// A layout from the wire: each id once, and at least one replica.
    fn try_from(wire: WireLayout) -> Result<Layout, String> {
        if wire.replication == 0 {
            return Err(format!("layout version {} has replication 0", wire.version));
        }
        let mut members = std::collections::BTreeMap::new();
        for m in wire.members {
            let member = LayoutMember {
                addr: m.addr,
                dc: m.dc,
                rack: m.rack,
                tokens: m.tokens,
            };
            if members.insert(m.id.clone(), member).is_some() {
                return Err(format!(
                    "layout version {} lists {} twice",
                    wire.version, m.id
                ));
            }
        }
        let removed: std::collections::BTreeMap<String, u64> = wire.removed.into_iter().collect();
        if let Some(id) = members.keys().find(|id| removed.contains_key(*id)) {
            return Err(format!(
                "layout version {} lists {id} as a member and as removed",
                wire.version
            ));
        }
        Ok(Layout {
            version: wire.version,
            replication: wire.replication as usize,
            members,
            removed,
        })
    }
}

/// An acceptor's answer in a layout version's commit (see the node's `logic::commit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayoutVote {
    Promise {
        ballot: Ballot,
        accepted: Option<(Ballot, WireLayout)>,
    },
    Accepted {
        ballot: Ballot,
    },
    Nack {
        ballot: Ballot,
        promised: Ballot,
    },
    Chosen {
        layout: WireLayout,
    },
}

/// Most workers a node lists.
pub const WORKERS_MAX: usize = 256;
/// Most levels an engine reports.
pub const LEVELS_MAX: usize = 64;

fn workers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<WorkerInfo>, D::Error> {
    crate::wire::bounded_list::deserialize(d, WORKERS_MAX, "workers")
}

fn levels<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
    crate::wire::bounded_list::deserialize(d, LEVELS_MAX, "levels")
}

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
    #[serde(deserialize_with = "tokens")]
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
    /// Hints the node holds for other nodes (writes they missed), not yet delivered.
    #[serde(default)]
    pub hints_pending: u64,
    /// Of those, the hints held because their target refused them as bad requests (it may be
    /// of an older release that does not read them): kept until it takes them or they pass
    /// the hint window.
    #[serde(default)]
    pub hints_refused: u64,
    /// Where the node serves its Prometheus metrics, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<SocketAddr>,
    /// The newest format of encoded siblings the node reads (see
    /// [`crate::model::version::SIBLINGS_FORMAT_WRITE_IDS`]); 0 from releases that did not say, which
    /// read format 2 only.
    #[serde(default)]
    pub siblings_format_max: u8,
}

/// What a background worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerState {
    /// Waiting for its next round.
    Idle,
    /// At work.
    Busy,
    /// Stopped by an error.
    Failed,
    /// A state this build does not know (sent by a newer release).
    #[serde(other)]
    Other,
}

impl std::fmt::Display for WorkerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WorkerState::Idle => "idle",
            WorkerState::Busy => "busy",
            WorkerState::Failed => "failed",
            WorkerState::Other => "other",
        })
    }
}

/// A node's background worker, as it reports itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerInfo {
    pub name: String,
    pub state: WorkerState,
    /// What it is at, or how its last round went.
    #[serde(default)]
    pub progress: String,
    /// Items done since the node started (rounds, hints, ranges, tombstones: the worker's own).
    #[serde(default)]
    pub done: u64,
    #[serde(default)]
    pub errors: u64,
    #[serde(default)]
    pub last_error: Option<String>,
    /// When the last error came (wall clock, ms since the epoch); absent from older nodes.
    #[serde(default)]
    pub last_error_at_ms: Option<u64>,
}

/// A node's storage engine, in figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineInfo {
    pub last_seq: u64,
    pub memtable_bytes: u64,
    pub wal_segments: u64,
    #[serde(deserialize_with = "levels")]
    pub tables_per_level: Vec<u64>,
    #[serde(deserialize_with = "levels")]
    pub bytes_per_level: Vec<u64>,
    pub cache_bytes: u64,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub flushes: u64,
    pub compactions: u64,
    pub wal_syncs: u64,
}

/// A member as one node sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberView {
    pub member: Member,
    /// Milliseconds since this node last saw the member's heartbeat advance (0 for itself).
    pub heartbeat_age_ms: u64,
    /// Whether this node considers the member reachable (its failure detector's phi is
    /// under the threshold).
    pub up: bool,
    /// The suspicion level of this node's failure detector for the member (0 for itself).
    #[serde(default)]
    pub phi: f64,
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
        /// The client's id for this logical write, the same on every retry of it: a
        /// coordinator that already stores a version with it sends that version on instead of
        /// making another, and [`crate::model::version::Siblings::values`] shows a write applied twice
        /// (through two coordinators) once. Random, 128 bits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        write_id: Option<u128>,
    },
    /// Node to node: the replica's stored versions of a key.
    ReplicaRead { key: ByteBuf },
    /// Node to node: merge these versions (encoded siblings) into the replica's.
    ReplicaWrite { key: ByteBuf, siblings: ByteBuf },
    /// Node to node: a gossip exchange.
    Gossip {
        #[serde(deserialize_with = "members")]
        members: Vec<Member>,
    },
    /// The receiving node's view of the cluster.
    Status,
    /// Node to node, a bulk transfer: every key this replica stores whose token is in the
    /// ring range (after, upto] (`after == upto`: the whole ring), with its encoded siblings,
    /// in token order, as a stream of [`Response::Chunk`]s (see `transport::Chunks`).
    ReplicaScan { after: u128, upto: u128 },
    /// Node to node: the replica's Merkle tree of the token range (after, upto]: its root,
    /// and with `leaves` its leaves (see the node's `merkle` module).
    MerkleTree {
        after: u128,
        upto: u128,
        leaves: bool,
    },
    /// Node to node: a repair that started at `since_ms` (wall clock) brought the token range
    /// (after, upto] in sync on every replica (what tombstone removal waits for).
    RangeSynced {
        after: u128,
        upto: u128,
        since_ms: u64,
    },
    /// The receiving node's background workers and engine figures (`kvctl workers`).
    NodeInfo,
    /// Repair the token range (after, upto] across its replicas, coordinated by the receiving
    /// node (one of them), sending at most `rate_bytes_per_sec` (0: unthrottled).
    Repair {
        after: u128,
        upto: u128,
        rate_bytes_per_sec: u64,
    },
    /// The receiving node's live layout versions and sync marks (version 3).
    LayoutGet,
    /// Node to node, a layout commit's phase 1 for version `slot` (version 3).
    LayoutPrepare { slot: u64, ballot: Ballot },
    /// Node to node, phase 2: accept `layout` as version `slot` (version 3).
    LayoutAccept {
        slot: u64,
        ballot: Ballot,
        layout: WireLayout,
    },
    /// Node to node: `layout` was chosen; the proposer's sync marks come with it (version 3).
    LayoutCommit {
        layout: WireLayout,
        #[serde(deserialize_with = "marks")]
        synced: Vec<(String, u64)>,
    },
}

/// One key of a bulk transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanEntry {
    pub key: ByteBuf,
    /// The key's encoded siblings.
    pub siblings: ByteBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The request was malformed or broke a limit.
    BadRequest,
    /// Not enough replicas answered for the consistency level.
    Unavailable,
    /// The node failed (disk, internal error).
    Internal,
    /// The node does not know this request (it runs an older release).
    Unsupported,
    /// The client certificate's role does not allow this request (the message names the role
    /// and the one needed). Version 2, as is every request a role may refuse; never retried.
    Forbidden,
    /// Node to node: the versions sent are ones no node makes, or cannot be stored as they
    /// are (see `Siblings::check_sent`, `VersionError::Trimmed`): sending them again will
    /// never succeed. Unlike [`ErrorKind::BadRequest`], which may mean the receiver is older
    /// and does not read what was sent, so a hint refused with it is kept. Version 2.
    Invalid,
    /// A kind this build does not know (sent by a newer release).
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Response {
    Value {
        found: bool,
        #[serde(deserialize_with = "values")]
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
        #[serde(deserialize_with = "member_views")]
        members: Vec<MemberView>,
        /// Replicas per key (N) the node places keys on; 0 from nodes that do not say (the
        /// first releases).
        #[serde(default)]
        replication: u32,
    },
    Error {
        kind: ErrorKind,
        message: String,
    },
    /// One chunk of a bulk transfer; `last` on the final one.
    Chunk {
        #[serde(deserialize_with = "entries")]
        entries: Vec<ScanEntry>,
        last: bool,
    },
    /// A replica's Merkle tree of a range: its root, its leaves if asked, its keys.
    Tree {
        root: ByteBuf,
        #[serde(deserialize_with = "leaves")]
        leaves: Vec<ByteBuf>,
        keys: u64,
        /// The replica's wall clock (ms) when it began the tree; a repair counts its range in
        /// sync from the earliest of its replicas' clocks (absent from earlier releases).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        clock_ms: Option<u64>,
    },
    /// A node's workers and engine figures.
    Info {
        node: String,
        #[serde(deserialize_with = "workers")]
        workers: Vec<WorkerInfo>,
        /// Boxed: the other responses are far smaller.
        #[serde(default)]
        engine: Box<EngineInfo>,
    },
    /// A node's live layout versions (oldest first) and its sync marks.
    Layouts {
        #[serde(deserialize_with = "layouts")]
        live: Vec<WireLayout>,
        #[serde(deserialize_with = "marks")]
        synced: Vec<(String, u64)>,
    },
    /// An acceptor's answer in a layout commit (boxed: the other responses are far smaller).
    LayoutVote(Box<LayoutVote>),
    /// A range repaired: whether it was in sync already, and what it took.
    Repaired {
        in_sync_before: bool,
        keys: u64,
        leaves_differing: u64,
        keys_sent: u64,
        bytes_sent: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u16,
    body: T,
    /// A request's time budget in milliseconds (see [`crate::wire::deadline`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    #[error("message of {len} bytes is over the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    #[error("undecodable message: {0}")]
    Decode(String),
    #[error(
        "protocol version {got} is not supported (this build reads versions \
         {PROTOCOL_VERSION_MIN} to {PROTOCOL_VERSION} and later)"
    )]
    Version { got: u16 },
    #[error("unknown request '{name}' (this node speaks protocol version {PROTOCOL_VERSION}; it may be older than the sender)")]
    UnknownRequest { name: String },
}

/// A message of the protocol, written in the envelope of the oldest version that has it, so
/// that a node of an older release reads every message it can understand: the first
/// release's messages go out as version 1 (its nodes read only that, ignoring the `timeout_ms`
/// they do not know), the messages added since as the version that added them.
pub trait Message: Serialize {
    /// The first protocol version with this message.
    fn since(&self) -> u16;
}

impl Message for Request {
    fn since(&self) -> u16 {
        match self {
            Request::ReplicaScan { .. }
            | Request::MerkleTree { .. }
            | Request::Repair { .. }
            | Request::RangeSynced { .. }
            | Request::NodeInfo => 2,
            Request::LayoutGet
            | Request::LayoutPrepare { .. }
            | Request::LayoutAccept { .. }
            | Request::LayoutCommit { .. } => 3,
            _ => 1,
        }
    }
}

impl Message for Response {
    fn since(&self) -> u16 {
        match self {
            Response::Layouts { .. } | Response::LayoutVote(_) => 3,
            Response::Chunk { .. }
            | Response::Tree { .. }
            | Response::Repaired { .. }
            | Response::Info { .. }
            | Response::Error {
                kind:
                    ErrorKind::Unsupported
                    | ErrorKind::Forbidden
                    | ErrorKind::Invalid
                    | ErrorKind::Other,
                ..
            } => 2,
            _ => 1,
        }
    }
}

/// Encodes a response (or any message without a time budget).
pub fn encode<T: Message>(body: &T) -> Vec<u8> {
    encode_with(body, None)
}

/// Encodes a request with the time its sender will wait for the reply.
pub fn encode_request(request: &Request, timeout: Option<Duration>) -> Vec<u8> {
    encode_with(request, timeout.map(|t| t.as_millis() as u64))
}

/// Scratch buffers above this size are not kept for the next encoding.
const SCRATCH_BYTES_KEPT_MAX: usize = 1 << 20;

thread_local! {
    /// Each thread's encoding buffer: CBOR is written a few bytes at a time, and a fresh `Vec`
    /// would grow by doubling (a dozen reallocations for a 1 KiB value); the message is then
    /// copied out once, at its size.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

fn encode_with<T: Message>(body: &T, timeout_ms: Option<u64>) -> Vec<u8> {
    let envelope = Envelope {
        v: body.since(),
        body,
        timeout_ms,
    };
    let mut scratch = SCRATCH.take();
    scratch.clear();
    ciborium::into_writer(&envelope, &mut scratch).expect("encoding to a Vec cannot fail");
    let out = scratch.to_vec();
    if scratch.capacity() <= SCRATCH_BYTES_KEPT_MAX {
        SCRATCH.set(scratch);
    }
    out
}

/// Decodes a response (or any message, ignoring a time budget).
pub fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ProtoError> {
    decode_envelope(bytes).map(|e| e.body)
}

/// Decodes a request and the time budget its sender gave it. A well-formed request this
/// build does not know is [`ProtoError::UnknownRequest`].
pub fn decode_request(bytes: &[u8]) -> Result<(Request, Option<Duration>), ProtoError> {
    match decode_envelope::<Request>(bytes) {
        Ok(e) => Ok((e.body, e.timeout_ms.map(Duration::from_millis))),
        Err(ProtoError::Decode(reason)) => {
            let name = request_name(bytes).filter(|name| !REQUEST_NAMES.contains(&name.as_str()));
            Err(match name {
                Some(name) => ProtoError::UnknownRequest { name },
                None => ProtoError::Decode(reason),
            })
        }
        Err(e) => Err(e),
    }
}

/// The longest request name looked for: longer is no request's name.
const REQUEST_NAME_BYTES_MAX: usize = 64;

/// The name of the request in an envelope, read without decoding the request's fields, so
/// that a message that is not a request costs nothing more than its bytes: an externally
/// tagged variant is a bare name, or a map of one entry keyed by the name. `None` if the
/// body is neither.
fn request_name(bytes: &[u8]) -> Option<String> {
    use serde::de::{self, IgnoredAny, MapAccess, Visitor};

    /// The envelope's entries up to `body`; the rest is not read.
    struct EnvelopeBody;
    /// The body's name; the fields after it are not read.
    struct Name;

    impl<'de> Visitor<'de> for EnvelopeBody {
        type Value = Option<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an envelope")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while let Some(key) = map.next_key::<Key>()? {
                if key.0 {
                    // Returning here leaves the rest of the input unread; nothing else will
                    // read it.
                    return map.next_value_seed(Name);
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(None)
        }
    }

    impl<'de> de::DeserializeSeed<'de> for Name {
        type Value = Option<String>;

        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Name {
        type Value = Option<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a request")
        }

        fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
            Ok((name.len() <= REQUEST_NAME_BYTES_MAX).then(|| name.to_string()))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            if map.size_hint() != Some(1) {
                return Ok(None);
            }
            Ok(map.next_key::<ShortText>()?.and_then(|name| name.0))
        }
    }

    /// Whether a key of the envelope is `body` (any other key is skipped).
    struct Key(bool);

    impl<'de> de::Deserialize<'de> for Key {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ShortTextVisitor)
                .map(|text| Key(text.0.as_deref() == Some("body")))
        }
    }

    /// A text of at most [`REQUEST_NAME_BYTES_MAX`] bytes; `None` for anything else.
    struct ShortText(Option<String>);
    struct ShortTextVisitor;

    impl<'de> de::Deserialize<'de> for ShortText {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(ShortTextVisitor)
        }
    }

    impl<'de> Visitor<'de> for ShortTextVisitor {
        type Value = ShortText;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a text")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<ShortText, E> {
            Ok(ShortText(
                (text.len() <= REQUEST_NAME_BYTES_MAX).then(|| text.to_string()),
            ))
        }
    }

    /// What the envelope holds: the name, if the body has one.
    struct Found(Option<String>);

    impl<'de> de::Deserialize<'de> for Found {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_map(EnvelopeBody).map(Found)
        }
    }

    ciborium::from_reader::<Found, _>(bytes)
        .ok()
        .and_then(|found| found.0)
}

/// The requests this build knows, by their names on the wire.
const REQUEST_NAMES: &[&str] = &[
    "Get",
    "Put",
    "ReplicaRead",
    "ReplicaWrite",
    "Gossip",
    "Status",
    "ReplicaScan",
    "MerkleTree",
    "Repair",
    "RangeSynced",
    "NodeInfo",
];

fn decode_envelope<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<Envelope<T>, ProtoError> {
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
    // The version is checked before the body is decoded: a body of a later version may not
    // decode here, and that must be told apart. It is read from the envelope's first entry,
    // where this and every earlier release write it, else (another encoder's key order) by
    // decoding the envelope for it alone.
    let v = match leading_version(bytes) {
        Some(v) => v,
        None => {
            let version: Version =
                ciborium::from_reader(bytes).map_err(|e| ProtoError::Decode(e.to_string()))?;
            version.v
        }
    };
    if v < PROTOCOL_VERSION_MIN {
        return Err(ProtoError::Version { got: v });
    }
    ciborium::from_reader(bytes).map_err(|e| ProtoError::Decode(e.to_string()))
}

/// The envelope's version when its CBOR starts with a map whose first entry is `"v"` and a
/// `u16`; `None` for anything else (the caller decodes the envelope to find it).
fn leading_version(bytes: &[u8]) -> Option<u16> {
    let (&head, rest) = bytes.split_first()?;
    // A map (major type 5) of any definite or indefinite length.
    let rest = match head {
        0xa1..=0xb7 | 0xbf => rest,
        0xb8 => rest.get(1..)?,
        0xb9 => rest.get(2..)?,
        0xba => rest.get(4..)?,
        0xbb => rest.get(8..)?,
        _ => return None,
    };
    // The text key "v".
    let rest = rest.strip_prefix(&[0x61, b'v'])?;
    // An unsigned integer (major type 0) that fits a u16.
    match *rest.first()? {
        n @ 0x00..=0x17 => Some(u16::from(n)),
        0x18 => rest.get(1).map(|&n| u16::from(n)),
        0x19 => Some(u16::from_be_bytes(rest.get(1..3)?.try_into().ok()?)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ciborium::Value;

    fn cbor(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    /// Messages survive a round trip; garbage and too old versions are errors, not panics.
    #[test]
    fn proto_roundtrip_and_garbage() {
        let req = Request::Put {
            key: ByteBuf::from(b"k".to_vec()),
            value: Some(ByteBuf::from(vec![0u8; 1000])),
            context: Some("ab".into()),
            consistency: Consistency::Quorum,
            lww: false,
            forwarded: false,
            write_id: Some(u128::MAX - 7),
        };
        let bytes = encode_request(&req, Some(Duration::from_millis(1500)));
        assert!(
            bytes.len() < 1150,
            "{} bytes: not encoded one integer each",
            bytes.len()
        );
        assert_eq!(
            decode_request(&bytes).unwrap(),
            (req.clone(), Some(Duration::from_millis(1500)))
        );
        assert_eq!(decode::<Request>(&bytes).unwrap(), req);
        assert!(matches!(
            decode::<Request>(b"\xff\x00garbage"),
            Err(ProtoError::Decode(_))
        ));
        let old = {
            let mut out = Vec::new();
            let envelope = Envelope {
                v: 0,
                body: &req,
                timeout_ms: None,
            };
            ciborium::into_writer(&envelope, &mut out).unwrap();
            out
        };
        assert!(matches!(
            decode_request(&old),
            Err(ProtoError::Version { got: 0 })
        ));
        assert_eq!(Consistency::Quorum.required(3), 2);
        assert_eq!("ALL".parse::<Consistency>().unwrap(), Consistency::All);
    }

    /// A message of release 1 (no time budget) reads as before; one of a later release is
    /// read by the fields this build knows; a request it does not know is named in a typed
    /// error; an error kind it does not know is `Other`.
    #[test]
    fn older_and_newer_messages() {
        let get = |extra: Vec<(Value, Value)>| {
            let mut fields = vec![
                (text("key"), Value::Bytes(b"k".to_vec())),
                (text("consistency"), text("One")),
            ];
            fields.extend(extra);
            Value::Map(vec![(text("Get"), Value::Map(fields))])
        };
        let v1 = cbor(&Value::Map(vec![
            (text("v"), Value::Integer(1.into())),
            (text("body"), get(vec![])),
        ]));
        let (request, timeout) = decode_request(&v1).unwrap();
        assert!(matches!(request, Request::Get { .. }) && timeout.is_none());

        let v7 = cbor(&Value::Map(vec![
            (text("v"), Value::Integer(7.into())),
            (text("body"), get(vec![(text("hedge"), Value::Bool(true))])),
            (text("timeout_ms"), Value::Integer(250.into())),
            (text("trace"), text("abc")),
        ]));
        let (request, timeout) = decode_request(&v7).unwrap();
        assert!(matches!(request, Request::Get { .. }));
        assert_eq!(timeout, Some(Duration::from_millis(250)));

        let unknown = cbor(&Value::Map(vec![
            (text("v"), Value::Integer(7.into())),
            (
                text("body"),
                Value::Map(vec![(text("MerkleLevel"), Value::Map(vec![]))]),
            ),
        ]));
        match decode_request(&unknown) {
            Err(e @ ProtoError::UnknownRequest { .. }) => {
                assert!(
                    e.to_string().contains("unknown request 'MerkleLevel'"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        // A known request with a malformed body is a decode error, not an unknown one.
        let bad = cbor(&Value::Map(vec![
            (text("v"), Value::Integer(2.into())),
            (
                text("body"),
                Value::Map(vec![(text("Get"), Value::Integer(3.into()))]),
            ),
        ]));
        assert!(matches!(decode_request(&bad), Err(ProtoError::Decode(_))));

        let error = cbor(&Value::Map(vec![
            (text("v"), Value::Integer(7.into())),
            (
                text("body"),
                Value::Map(vec![(
                    text("Error"),
                    Value::Map(vec![
                        (text("kind"), text("Overloaded")),
                        (text("message"), text("slow down")),
                    ]),
                )]),
            ),
        ]));
        assert_eq!(
            decode::<Response>(&error).unwrap(),
            Response::Error {
                kind: ErrorKind::Other,
                message: "slow down".into()
            }
        );
    }

    /// The version is read from the envelope's head where it leads (what every release
    /// writes), and found by decoding when another encoder put it elsewhere or wrote it
    /// oddly; version 0 is refused either way.
    #[test]
    fn the_version_is_read_wherever_it_is() {
        let put = Request::Put {
            key: ByteBuf::from(b"k".to_vec()),
            value: Some(ByteBuf::from(vec![7u8; 3000])),
            context: None,
            consistency: Consistency::All,
            lww: false,
            forwarded: false,
            write_id: Some(9),
        };
        let bytes = encode_request(&put, Some(Duration::from_millis(1500)));
        assert_eq!(leading_version(&bytes), Some(put.since()));
        assert_eq!(
            decode_request(&bytes).unwrap(),
            (put, Some(Duration::from_millis(1500)))
        );
        let ack = encode(&Response::Ack);
        assert_eq!(leading_version(&ack), Some(1));
        assert_eq!(decode::<Response>(&ack).unwrap(), Response::Ack);

        let body = Value::Text("Ack".into());
        let envelope = |v: Value, first: bool| {
            let entries = if first {
                vec![(text("v"), v), (text("body"), body.clone())]
            } else {
                vec![(text("body"), body.clone()), (text("v"), v)]
            };
            cbor(&Value::Map(entries))
        };
        for (v, first) in [(1, true), (2, false), (300, true), (300, false)] {
            let bytes = envelope(Value::Integer(v.into()), first);
            assert_eq!(leading_version(&bytes), first.then_some(v));
            assert_eq!(decode::<Response>(&bytes).unwrap(), Response::Ack);
        }
        for first in [true, false] {
            let zero = envelope(Value::Integer(0.into()), first);
            assert!(matches!(
                decode::<Response>(&zero),
                Err(ProtoError::Version { got: 0 })
            ));
            let big = envelope(Value::Integer(70_000.into()), first);
            assert_eq!(leading_version(&big), None);
            assert!(matches!(
                decode::<Response>(&big),
                Err(ProtoError::Decode(_))
            ));
        }
        // Truncated heads are not read past their end.
        for cut in 0..4 {
            assert_eq!(leading_version(&ack[..cut]), None);
        }
    }

    /// A message that is no request (a body of millions of zeros) is a decode error found
    /// without reading the body; the lists a message holds are refused past their bounds,
    /// and the name of an unknown request is still found wherever the body is.
    #[test]
    fn huge_bodies_and_long_lists_are_refused() {
        let zeros = 1 << 20;
        let mut bytes = cbor(&Value::Map(vec![
            (text("v"), Value::Integer(2.into())),
            (text("timeout_ms"), Value::Integer(60_000.into())),
            (text("body"), Value::Array(vec![])),
        ]));
        // The array's head, then its elements: CBOR's 0x9a is an array of a 32-bit length.
        bytes.pop();
        bytes.push(0x9a);
        bytes.extend_from_slice(&(zeros as u32).to_be_bytes());
        bytes.resize(bytes.len() + zeros, 0);
        assert!(matches!(decode_request(&bytes), Err(ProtoError::Decode(_))));

        let member = |tokens: usize| Member {
            id: "n1".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            tokens: (0..tokens as u128).collect(),
            state: MemberState::Normal,
            generation: 1,
            heartbeat: 1,
            incarnation: 1,
            siblings_trimmed: 0,
            hints_pending: 0,
            hints_refused: 0,
            metrics: None,
            siblings_format_max: 3,
        };
        let gossip = |members: Vec<Member>| encode_request(&Request::Gossip { members }, None);
        let ok = gossip(vec![member(TOKENS_PER_MEMBER_MAX)]);
        assert!(matches!(
            decode_request(&ok),
            Ok((Request::Gossip { .. }, _))
        ));
        let many_tokens = gossip(vec![member(TOKENS_PER_MEMBER_MAX + 1)]);
        match decode_request(&many_tokens) {
            Err(ProtoError::Decode(e)) => assert!(e.contains("at most 256 tokens"), "{e}"),
            other => panic!("{other:?}"),
        }
        let many_members = gossip(vec![member(1); MEMBERS_MAX + 1]);
        match decode_request(&many_members) {
            Err(ProtoError::Decode(e)) => assert!(e.contains("at most 1024 members"), "{e}"),
            other => panic!("{other:?}"),
        }

        // An unknown request after a long field the envelope does not know.
        let unknown = cbor(&Value::Map(vec![
            (text("v"), Value::Integer(9.into())),
            (
                text("pad"),
                Value::Array(vec![Value::Integer(0.into()); 1000]),
            ),
            (
                text("body"),
                Value::Map(vec![(text("Decommission"), Value::Array(vec![]))]),
            ),
        ]));
        assert!(matches!(
            decode_request(&unknown),
            Err(ProtoError::UnknownRequest { name }) if name == "Decommission"
        ));
    }

    /// What a node of the first release reads: a version-1 envelope of exactly `v` and
    /// `body` (it refused any other version; unknown fields it skips).
    fn first_release_reads<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
        #[derive(Deserialize)]
        struct V1<T> {
            v: u16,
            body: T,
        }
        let e: V1<T> = ciborium::from_reader(bytes).ok()?;
        (e.v == 1).then_some(e.body)
    }

    /// Every message the first release has is written so that its nodes read it: a mixed
    /// cluster keeps working while it is upgraded one node at a time. Messages added since
    /// carry the version that added them.
    #[test]
    fn first_release_messages_stay_readable_by_it() {
        let get = Request::Get {
            key: ByteBuf::from(b"k".to_vec()),
            consistency: Consistency::Quorum,
        };
        let bytes = encode_request(&get, Some(Duration::from_secs(2)));
        assert_eq!(first_release_reads::<Request>(&bytes), Some(get));
        for response in [
            Response::Ack,
            Response::Replica { siblings: None },
            Response::Error {
                kind: ErrorKind::Unavailable,
                message: "no".into(),
            },
        ] {
            assert_eq!(
                first_release_reads::<Response>(&encode(&response)),
                Some(response)
            );
        }
        let scan = Request::ReplicaScan { after: 1, upto: 2 };
        let chunk = Response::Chunk {
            entries: vec![],
            last: true,
        };
        let unsupported = Response::Error {
            kind: ErrorKind::Unsupported,
            message: "older".into(),
        };
        assert_eq!(scan.since(), 2);
        assert!(first_release_reads::<Request>(&encode_request(&scan, None)).is_none());
        assert_eq!((chunk.since(), unsupported.since()), (2, 2));
        assert_eq!(decode::<Response>(&encode(&chunk)).unwrap(), chunk);
    }
}
