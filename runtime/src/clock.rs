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
    skewed(jiff::Timestamp::now(), OFFSET_MS.load(Ordering::Relaxed))
}

/// `now` moved by `offset_ms`; `now` itself if that leaves the representable range.
fn skewed(now: jiff::Timestamp, offset_ms: i64) -> jiff::Timestamp {
    now.checked_add(jiff::SignedDuration::from_millis(offset_ms))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The process-wide offset is left alone: other tests of this binary read the clock.
    #[test]
    fn an_offset_moves_the_time_ahead_or_behind() {
        let now = jiff::Timestamp::now();
        assert_eq!(now.duration_since(skewed(now, -180_000)).as_secs(), 180);
        assert_eq!(skewed(now, 45_000).duration_since(now).as_secs(), 45);
        assert_eq!(skewed(now, 0), now);
        assert_eq!(skewed(jiff::Timestamp::MAX, 1_000), jiff::Timestamp::MAX);
    }
}
