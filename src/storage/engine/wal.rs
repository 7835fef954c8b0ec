//! The write-ahead log: segmented, checksummed, sequence-numbered records, and their recovery.
//!
//! A record is a 28-byte header followed by a payload (an encoded [`WriteBatch`]). All integers
//! are little-endian:
//!
//! | offset | size | field                                                          |
//! |--------|------|----------------------------------------------------------------|
//! | 0      | 4    | header_crc: CRC32C of bytes 4..28                              |
//! | 4      | 4    | payload_len                                                    |
//! | 8      | 8    | seq: sequence number of the batch's first operation            |
//! | 16     | 8    | synced: the log was durable up to this sequence number when the record was written |
//! | 24     | 4    | payload_crc: CRC32C of the payload                             |
//!
//! The header has its own checksum so that a damaged length is told apart from a torn tail.
//!
//! The newest segment is written into space zero-filled ahead of it (see
//! [`PREALLOCATE_CHUNK_BYTES`](super::logfile::PREALLOCATE_CHUNK_BYTES)), so after a crash it
//! may end in zeros, and a record written but never synced may have reached the disk only in
//! part: some of its 512-byte sectors still hold the zeros (and records after it may have
//! landed whole). Recovery ends the log at the first record of the newest segment that is
//! incomplete, or that fails a checksum while its part of some sector is all zeros (a torn
//! write, as etcd's WAL tells them), and truncates the segment there — unless a later intact
//! record says, in `synced`, that the damaged record had been made durable: then it is
//! corruption, not a torn write, and the records after it may have been acknowledged. Any other
//! record that fails a checksum, in any segment, is corruption too, reported with its file and
//! offset. Older segments were synced and trimmed to their last record when the next one
//! began.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::WriteBatch;
use super::error::{EngineError, Result};
use super::logfile::{LogFile, LogFs};

pub const RECORD_HEADER_BYTES: usize = 28;

/// The unit a torn write is detected in: a disk writes a sector whole or not at all.
pub const SECTOR_BYTES: usize = 512;

/// Whether, for some 512-byte sector, its part within `bytes[from..to]` is all zeros: a sector
/// of the write that never reached the disk (its earlier part may hold synced bytes).
fn unwritten_sector_within(bytes: &[u8], from: usize, to: usize) -> bool {
    let to = to.min(bytes.len());
    let mut start = from;
    while start < to {
        let end = ((start / SECTOR_BYTES + 1) * SECTOR_BYTES).min(to);
        if bytes[start..end].iter().all(|&b| b == 0) {
            return true;
        }
        start = end;
    }
    false
}

/// Appends one record for `batch`, whose first operation has sequence number `seq`, to `out`;
/// `synced` is the last sequence number already durable in the log.
pub fn append_record(out: &mut Vec<u8>, seq: u64, synced: u64, batch: &WriteBatch) {
    let start = out.len();
    out.extend_from_slice(&[0u8; RECORD_HEADER_BYTES]);
    batch.encode_into(out);
    let payload_len = (out.len() - start - RECORD_HEADER_BYTES) as u32;
    let payload_crc = crc32c::crc32c(&out[start + RECORD_HEADER_BYTES..]);
    out[start + 4..start + 8].copy_from_slice(&payload_len.to_le_bytes());
    out[start + 8..start + 16].copy_from_slice(&seq.to_le_bytes());
    out[start + 16..start + 24].copy_from_slice(&synced.to_le_bytes());
    out[start + 24..start + 28].copy_from_slice(&payload_crc.to_le_bytes());
    let header_crc = crc32c::crc32c(&out[start + 4..start + RECORD_HEADER_BYTES]);
    out[start..start + 4].copy_from_slice(&header_crc.to_le_bytes());
}

/// A record header's fields.
struct Header {
    payload_len: usize,
    seq: u64,
    synced: u64,
    payload_crc: u32,
}

/// The header at the start of `rest`, which holds at least [`RECORD_HEADER_BYTES`]; or the
/// stored and computed checksums when they differ.
fn read_header(rest: &[u8]) -> std::result::Result<Header, (u32, u32)> {
    let h = &rest[..RECORD_HEADER_BYTES];
    let stored = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes"));
    let computed = crc32c::crc32c(&h[4..]);
    if stored != computed {
        return Err((stored, computed));
    }
    Ok(Header {
        payload_len: u32::from_le_bytes(h[4..8].try_into().expect("4 bytes")) as usize,
        seq: u64::from_le_bytes(h[8..16].try_into().expect("8 bytes")),
        synced: u64::from_le_bytes(h[16..24].try_into().expect("8 bytes")),
        payload_crc: u32::from_le_bytes(h[24..28].try_into().expect("4 bytes")),
    })
}

/// The header of the record at the start of `rest`, if the whole record is intact.
fn intact_record(rest: &[u8]) -> Option<Header> {
    if rest.len() < RECORD_HEADER_BYTES {
        return None;
    }
    let header = read_header(rest).ok()?;
    let payload = rest.get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + header.payload_len)?;
    (crc32c::crc32c(payload) == header.payload_crc).then_some(header)
}

/// Whether a damaged record at `offset` of the newest segment, spanning to `end` and holding
/// `seq`, is a torn write: some sector of it never landed, and no intact record after it says
/// the log was durable past `seq` (which would make it damage to acknowledged data).
fn torn_write(bytes: &[u8], offset: usize, end: usize, seq: u64) -> Result<bool, usize> {
    if !unwritten_sector_within(bytes, offset, end) {
        return Ok(false);
    }
    let Some(last) = bytes.iter().rposition(|&b| b != 0) else {
        return Ok(true);
    };
    let vouching = (offset + 1..=last)
        .find(|&at| intact_record(&bytes[at..]).is_some_and(|h| h.seq > seq && h.synced >= seq));
    vouching.map_or(Ok(true), Err)
}

pub fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.log"))
}

/// Ids of the segments in `dir`, oldest first. Files that are not segments are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut ids = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| EngineError::io("listing", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io("listing", dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".log")) else {
            continue;
        };
        if let Ok(id) = stem.parse::<u64>() {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// The open segment that records are appended to.
pub struct WalWriter {
    id: u64,
    path: PathBuf,
    file: Box<dyn LogFile>,
}

impl WalWriter {
    pub fn create(fs: &Arc<dyn LogFs>, dir: &Path, id: u64) -> Result<Self> {
        let path = segment_path(dir, id);
        let file = fs
            .create(&path)
            .map_err(|e| EngineError::io("creating WAL segment", &path, e))?;
        Ok(WalWriter { id, path, file })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Makes room for `additional` bytes. On error nothing of a record was written; a full
    /// disk (or file-size limit, or quota) is `WalFull`, after which the log goes on.
    pub fn reserve(&mut self, additional: u64) -> Result<()> {
        self.file.reserve(additional).map_err(|e| match e.kind() {
            io::ErrorKind::StorageFull
            | io::ErrorKind::FileTooLarge
            | io::ErrorKind::QuotaExceeded => EngineError::WalFull {
                file: self.path.clone(),
                source: Arc::new(e),
            },
            _ => EngineError::io("reserving room in WAL", &self.path, e),
        })
    }

    pub fn append(&mut self, buf: &[u8]) -> Result<()> {
        self.file
            .append(buf)
            .map_err(|e| EngineError::io("appending to WAL", &self.path, e))?;
        Ok(())
    }

    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync()
            .map_err(|e| EngineError::io("syncing WAL", &self.path, e))
    }

    /// Syncs the segment and trims the space reserved past its last record: it is about to
    /// stop being the newest segment, and only the newest may end in anything but a record.
    pub fn finish(&mut self) -> Result<()> {
        self.file
            .finish()
            .map_err(|e| EngineError::io("finishing WAL segment", &self.path, e))
    }
}

/// What replaying one segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentReplay {
    pub records: u64,
    pub last_seq: Option<u64>,
    /// Length of the valid prefix; the file is truncated to it when it had a torn tail.
    pub valid_len: u64,
    /// Bytes cut off after the valid prefix: a torn record, records after it, and reserved
    /// zeros (0 if none).
    pub torn_bytes: u64,
}

/// Replays the records of one segment in order, calling `apply(seq, batch)` for each.
///
/// `is_last` says whether this is the newest segment, the only one allowed a torn tail; a torn
/// tail there is truncated away (and the truncation synced). `after_seq` is the sequence number
/// the previous segment ended with; records must strictly follow it.
pub fn replay_segment(
    path: &Path,
    is_last: bool,
    after_seq: Option<u64>,
    apply: impl FnMut(u64, WriteBatch) -> Result<()>,
) -> Result<SegmentReplay> {
    let bytes = fs::read(path).map_err(|e| EngineError::io("reading WAL segment", path, e))?;
    let replay = replay_bytes(&bytes, path, is_last, after_seq, apply)?;
    if replay.torn_bytes > 0 {
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| EngineError::io("opening WAL segment to truncate", path, e))?;
        file.set_len(replay.valid_len)
            .and_then(|()| file.sync_all())
            .map_err(|e| EngineError::io("truncating torn WAL tail", path, e))?;
    }
    Ok(replay)
}

/// Replays the records of a segment's `bytes`, read from `path`, as [`replay_segment`] does,
/// without touching the file: a torn tail (`torn_bytes > 0`, only where `is_last`) is for the
/// caller to cut off at `valid_len`.
pub fn replay_bytes(
    bytes: &[u8],
    path: &Path,
    is_last: bool,
    after_seq: Option<u64>,
    mut apply: impl FnMut(u64, WriteBatch) -> Result<()>,
) -> Result<SegmentReplay> {
    let corrupt = |offset: usize, reason: String| EngineError::WalCorrupt {
        file: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let mut offset = 0usize;
    let mut records = 0u64;
    let mut last_seq = after_seq;
    let mut torn = false;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        if rest.len() < RECORD_HEADER_BYTES {
            torn = true;
            break;
        }
        // The first sequence number a damaged record here would hold.
        let expected = last_seq.map_or(0, |s| s.saturating_add(1));
        let vouched = |at: usize, part: &str| {
            corrupt(
                offset,
                format!("damaged record {part}, but the intact record at offset {at} shows it had been synced"),
            )
        };
        let Header {
            payload_len,
            seq,
            payload_crc,
            ..
        } = match read_header(rest) {
            Ok(header) => header,
            // Reserved space past the last record, or a header that only partly landed.
            Err(_) if is_last && rest.iter().all(|&b| b == 0) => {
                torn = true;
                break;
            }
            Err((stored, computed)) => {
                let end = offset + RECORD_HEADER_BYTES;
                if is_last
                    && torn_write(bytes, offset, end, expected)
                        .map_err(|at| vouched(at, "header"))?
                {
                    torn = true;
                    break;
                }
                return Err(corrupt(
                    offset,
                    format!("record header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"),
                ));
            }
        };
        if rest.len() - RECORD_HEADER_BYTES < payload_len {
            torn = true;
            break;
        }
        let payload = &rest[RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + payload_len];
        let computed = crc32c::crc32c(payload);
        if computed != payload_crc {
            let end = offset + RECORD_HEADER_BYTES + payload_len;
            if is_last
                && torn_write(bytes, offset, end, seq.max(expected))
                    .map_err(|at| vouched(at, "payload"))?
            {
                torn = true;
                break;
            }
            return Err(corrupt(
                offset,
                format!("record payload checksum mismatch (stored {payload_crc:#010x}, computed {computed:#010x})"),
            ));
        }
        if let Some(previous) = last_seq {
            if seq <= previous {
                return Err(corrupt(
                    offset,
                    format!("sequence number {seq} does not follow {previous}"),
                ));
            }
        }
        let batch = WriteBatch::decode(payload)
            .map_err(|reason| corrupt(offset, format!("undecodable batch: {reason}")))?;
        let ops = batch.len() as u64;
        // The batch's operations hold seq, seq + 1, ...; the sequence number after them must
        // exist too (it is the engine's next one). Only a damaged record that passed its
        // checksums can say otherwise.
        if seq.checked_add(ops.max(1)).is_none() {
            return Err(corrupt(
                offset,
                format!("sequence numbers from {seq} for {ops} operations overflow"),
            ));
        }
        apply(seq, batch)?;
        records += 1;
        last_seq = Some(seq + ops.saturating_sub(1));
        offset += RECORD_HEADER_BYTES + payload_len;
    }
    let torn_bytes = (bytes.len() - offset) as u64;
    if torn && !is_last {
        return Err(corrupt(
            offset,
            "incomplete record in a segment that is not the newest".into(),
        ));
    }
    Ok(SegmentReplay {
        records,
        last_seq,
        valid_len: offset as u64,
        torn_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::engine::logfile::{OsLogFs, PREALLOCATE_CHUNK_BYTES};

    fn batch(i: u32) -> WriteBatch {
        let mut b = WriteBatch::new();
        b.put(
            format!("key{i}").into_bytes(),
            vec![i as u8; (i % 7) as usize],
        );
        if i.is_multiple_of(3) {
            b.delete(format!("old{i}").into_bytes());
        }
        b
    }

    /// Writes `n` records and returns the segment's bytes and each record's end offset.
    fn must_write(dir: &Path, n: u32) -> (PathBuf, Vec<u8>, Vec<usize>) {
        let fs: Arc<dyn LogFs> = Arc::new(OsLogFs);
        let mut writer = WalWriter::create(&fs, dir, 1).unwrap();
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        let mut seq = 1;
        for i in 0..n {
            let b = batch(i);
            append_record(&mut buf, seq, 0, &b);
            seq += b.len() as u64;
            ends.push(buf.len());
        }
        writer.append(&buf).unwrap();
        writer.sync().unwrap();
        (segment_path(dir, 1), buf, ends)
    }

    fn replay_all(path: &Path, is_last: bool) -> Result<(Vec<WriteBatch>, SegmentReplay)> {
        let mut out = Vec::new();
        let r = replay_segment(path, is_last, None, |_, b| {
            out.push(b);
            Ok(())
        })?;
        Ok((out, r))
    }

    /// Cutting the segment at every byte offset of its last records recovers exactly the
    /// records that were complete before the cut, and truncates the file to them.
    #[test]
    fn wal_truncated_at_every_offset_recovers_longest_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes, ends) = must_write(dir.path(), 40);
        let from = ends[ends.len() - 5];
        for cut in from..=bytes.len() {
            fs::write(&path, &bytes[..cut]).unwrap();
            let (batches, r) = replay_all(&path, true).unwrap();
            let complete = ends.iter().filter(|&&e| e <= cut).count();
            assert_eq!(batches.len(), complete, "cut at {cut}");
            for (i, b) in batches.iter().enumerate() {
                assert_eq!(b, &batch(i as u32));
            }
            let valid = if complete == 0 { 0 } else { ends[complete - 1] };
            assert_eq!(r.valid_len as usize, valid);
            assert_eq!(
                fs::metadata(&path).unwrap().len() as usize,
                valid,
                "truncated"
            );
        }
    }

    /// A flipped bit anywhere gives either the exact prefix before the damaged record (when the
    /// damage made the last record look incomplete) or a corruption error naming the file and
    /// an offset at or before the damage; never a panic, never a damaged record.
    #[test]
    fn wal_bit_flips_give_prefix_or_corruption_error() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes, ends) = must_write(dir.path(), 30);
        let mut state = 0x9e3779b97f4a7c15u64;
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let byte = (state % bytes.len() as u64) as usize;
            let bit = (state >> 40) % 8;
            let mut damaged = bytes.clone();
            damaged[byte] ^= 1 << bit;
            fs::write(&path, &damaged).unwrap();
            let intact = ends.iter().filter(|&&e| e <= byte).count();
            match replay_all(&path, true) {
                Ok((batches, _)) => {
                    assert_eq!(batches.len(), intact, "flip at byte {byte}");
                    for (i, b) in batches.iter().enumerate() {
                        assert_eq!(b, &batch(i as u32));
                    }
                }
                Err(EngineError::WalCorrupt { file, offset, .. }) => {
                    assert_eq!(file, path);
                    assert!(
                        offset as usize <= byte,
                        "offset {offset} after flip at {byte}"
                    );
                }
                Err(other) => panic!("unexpected error {other}"),
            }
        }
    }

    /// Power loss on a preallocated segment: of the bytes written since the last sync, any set
    /// of 512-byte sectors may have reached the disk while the others still hold the reserved
    /// zeros (the synced part of a sector is never lost). Recovery keeps every synced record,
    /// then an exact prefix of the rest, and never reports corruption.
    #[test]
    fn wal_preallocated_segment_with_unwritten_sectors_recovers_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let fs: Arc<dyn LogFs> = Arc::new(OsLogFs);
        let mut writer = WalWriter::create(&fs, dir.path(), 1).unwrap();
        let synced_records = 50;
        let (mut buf, mut ends, mut seq, mut synced_seq) = (Vec::new(), Vec::new(), 1, 0);
        for i in 0..120 {
            let b = batch(i);
            append_record(&mut buf, seq, synced_seq, &b);
            seq += b.len() as u64;
            ends.push(buf.len());
            if i as usize == synced_records - 1 {
                synced_seq = seq - 1;
            }
        }
        let synced = ends[synced_records - 1];
        writer.append(&buf[..synced]).unwrap();
        writer.sync().unwrap();
        writer.append(&buf[synced..]).unwrap();
        drop(writer);
        let path = segment_path(dir.path(), 1);
        let written = fs::read(&path).unwrap();
        assert_eq!(
            written.len() as u64,
            PREALLOCATE_CHUNK_BYTES,
            "preallocated"
        );
        let mut state = 0x2545f4914f6cdd1du64;
        for round in 0..300 {
            let mut disk = written.clone();
            let mut start = synced;
            while start < buf.len() {
                let end = ((start / SECTOR_BYTES + 1) * SECTOR_BYTES).min(buf.len());
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                // Half the rounds lose most sectors, half keep most.
                let lost = if round % 2 == 0 { 4 } else { 1 };
                if state % 5 < lost {
                    disk[start..end].fill(0);
                }
                start = end;
            }
            fs::write(&path, &disk).unwrap();
            let (batches, r) =
                replay_all(&path, true).unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(batches.len() >= synced_records, "round {round}");
            for (i, b) in batches.iter().enumerate() {
                assert_eq!(b, &batch(i as u32), "round {round}");
            }
            assert_eq!(r.valid_len as usize, ends[batches.len() - 1]);
            assert_eq!(fs::metadata(&path).unwrap().len(), r.valid_len);
        }
    }

    /// A record damaged after it was synced (here: a sector of it reads back as zeros) is
    /// corruption, even in the newest segment, when a later record says the log was durable
    /// past it: the records after it may have been acknowledged, so they are not dropped.
    #[test]
    fn wal_damaged_synced_record_is_corruption_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 1);
        let (mut buf, mut ends, mut seq) = (Vec::new(), Vec::new(), 1);
        for i in 0..40 {
            let b = batch(i);
            // Synced after every record, as in `sync` mode with one writer.
            append_record(&mut buf, seq, seq - 1, &b);
            seq += b.len() as u64;
            ends.push(buf.len());
        }
        // The whole record reads back as zeros, just as if its write had never landed.
        let damaged = ends[20];
        let mut disk = buf.clone();
        disk[damaged..ends[21]].fill(0);
        fs::write(&path, &disk).unwrap();
        let err = replay_all(&path, true).unwrap_err();
        match &err {
            EngineError::WalCorrupt { offset, reason, .. } => {
                assert_eq!(*offset as usize, damaged, "{reason}");
                assert!(reason.contains("had been synced"), "{reason}");
            }
            other => panic!("expected WalCorrupt, got {other}"),
        }
        assert_eq!(fs::read(&path).unwrap(), disk, "nothing truncated");
    }

    /// A record whose operations would take sequence numbers past `u64::MAX` (found by the
    /// `wal` fuzz target: it overflowed) is corruption, reported at its offset, and nothing of it
    /// is applied.
    #[test]
    fn wal_record_whose_sequence_numbers_overflow_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = segment_path(dir.path(), 1);
        let mut buf = Vec::new();
        append_record(&mut buf, 1, 0, &batch(0));
        let at = buf.len();
        append_record(&mut buf, u64::MAX, 0, &batch(3));
        assert_eq!(batch(3).len(), 2);
        fs::write(&path, &buf).unwrap();
        let mut applied = 0;
        let err = replay_segment(&path, true, None, |_, _| {
            applied += 1;
            Ok(())
        })
        .unwrap_err();
        match err {
            EngineError::WalCorrupt { offset, reason, .. } => {
                assert_eq!(offset as usize, at, "{reason}");
                assert!(reason.contains("overflow"), "{reason}");
            }
            other => panic!("expected WalCorrupt, got {other}"),
        }
        assert_eq!(applied, 1);
        // The last sequence number itself, one operation, leaves no next one either.
        let mut buf = Vec::new();
        append_record(&mut buf, u64::MAX, 0, &batch(1));
        fs::write(&path, &buf).unwrap();
        assert!(replay_all(&path, true).is_err());
        // One before it does.
        let mut buf = Vec::new();
        append_record(&mut buf, u64::MAX - 1, 0, &batch(1));
        fs::write(&path, &buf).unwrap();
        assert_eq!(
            replay_all(&path, true).unwrap().1.last_seq,
            Some(u64::MAX - 1)
        );
    }

    /// An incomplete record in an older segment is corruption, not a tail to cut.
    #[test]
    fn wal_torn_older_segment_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (path, bytes, _) = must_write(dir.path(), 5);
        fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        let err = replay_all(&path, false).unwrap_err();
        assert!(matches!(err, EngineError::WalCorrupt { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}
