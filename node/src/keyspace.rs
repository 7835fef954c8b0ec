//! How a node lays its data out in the engine's one ordered keyspace.
//!
//! Every engine key starts with a namespace byte:
//!
//! | namespace | engine key | value |
//! |---|---|---|
//! | data (`d`) | `d` · the key's ring token (16 bytes, big-endian) · the key | the key's encoded siblings |
//! | hints (`h`) | reserved for hinted handoff | |
//! | node metadata (`m`) | `m` · a name | the name's value (see [`FORMAT_KEY`]) |
//!
//! Data keys sort by token, so "every key of token range (a, b]" is one ordered scan
//! ([`data_ranges`]): what Merkle trees, repair and streaming read. Keys of one token (a
//! collision of MD5, or the same key) sort by the key's bytes.
//!
//! The directory's format is [`FORMAT_VERSION`], kept under [`FORMAT_KEY`]; directories of the
//! first release (format 1: engine key = the key) are migrated at start-up (see
//! [`crate::migration`]).

use std::ops::Bound;

use kvctl::engine::KeyRange;
use kvctl::ring::{token_of, Token};

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

fn data_key_at(token: Token, key: &[u8]) -> Vec<u8> {
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

/// The whole hints namespace (for hinted handoff).
pub fn hints_range() -> KeyRange {
    (
        Bound::Included(vec![HINTS]),
        Bound::Excluded(vec![HINTS + 1]),
    )
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
}
