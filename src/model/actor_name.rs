//! [`ActorName`]: the name of a node incarnation in vector clocks and dots, kept inline.
//!
//! Every replica read and write decodes a key's versions, and each version names the actors of
//! its clock and its dot: as `String`s that is one allocation per name, several per version.
//! Actor names are short (`<node id>#<16 hex digits>`, 23 bytes for `node-1`), so up to
//! [`INLINE_BYTES_MAX`] bytes live inside the value and longer ones (node ids go up to 128
//! bytes) on the heap. It orders, compares and hashes exactly as its `str` does.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest node id (a node's actor names are its id, `#` and 16 hex digits).
pub const NODE_ID_BYTES_MAX: usize = 128;

/// The longest name kept inline (the value is then 32 bytes, a `String` is 24).
pub const INLINE_BYTES_MAX: usize = 30;

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE_BYTES_MAX],
    },
    Heap(Box<str>),
}

/// A node incarnation's name, as in a [`crate::model::version::VClock`] entry or a
/// [`crate::model::version::Dot`]: a `str` that needs no allocation up to [`INLINE_BYTES_MAX`] bytes.
#[derive(Clone)]
pub struct ActorName(Repr);

impl ActorName {
    pub fn new(name: &str) -> ActorName {
        ActorName(if name.len() <= INLINE_BYTES_MAX {
            let mut bytes = [0u8; INLINE_BYTES_MAX];
            bytes[..name.len()].copy_from_slice(name.as_bytes());
            Repr::Inline {
                len: name.len() as u8,
                bytes,
            }
        } else {
            Repr::Heap(name.into())
        })
    }

    pub fn as_str(&self) -> &str {
        match &self.0 {
            // SAFETY: `bytes[..len]` is a copy of a whole `str` (see `new`), never changed
            // since, so it is UTF-8. (Checking it on every comparison would cost as much as
            // the comparison.)
            Repr::Inline { len, bytes } => unsafe {
                std::str::from_utf8_unchecked(&bytes[..usize::from(*len)])
            },
            Repr::Heap(s) => s,
        }
    }
}

impl Default for ActorName {
    fn default() -> Self {
        ActorName::new("")
    }
}

impl Deref for ActorName {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ActorName {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for ActorName {
    fn from(name: &str) -> Self {
        ActorName::new(name)
    }
}

impl From<String> for ActorName {
    fn from(name: String) -> Self {
        ActorName::new(&name)
    }
}

impl PartialEq for ActorName {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for ActorName {}

impl PartialEq<&str> for ActorName {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialOrd for ActorName {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ActorName {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for ActorName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl fmt::Debug for ActorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ActorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ActorName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ActorName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ActorName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an actor name (a string)")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<ActorName, E> {
                Ok(ActorName::new(name))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Inline or not, a name is its string: same text, order, equality and hash.
        #[test]
        fn names_behave_as_their_strings(a in "[a-z#0-9.-]{0,40}", b in "[a-z#0-9.-]{0,40}") {
            let (na, nb) = (ActorName::new(&a), ActorName::new(&b));
            prop_assert_eq!(na.as_str(), a.as_str());
            prop_assert_eq!(na.cmp(&nb), a.cmp(&b));
            prop_assert_eq!(na == nb, a == b);
            let hash = |h: &dyn Fn(&mut std::collections::hash_map::DefaultHasher)| {
                let mut s = std::collections::hash_map::DefaultHasher::new();
                h(&mut s);
                s.finish()
            };
            prop_assert_eq!(hash(&|s| na.hash(s)), hash(&|s| a.as_str().hash(s)));
        }
    }

    #[test]
    fn long_names_go_to_the_heap_and_round_trip_through_cbor() {
        let at_limit = "n".repeat(INLINE_BYTES_MAX);
        assert!(matches!(ActorName::new(&at_limit).0, Repr::Inline { .. }));
        let long = format!("{}#0123456789abcdef", "x".repeat(128));
        let name = ActorName::new(&long);
        assert!(matches!(name.0, Repr::Heap(_)));
        for n in [ActorName::new("node-1#00000000deadbeef"), name] {
            let mut cbor = Vec::new();
            ciborium::into_writer(&n, &mut cbor).unwrap();
            let s: String = ciborium::from_reader(&cbor[..]).unwrap();
            assert_eq!(s, n.as_str());
            let back: ActorName = ciborium::from_reader(&cbor[..]).unwrap();
            assert_eq!(back, n);
        }
    }
}
