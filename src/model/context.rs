//! The causal context a client carries from a get to the next put of the same key: a vector
//! clock the nodes seal with the cluster secret, bound to its key.
//!
//! A context tells the coordinator which versions the client saw, and its counters become part
//! of the new version's clock. A client that could write any clock could claim writes no node
//! made (pushing a node's counters to their end, or making a later real write look already
//! seen, so that it is silently dropped) or pick the timestamps clock pruning goes by. So the
//! context is not the client's to write: every node holds the [`ClusterSecret`] (clients never
//! do), and a token is the clock with an HMAC-SHA256 over it and the key. A node accepts a
//! context only if the tag checks out for that key; a forged, altered, truncated, unsigned
//! (older format) or other key's context is refused with [`VersionError::BadContext`].
//!
//! Token layout (then lowercase hex):
//!
//! ```text
//! format u8 = CONTEXT_FORMAT | clock (CBOR) | tag (32 bytes)
//! tag = HMAC-SHA256(secret, "kvctl context 1" | key_len u32 LE | key | format | clock)
//! ```

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

use crate::model::version::{VClock, VersionError};

/// The first byte of every token this build makes.
pub const CONTEXT_FORMAT: u8 = 1;
/// The longest context token accepted, in characters (64 KiB).
pub const TOKEN_CHARS_MAX: usize = 64 * 1024;
/// Bytes of a cluster secret.
pub const SECRET_BYTES: usize = 32;
/// The name of the cluster secret's file in a node's (and a CA's) certificate directory.
pub const SECRET_FILE: &str = "cluster.secret";

const TAG_BYTES: usize = 32;
const DOMAIN: &[u8] = b"kvctl context 1";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error("{action} the cluster secret {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "the cluster secret {} is missing: nodes sign causal contexts with it. Copy it from \
         the CA directory (`kvctl cert ca` makes it, `kvctl cert node` copies it)",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("the cluster secret {} is corrupt: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("no random numbers from the operating system")]
    Random,
}

/// The key nodes seal causal contexts with. Every node of a cluster holds the same one; no
/// client does.
#[derive(Clone)]
pub struct ClusterSecret {
    key: hmac::Key,
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    pub fn from_bytes(bytes: &[u8; SECRET_BYTES]) -> ClusterSecret {
        ClusterSecret {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// Reads the secret at `path` (hex, as [`ClusterSecret::create`] writes it).
    pub fn read(path: &Path) -> Result<ClusterSecret, SecretError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SecretError::Missing {
                    path: path.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(SecretError::Io {
                    action: "reading",
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let corrupt = |reason: String| SecretError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = hex_decode(text.trim()).map_err(corrupt)?;
        let bytes: [u8; SECRET_BYTES] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| corrupt(format!("{} bytes, expected {SECRET_BYTES}", b.len())))?;
        Ok(ClusterSecret::from_bytes(&bytes))
    }

    /// Makes a new random secret and writes it to `path` (readable by the owner only),
    /// refusing to overwrite an existing file.
    pub fn create(path: &Path) -> Result<ClusterSecret, SecretError> {
        let mut bytes = [0u8; SECRET_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| SecretError::Random)?;
        write_new(path, format!("{}\n", hex_encode(&bytes)).as_bytes())?;
        Ok(ClusterSecret::from_bytes(&bytes))
    }

    /// Copies the secret file `from` to `to` (which must not exist yet).
    pub fn copy(from: &Path, to: &Path) -> Result<(), SecretError> {
        ClusterSecret::read(from)?;
        let text = fs::read(from).map_err(|source| SecretError::Io {
            action: "reading",
            path: from.to_path_buf(),
            source,
        })?;
        write_new(to, &text)
    }

    /// The token of `clock` as the context of `key`.
    pub fn seal(&self, key: &[u8], clock: &VClock) -> String {
        let mut body = vec![CONTEXT_FORMAT];
        body.extend_from_slice(&clock.encode());
        let tag = hmac::sign(&self.key, &signed_input(key, &body));
        body.extend_from_slice(tag.as_ref());
        hex_encode(&body)
    }

    /// The clock of a token that [`ClusterSecret::seal`] made for `key` with this secret;
    /// anything else is refused, saying why.
    pub fn open(&self, key: &[u8], token: &str) -> Result<VClock, VersionError> {
        let bad = |reason: String| VersionError::BadContext { reason };
        if token.is_empty() {
            return Err(bad(
                "the token is empty (omit it to write without context)".into()
            ));
        }
        if token.len() > TOKEN_CHARS_MAX {
            return Err(bad(format!(
                "the token is {} characters, over the limit of {TOKEN_CHARS_MAX}",
                token.len()
            )));
        }
        let bytes = hex_decode(token).map_err(bad)?;
        match bytes.first() {
            Some(&CONTEXT_FORMAT) => {}
            // A CBOR map: the unsigned clock earlier builds handed out.
            Some(0xa0..=0xbf) => {
                return Err(bad(
                    "the token is in the unsigned format of an earlier kvctl; get the key \
                     again for a current context"
                        .into(),
                ))
            }
            Some(other) => {
                return Err(bad(format!(
                    "unknown token format {other} (this build makes format {CONTEXT_FORMAT})"
                )))
            }
            None => unreachable!("an empty token was refused above"),
        }
        if bytes.len() < 1 + TAG_BYTES + 1 {
            return Err(bad(format!(
                "the token is {} bytes, too short to be one (truncated?)",
                bytes.len()
            )));
        }
        let (body, tag) = bytes.split_at(bytes.len() - TAG_BYTES);
        hmac::verify(&self.key, &signed_input(key, body), tag).map_err(|_| {
            bad(
                "the token was not made by this cluster for this key (altered, truncated, \
                 forged, or the context of another key)"
                    .into(),
            )
        })?;
        VClock::decode(&body[1..]).map_err(|reason| bad(format!("not a vector clock: {reason}")))
    }
}

/// What the tag covers, as one buffer (for [`hmac::verify`]).
fn signed_input(key: &[u8], body: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(DOMAIN.len() + 4 + key.len() + body.len());
    input.extend_from_slice(DOMAIN);
    input.extend_from_slice(&(key.len() as u32).to_le_bytes());
    input.extend_from_slice(key);
    input.extend_from_slice(body);
    input
}

fn write_new(path: &Path, bytes: &[u8]) -> Result<(), SecretError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |source| SecretError::Io {
        action: "writing",
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)
}

/// Encodes bytes as lowercase hex.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// Decodes hex (either case), explaining what is wrong.
pub fn hex_decode(text: &str) -> Result<Vec<u8>, String> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Err(format!(
            "the token has an odd number of hex digits ({})",
            digits.len()
        ));
    }
    let nibble = |i: usize| -> Result<u8, String> {
        let c = digits[i];
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(format!("the token has a non-hex character at position {i}")),
        }
    };
    (0..digits.len() / 2)
        .map(|i| Ok(nibble(2 * i)? << 4 | nibble(2 * i + 1)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::version::{new_version, Siblings, COUNTER_MAX};
    use proptest::prelude::*;

    fn secret(byte: u8) -> ClusterSecret {
        ClusterSecret::from_bytes(&[byte; SECRET_BYTES])
    }

    fn clock(entries: &[(&str, u64)]) -> VClock {
        let mut c = VClock::new();
        for &(node, counter) in entries {
            for _ in 0..counter {
                c.increment(node, 1_700_000_000_000);
            }
        }
        c
    }

    fn reason(s: &ClusterSecret, key: &[u8], token: &str) -> String {
        match s.open(key, token) {
            Err(VersionError::BadContext { reason }) => reason,
            other => panic!("expected BadContext for {token:?}, got {other:?}"),
        }
    }

    #[test]
    fn context_round_trips_for_its_key_only() {
        let s = secret(7);
        for c in [
            VClock::new(),
            clock(&[("a", 1)]),
            clock(&[("n1", 3), ("n2", 9)]),
        ] {
            let token = s.seal(b"k", &c);
            assert!(token
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            assert_eq!(s.open(b"k", &token), Ok(c.clone()));
            assert_eq!(s.open(b"k", &token.to_uppercase()), Ok(c.clone()));
            // Another key, another cluster: refused.
            assert!(reason(&s, b"other", &token).contains("not made by this cluster"));
            assert!(reason(&secret(8), b"k", &token).contains("not made by this cluster"));
        }
    }

    /// The forgery of the issue: a hand-made clock claiming a huge counter of another node is
    /// refused, whether unsigned (the old format) or with a made-up tag.
    #[test]
    fn forged_altered_truncated_and_stale_contexts_are_refused() {
        let s = secret(1);
        let forged = clock(&[("node-2", 1)]);
        // {"node-2": counter 2^62 - 1} as CBOR, the way a client could write it by hand.
        let huge = {
            let mut entries = std::collections::BTreeMap::new();
            entries.insert(
                "node-2".to_string(),
                crate::model::version::ClockEntry {
                    counter: COUNTER_MAX - 1,
                    timestamp_ms: 0,
                },
            );
            let mut cbor = Vec::new();
            ciborium::into_writer(&entries, &mut cbor).unwrap();
            cbor
        };
        // The unsigned format of earlier builds: a bare CBOR clock.
        let stale = hex_encode(&huge);
        assert!(reason(&s, b"k", &stale).contains("unsigned format"));
        // The current format with a tag made without the secret.
        let mut body = vec![CONTEXT_FORMAT];
        body.extend_from_slice(&huge);
        body.extend_from_slice(&[0u8; TAG_BYTES]);
        assert!(reason(&s, b"k", &hex_encode(&body)).contains("not made by this cluster"));
        // A real token with one bit flipped in its clock, or cut short.
        let token = s.seal(b"k", &forged);
        let mut bytes = hex_decode(&token).unwrap();
        bytes[3] ^= 1;
        assert!(reason(&s, b"k", &hex_encode(&bytes)).contains("not made by this cluster"));
        assert!(reason(&s, b"k", &token[..token.len() - 2]).contains("not made by this cluster"));
        assert!(reason(&s, b"k", &token[..10]).contains("too short"));
        assert!(reason(&s, b"k", "").contains("empty"));
        assert!(reason(&s, b"k", "abc").contains("odd"));
        assert!(reason(&s, b"k", "zz").contains("non-hex"));
        assert!(reason(&s, b"k", "07").contains("unknown token format 7"));
        assert!(reason(&s, b"k", &"00".repeat(TOKEN_CHARS_MAX)).contains("over the limit"));
        let err = s.open(b"k", "zz").unwrap_err().to_string();
        assert!(err.starts_with("bad causal context token"), "{err}");
    }

    #[test]
    fn context_of_real_siblings_round_trips() {
        let s = secret(3);
        let v = new_version(&VClock::new(), "n1", 5, Some(b"x".to_vec()), 16);
        let ctx = Siblings::from(v).context();
        assert_eq!(s.open(b"key", &s.seal(b"key", &ctx)), Ok(ctx));
    }

    #[test]
    fn secret_file_is_created_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("certs").join(SECRET_FILE);
        assert!(matches!(
            ClusterSecret::read(&path),
            Err(SecretError::Missing { .. })
        ));
        let made = ClusterSecret::create(&path).unwrap();
        let token = made.seal(b"k", &clock(&[("a", 2)]));
        let read = ClusterSecret::read(&path).unwrap();
        assert!(read.open(b"k", &token).is_ok());
        assert!(ClusterSecret::create(&path).is_err(), "never overwritten");
        let copy = dir.path().join("copy");
        ClusterSecret::copy(&path, &copy).unwrap();
        assert!(ClusterSecret::read(&copy)
            .unwrap()
            .open(b"k", &token)
            .is_ok());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the secret is the owner's alone");
        fs::write(&path, "abcd\n").unwrap();
        let err = ClusterSecret::read(&path).unwrap_err().to_string();
        assert!(err.contains("corrupt") && err.contains("2 bytes"), "{err}");
    }

    proptest! {
        #[test]
        fn open_never_panics(token in "[0-9a-fA-Fxz]{0,200}") {
            let _ = secret(1).open(b"k", &token);
        }
    }
}
