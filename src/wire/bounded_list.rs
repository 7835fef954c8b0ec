//! A list read from the wire with a bound on its length: decoding stops at the first element
//! past the bound (or at once, when the encoding declares more), so a peer cannot make a node
//! hold more than the bound's worth of elements, whatever the message's size.
//!
//! Serde's own `Vec` grows with what arrives; a message of millions of one-byte elements that
//! each decode to a larger value (a `u128` token, a byte buffer) would then cost many times
//! its size in memory before any check ran. Used through `#[serde(deserialize_with)]` on the
//! message fields that are lists (see [`crate::wire::proto`]).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error, SeqAccess, Visitor};

/// The most bytes a list reserves for the length it declares before its elements arrive.
const PREALLOCATED_BYTES_MAX: usize = 4096;

/// Reads a list of at most `max` elements; more is an error naming `what` and the bound.
pub fn deserialize<'de, D, T>(
    deserializer: D,
    max: usize,
    what: &'static str,
) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(BoundedList {
        max,
        what,
        element: PhantomData,
    })
}

struct BoundedList<T> {
    max: usize,
    what: &'static str,
    element: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for BoundedList<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a list of at most {} {}", self.max, self.what)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let declared = seq.size_hint();
        if let Some(n) = declared.filter(|n| *n > self.max) {
            return Err(A::Error::invalid_length(n, &self));
        }
        // Room for what a declared length promises, up to a little: the elements must still
        // come, so a short message cannot make the reader reserve much.
        let room = PREALLOCATED_BYTES_MAX / std::mem::size_of::<T>().max(1);
        let mut out = Vec::with_capacity(declared.unwrap_or(0).min(room));
        while let Some(element) = seq.next_element()? {
            if out.len() == self.max {
                return Err(A::Error::invalid_length(self.max + 1, &self));
            }
            out.push(element);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Tokens {
        #[serde(deserialize_with = "three")]
        tokens: Vec<u128>,
    }

    fn three<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u128>, D::Error> {
        super::deserialize(d, 3, "tokens")
    }

    fn cbor(value: &ciborium::Value) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(value, &mut out).unwrap();
        out
    }

    fn tokens(n: usize, definite: bool) -> Vec<u8> {
        let list = ciborium::Value::Array((0..n).map(|i| (i as u64).into()).collect());
        let mut bytes = cbor(&ciborium::Value::Map(vec![("tokens".into(), list)]));
        if !definite {
            // Rewrite the array's head (one byte for short lists) as an indefinite one.
            let at = bytes
                .iter()
                .position(|b| (0x80..=0x97).contains(b))
                .unwrap();
            bytes[at] = 0x9f;
            bytes.push(0xff);
        }
        bytes
    }

    /// Lists within the bound decode; one element more is refused, whether the encoding
    /// declares its length or not, and the error names the bound.
    #[test]
    fn bounded_lists_refuse_one_element_more() {
        for definite in [true, false] {
            let ok: Tokens = ciborium::from_reader(&tokens(3, definite)[..]).unwrap();
            assert_eq!(ok.tokens, vec![0, 1, 2]);
            let err = ciborium::from_reader::<Tokens, _>(&tokens(4, definite)[..]).unwrap_err();
            assert!(err.to_string().contains("at most 3 tokens"), "{err}");
        }
    }
}
