//! The wall clock the runtime writes: `acquireTime` and `renewTime` of the lock record,
//! the history's `wall_ms`. No decision of the runtime reads it — a lease runs out by
//! this process's monotonic clock from when it saw the record change, and the orphan
//! sweep ages files by when this process first listed them — so JobManagers whose clocks
//! disagree by minutes elect, fence and sweep the same as ones that agree.
//!
//! A process may run its wall clock ahead or behind by a fixed offset
//! ([`set_wall_clock_offset`]; `flink-ha jobmanager --wall-clock-offset`), which is how
//! the nemesis test skews its JobManagers. Flink's own election (fabric8) does compare
//! `renewTime` with its wall clock: a JobManager of this runtime whose clock runs behind
//! by more than a lease would look expired to a Flink standby beside it.

use std::sync::atomic::{AtomicI64, Ordering};

static OFFSET_MS: AtomicI64 = AtomicI64::new(0);

/// Runs this process's wall clock `offset_ms` milliseconds ahead (negative: behind).
pub fn set_wall_clock_offset(offset_ms: i64) {
    OFFSET_MS.store(offset_ms, Ordering::Relaxed);
}

/// The wall clock now, with this process's offset.
pub fn wall_now() -> jiff::Timestamp {
    let now = jiff::Timestamp::now();
    let offset = jiff::SignedDuration::from_millis(OFFSET_MS.load(Ordering::Relaxed));
    now.checked_add(offset).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offset_moves_the_wall_clock_and_nothing_else() {
        let before = jiff::Timestamp::now();
        set_wall_clock_offset(-180_000);
        let skewed = wall_now();
        set_wall_clock_offset(0);
        let behind = before.duration_since(skewed).as_secs();
        assert!((179..=181).contains(&behind), "{behind} s behind");
        assert!(wall_now() >= before);
    }
}
