//! Targets for stored and replicated versions ([`kvctl::model::version`]): encoded siblings and
//! vector clocks.

use kvctl::model::version::{Siblings, VClock, SIBLINGS_MAX};

use crate::allowance::measured;

/// Decodes siblings as a replica does with a peer's write or its own stored bytes; what
/// decodes encodes to bytes that decode to the same siblings, and merges with itself.
pub fn siblings(data: &[u8]) {
    let decoded = measured("Siblings::decode", data.len(), || Siblings::decode(data));
    let Ok(siblings) = decoded else {
        return;
    };
    let encoded = siblings.encode();
    let again = Siblings::decode(&encoded)
        .unwrap_or_else(|e| panic!("{siblings:?} encoded to bytes that do not decode: {e}"));
    assert_eq!(again, siblings, "siblings changed in a round trip");
    // What a replica does next with a peer's versions: check them, merge them with its own.
    let _ = siblings.check(SIBLINGS_MAX);
    let merged = siblings.merge(&again);
    let _ = (
        merged.context(),
        merged.is_deleted(),
        merged.values().count(),
    );
}

/// Decodes a vector clock (what a context token seals); what decodes encodes to bytes that
/// decode to the same clock.
pub fn vclock(data: &[u8]) {
    let decoded = measured("VClock::decode", data.len(), || VClock::decode(data));
    let Ok(clock) = decoded else {
        return;
    };
    let encoded = clock.encode();
    let again = VClock::decode(&encoded)
        .unwrap_or_else(|e| panic!("{clock:?} encoded to bytes that do not decode: {e}"));
    assert_eq!(again, clock, "a clock changed in a round trip");
}
