//! The target for the write-ahead log ([`kvctl::storage::engine`]'s WAL segments and their write
//! batches), as recovery reads them after a crash.

use kvctl::storage::engine::fuzzing::{self, RECORD_HEADER_BYTES};
use kvctl::storage::engine::{EngineError, WriteBatch};

use crate::allowance::measured;

/// First byte: replay as the newest segment (a torn tail is allowed).
const FLAG_NEWEST: u8 = 1;
/// First byte: make every record's checksums right first, so that the fuzzer gets past them.
const FLAG_FIX_CHECKSUMS: u8 = 2;
/// First byte: the previous segment ended at sequence number 0.
const FLAG_AFTER_ZERO: u8 = 4;
/// First byte: decode the rest as one write batch rather than a segment.
const FLAG_BATCH: u8 = 8;

/// Replays the fuzzer's bytes as a WAL segment (or decodes them as a write batch), as the
/// flags in the first byte say. A replay either fails as corruption or gives batches in
/// sequence order whose valid prefix replays alone to the same batches; every batch encodes
/// back to itself.
pub fn wal(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    if flags & FLAG_BATCH != 0 {
        let decoded = measured("WriteBatch::decode", rest.len(), || {
            WriteBatch::decode(rest)
        });
        if let Ok(batch) = decoded {
            assert_batch_roundtrip(&batch);
        }
        return;
    }
    let mut segment = rest.to_vec();
    if flags & FLAG_FIX_CHECKSUMS != 0 {
        fix_checksums(&mut segment);
    }
    let is_last = flags & FLAG_NEWEST != 0;
    let after = (flags & FLAG_AFTER_ZERO != 0).then_some(0);
    let replayed = measured("a WAL segment's replay", segment.len(), || {
        fuzzing::wal_segment(&segment, is_last, after)
    });
    let (batches, replay) = match replayed {
        Ok(replayed) => replayed,
        Err(EngineError::WalCorrupt { offset, .. }) => {
            assert!(offset <= segment.len() as u64, "corruption past the end");
            return;
        }
        Err(other) => panic!("a replay failed other than as corruption: {other}"),
    };
    assert_eq!(replay.records, batches.len() as u64);
    assert_eq!(replay.valid_len + replay.torn_bytes, segment.len() as u64);
    assert!(
        is_last || replay.torn_bytes == 0,
        "a torn tail in an older segment"
    );
    for pair in batches.windows(2) {
        assert!(pair[0].0 < pair[1].0, "sequence numbers out of order");
    }
    for (_, batch) in &batches {
        assert_batch_roundtrip(batch);
    }
    if replay.torn_bytes > 0 {
        // What recovery truncates the segment to is a whole segment by itself.
        let valid = &segment[..replay.valid_len as usize];
        let (again, _) = fuzzing::wal_segment(valid, false, after)
            .unwrap_or_else(|e| panic!("the valid prefix does not replay: {e}"));
        assert_eq!(again, batches, "the valid prefix replays differently");
    }
}

fn assert_batch_roundtrip(batch: &WriteBatch) {
    let mut encoded = Vec::new();
    batch.encode_into(&mut encoded);
    assert_eq!(encoded.len(), batch.encoded_len());
    assert_eq!(WriteBatch::decode(&encoded).as_ref(), Ok(batch));
}

/// Rewrites the checksums of each record whose header fits, following the lengths.
fn fix_checksums(segment: &mut [u8]) {
    let mut at = 0;
    while segment.len() - at >= RECORD_HEADER_BYTES {
        let header = at..at + RECORD_HEADER_BYTES;
        let len = u32::from_le_bytes(segment[at + 4..at + 8].try_into().expect("4 bytes"));
        let payload = header.end..header.end.saturating_add(len as usize);
        if let Some(payload) = segment.get(payload.clone()) {
            let crc = crc32c::crc32c(payload);
            segment[at + 24..at + 28].copy_from_slice(&crc.to_le_bytes());
        }
        let crc = crc32c::crc32c(&segment[at + 4..header.end]);
        segment[at..at + 4].copy_from_slice(&crc.to_le_bytes());
        if payload.end > segment.len() {
            return;
        }
        at = payload.end;
    }
}
