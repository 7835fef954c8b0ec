//! Fuzz targets for every decoder of bytes that a peer or a disk hands kvctl, each held to a
//! bound on the heap it may take.
//!
//! # Layout
//! - [`proto`]: requests and responses with their envelope, the gossip members inside them,
//!   and the framed chunks of a bulk transfer.
//! - [`version`]: encoded siblings and vector clocks; [`context`]: causal context tokens.
//! - [`wal`]: WAL segments and write batches; [`table`]: table blocks, footers and bloom
//!   filters; [`manifest`]: manifest entries and block index values in LMDB.
//! - [`alloc_counter`]: the counting global allocator; [`allowance`]: the bound a decode is
//!   held to; [`cbor`]: hand-written CBOR for the targets and tests; [`seeds`]: the seed
//!   corpus, made from real encodings.
//!
//! Each target is a function of the fuzzer's bytes that panics when a decoder breaks a
//! promise: a panic of its own, an allocation over its allowance, a round trip that changes
//! what it decoded. [`TARGETS`] lists them by name: the fuzzer's harness (`fuzz/libfuzzer/`)
//! runs one per binary, and `tests/targets.rs` runs every one over its corpus and random
//! inputs. `docs/testing.md` says how to run them.

pub mod alloc_counter;
pub mod allowance;
pub mod cbor;
pub mod context;
pub mod manifest;
pub mod proto;
pub mod seeds;
pub mod table;
pub mod version;
pub mod wal;

/// A fuzz target: decodes the fuzzer's bytes, panicking when a promise is broken.
pub type Target = fn(&[u8]);

/// Every target, by its name (the name of its binary and of its corpus directory).
pub const TARGETS: &[(&str, Target)] = &[
    ("proto_request", proto::proto_request),
    ("proto_response", proto::proto_response),
    ("proto_members", proto::proto_members),
    ("proto_chunks", proto::proto_chunks),
    ("siblings", version::siblings),
    ("vclock", version::vclock),
    ("context_token", context::context_token),
    ("wal", wal::wal),
    ("table_block", table::table_block),
    ("table_tail", table::table_tail),
    ("manifest", manifest::manifest),
];

/// The target named `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|&(_, t)| t)
}
