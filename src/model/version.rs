//! Versions of values: vector clocks, dotted versions, siblings and the opaque causal context.
//!
//! Every stored value carries a [`Version`]: a vector clock ([`VClock`]), the write's own event
//! (its [`Dot`]), a wall-clock timestamp and the value itself (`None` for a tombstone, that is a
//! versioned delete). The versions of one key that no other version supersedes are kept side by
//! side as [`Siblings`], like Riak's siblings.
//!
//! # Reads and writes
//!
//! A get returns the live values of the siblings together with their causal context
//! ([`Siblings::context`]), handed to clients as an opaque token the nodes seal
//! ([`crate::model::context`]). A put
//! (or delete) sends that token back; the coordinating node builds the new version with
//! [`new_version_against`] and every replica merges it into what it stores with
//! [`Siblings::merge`]. The new version then supersedes exactly the versions the get saw, and
//! becomes a sibling of anything written concurrently.
//!
//! # Why versions carry a dot
//!
//! With plain vector clocks, two writes without context coordinated by the same node A both
//! get the clock `{A: 1}`, or the second gets `{A: 2}` if the coordinator bumps its counter past
//! what it stores; either way the second write silently replaces the first although its client
//! never saw it. Riak's answer before dotted version vectors was to keep one clock for the
//! whole sibling set, which makes the sets grow without bound ("sibling explosion").
//!
//! kvctl uses dotted versions instead (Preguiça et al., "Dotted Version Vectors"). The
//! coordinator gives the write a fresh event of its own, the dot `A:n` with `n` above every
//! counter of A it has seen in the context and in everything it stores, and records how far the
//! client's context reached for A (`seen`). The version's causal history is then: the events in
//! its clock for the other nodes, A's events `1..=seen`, and the single event `A:n`; the events
//! of A between `seen` and `n` are writes this version did not see. A version supersedes another
//! only when it holds the other's whole history ([`Version::descends`]), so a second write
//! without context (`seen = 0`, dot `A:2`) does not supersede the first (dot `A:1`): they become
//! siblings, as they must.
//!
//! # Limits of the scheme
//!
//! - The context of a get is summarised as a vector clock, which cannot express gaps. If a
//!   replica misses a write `A:1` but holds a later concurrent write `A:2`, a get served only by
//!   that replica returns `{A: 2}` and a put with that context supersedes `A:1` unseen. Quorum
//!   reads that merge several replicas make this unlikely; the full fix would be a dotted
//!   version vector set in the token.
//! - The coordinator must be a replica of the key and hold its own earlier writes since it last
//!   started, or it may reuse a dot; two versions with the same history are deduplicated (one
//!   is kept). Writes from before its start are covered by the `counter_floor` of
//!   [`new_version_against`], which a node takes from a durable lease.
//! - Pruning ([`VClock::prune`]) drops the oldest entries of a clock to bound its size. A pruned
//!   version never loses a concurrent write, since it still carries its fresh dot, but it may
//!   fail to supersede versions it did see, which then show up as extra siblings.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::actor_name::ActorName;

/// The most siblings a key may hold before writes to it are refused.
pub const SIBLINGS_MAX: usize = 64;

/// The most entries a vector clock keeps; older entries are pruned past this.
pub const CLOCK_ENTRIES_MAX: usize = 16;

/// The format byte that starts [`Siblings::encode`]'s output when no version carries a write
/// id (what nodes of earlier releases read).
pub const SIBLINGS_FORMAT: u8 = 2;

/// The format byte of siblings of which some version carries a write id: format 2 with, after
/// each version's value, a tag byte (0: none, 1: an id of 16 bytes, little-endian follows).
pub const SIBLINGS_FORMAT_WRITE_IDS: u8 = 3;

/// Largest counter a clock may carry: far beyond any real node's writes, far below
/// `u64::MAX`, where new dots would saturate and collide.
pub const COUNTER_MAX: u64 = 1 << 62;

/// The longest actor name a clock or dot may carry: a node id (at most
/// [`crate::model::actor_name::NODE_ID_BYTES_MAX`] bytes), `#` and its lease's 16 hex digits.
pub const ACTOR_BYTES_MAX: usize = crate::model::actor_name::NODE_ID_BYTES_MAX + 17;

/// What can go wrong with versions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// A key holds more concurrent versions than allowed.
    #[error(
        "key has {count} siblings, over the limit of {max}; read it and write back a resolved value with its context"
    )]
    TooManySiblings { count: usize, max: usize },

    /// A causal context token sent by a client is not one this store handed out.
    #[error("bad causal context token: {reason}")]
    BadContext { reason: String },

    /// Stored siblings could not be decoded.
    #[error("bad encoding of stored versions: {reason}")]
    BadEncoding { reason: String },

    /// Versions sent by a peer that no node makes (see [`Siblings::check_sent`]).
    #[error("versions no node makes: {reason}")]
    Implausible { reason: String },

    /// A replica's merge trimmed away the very versions a write sent (see
    /// [`Siblings::trim`]): the write is not stored there.
    #[error(
        "the key holds {max} siblings, and this write's version is the oldest of them: it was \
         trimmed away, not stored; read the key and write back a resolved value with its context"
    )]
    Trimmed { max: usize },
}

/// One node's entry in a vector clock.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct ClockEntry {
    /// How many events of the node the clock has seen.
    pub counter: u64,
    /// The wall-clock time of the node's last increment, in milliseconds since the Unix epoch;
    /// pruning drops the entries with the oldest timestamps first.
    pub timestamp_ms: u64,
}

/// A vector clock: for each node id, how many of its events have been seen.
///
/// A node without an entry (or with counter 0) has had none of its events seen. Entries are
/// kept in a `BTreeMap` so that iteration, encoding and comparisons are deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct VClock {
    entries: BTreeMap<ActorName, ClockEntry>,
}

impl VClock {
    /// Returns an empty clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Returns the number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Returns true when the clock has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Returns the counter of a node, 0 when it has no entry.
    pub fn counter(&self, node: &str) -> u64 {
        self.entries.get(node).map_or(0, |e| e.counter)
    }

    /// Returns the entry of a node, if any.
    pub fn entry(&self, node: &str) -> Option<&ClockEntry> {
        self.entries.get(node)
    }

    /// Iterates over the entries in node id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ClockEntry)> {
        self.entries.iter().map(|(n, e)| (n.as_str(), e))
    }

    /// Counts one more event of `node`, stamped with the wall clock `now_ms`.
    pub fn increment(&mut self, node: &str, now_ms: u64) {
        let entry = self.entries.entry(ActorName::new(node)).or_default();
        entry.counter = entry.counter.saturating_add(1);
        entry.timestamp_ms = now_ms;
    }

    /// Returns the pointwise maximum of both clocks. Each entry comes from the clock with the
    /// higher counter; on equal counters the later timestamp wins, so merge is commutative.
    pub fn merge(&self, other: &VClock) -> VClock {
        let mut merged = self.clone();
        merged.merge_from(other);
        merged
    }

    /// Merges `other` into this clock, as [`VClock::merge`] does, without copying this one
    /// (node ids are copied only for entries this clock lacks).
    pub fn merge_from(&mut self, other: &VClock) {
        for (node, entry) in &other.entries {
            match self.entries.get_mut(node) {
                Some(e) => *e = (*e).max(*entry),
                None => {
                    self.entries.insert(node.clone(), *entry);
                }
            }
        }
    }

    /// Returns true when this clock has seen everything `other` has (pointwise `>=`).
    pub fn descends(&self, other: &VClock) -> bool {
        other
            .entries
            .iter()
            .all(|(node, e)| self.counter(node) >= e.counter)
    }

    /// Returns true when neither clock descends the other.
    pub fn concurrent(&self, other: &VClock) -> bool {
        !self.descends(other) && !other.descends(self)
    }

    /// Drops the entries with the oldest timestamps (ties broken by node id) until at most
    /// `max_entries` remain.
    pub fn prune(&mut self, max_entries: usize) {
        self.prune_keeping(max_entries, None);
    }

    /// Prunes like [`VClock::prune`] but never drops the entry of `keep`.
    fn prune_keeping(&mut self, max_entries: usize, keep: Option<&str>) {
        if self.entries.len() <= max_entries {
            return;
        }
        let mut by_age: Vec<(u64, ActorName)> = self
            .entries
            .iter()
            .filter(|(node, _)| Some(node.as_str()) != keep)
            .map(|(node, e)| (e.timestamp_ms, node.clone()))
            .collect();
        by_age.sort();
        let excess = self.entries.len() - max_entries;
        for (_, node) in by_age.into_iter().take(excess) {
            self.entries.remove(&node);
        }
    }

    /// Compares two clocks entry by entry; a total order used only to make results
    /// deterministic, unrelated to causality.
    fn total_cmp(&self, other: &VClock) -> Ordering {
        self.entries.iter().cmp(other.entries.iter())
    }

    /// Encodes the clock as CBOR (what a context token seals, see [`crate::model::context`]).
    pub fn encode(&self) -> Vec<u8> {
        let mut cbor = Vec::new();
        ciborium::into_writer(self, &mut cbor).expect("a vector clock always encodes to CBOR");
        cbor
    }

    /// Decodes a clock made by [`VClock::encode`], refusing anything no node makes: trailing
    /// bytes, empty node ids, zero counters, counters above [`COUNTER_MAX`].
    pub fn decode(bytes: &[u8]) -> Result<VClock, String> {
        let clock: VClock = decode_cbor(bytes)?;
        for (node, entry) in &clock.entries {
            if node.is_empty() {
                return Err("the clock has an entry with an empty node id".into());
            }
            if entry.counter == 0 {
                return Err(format!("the clock entry of node {node:?} has counter 0"));
            }
            // A counter near the top would pin the node's next dots (they saturate).
            if entry.counter > COUNTER_MAX {
                return Err(format!(
                    "the clock entry of node {node:?} has counter {} (at most {COUNTER_MAX})",
                    entry.counter
                ));
            }
        }
        Ok(clock)
    }
}

/// The event that created a version: the `counter`-th event of `node`, written by a client
/// whose context had seen `node`'s events up to `seen` (so `seen < counter`).
///
/// The events of `node` after `seen` and before `counter` are concurrent writes the version
/// did not see; see the module documentation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Dot {
    /// The coordinating node.
    pub node: ActorName,
    /// The node's counter for this event.
    pub counter: u64,
    /// The node's counter in the writer's causal context.
    pub seen: u64,
}

/// One version of a value.
///
/// Its causal history is: the events `1..=clock[m]` of every node `m` other than `dot.node`,
/// the events `1..=dot.seen` of `dot.node`, and the event `dot.node:dot.counter`. The clock's
/// own entry for `dot.node` holds `dot.counter`, so that clocks merged into a context cover the
/// version, but it does not count towards the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The version's vector clock: the writer's context with the dot's event added.
    pub clock: VClock,
    /// The write's own event.
    pub dot: Dot,
    /// The wall-clock time of the write, in milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// The value, or `None` for a tombstone (a versioned delete).
    #[serde(with = "opt_bytes")]
    pub value: Option<Vec<u8>>,
    /// The id the client chose for the logical write (the same on every retry of it), if it
    /// sent one. Two versions with one write id and one value are one write applied twice
    /// (retried through another coordinator): [`Siblings::values`] shows it once.
    #[serde(default)]
    pub write_id: Option<u128>,
}

impl Version {
    /// Returns true when the version is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// Returns how far the history holds a node's events without gaps (events `1..=k`).
    fn prefix(&self, node: &str) -> u64 {
        if node == self.dot.node.as_str() {
            self.dot.seen
        } else {
            self.clock.counter(node)
        }
    }

    /// Returns true when the history holds the event `node:k` (event 0 is no event).
    fn has_event(&self, node: &str, k: u64) -> bool {
        k == 0
            || k <= self.prefix(node)
            || (node == self.dot.node.as_str() && k == self.dot.counter)
    }

    /// Returns true when the history holds all of the events `node:1..=k`.
    fn has_prefix(&self, node: &str, k: u64) -> bool {
        let p = self.prefix(node);
        k <= p || (node == self.dot.node.as_str() && k == self.dot.counter && k - 1 == p)
    }

    /// Returns true when this version's causal history holds all of `other`'s: this version
    /// was written by someone who had seen `other` (or the two have the same history).
    ///
    /// Unlike [`VClock::descends`] on the clocks, this respects dots: `{A: 2}` written without
    /// context does not descend `{A: 1}`.
    pub fn descends(&self, other: &Version) -> bool {
        let past_covered = other
            .clock
            .iter()
            .filter(|(node, _)| *node != other.dot.node.as_str())
            .all(|(node, e)| self.has_prefix(node, e.counter));
        past_covered
            && self.has_prefix(&other.dot.node, other.dot.seen)
            && self.has_event(&other.dot.node, other.dot.counter)
    }

    /// Returns true when this version supersedes `other`: it descends it and their histories
    /// differ.
    pub fn dominates(&self, other: &Version) -> bool {
        self.descends(other) && !other.descends(self)
    }

    /// A total order over every field: timestamp, then clock, dot and value. Used for
    /// last-write-wins, for the canonical order of siblings and to pick one of two versions
    /// with the same history.
    fn total_cmp(&self, other: &Version) -> Ordering {
        self.timestamp_ms
            .cmp(&other.timestamp_ms)
            .then_with(|| self.clock.total_cmp(&other.clock))
            .then_with(|| self.dot.cmp(&other.dot))
            .then_with(|| self.value.cmp(&other.value))
            .then_with(|| self.write_id.cmp(&other.write_id))
    }

    /// Returns true when this version wins over `other` in a merge: it dominates it, or has
    /// the same history and is larger in the total order.
    fn beats(&self, other: &Version) -> bool {
        self.descends(other)
            && (!other.descends(self) || self.total_cmp(other) == Ordering::Greater)
    }
}

/// Builds the version of a write by `node` with causal context `context`, assuming `node`
/// stores no version of the key.
///
/// The clock is the context with `node`'s counter incremented, pruned to `clock_entries_max`
/// entries (never dropping `node`'s own). When `node` does store versions of the key, use
/// [`new_version_against`]: this function would reuse a counter, and a second write without
/// context at the same node would replace the first instead of becoming its sibling.
pub fn new_version(
    context: &VClock,
    node: &str,
    now_ms: u64,
    value: Option<Vec<u8>>,
    clock_entries_max: usize,
) -> Version {
    new_version_against(
        &Siblings::default(),
        context,
        node,
        0,
        now_ms,
        value,
        clock_entries_max,
    )
}

/// Builds the version of a write coordinated by `node`, which stores `stored` for the key,
/// with the causal context `context` sent by the client (empty for a write without context).
///
/// The new version's dot is `node:n` with `n` one above the highest counter of `node` in the
/// context and in every stored sibling, and above `counter_floor` (a bound on every counter
/// `node` handed out before it last started, which it may no longer store), so it is an event
/// no other version has; the dot
/// records the context's counter for `node` as `seen`. The clock keeps the other entries of the
/// context, so the version supersedes exactly what the client's get saw, and nothing written
/// concurrently, even at the same node (see the module documentation). The clock is pruned to
/// `clock_entries_max` entries (at least 1), never dropping `node`'s own entry.
pub fn new_version_against(
    stored: &Siblings,
    context: &VClock,
    node: &str,
    counter_floor: u64,
    now_ms: u64,
    value: Option<Vec<u8>>,
    clock_entries_max: usize,
) -> Version {
    let seen = context.counter(node);
    let stored_max = stored
        .versions
        .iter()
        .map(|v| {
            let own = if v.dot.node == node { v.dot.counter } else { 0 };
            v.clock.counter(node).max(own)
        })
        .max()
        .unwrap_or(0);
    let counter = seen.max(stored_max).max(counter_floor).saturating_add(1);
    let mut clock = context.clone();
    clock.entries.insert(
        ActorName::new(node),
        ClockEntry {
            counter,
            timestamp_ms: now_ms,
        },
    );
    clock.prune_keeping(clock_entries_max.max(1), Some(node));
    Version {
        clock,
        dot: Dot {
            node: ActorName::new(node),
            counter,
            seen,
        },
        timestamp_ms: now_ms,
        value,
        write_id: None,
    }
}

/// The concurrent versions of one key: no version descends another.
///
/// Siblings built by this module ([`Siblings::from_versions`], [`Siblings::merge`],
/// `From<Version>`, [`Siblings::decode`] of such) are canonical: no version is dominated by
/// another, no two versions share a causal history, and the versions are sorted by a total order
/// (timestamp, clock, dot, value). On canonical siblings, [`Siblings::merge`] obeys the laws
/// that let replicas exchange versions in any order, any number of times:
///
/// - commutative: `a.merge(&b) == b.merge(&a)`;
/// - associative: `a.merge(&b).merge(&c) == a.merge(&b.merge(&c))`;
/// - idempotent: `a.merge(&a) == a`, and the empty set is its identity.
///
/// They hold because a merge keeps the maximal elements of the union under a strict partial
/// order (dominance, with ties between equal histories broken by the total order), then sorts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Siblings {
    /// The versions, in canonical order.
    pub versions: Vec<Version>,
}

impl From<Version> for Siblings {
    fn from(version: Version) -> Self {
        Siblings {
            versions: vec![version],
        }
    }
}

impl Siblings {
    /// Returns the canonical siblings of any collection of versions: those no other version
    /// supersedes, one per causal history, in canonical order.
    pub fn from_versions(versions: impl IntoIterator<Item = Version>) -> Siblings {
        let mut all: Vec<Version> = versions.into_iter().collect();
        if all.len() > 1 {
            all.sort_by(Version::total_cmp);
            all.dedup();
            let beaten: Vec<bool> = all.iter().map(|v| all.iter().any(|w| w.beats(v))).collect();
            let mut beaten = beaten.into_iter();
            all.retain(|_| !beaten.next().expect("one flag per version"));
        }
        Siblings { versions: all }
    }

    /// Returns the number of versions.
    pub fn len(&self) -> usize {
        self.versions.len()
    }

    /// Returns true when there are no versions (the key was never written, or all were lost).
    pub fn is_empty(&self) -> bool {
        self.versions.is_empty()
    }

    /// Merges two sets of siblings: the union, without the versions another supersedes and
    /// with one version per causal history, in canonical order. See the laws on [`Siblings`].
    pub fn merge(&self, other: &Siblings) -> Siblings {
        Siblings::from_versions(self.versions.iter().chain(&other.versions).cloned())
    }

    /// [`Siblings::merge`] of siblings the caller no longer needs: the versions are moved, not
    /// copied (values included).
    pub fn merge_owned(self, other: Siblings) -> Siblings {
        let mut all = self.versions;
        all.extend(other.versions);
        Siblings::from_versions(all)
    }

    /// Returns the causal context of the siblings: the merge of their clocks. A get returns it
    /// so that the next put supersedes what the get saw.
    pub fn context(&self) -> VClock {
        self.versions.iter().fold(VClock::new(), |mut acc, v| {
            acc.merge_from(&v.clock);
            acc
        })
    }

    /// Returns true when the key has no live value: no versions, or tombstones only.
    pub fn is_deleted(&self) -> bool {
        self.versions.iter().all(Version::is_tombstone)
    }

    /// Iterates over the live values (tombstones skipped), in canonical order, one per logical
    /// write: a version with the write id and value of an earlier one is the same write
    /// applied twice (a client's retry through another coordinator) and is skipped. Both stay
    /// stored, so the merge laws are untouched, and both are covered by [`Siblings::context`],
    /// so a put with that context supersedes both.
    pub fn values(&self) -> impl Iterator<Item = &[u8]> {
        self.versions
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.repeats_earlier(*i))
            .filter_map(|(_, v)| v.value.as_deref())
    }

    /// The values [`Siblings::values`] shows, moved out (for a reply, say).
    pub fn into_values(self) -> Vec<Vec<u8>> {
        let shown: Vec<bool> = (0..self.versions.len())
            .map(|i| !self.repeats_earlier(i))
            .collect();
        self.versions
            .into_iter()
            .zip(shown)
            .filter_map(|(v, shown)| v.value.filter(|_| shown))
            .collect()
    }

    /// Whether version `i` is a write applied twice: an earlier version has its write id and
    /// value.
    fn repeats_earlier(&self, i: usize) -> bool {
        let v = &self.versions[i];
        v.write_id.is_some()
            && self.versions[..i]
                .iter()
                .any(|w| w.write_id == v.write_id && w.value == v.value)
    }

    /// Resolves the siblings by last write wins: keeps only the version with the highest
    /// timestamp, ties broken deterministically by clock, dot and value.
    ///
    /// The winner does not supersede the losers causally: to make the resolution stick, write
    /// its value back with [`Siblings::context`] as the context.
    pub fn resolve_lww(&self) -> Siblings {
        Siblings {
            versions: self
                .versions
                .iter()
                .max_by(|a, b| a.total_cmp(b))
                .cloned()
                .into_iter()
                .collect(),
        }
    }

    /// Checks that the key holds at most `siblings_max` versions.
    pub fn check(&self, siblings_max: usize) -> Result<(), VersionError> {
        if self.versions.len() > siblings_max {
            return Err(VersionError::TooManySiblings {
                count: self.versions.len(),
                max: siblings_max,
            });
        }
        Ok(())
    }

    /// Checks versions a peer sent (a replica write, a read reply, a scan) against what nodes
    /// make, as [`VClock::decode`] checks a client's context: at most `siblings_max`
    /// versions; in each, at most [`CLOCK_ENTRIES_MAX`] clock entries, actor names of 1 to
    /// [`ACTOR_BYTES_MAX`] bytes, counters of 1 to [`COUNTER_MAX`], a dot above what it has
    /// seen and its clock's entry for its own node equal to the dot. Without these bounds a
    /// version counting to `u64::MAX` would dominate every later write of the key (new dots
    /// saturate there).
    pub fn check_sent(&self, siblings_max: usize) -> Result<(), VersionError> {
        self.check(siblings_max)?;
        let bad = |reason: String| Err(VersionError::Implausible { reason });
        let actor_ok = |name: &str| !name.is_empty() && name.len() <= ACTOR_BYTES_MAX;
        let counter_ok = |c: u64| (1..=COUNTER_MAX).contains(&c);
        for v in &self.versions {
            let dot = &v.dot;
            if !actor_ok(&dot.node) || !counter_ok(dot.counter) || dot.seen >= dot.counter {
                return bad(format!(
                    "a dot {}:{} (seen {}): names are 1 to {ACTOR_BYTES_MAX} bytes, counters 1 \
                     to {COUNTER_MAX}, above what they have seen",
                    dot.node, dot.counter, dot.seen
                ));
            }
            if v.clock.entries.len() > CLOCK_ENTRIES_MAX {
                return bad(format!(
                    "a clock of {} entries (at most {CLOCK_ENTRIES_MAX})",
                    v.clock.entries.len()
                ));
            }
            if let Some((node, e)) = v
                .clock
                .entries
                .iter()
                .find(|(node, e)| !actor_ok(node) || !counter_ok(e.counter))
            {
                return bad(format!(
                    "a clock entry {node}:{} (names of 1 to {ACTOR_BYTES_MAX} bytes, counters \
                     1 to {COUNTER_MAX})",
                    e.counter
                ));
            }
            if v.clock.counter(&dot.node) != dot.counter {
                return bad(format!(
                    "the dot {}:{} is not its clock's entry for {} ({})",
                    dot.node,
                    dot.counter,
                    dot.node,
                    v.clock.counter(&dot.node)
                ));
            }
        }
        Ok(())
    }

    /// Bounds the siblings to at most `siblings_max` versions and `bytes_max` bytes encoded,
    /// keeping the newest in the canonical (total) order and always the newest one. Returns how
    /// many versions it dropped.
    ///
    /// Replicas trim every merge instead of refusing it, so a limit bounds a key without
    /// stopping convergence: the trim depends only on the versions, so replicas that have
    /// exchanged their versions keep the same ones. Dropping a version loses that write; a
    /// key only gets there when clients keep writing it without contexts.
    pub fn trim(&mut self, siblings_max: usize, bytes_max: usize) -> usize {
        let keep_max = siblings_max.max(1);
        // In format 3 a version without a write id still takes its tag byte (counted here
        // while any version has one: an over-estimate once those are dropped).
        let ids = self.versions.iter().any(|v| v.write_id.is_some());
        let len = |v: &Version| v.encoded_len() + usize::from(ids && v.write_id.is_none());
        let mut bytes = 5 + self.versions.iter().map(len).sum::<usize>();
        let mut drop = 0;
        while self.versions.len() - drop > keep_max
            || (bytes > bytes_max && self.versions.len() - drop > 1)
        {
            bytes -= len(&self.versions[drop]);
            drop += 1;
        }
        self.versions.drain(..drop);
        drop
    }

    /// Encodes the siblings for storage and replication: the format byte [`SIBLINGS_FORMAT`],
    /// then a compact little-endian layout (see `docs/protocol.md`). Every replica read and
    /// write decodes and encodes siblings, so this is a hand-written format rather than CBOR.
    pub fn encode(&self) -> Vec<u8> {
        // Exactly the encoding's size (a version without a write id may take one tag byte
        // more than its `encoded_len`), so the buffer never grows.
        let mut out = Vec::with_capacity(
            5 + self
                .versions
                .iter()
                .map(|v| v.encoded_len() + 1)
                .sum::<usize>(),
        );
        let write_ids = self.versions.iter().any(|v| v.write_id.is_some());
        out.push(if write_ids {
            SIBLINGS_FORMAT_WRITE_IDS
        } else {
            SIBLINGS_FORMAT
        });
        put_u32(&mut out, self.versions.len() as u32);
        for v in &self.versions {
            put_u32(&mut out, v.clock.entries.len() as u32);
            for (node, e) in &v.clock.entries {
                put_str(&mut out, node);
                out.extend_from_slice(&e.counter.to_le_bytes());
                out.extend_from_slice(&e.timestamp_ms.to_le_bytes());
            }
            put_str(&mut out, &v.dot.node);
            out.extend_from_slice(&v.dot.counter.to_le_bytes());
            out.extend_from_slice(&v.dot.seen.to_le_bytes());
            out.extend_from_slice(&v.timestamp_ms.to_le_bytes());
            match &v.value {
                None => out.push(0),
                Some(value) => {
                    out.push(1);
                    put_u32(&mut out, value.len() as u32);
                    out.extend_from_slice(value);
                }
            }
            if write_ids {
                match v.write_id {
                    None => out.push(0),
                    Some(id) => {
                        out.push(1);
                        out.extend_from_slice(&id.to_le_bytes());
                    }
                }
            }
        }
        out
    }

    /// Decodes siblings made by [`Siblings::encode`]; any other input is an error, never a
    /// panic. The result is returned as stored, not re-canonicalized.
    pub fn decode(bytes: &[u8]) -> Result<Siblings, VersionError> {
        let bad = |reason: String| VersionError::BadEncoding { reason };
        let (&format, body) = bytes
            .split_first()
            .ok_or_else(|| bad("the input is empty".into()))?;
        if format != SIBLINGS_FORMAT && format != SIBLINGS_FORMAT_WRITE_IDS {
            return Err(bad(format!(
                "unknown format byte {format} (expected {SIBLINGS_FORMAT} or \
                 {SIBLINGS_FORMAT_WRITE_IDS})"
            )));
        }
        let write_ids = format == SIBLINGS_FORMAT_WRITE_IDS;
        let mut r = Reader(body);
        let versions = (|| {
            let count = r.u32()? as usize;
            // Every version takes at least 33 bytes (an empty clock, an empty dot node, no value:
            // 4 + 4 + 16 + 8 + 1): a count can't promise more than the input.
            if count > r.0.len() / 33 {
                return Err(format!("{count} versions can't fit in {} bytes", r.0.len()));
            }
            let mut versions = Vec::with_capacity(count);
            for _ in 0..count {
                let entries = r.u32()? as usize;
                let mut clock = VClock::new();
                for _ in 0..entries {
                    let node = r.string()?;
                    let entry = ClockEntry {
                        counter: r.u64()?,
                        timestamp_ms: r.u64()?,
                    };
                    clock.entries.insert(node, entry);
                }
                let dot = Dot {
                    node: r.string()?,
                    counter: r.u64()?,
                    seen: r.u64()?,
                };
                let timestamp_ms = r.u64()?;
                let value = match r.take(1)?[0] {
                    0 => None,
                    1 => {
                        let len = r.u32()? as usize;
                        Some(r.take(len)?.to_vec())
                    }
                    tag => return Err(format!("unknown value tag {tag}")),
                };
                let write_id = if write_ids {
                    match r.take(1)?[0] {
                        0 => None,
                        1 => Some(u128::from_le_bytes(
                            r.take(16)?.try_into().expect("16 bytes"),
                        )),
                        tag => return Err(format!("unknown write id tag {tag}")),
                    }
                } else {
                    None
                };
                versions.push(Version {
                    clock,
                    dot,
                    timestamp_ms,
                    value,
                    write_id,
                });
            }
            if !r.0.is_empty() {
                return Err(format!("{} trailing bytes", r.0.len()));
            }
            Ok(versions)
        })()
        .map_err(|reason| bad(format!("not a set of siblings: {reason}")))?;
        Ok(Siblings { versions })
    }
}

impl Version {
    /// The bytes [`Siblings::encode`] writes for this version.
    fn encoded_len(&self) -> usize {
        let clock: usize = self.clock.entries.keys().map(|k| 4 + k.len() + 16).sum();
        let value = self.value.as_ref().map_or(0, |v| 4 + v.len());
        // A write id costs its tag and 16 bytes (a version without one in format 3 costs the
        // tag alone: see `trim`).
        let write_id = self.write_id.map_or(0, |_| 17);
        4 + clock + 4 + self.dot.node.len() + 16 + 8 + 1 + value + write_id
    }
}

fn put_u32(out: &mut Vec<u8>, n: u32) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_u32(out, s.len() as u32);
    out.extend_from_slice(s.as_bytes());
}

/// A bounds-checked reader over encoded siblings.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("needs {n} more bytes, {} left", self.0.len()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn string(&mut self) -> Result<ActorName, String> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?)
            .map(ActorName::new)
            .map_err(|_| "a node id is not UTF-8".to_string())
    }
}

/// Decodes one CBOR item that must span all of `bytes`.
fn decode_cbor<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut reader = bytes;
    let value = ciborium::from_reader(&mut reader).map_err(|e| e.to_string())?;
    if !reader.is_empty() {
        return Err(format!("{} trailing bytes", reader.len()));
    }
    Ok(value)
}

/// Serde support for `Option<Vec<u8>>` as a CBOR byte string (rather than an array of numbers).
mod opt_bytes {
    use super::fmt;
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::{Serialize, Serializer};

    struct Bytes<'a>(&'a [u8]);

    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }

    pub fn serialize<S: Serializer>(
        value: &Option<Vec<u8>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(bytes) => serializer.serialize_some(&Bytes(bytes)),
            None => serializer.serialize_none(),
        }
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a byte string")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // The length hint comes from the input, so it only bounds the first allocation.
            let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }

    struct OptVisitor;

    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<Vec<u8>>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a byte string or null")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_byte_buf(BytesVisitor).map(Some)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        d.deserialize_option(OptVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NODES: [&str; 3] = ["a", "b", "c"];

    /// A get followed by a put at `node`, the way a coordinator does it: the new version is
    /// built against what the node stores, then merged into it.
    fn put(
        stored: &Siblings,
        context: &VClock,
        node: &str,
        now_ms: u64,
        value: Option<&[u8]>,
    ) -> Siblings {
        let v = new_version_against(
            stored,
            context,
            node,
            0,
            now_ms,
            value.map(<[u8]>::to_vec),
            CLOCK_ENTRIES_MAX,
        );
        stored.merge(&Siblings::from(v))
    }

    fn clock(entries: &[(&str, u64, u64)]) -> VClock {
        let mut c = VClock::new();
        for &(node, counter, ts) in entries {
            for _ in 0..counter {
                c.increment(node, ts);
            }
        }
        c
    }

    fn sorted_values(s: &Siblings) -> Vec<&[u8]> {
        let mut v: Vec<&[u8]> = s.values().collect();
        v.sort();
        v
    }

    #[test]
    fn clock_increment_merge_descends() {
        let mut a = VClock::new();
        a.increment("a", 10);
        a.increment("a", 20);
        assert_eq!(a.counter("a"), 2);
        assert_eq!(a.entry("a").unwrap().timestamp_ms, 20);
        assert_eq!(a.counter("zzz"), 0);

        let b = clock(&[("a", 1, 5), ("b", 3, 7)]);
        let m = a.merge(&b);
        assert_eq!(m.counter("a"), 2);
        assert_eq!(m.entry("a").unwrap().timestamp_ms, 20);
        assert_eq!(m.counter("b"), 3);
        assert_eq!(m.entry("b").unwrap().timestamp_ms, 7);
        assert_eq!(m, b.merge(&a));

        assert!(m.descends(&a) && m.descends(&b));
        assert!(!a.descends(&b) && !b.descends(&a));
        assert!(a.concurrent(&b));
        assert!(!m.concurrent(&a));
        assert!(a.descends(&a) && a.descends(&VClock::new()));
        assert!(!VClock::new().descends(&a));
    }

    #[test]
    fn clock_merge_equal_counters_takes_later_timestamp() {
        let a = clock(&[("a", 1, 5)]);
        let b = clock(&[("a", 1, 9)]);
        assert_eq!(a.merge(&b).entry("a").unwrap().timestamp_ms, 9);
        assert_eq!(b.merge(&a).entry("a").unwrap().timestamp_ms, 9);
    }

    #[test]
    fn prune_drops_oldest_first() {
        let mut c = clock(&[("a", 1, 30), ("b", 4, 10), ("c", 2, 20), ("d", 1, 40)]);
        c.prune(4);
        assert_eq!(c.len(), 4);
        c.prune(2);
        let nodes: Vec<&str> = c.iter().map(|(n, _)| n).collect();
        assert_eq!(nodes, ["a", "d"]);
        c.prune(0);
        assert!(c.is_empty());
    }

    #[test]
    fn new_version_prunes_but_keeps_own_entry() {
        // The other entries carry timestamps from the future (clock skew): the own entry must
        // still survive pruning.
        let context = clock(&[("b", 1, 100), ("c", 1, 200), ("d", 1, 300)]);
        let v = new_version(&context, "a", 50, Some(b"x".to_vec()), 2);
        assert_eq!(v.clock.len(), 2);
        assert_eq!(v.clock.counter("a"), 1);
        assert_eq!(v.clock.counter("d"), 1);
        let v = new_version(&context, "a", 50, None, 0);
        assert_eq!(v.clock.len(), 1);
        assert_eq!(v.clock.counter("a"), 1);
    }

    #[test]
    fn put_with_context_supersedes_put_without_becomes_sibling() {
        let s = put(&Siblings::default(), &VClock::new(), "a", 1, Some(b"v1"));
        assert_eq!(s.len(), 1);
        let ctx = s.context();

        // A write at another node without context is concurrent.
        let s2 = put(&s, &VClock::new(), "b", 2, Some(b"v2"));
        assert_eq!(sorted_values(&s2), [b"v1".as_slice(), b"v2"]);

        // A write with the context of the first get supersedes only what it saw.
        let s3 = put(&s2, &ctx, "b", 3, Some(b"v3"));
        assert_eq!(sorted_values(&s3), [b"v2".as_slice(), b"v3"]);

        // The plain new_version, on a fresh node, behaves the same.
        let v = new_version(&ctx, "c", 4, Some(b"v4".to_vec()), CLOCK_ENTRIES_MAX);
        let s4 = s.merge(&Siblings::from(v));
        assert_eq!(sorted_values(&s4), [b"v4".as_slice()]);
    }

    #[test]
    fn two_puts_without_context_at_same_node_are_siblings() {
        let s = put(&Siblings::default(), &VClock::new(), "a", 1, Some(b"v1"));
        let s = put(&s, &VClock::new(), "a", 2, Some(b"v2"));
        assert_eq!(s.len(), 2);
        assert_eq!(sorted_values(&s), [b"v1".as_slice(), b"v2"]);
        // Plain clocks would have said {a: 2} descends {a: 1}; the dots say otherwise.
        assert!(s.versions[1].clock.descends(&s.versions[0].clock));
        assert!(!s.versions[1].descends(&s.versions[0]));

        // Replicas that receive both versions in either order agree.
        let v1 = Siblings::from(s.versions[0].clone());
        let v2 = Siblings::from(s.versions[1].clone());
        assert_eq!(v1.merge(&v2), s);
        assert_eq!(v2.merge(&v1), s);

        // A put with the context of a get that saw both supersedes both.
        let ctx = s.context();
        let s = put(&s, &ctx, "a", 3, Some(b"v3"));
        assert_eq!(s.len(), 1);
        assert_eq!(sorted_values(&s), [b"v3".as_slice()]);

        // The same from another coordinator.
        let s1 = put(&Siblings::default(), &VClock::new(), "a", 1, Some(b"v1"));
        let s2 = put(&s1, &VClock::new(), "a", 2, Some(b"v2"));
        let s3 = put(&s2, &s2.context(), "b", 3, Some(b"v3"));
        assert_eq!(sorted_values(&s3), [b"v3".as_slice()]);
    }

    #[test]
    fn plain_new_version_at_same_node_reuses_the_dot() {
        // This is the classic problem new_version_against solves: without the stored versions
        // the second write gets the same history as the first and one of them is dropped.
        let v1 = new_version(&VClock::new(), "a", 1, Some(b"v1".to_vec()), 16);
        let v2 = new_version(&VClock::new(), "a", 2, Some(b"v2".to_vec()), 16);
        assert!(v1.descends(&v2) && v2.descends(&v1));
        assert_eq!(Siblings::from(v1).merge(&Siblings::from(v2)).len(), 1);
    }

    /// A coordinator that lost a write it had already sent out (a crash before its own copy was
    /// durable) must not hand that dot out again: dots above the counter floor stay distinct
    /// from everything handed out before, and a later context still supersedes both.
    #[test]
    fn counter_floor_keeps_dots_lost_by_the_coordinator_distinct() {
        let floor = 1 << 32;
        let lost = new_version_against(
            &Siblings::default(),
            &VClock::new(),
            "a",
            0,
            1,
            Some(b"lost".to_vec()),
            16,
        );
        // Restarted without `lost`, A writes again: same stored state, higher floor.
        let again = new_version_against(
            &Siblings::default(),
            &VClock::new(),
            "a",
            floor,
            2,
            Some(b"again".to_vec()),
            16,
        );
        assert_eq!(lost.dot.counter, 1);
        assert_eq!(again.dot.counter, floor + 1);
        let both = Siblings::from(lost).merge(&Siblings::from(again));
        assert_eq!(both.len(), 2, "siblings, not one write taken for the other");
        let next = put(&both, &both.context(), "a", 3, Some(b"next"));
        assert_eq!(sorted_values(&next), [b"next".as_slice()]);
    }

    #[test]
    fn delete_then_put_without_context() {
        let s = put(&Siblings::default(), &VClock::new(), "a", 1, Some(b"v1"));
        let s = put(&s, &VClock::new(), "a", 2, Some(b"v2"));

        // A delete with the context of a get supersedes everything the get saw.
        let s = put(&s, &s.context(), "a", 3, None);
        assert_eq!(s.len(), 1);
        assert!(s.versions[0].is_tombstone());
        assert!(s.is_deleted());
        assert_eq!(s.values().count(), 0);

        // A put without context after the delete is a sibling of the tombstone.
        let s = put(&s, &VClock::new(), "a", 4, Some(b"v4"));
        assert_eq!(s.len(), 2);
        assert!(!s.is_deleted());
        assert_eq!(s.values().collect::<Vec<_>>(), [b"v4".as_slice()]);

        // A put with the context of that get resolves both.
        let s = put(&s, &s.context(), "b", 5, Some(b"v5"));
        assert_eq!(s.len(), 1);
        assert_eq!(s.values().collect::<Vec<_>>(), [b"v5".as_slice()]);
    }

    #[test]
    fn empty_siblings() {
        let s = Siblings::default();
        assert!(s.is_empty() && s.is_deleted());
        assert!(s.context().is_empty());
        assert_eq!(s.resolve_lww(), s);
        assert_eq!(s.merge(&s), s);
    }

    #[test]
    fn equal_histories_keep_one_deterministically() {
        let v1 = new_version(&VClock::new(), "a", 5, Some(b"x".to_vec()), 16);
        let mut v2 = v1.clone();
        v2.value = Some(b"y".to_vec());
        let a = Siblings::from(v1.clone());
        let b = Siblings::from(v2.clone());
        assert_eq!(a.merge(&b), b);
        assert_eq!(b.merge(&a), b);
        let mut v3 = v1;
        v3.timestamp_ms = 6;
        assert_eq!(b.merge(&Siblings::from(v3.clone())).versions, [v3]);
    }

    #[test]
    fn lww_picks_latest_timestamp_then_tiebreaks() {
        let s = put(&Siblings::default(), &VClock::new(), "a", 10, Some(b"old"));
        let s = put(&s, &VClock::new(), "b", 30, Some(b"new"));
        let s = put(&s, &VClock::new(), "c", 20, None);
        assert_eq!(s.len(), 3);
        let w = s.resolve_lww();
        assert_eq!(w.len(), 1);
        assert_eq!(w.values().collect::<Vec<_>>(), [b"new".as_slice()]);

        // Equal timestamps: the result does not depend on the order of the versions.
        let s = put(&Siblings::default(), &VClock::new(), "a", 10, Some(b"x"));
        let s = put(&s, &VClock::new(), "b", 10, Some(b"y"));
        let mut reversed = s.clone();
        reversed.versions.reverse();
        assert_eq!(s.resolve_lww(), reversed.resolve_lww());
        assert_eq!(s.resolve_lww().versions[0].dot.node, "b");
    }

    #[test]
    fn check_bounds_siblings() {
        let mut s = Siblings::default();
        for (i, node) in ["n0", "n1", "n2", "n3"].into_iter().enumerate() {
            s = put(&s, &VClock::new(), node, i as u64, Some(b"v"));
        }
        assert_eq!(s.len(), 4);
        assert_eq!(s.check(4), Ok(()));
        assert_eq!(s.check(SIBLINGS_MAX), Ok(()));
        let err = s.check(3).unwrap_err();
        assert_eq!(err, VersionError::TooManySiblings { count: 4, max: 3 });
        assert!(err.to_string().contains("4 siblings"));
    }

    /// With write ids on some versions (format 3), a trim to any byte bound leaves an
    /// encoding within it: the tag byte of a version without an id is counted too.
    #[test]
    fn trim_counts_the_write_id_tags() {
        let mut s = Siblings::default();
        for i in 0..8u64 {
            let mut v = new_version(
                &VClock::new(),
                &format!("n{i}"),
                100 + i,
                Some(vec![1; 50]),
                16,
            );
            v.write_id = (i == 7).then_some(42);
            s = s.merge(&Siblings::from(v));
        }
        let full = s.encode().len();
        for bound in (full - 200..full).step_by(7) {
            let mut t = s.clone();
            t.trim(SIBLINGS_MAX, bound);
            assert!(t.encode().len() <= bound, "{} > {bound}", t.encode().len());
        }
    }

    /// Trimming keeps the newest versions within both bounds, counts what it drops, never
    /// drops the last version, and gives the same result whatever order replicas merged in.
    #[test]
    fn trim_keeps_the_newest_within_the_bounds() {
        let mut s = Siblings::default();
        for i in 0..10u64 {
            s = put(
                &s,
                &VClock::new(),
                &format!("n{i}"),
                100 + i,
                Some(&[b'v'; 100]),
            );
        }
        assert_eq!(s.len(), 10);
        let size = |s: &Siblings| s.encode().len();
        for v in &s.versions {
            assert_eq!(
                Siblings::from(v.clone()).encode().len(),
                5 + v.encoded_len()
            );
        }
        let mut a = s.clone();
        assert_eq!(a.trim(4, usize::MAX), 6);
        let stamps: Vec<u64> = a.versions.iter().map(|v| v.timestamp_ms).collect();
        assert_eq!(stamps, [106, 107, 108, 109]);

        // The byte bound: as many of the newest as fit.
        let one = size(&Siblings::from(s.versions[0].clone())) - 5;
        let mut b = s.clone();
        assert_eq!(b.trim(SIBLINGS_MAX, 5 + 3 * one), 7);
        assert_eq!(b.len(), 3);
        assert!(size(&b) <= 5 + 3 * one);
        assert_eq!(b.versions[0].timestamp_ms, 107);

        // Within bounds nothing goes; the newest stays even when alone over the bound.
        let mut c = s.clone();
        assert_eq!(c.trim(SIBLINGS_MAX, usize::MAX), 0);
        assert_eq!(c, s);
        let mut d = s.clone();
        assert_eq!(d.trim(0, 1), 9);
        assert_eq!(d.versions[0].timestamp_ms, 109);

        // Two replicas holding different halves converge on the same trimmed set.
        let (left, right) = s.versions.split_at(5);
        let left = Siblings::from_versions(left.to_vec());
        let right = Siblings::from_versions(right.to_vec());
        let mut x = left.merge(&right);
        let mut y = right.merge(&left);
        x.trim(4, usize::MAX);
        y.trim(4, usize::MAX);
        assert_eq!(x, y);
        assert_eq!(x, a);
    }

    #[test]
    fn clock_encoding_round_trips() {
        for c in [
            VClock::new(),
            clock(&[("a", 1, 5)]),
            clock(&[("node-1", 3, 1_700_000_000_000), ("node-2", 9, u64::MAX)]),
        ] {
            assert_eq!(VClock::decode(&c.encode()), Ok(c.clone()));
        }
    }

    #[test]
    fn bad_clock_encodings_are_refused_with_a_reason() {
        let reason = |b: &[u8]| VClock::decode(b).unwrap_err();
        assert!(!reason(&[0xa0, 0xff]).is_empty());
        // Valid CBOR, but not a clock.
        assert!(!reason(&[0x01]).is_empty());
        // A valid clock with trailing bytes.
        let mut bytes = clock(&[("a", 1, 5)]).encode();
        bytes.push(0);
        assert!(reason(&bytes).contains("trailing"));
        // A clock nobody made: a zero counter, an empty node id, a counter past the end.
        let mut c = VClock::new();
        c.entries.insert("a".into(), ClockEntry::default());
        assert!(reason(&c.encode()).contains("counter 0"));
        let c = clock(&[("", 1, 1)]);
        assert!(reason(&c.encode()).contains("empty node id"));
        let mut c = VClock::new();
        c.entries.insert(
            "a".into(),
            ClockEntry {
                counter: COUNTER_MAX + 1,
                timestamp_ms: 0,
            },
        );
        assert!(reason(&c.encode()).contains("at most"));
    }

    #[test]
    fn encode_round_trip_and_format() {
        let s = put(&Siblings::default(), &VClock::new(), "a", 1, Some(b"v1"));
        let s = put(&s, &VClock::new(), "a", 2, Some(&[0u8, 255, 7]));
        let s = put(&s, &VClock::new(), "b", 3, None);
        let bytes = s.encode();
        assert_eq!(bytes[0], SIBLINGS_FORMAT);
        assert_eq!(Siblings::decode(&bytes), Ok(s));
        let empty = Siblings::default();
        assert_eq!(Siblings::decode(&empty.encode()), Ok(empty));
    }

    /// Siblings of which a version has a write id are encoded in format 3 and read back with
    /// it; without write ids the format stays 2, what earlier releases read.
    #[test]
    fn write_ids_round_trip_in_format_3() {
        let plain = put(&Siblings::default(), &VClock::new(), "a", 1, Some(b"v1"));
        let mut v = new_version(&VClock::new(), "b", 2, Some(b"v2".to_vec()), 16);
        v.write_id = Some(u128::MAX - 1);
        let s = plain.merge(&Siblings::from(v));
        let bytes = s.encode();
        assert_eq!(bytes[0], SIBLINGS_FORMAT_WRITE_IDS);
        assert_eq!(Siblings::decode(&bytes), Ok(s.clone()));
        assert_eq!(plain.encode()[0], SIBLINGS_FORMAT);
        let mut bad = bytes.clone();
        let tag = bytes.len() - 17;
        bad[tag] = 9;
        assert!(Siblings::decode(&bad).is_err());
    }

    /// One logical write applied through two coordinators (a client's retry) is two versions
    /// with one write id: stored both, shown once, and both superseded by a put with the
    /// context of a get. A different write with the same value is still its own sibling.
    #[test]
    fn a_write_applied_twice_shows_once() {
        let base = put(&Siblings::default(), &VClock::new(), "a", 1, Some(b"old"));
        let ctx = base.context();
        let through = |node: &str, stored: &Siblings, id: Option<u128>| {
            let mut v = new_version_against(
                stored,
                &ctx,
                node,
                0,
                5,
                Some(b"new".to_vec()),
                CLOCK_ENTRIES_MAX,
            );
            v.write_id = id;
            Siblings::from(v)
        };
        let first = through("a", &base, Some(7));
        let retry = through("b", &base, Some(7));
        let merged = base.merge(&first).merge(&retry);
        assert_eq!(merged.len(), 2, "both applications are kept: {merged:?}");
        assert_eq!(merged.values().collect::<Vec<_>>(), vec![&b"new"[..]]);
        let resolved = put(&merged, &merged.context(), "c", 9, Some(b"final"));
        assert_eq!(resolved.values().collect::<Vec<_>>(), vec![&b"final"[..]]);
        assert_eq!(resolved.len(), 1);
        let other = through("b", &base, Some(8));
        let two = base.merge(&first).merge(&other);
        assert_eq!(
            two.values().count(),
            2,
            "another write with the same value is a sibling"
        );
        let blind = through("b", &base, None).merge(&through("c", &base, None));
        assert_eq!(blind.values().count(), 2);
    }

    #[test]
    fn values_are_stored_as_byte_strings() {
        let v = new_version(&VClock::new(), "a", 1, Some(vec![0xAB; 300]), 16);
        let bytes = Siblings::from(v).encode();
        // As an array of numbers, 300 bytes of 0xAB would take 600 bytes of CBOR.
        assert!(bytes.len() < 400, "{} bytes", bytes.len());
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        let reason = |b: &[u8]| match Siblings::decode(b) {
            Err(VersionError::BadEncoding { reason }) => reason,
            other => panic!("expected BadEncoding for {b:?}, got {other:?}"),
        };
        assert!(reason(&[]).contains("empty"));
        assert!(reason(&[1, 0xa0]).contains("unknown format byte 1"));
        assert!(reason(&[2]).contains("not a set of siblings"));
        assert!(reason(&[2, 0xff, 0x00]).contains("not a set of siblings"));
        let mut trailing = Siblings::default().encode();
        trailing.push(0);
        assert!(reason(&trailing).contains("trailing"));
        // A count or length that claims more than the input holds must fail, not allocate.
        assert!(reason(&[2, 0xff, 0xff, 0xff, 0xff]).contains("can't fit"));
        let mut huge = put(&Siblings::default(), &VClock::new(), "a", 1, Some(b"v")).encode();
        let at = huge.len() - 5;
        huge[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(reason(&huge).contains("not a set of siblings"));
        let mut truncated = put(&Siblings::default(), &VClock::new(), "a", 1, Some(b"v")).encode();
        truncated.pop();
        assert!(reason(&truncated).contains("not a set of siblings"));
    }

    /// A random version over three nodes: small counters, timestamps and values, so that
    /// dominance, equal histories and equal timestamps all happen often.
    fn arb_version() -> impl Strategy<Value = Version> {
        (
            prop::array::uniform3(0u64..3),
            prop::array::uniform3(0u64..4),
            0usize..3,
            0u64..3,
            1u64..3,
            0u64..3,
            prop::option::of(prop::collection::vec(0u8..2, 0..2)),
            prop::option::of(0u128..2),
        )
            .prop_map(|(counters, stamps, node, seen, gap, ts, value, write_id)| {
                let mut clock = VClock::new();
                for i in 0..NODES.len() {
                    if counters[i] > 0 {
                        clock.entries.insert(
                            NODES[i].into(),
                            ClockEntry {
                                counter: counters[i],
                                timestamp_ms: stamps[i],
                            },
                        );
                    }
                }
                let counter = seen + gap;
                clock.entries.insert(
                    NODES[node].into(),
                    ClockEntry {
                        counter,
                        timestamp_ms: ts,
                    },
                );
                Version {
                    clock,
                    dot: Dot {
                        node: NODES[node].into(),
                        counter,
                        seen,
                    },
                    timestamp_ms: ts,
                    value,
                    write_id,
                }
            })
    }

    fn arb_siblings() -> impl Strategy<Value = Siblings> {
        prop::collection::vec(arb_version(), 0..6).prop_map(Siblings::from_versions)
    }

    fn arb_clock() -> impl Strategy<Value = VClock> {
        prop::collection::btree_map("[a-z0-9-]{1,8}", (1u64..1000, any::<u64>()), 0..6).prop_map(
            |m| VClock {
                entries: m
                    .into_iter()
                    .map(|(n, (counter, timestamp_ms))| {
                        (
                            n.into(),
                            ClockEntry {
                                counter,
                                timestamp_ms,
                            },
                        )
                    })
                    .collect(),
            },
        )
    }

    /// One step of a simulated workload on a single replica.
    #[derive(Debug, Clone)]
    struct Op {
        node: usize,
        with_context: bool,
        delete: bool,
    }

    fn arb_ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            (0usize..3, any::<bool>(), prop::bool::weighted(0.2)).prop_map(
                |(node, with_context, delete)| Op {
                    node,
                    with_context,
                    delete,
                },
            ),
            0..12,
        )
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in arb_siblings(), b in arb_siblings()) {
            prop_assert_eq!(a.merge(&b), b.merge(&a));
        }

        /// The moving merge and the in-place clock merge give what the copying ones give;
        /// moved-out values are the values shown.
        #[test]
        fn owned_merges_equal_copying_ones(a in arb_siblings(), b in arb_siblings()) {
            prop_assert_eq!(a.clone().merge_owned(b.clone()), a.merge(&b));
            // The encoding is written into a buffer of its size: it never grows.
            let encoded = a.encode();
            prop_assert!(encoded.capacity() <= encoded.len() + a.len());
            let shown: Vec<Vec<u8>> = a.values().map(<[u8]>::to_vec).collect();
            prop_assert_eq!(a.clone().into_values(), shown);
            // Pointwise maximum, entry by entry.
            let (ca, cb) = (a.context(), b.context());
            let mut c = ca.clone();
            c.merge_from(&cb);
            for (node, e) in ca.iter().chain(cb.iter()) {
                let want = ca.entry(node).max(cb.entry(node)).copied();
                prop_assert_eq!(c.entry(node).copied(), want);
                prop_assert!(c.entry(node) >= Some(e));
            }
            prop_assert_eq!(c.len(), ca.iter().filter(|(n, _)| cb.entry(n).is_none()).count() + cb.len());
        }

        #[test]
        fn merge_is_associative(a in arb_siblings(), b in arb_siblings(), c in arb_siblings()) {
            prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
        }

        #[test]
        fn merge_is_idempotent(a in arb_siblings(), b in arb_siblings()) {
            prop_assert_eq!(a.merge(&a), a.clone());
            prop_assert_eq!(a.merge(&Siblings::default()), a.clone());
            let ab = a.merge(&b);
            prop_assert_eq!(ab.merge(&b), ab.clone());
            prop_assert_eq!(ab.merge(&a), ab);
        }

        #[test]
        fn merge_result_is_an_antichain(a in arb_siblings(), b in arb_siblings()) {
            let m = a.merge(&b);
            for (i, v) in m.versions.iter().enumerate() {
                for (j, w) in m.versions.iter().enumerate() {
                    if i != j {
                        prop_assert!(!v.descends(w), "{v:?} descends {w:?}");
                    }
                }
            }
            // Every input version is kept or is descended by a kept one.
            for v in a.versions.iter().chain(&b.versions) {
                prop_assert!(m.versions.iter().any(|w| w.descends(v)));
            }
            prop_assert!(m.versions.windows(2).all(|p| p[0].total_cmp(&p[1]) == Ordering::Less));
        }

        #[test]
        fn lww_is_order_independent(a in arb_siblings(), b in arb_siblings()) {
            let mut shuffled = a.clone();
            shuffled.versions.reverse();
            prop_assert_eq!(a.resolve_lww(), shuffled.resolve_lww());
            let m = a.merge(&b);
            let w = m.resolve_lww();
            prop_assert_eq!(w.len(), usize::from(!m.is_empty()));
            let max_ts = m.versions.iter().map(|v| v.timestamp_ms).max();
            prop_assert_eq!(w.versions.first().map(|v| v.timestamp_ms), max_ts);
        }

        #[test]
        fn clock_merge_laws(a in arb_clock(), b in arb_clock(), c in arb_clock()) {
            prop_assert_eq!(a.merge(&b), b.merge(&a));
            prop_assert_eq!(a.merge(&b).merge(&c), a.merge(&b.merge(&c)));
            prop_assert_eq!(a.merge(&a), a.clone());
            let m = a.merge(&b);
            prop_assert!(m.descends(&a) && m.descends(&b));
        }

        #[test]
        fn prune_keeps_the_newest(mut c in arb_clock(), max in 0usize..8) {
            let before = c.clone();
            c.prune(max);
            prop_assert_eq!(c.len(), before.len().min(max));
            prop_assert!(before.descends(&c));
            if let Some(oldest_kept) = c.iter().map(|(n, e)| (e.timestamp_ms, n.to_owned())).min() {
                for (n, e) in before.iter() {
                    if c.entry(n).is_none() {
                        prop_assert!((e.timestamp_ms, n.to_owned()) < oldest_kept);
                    }
                }
            }
        }

        #[test]
        fn clock_round_trips(c in arb_clock()) {
            prop_assert_eq!(VClock::decode(&c.encode()), Ok(c));
        }

        #[test]
        fn encode_round_trips(a in arb_siblings()) {
            prop_assert_eq!(Siblings::decode(&a.encode()), Ok(a));
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = Siblings::decode(&bytes);
            let mut formatted = vec![SIBLINGS_FORMAT];
            formatted.extend_from_slice(&bytes);
            let _ = Siblings::decode(&formatted);
        }

        #[test]
        fn clock_decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = VClock::decode(&bytes);
        }

        /// On one replica, a write without context never loses a live value, and a write with
        /// the context of a fresh get leaves exactly one version.
        #[test]
        fn workload_keeps_concurrent_writes(ops in arb_ops()) {
            let mut stored = Siblings::default();
            for (i, op) in ops.iter().enumerate() {
                let before: Vec<Vec<u8>> = stored.values().map(<[u8]>::to_vec).collect();
                let context = if op.with_context { stored.context() } else { VClock::new() };
                let value = (!op.delete).then(|| vec![i as u8]);
                stored = put(&stored, &context, NODES[op.node], i as u64, value.as_deref());
                if op.with_context {
                    prop_assert_eq!(stored.len(), 1);
                } else {
                    for v in &before {
                        prop_assert!(stored.values().any(|x| x == v.as_slice()));
                    }
                }
                if !op.delete {
                    prop_assert!(stored.values().any(|x| x == [i as u8]));
                }
            }
        }
    }
}
