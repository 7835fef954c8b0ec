//! Write batches: the unit of atomicity, and their encoding as a WAL record payload.
//!
//! Payload layout (little-endian): `count u32`, then per operation `kind u8` (1 = put,
//! 2 = delete), `key_len u32`, key, and for puts `value_len u32`, value.

use super::error::{EngineError, Result};
use super::options::Limits;

const KIND_PUT: u8 = 1;
const KIND_DELETE: u8 = 2;

/// One operation of a batch. `value: None` is a delete (a tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
}

/// Puts and deletes applied atomically: after a crash either all of them are present or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<Op>,
    encoded_bytes: usize,
}

impl WriteBatch {
    pub fn new() -> Self {
        WriteBatch::default()
    }

    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        let (key, value) = (key.into(), value.into());
        self.encoded_bytes += 1 + 4 + key.len() + 4 + value.len();
        self.ops.push(Op {
            key,
            value: Some(value),
        });
        self
    }

    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        let key = key.into();
        self.encoded_bytes += 1 + 4 + key.len();
        self.ops.push(Op { key, value: None });
        self
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// Size of the encoded payload in bytes.
    pub fn encoded_len(&self) -> usize {
        4 + self.encoded_bytes
    }

    /// Checks every key and value, and the batch as a whole, against the limits.
    pub fn validate(&self, limits: &Limits) -> Result<()> {
        for op in &self.ops {
            validate_key(&op.key, limits)?;
            if let Some(value) = &op.value {
                if value.len() > limits.value_bytes_max {
                    return Err(EngineError::ValueTooLarge {
                        len: value.len(),
                        max: limits.value_bytes_max,
                    });
                }
            }
        }
        if self.encoded_len() > limits.batch_bytes_max {
            return Err(EngineError::BatchTooLarge {
                len: self.encoded_len(),
                max: limits.batch_bytes_max,
            });
        }
        Ok(())
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&(self.ops.len() as u32).to_le_bytes());
        for op in &self.ops {
            match &op.value {
                Some(value) => {
                    out.push(KIND_PUT);
                    out.extend_from_slice(&(op.key.len() as u32).to_le_bytes());
                    out.extend_from_slice(&op.key);
                    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
                    out.extend_from_slice(value);
                }
                None => {
                    out.push(KIND_DELETE);
                    out.extend_from_slice(&(op.key.len() as u32).to_le_bytes());
                    out.extend_from_slice(&op.key);
                }
            }
        }
    }

    /// Decodes a payload written by [`WriteBatch::encode_into`]. The caller has already checked
    /// the record's checksum, so a failure here means a bug or a checksum collision; it is still
    /// reported, never a panic.
    pub fn decode(mut bytes: &[u8]) -> std::result::Result<WriteBatch, String> {
        let count = take_u32(&mut bytes)? as usize;
        let mut batch = WriteBatch::new();
        for i in 0..count {
            let kind = *bytes
                .first()
                .ok_or_else(|| format!("operation {i}: missing kind"))?;
            bytes = &bytes[1..];
            let key_len = take_u32(&mut bytes)? as usize;
            let key = take(&mut bytes, key_len)?.to_vec();
            match kind {
                KIND_PUT => {
                    let value_len = take_u32(&mut bytes)? as usize;
                    let value = take(&mut bytes, value_len)?.to_vec();
                    batch.put(key, value);
                }
                KIND_DELETE => {
                    batch.delete(key);
                }
                other => return Err(format!("operation {i}: unknown kind {other}")),
            }
        }
        if !bytes.is_empty() {
            return Err(format!(
                "{} trailing bytes after {count} operations",
                bytes.len()
            ));
        }
        Ok(batch)
    }
}

pub(crate) fn validate_key(key: &[u8], limits: &Limits) -> Result<()> {
    if key.is_empty() {
        return Err(EngineError::EmptyKey {
            max: limits.key_bytes_max,
        });
    }
    if key.len() > limits.key_bytes_max {
        return Err(EngineError::KeyTooLarge {
            len: key.len(),
            max: limits.key_bytes_max,
        });
    }
    Ok(())
}

fn take<'a>(bytes: &mut &'a [u8], n: usize) -> std::result::Result<&'a [u8], String> {
    if bytes.len() < n {
        return Err(format!("need {n} bytes, {} left", bytes.len()));
    }
    let (head, tail) = bytes.split_at(n);
    *bytes = tail;
    Ok(head)
}

fn take_u32(bytes: &mut &[u8]) -> std::result::Result<u32, String> {
    let raw = take(bytes, 4)?;
    Ok(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encoding then decoding gives back the same batch.
    #[test]
    fn batch_roundtrip() {
        let mut batch = WriteBatch::new();
        batch
            .put(b"a".to_vec(), b"1".to_vec())
            .delete(b"b".to_vec())
            .put(b"c".to_vec(), vec![]);
        let mut buf = Vec::new();
        batch.encode_into(&mut buf);
        assert_eq!(buf.len(), batch.encoded_len());
        assert_eq!(WriteBatch::decode(&buf).unwrap(), batch);
        assert!(WriteBatch::decode(&buf[..buf.len() - 1]).is_err());
    }
}
