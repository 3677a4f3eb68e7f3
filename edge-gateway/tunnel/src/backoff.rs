//! Re-dial delays: full-jitter exponential backoff.

use std::time::Duration;

use rand::Rng;

/// First retry waits up to this long.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);

/// No retry waits longer; 32 s is the sixth doubling of the base.
pub const BACKOFF_CAP: Duration = Duration::from_secs(32);

/// A connection that stayed up this long was healthy: the next failure starts over at
/// attempt 0.
pub const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(60);

/// The delay before retry number `attempt` (0 for the first): uniform in
/// `[0, min(cap, base * 2^attempt)]` ("full jitter", so that many connectors that lost the same
/// edge do not re-dial in step).
pub fn backoff_delay(attempt: u32, base: Duration, cap: Duration, rng: &mut impl Rng) -> Duration {
    let ceiling = base
        .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
        .map_or(cap, |d| d.min(cap));
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.gen_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng as _;

    use super::*;

    #[test]
    fn delays_stay_under_the_doubling_ceiling_and_the_cap() {
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..40 {
            let ceiling = (BACKOFF_BASE * 2u32.saturating_pow(attempt.min(20))).min(BACKOFF_CAP);
            for _ in 0..50 {
                let d = backoff_delay(attempt, BACKOFF_BASE, BACKOFF_CAP, &mut rng);
                assert!(d <= ceiling, "attempt {attempt}: {d:?} > {ceiling:?}");
            }
        }
    }

    #[test]
    fn delays_are_jittered_and_reach_toward_the_cap() {
        let mut rng = StdRng::seed_from_u64(42);
        let delays: Vec<_> = (0..200)
            .map(|_| backoff_delay(10, BACKOFF_BASE, BACKOFF_CAP, &mut rng))
            .collect();

        assert!(delays.iter().any(|d| *d < Duration::from_secs(8)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(24)));
    }

    #[test]
    fn same_seed_gives_same_delays() {
        let run = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..8)
                .map(|a| backoff_delay(a, BACKOFF_BASE, BACKOFF_CAP, &mut rng))
                .collect::<Vec<_>>()
        };

        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }
}
