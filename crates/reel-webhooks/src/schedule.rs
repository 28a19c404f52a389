//! When to try a delivery again: sans-IO, so tests run the whole multi-day schedule on a
//! manual clock. Delays grow from seconds to twelve hours; the last attempt comes more than
//! three days after the first, so a receiver down over a long weekend still gets every event.
//! Each delay gets ±10 % jitter so that retries after an outage do not arrive all at once.

/// Delay before attempt n+1 (index n-1 = after the n-th failure), in seconds.
pub const RETRY_DELAYS_SECS: &[i64] = &[
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    10 * 3600,
    12 * 3600,
    12 * 3600,
    12 * 3600,
    12 * 3600,
];

/// Attempts in all: the first and one per delay.
pub const MAX_ATTEMPTS: u32 = RETRY_DELAYS_SECS.len() as u32 + 1;

/// When to try again after `failed_attempts` failures, or None when the schedule is over.
/// `jitter` in [-1, 1] scales the ±10 %.
pub fn next_attempt_at(now_ms: i64, failed_attempts: u32, jitter: f64) -> Option<i64> {
    let delay = *RETRY_DELAYS_SECS.get(failed_attempts.checked_sub(1)? as usize)?;
    let jittered = delay as f64 * 1000.0 * (1.0 + 0.1 * jitter.clamp(-1.0, 1.0));
    Some(now_ms + jittered as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_spans_more_than_three_days_and_then_stops() {
        let total: i64 = RETRY_DELAYS_SECS.iter().sum();
        assert!(total > 72 * 3600, "{total}");
        let mut now = 0;
        let mut attempts = 1;
        while let Some(next) = next_attempt_at(now, attempts, -1.0) {
            assert!(next > now);
            now = next;
            attempts += 1;
        }
        assert_eq!(attempts, MAX_ATTEMPTS);
        assert!(now >= (total as f64 * 0.9) as i64 * 1000);
        assert_eq!(next_attempt_at(0, 1, 1.0), Some(5500));
        assert_eq!(next_attempt_at(0, 0, 0.0), None);
    }
}
