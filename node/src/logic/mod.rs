//! The I/O-free cores: protocol logic as state machines that are given the time and the
//! replies, and say what to do next. Nothing here imports tokio or quinn, so a deterministic
//! simulator can drive them as the services do.
//!
//! - [`commit`]: committing a layout version at one point (single-decree Paxos per version
//!   slot among the members of the version before it).
//! - [`coordinator`]: gets and puts (which replicas to ask, counting toward the level,
//!   merging, read repair, forwarding); [`quorum`]: counting replies toward a level.
//! - [`membership`]: gossip membership (merging views, choosing whom to gossip with);
//!   [`failure_detector`]: phi accrual.
//! - [`layouts`]: the live layout versions and the transition rules (write sets, read
//!   version, retiring, dropping data).
//! - [`handoff`]: replaying a target's hints, paced and bounded.
//! - [`repair`]: repairing a token range across its replicas; [`merkle`]: a range's tree.
//! - [`pull`]: pulling a range into a new layout version from a write quorum of its old
//!   replicas, resumable from its saved progress.
//! - [`pacer`]: pacing the replica writer's fsyncs (a token bucket).
//! - [`tombstones`]: when a delete's tombstone may be removed.

pub mod commit;
pub mod coordinator;
pub mod failure_detector;
pub mod handoff;
pub mod layouts;
pub mod membership;
pub mod merkle;
pub mod pacer;
pub mod pull;
pub mod quorum;
pub mod repair;
pub mod tombstones;

/// Largest encoding of one key's stored versions (all siblings with their clocks): it must fit
/// in a message, or the key could no longer be read from another replica. One 16 MiB value
/// fits; concurrent writes beyond this are refused with a clear error.
pub const STORED_VERSIONS_BYTES_MAX: usize = kvctl::wire::proto::MESSAGE_BYTES_MAX - (512 << 10);
