//! Retries with exponential backoff and full jitter, for idempotent calls only.
//!
//! Attempt `n` (0-based) that fails waits a random time in `[0, min(max, base * 2^n)]` before
//! attempt `n + 1` ("full jitter": callers that failed together do not retry together). The
//! wait happens only if it ends before the request's deadline with room to spare; otherwise
//! the caller gives up at once with the last error, rather than sleeping into a `504`.

use std::time::{Duration, Instant};

/// How many times to try, and how long to wait between tries.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Tries in all (1 = no retry).
    pub max_attempts: u32,
    /// The backoff ceiling of the first retry.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 3,
            base: Duration::from_millis(10),
            max: Duration::from_millis(200),
        }
    }
}

impl RetryPolicy {
    /// The wait before retrying after failed attempt `attempt` (0-based), drawn from `rng`;
    /// `None` if no attempt is left, or if the wait would not end before `deadline`.
    pub fn backoff(
        &self,
        attempt: u32,
        now: Instant,
        deadline: Instant,
        rng: &mut Jitter,
    ) -> Option<Duration> {
        if attempt + 1 >= self.max_attempts {
            return None;
        }
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let wait = rng.below(ceiling);
        // Leave the next attempt at least as long as the wait itself.
        let needed = wait.saturating_mul(2).max(Duration::from_millis(1));
        (now.checked_add(needed)? < deadline).then_some(wait)
    }
}

/// A small random source for jitter (xorshift64*), seeded from std's per-process random
/// hasher keys: no dependency, not for anything but spreading retries.
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// A generator seeded by `seed` (any value; the same seed, the same draws).
    pub fn from_seed(seed: u64) -> Jitter {
        let mut j = Jitter(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        j.next();
        j
    }

    /// A generator with a fresh seed.
    pub fn new() -> Jitter {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x9e37_79b9_7f4a_7c15);
        Jitter(h.finish() | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A duration drawn uniformly from `[0, ceiling]`, to the microsecond.
    pub fn below(&mut self, ceiling: Duration) -> Duration {
        let us = ceiling.as_micros().min(u64::MAX as u128) as u64;
        Duration::from_micros(self.next() % (us + 1))
    }
}

impl Default for Jitter {
    fn default() -> Jitter {
        Jitter::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_stops() {
        let p = RetryPolicy {
            max_attempts: 4,
            base: Duration::from_millis(10),
            max: Duration::from_millis(25),
        };
        let mut rng = Jitter::new();
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        for _ in 0..100 {
            assert!(p.backoff(0, now, far, &mut rng).unwrap() <= Duration::from_millis(10));
            assert!(p.backoff(2, now, far, &mut rng).unwrap() <= Duration::from_millis(25));
        }
        assert!(
            p.backoff(3, now, far, &mut rng).is_none(),
            "attempts exhausted"
        );
        let near = now + Duration::from_micros(500);
        let big = RetryPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(1),
            ..p
        };
        // With a 1 s ceiling, a wait that fits in 0.5 ms is (almost) never drawn.
        let fits = (0..100)
            .filter(|_| big.backoff(0, now, near, &mut rng).is_some())
            .count();
        assert!(fits < 5);
    }
}
