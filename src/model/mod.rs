//! The data model: what keys, versions and the ring are, shared by nodes and clients alike. No
//! I/O, and nothing of the other layers.
//!
//! - [`ring`]: the consistent-hash ring (MD5 tokens, virtual nodes, preference lists);
//!   [`placement`]: a key's primaries and the fallbacks after them.
//! - [`version`]: dotted version vectors and siblings; [`actor_name`]: the names in their
//!   clocks (and the rules of a node id), kept inline.
//! - [`context`]: the causal context tokens nodes seal with the cluster secret.
//! - [`layout`]: the versioned cluster layout (members, tokens, removed ids) and the
//!   transition between two live versions.

pub mod actor_name;
pub mod context;
pub mod layout;
pub mod placement;
pub mod ring;
pub mod version;
