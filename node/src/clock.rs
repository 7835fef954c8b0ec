//! The wall clock, in milliseconds since the epoch: what tombstones, hints, generations and
//! workers' errors are dated with. (The I/O-free cores are given time; this is where the
//! services read it.)

use std::time::{SystemTime, UNIX_EPOCH};

pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
