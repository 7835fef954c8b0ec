//! The target for causal context tokens ([`kvctl::model::context`]): a client hands a node a token,
//! which the node opens with the cluster secret.

use kvctl::model::context::{hex_encode, ClusterSecret, CONTEXT_FORMAT};
use kvctl::model::version::VClock;
use ring::hmac;

use crate::allowance::measured;

/// The secret every token here is sealed and opened with.
const SECRET: [u8; 32] = [7; 32];
/// What a token's tag covers first, as in `kvctl::model::context` (a test checks that tokens sealed
/// here are the ones it seals).
const DOMAIN: &[u8] = b"kvctl context 1";
/// The longest key a target input names.
const KEY_BYTES_MAX: usize = 31;

/// The secret every token here is sealed and opened with.
pub fn secret() -> ClusterSecret {
    ClusterSecret::from_bytes(&SECRET)
}

/// A token with a valid tag for `key` around any `body` (the CBOR of a clock, if the token is
/// to open), as [`ClusterSecret::seal`] makes them, so that the fuzzer reaches what follows
/// the tag check.
pub fn seal_body(key: &[u8], body: &[u8]) -> String {
    let mut token = vec![CONTEXT_FORMAT];
    token.extend_from_slice(body);
    let mut signed = DOMAIN.to_vec();
    signed.extend_from_slice(&(key.len() as u32).to_le_bytes());
    signed.extend_from_slice(key);
    signed.extend_from_slice(&token);
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &SECRET), &signed);
    token.extend_from_slice(tag.as_ref());
    hex_encode(&token)
}

/// Opens a token as a node does. The first byte says how the rest is read: its low 5 bits
/// are the length of the key (taken next); with its top bit clear the rest is the token's
/// text, with it set the rest is the CBOR of a clock, sealed here with a valid tag first. A
/// token that opens gives a clock that seals to a token opening to it again.
pub fn context_token(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let key_len = (usize::from(selector) & KEY_BYTES_MAX).min(rest.len());
    let (key, rest) = rest.split_at(key_len);
    let token = if selector & 0x80 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        seal_body(key, rest)
    };
    let secret = secret();
    let opened = measured("ClusterSecret::open", token.len(), || {
        secret.open(key, &token)
    });
    let Ok(clock) = opened else {
        return;
    };
    if selector & 0x80 != 0 {
        assert_eq!(
            VClock::decode(rest).as_ref(),
            Ok(&clock),
            "a token's clock is its body"
        );
    }
    let again = secret
        .open(key, &secret.seal(key, &clock))
        .unwrap_or_else(|e| panic!("{clock:?} sealed to a token that does not open: {e}"));
    assert_eq!(again, clock, "a clock changed in a token's round trip");
}
