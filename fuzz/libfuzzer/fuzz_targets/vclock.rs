//! The fuzz target `vclock` (see `kvctl_fuzz::TARGETS`), counting allocations.

#![no_main]

use kvctl_fuzz::alloc_counter::CountingAllocator;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let target = kvctl_fuzz::target("vclock").expect("a target of that name");
    target(data);
});
