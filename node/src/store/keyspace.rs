//! How a node lays its data out in the engine's one ordered keyspace.
//!
//! Every engine key starts with a namespace byte:
//!
//! | namespace | engine key | value |
//! |---|---|---|
//! | data (`d`) | `d` · the key's ring token (16 bytes, big-endian) · the key | the key's encoded siblings |
//! | hints (`h`) | `h` · the target's id length (1 byte) · the target's id · the hint's time (ms, 8 bytes BE) · a sequence number (8 bytes BE) | the hint (see [`crate::store::hints`]) |
//! | node metadata (`m`) | `m` · a name | the name's value (see [`FORMAT_KEY`]) |
//!
//! Data keys sort by token, so "every key of token range (a, b]" is one ordered scan
//! ([`data_ranges`]): what Merkle trees, repair and streaming read. Keys of one token (a
//! collision of MD5, or the same key) sort by the key's bytes.
//!
//! The directory's format is [`FORMAT_VERSION`], kept under [`FORMAT_KEY`]; directories of the
//! first release (format 1: engine key = the key) are migrated at start-up (see
//! [`crate::store::migration`]).

use std::ops::Bound;

use kvctl::model::ring::{token_of, Token};
use kvctl::storage::engine::KeyRange;

/// The format of a node's data directory this build reads and writes.
pub const FORMAT_VERSION: u32 = 2;

const DATA: u8 = b'd';
const HINTS: u8 = b'h';
const META: u8 = b'm';

/// Bytes a data key adds before the key: the namespace and the token.
pub const DATA_PREFIX_BYTES: usize = 1 + 16;

/// The node metadata entry holding the directory's format, as decimal text.
pub const FORMAT_KEY: &[u8] = b"mformat";

/// The engine key of `key`'s versions.
pub fn data_key(key: &[u8]) -> Vec<u8> {
    data_key_at(token_of(key), key)
}

/// The engine key of `key`, whose token is `token` (already computed).
pub fn data_key_at(token: Token, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(DATA_PREFIX_BYTES + key.len());
    out.push(DATA);
    out.extend_from_slice(&token.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The token and key of a data engine key, or `None` if it is not one.
pub fn parse_data_key(engine_key: &[u8]) -> Option<(Token, &[u8])> {
    let rest = engine_key.strip_prefix(&[DATA])?;
    if rest.len() < 16 {
        return None;
    }
    let (token, key) = rest.split_at(16);
    Some((Token::from_be_bytes(token.try_into().ok()?), key))
}

/// The engine key of a node metadata entry.
pub fn meta_key(name: &str) -> Vec<u8> {
    let mut out = vec![META];
    out.extend_from_slice(name.as_bytes());
    out
}

const SYNCED: &str = "synced/";

/// The metadata entry saying since when the token range (after, upto] is known in sync on
/// every replica (a repair covering it completed; see the node's tombstone removal).
pub fn synced_key(after: Token, upto: Token) -> Vec<u8> {
    meta_key(&format!("{SYNCED}{after:032x}/{upto:032x}"))
}

/// The range of a [`synced_key`], or `None` if the key is not one.
pub fn parse_synced_key(engine_key: &[u8]) -> Option<(Token, Token)> {
    let name = std::str::from_utf8(engine_key.strip_prefix(&[META])?).ok()?;
    let (after, upto) = name.strip_prefix(SYNCED)?.split_once('/')?;
    Some((
        Token::from_str_radix(after, 16).ok()?,
        Token::from_str_radix(upto, 16).ok()?,
    ))
}

/// Every [`synced_key`].
pub fn synced_range() -> KeyRange {
    let start = meta_key(SYNCED);
    let mut end = start.clone();
    *end.last_mut().expect("a non-empty prefix") += 1;
    (Bound::Included(start), Bound::Excluded(end))
}

/// The whole hints namespace (for hinted handoff).
pub fn hints_range() -> KeyRange {
    (
        Bound::Included(vec![HINTS]),
        Bound::Excluded(vec![HINTS + 1]),
    )
}

fn hints_prefix(target: &str) -> Vec<u8> {
    let id = target.as_bytes();
    let mut out = Vec::with_capacity(2 + id.len() + 16);
    out.push(HINTS);
    // Node ids are at most 64 bytes (`certs::check_node_id`).
    out.push(id.len().min(255) as u8);
    out.extend_from_slice(&id[..id.len().min(255)]);
    out
}

/// The engine key of a hint for node `target` made at `created_ms`: a target's hints sort
/// oldest first.
pub fn hint_key(target: &str, created_ms: u64, seq: u64) -> Vec<u8> {
    let mut out = hints_prefix(target);
    out.extend_from_slice(&created_ms.to_be_bytes());
    out.extend_from_slice(&seq.to_be_bytes());
    out
}

/// The target, time and sequence number of a hint's engine key, or `None` if it is not one.
pub fn parse_hint_key(engine_key: &[u8]) -> Option<(&str, u64, u64)> {
    let rest = engine_key.strip_prefix(&[HINTS])?;
    let (&len, rest) = rest.split_first()?;
    if rest.len() != len as usize + 16 {
        return None;
    }
    let (id, rest) = rest.split_at(len as usize);
    let created_ms = u64::from_be_bytes(rest[..8].try_into().ok()?);
    let seq = u64::from_be_bytes(rest[8..].try_into().ok()?);
    Some((std::str::from_utf8(id).ok()?, created_ms, seq))
}

/// The hints held for node `target`, oldest first.
pub fn hints_of(target: &str) -> KeyRange {
    let prefix = hints_prefix(target);
    let mut end = prefix.clone();
    // The prefix ends with the id; no key of this target is at or past the id plus 0xff..
    end.extend_from_slice(&[0xff; 17]);
    (Bound::Included(prefix), Bound::Excluded(end))
}

/// The engine ranges holding the keys whose tokens are in the ring range (after, upto]: one
/// range, or two when it wraps past the top of the ring; `after == upto` is the whole ring.
pub fn data_ranges(after: Token, upto: Token) -> Vec<KeyRange> {
    let from = |t: Token| match t.checked_add(1) {
        Some(next) => Bound::Included(data_key_at(next, b"")),
        None => Bound::Excluded(vec![DATA + 1]),
    };
    // Keys of token `t` and below: before the first key of token t + 1.
    let upto_bound = |t: Token| match t.checked_add(1) {
        Some(next) => Bound::Excluded(data_key_at(next, b"")),
        None => Bound::Excluded(vec![DATA + 1]),
    };
    let all_from_start = Bound::Included(vec![DATA]);
    if after < upto {
        vec![(from(after), upto_bound(upto))]
    } else {
        // (after, MAX] then [0, upto]; a range starting past the top is empty and left out.
        let mut ranges = Vec::with_capacity(2);
        if after < Token::MAX {
            ranges.push((from(after), Bound::Excluded(vec![DATA + 1])));
        }
        ranges.push((all_from_start, upto_bound(upto)));
        ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    fn in_range(r: &KeyRange, key: &[u8]) -> bool {
        let above = match &r.0 {
            Bound::Included(b) => key >= b.as_slice(),
            Bound::Excluded(b) => key > b.as_slice(),
            Bound::Unbounded => true,
        };
        let below = match &r.1 {
            Bound::Included(b) => key <= b.as_slice(),
            Bound::Excluded(b) => key < b.as_slice(),
            Bound::Unbounded => true,
        };
        above && below
    }

    fn contains(ranges: &[KeyRange], key: &[u8]) -> bool {
        ranges.iter().any(|r| in_range(r, key))
    }

    /// A data key holds its token and key, sorts by token, and is in exactly the ranges that
    /// hold its token; metadata and hints are outside every data range.
    #[test]
    fn data_keys_sort_by_token_and_fall_in_their_ranges() {
        let keys: Vec<Vec<u8>> = (0..200).map(|i| format!("key-{i}").into_bytes()).collect();
        let mut engine_keys: Vec<Vec<u8>> = keys.iter().map(|k| data_key(k)).collect();
        engine_keys.sort();
        let tokens: Vec<Token> = engine_keys
            .iter()
            .map(|k| parse_data_key(k).unwrap().0)
            .collect();
        assert!(tokens.windows(2).all(|w| w[0] <= w[1]));
        for k in &keys {
            assert_eq!(parse_data_key(&data_key(k)), Some((token_of(k), &k[..])));
        }
        assert_eq!(parse_data_key(&meta_key("format")), None);
        assert_eq!(meta_key("format"), FORMAT_KEY);

        let (a, b) = (Token::MAX / 3, Token::MAX / 3 * 2);
        for (after, upto) in [(a, b), (b, a), (a, a), (0, Token::MAX), (Token::MAX, a)] {
            let ranges = data_ranges(after, upto);
            for k in &keys {
                let t = token_of(k);
                let inside = if after < upto {
                    after < t && t <= upto
                } else {
                    t > after || t <= upto
                };
                assert_eq!(contains(&ranges, &data_key(k)), inside, "({after}, {upto}]");
            }
            assert!(!contains(&ranges, FORMAT_KEY));
            assert!(!contains(&ranges, b"h\x00hint"));
        }
        // Edges: a token equal to `after` is out, one equal to `upto` is in.
        let ranges = data_ranges(5, 9);
        assert!(!contains(&ranges, &data_key_at(5, b"zzz")));
        assert!(contains(&ranges, &data_key_at(6, b"")));
        assert!(contains(&ranges, &data_key_at(9, b"\xff\xff")));
        assert!(!contains(&ranges, &data_key_at(10, b"")));
        assert!(contains(&data_ranges(7, 7), &data_key_at(7, b"k")));
        assert!(in_range(&hints_range(), b"h\x01"));
    }

    /// A target's hints sort oldest first, parse back, and are apart from other targets'
    /// (also a target whose id extends another's).
    #[test]
    fn hint_keys_sort_by_target_then_time() {
        let a = hint_key("node-1", 5, 0);
        let b = hint_key("node-1", 6, 0);
        let c = hint_key("node-1", 6, 1);
        assert!(a < b && b < c);
        assert_eq!(parse_hint_key(&c), Some(("node-1", 6, 1)));
        assert_eq!(parse_hint_key(&data_key(b"k")), None);
        assert_eq!(parse_hint_key(&a[..a.len() - 1]), None);
        let range = hints_of("node-1");
        for k in [&a, &b, &c, &hint_key("node-1", u64::MAX, u64::MAX)] {
            assert!(in_range(&range, k) && in_range(&hints_range(), k));
        }
        for other in ["node-10", "node-", "node-2"] {
            assert!(!in_range(&range, &hint_key(other, 5, 0)), "{other}");
        }
        assert!(!in_range(&hints_range(), &data_key(b"k")));
        let synced = synced_key(7, Token::MAX);
        assert_eq!(parse_synced_key(&synced), Some((7, Token::MAX)));
        assert!(in_range(&synced_range(), &synced) && !in_range(&synced_range(), FORMAT_KEY));
        assert_eq!(parse_synced_key(FORMAT_KEY), None);
    }
}
