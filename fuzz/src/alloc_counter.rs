//! [`CountingAllocator`]: the system allocator, counting each thread's live heap bytes and
//! their peak, so that a target can measure what one decode holds at its worst.
//!
//! Counts are per thread (the decoders run on the caller's thread, and a fuzzer or a parallel
//! test runner has other threads allocating at the same time). A `realloc` counts as the change
//! of size alone, as if in place: a large one is done by `mremap` without a copy, and a small
//! one's copy is dwarfed by the fixed allowance (see [`crate::allowance`]).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Bytes this thread has allocated and not yet freed (freeing another thread's bytes can
    /// take it below zero).
    static LIVE: Cell<isize> = const { Cell::new(0) };
    /// The highest `LIVE` since the last [`reset_peak`].
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// The system allocator, counting. Install it in a binary with
/// `#[global_allocator] static ALLOCATOR: CountingAllocator = CountingAllocator;`.
pub struct CountingAllocator;

fn count(delta: isize) {
    // `try_with`: a thread's counters are gone while it exits, and its last frees are not
    // counted.
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed on to `System` unchanged; the counting only touches
// thread-local cells, which need no allocation (const-initialized, without destructors).
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract for `alloc` is `System::alloc`'s.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            count(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract for `dealloc` is `System::dealloc`'s.
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract for `realloc` is `System::realloc`'s.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        new
    }
}

/// This thread's live heap bytes now.
pub fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

/// Starts a new peak at the live bytes now.
pub fn reset_peak() {
    PEAK.with(|peak| peak.set(live_bytes()));
}

/// This thread's highest live heap bytes since the last [`reset_peak`].
pub fn peak_bytes() -> isize {
    PEAK.with(Cell::get)
}

/// Whether the running binary counts allocations (installed [`CountingAllocator`]).
pub fn installed() -> bool {
    let before = live_bytes();
    let probe = std::hint::black_box(vec![0u8; 64]);
    let counted = live_bytes() - before >= 64;
    drop(probe);
    counted
}
