//! What a node keeps in its engine and its directory.
//!
//! - [`replica`]: a key's siblings stored in the engine, merged on every write by one writer
//!   thread (group commit, paced fsyncs).
//! - [`hints`]: hints held for replicas that missed writes (durable, bounded per target).
//! - [`layout`]: the layout history and the acceptor's state, kept in one durable file.
//! - [`lease`]: the durable bound above every dot counter the node hands out.
//! - [`keyspace`]: the engine's keys: data keys ordered by ring token, hints, node metadata.
//! - [`migration`]: opening a data directory at this build's format, migrating older ones.

pub mod hints;
pub mod keyspace;
pub mod layout;
pub mod lease;
pub mod migration;
pub mod replica;
