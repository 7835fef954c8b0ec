//! The memory a decoder may hold: decoding an input of `n` bytes may take at most
//! [`BYTES_PER_INPUT_BYTE_MAX`] × `n` + [`FIXED_BYTES_MAX`] bytes of heap at its peak, counted
//! by [`crate::alloc_counter`] on the decoding thread.
//!
//! Why these numbers: what a peer sends a node is bounded by the message limit
//! ([`kvctl::wire::proto::MESSAGE_BYTES_MAX`], 17 MiB) and by admission control, which counts the
//! bytes of messages, so what decoding them takes must be a small multiple of those bytes.
//! The decoded types set the floor. The densest items are about 24 heap bytes per input byte
//! (an empty byte string is one byte of CBOR and a 24-byte `ByteBuf`); a `Vec` that grows by
//! doubling may hold up to twice what it uses; a WAL batch's operations take 48 bytes for the
//! 5 bytes of an empty delete (about 19 per byte with the growth), a sibling's clock entry a
//! `BTreeMap` node. Lists whose length the input states are allocated at once up to 1 MiB
//! (serde's cautious size hint), and the protocol's lists are bounded in count (the
//! `proto::*_MAX` limits), which the fixed part covers along with the decoders' scratch
//! buffers. 32 per byte is above every one of these (the tests measure each, and
//! `docs/testing.md` lists them), and below what decoding a message twice, or into a generic
//! tree, takes (a `ciborium::Value` is 48 bytes or more for a one-byte integer: the 16 MB
//! message of zeros of issue 23 took about 50 per byte).

use std::cell::Cell;

use crate::alloc_counter;

thread_local! {
    /// The input bytes and the peak heap bytes of this thread's last [`measured`] decode.
    static LAST: Cell<Option<Measurement>> = const { Cell::new(None) };
}

/// What one decode held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measurement {
    pub input_bytes: usize,
    pub peak_bytes: usize,
}

/// What this thread's last [`measured`] decode held (for the tests to report).
pub fn last_measurement() -> Option<Measurement> {
    LAST.with(Cell::get)
}

/// Heap bytes a decode may hold at its peak per byte of its input.
pub const BYTES_PER_INPUT_BYTE_MAX: usize = 32;
/// Heap bytes a decode may hold at its peak whatever its input's size.
pub const FIXED_BYTES_MAX: usize = 1 << 20;

/// The most heap bytes decoding `input_bytes` may hold at its peak.
pub fn bytes_max(input_bytes: usize) -> usize {
    BYTES_PER_INPUT_BYTE_MAX
        .saturating_mul(input_bytes)
        .saturating_add(FIXED_BYTES_MAX)
}

/// Runs `decode` on an input of `input_bytes`, and panics (a fuzzer's crash) if its peak of
/// live heap bytes on this thread, what it returns included, went over [`bytes_max`]. Without
/// the counting allocator installed there is nothing to count, and nothing is checked.
pub fn measured<T>(what: &str, input_bytes: usize, decode: impl FnOnce() -> T) -> T {
    let start = alloc_counter::live_bytes();
    alloc_counter::reset_peak();
    let out = decode();
    let peak = usize::try_from(alloc_counter::peak_bytes() - start).unwrap_or(0);
    let max = bytes_max(input_bytes);
    LAST.with(|last| {
        last.set(Some(Measurement {
            input_bytes,
            peak_bytes: peak,
        }))
    });
    assert!(
        peak <= max,
        "{what}: decoding {input_bytes} bytes held {peak} bytes of heap at its peak, over the \
         allowance of {max} ({BYTES_PER_INPUT_BYTE_MAX} per input byte + {FIXED_BYTES_MAX})"
    );
    out
}
