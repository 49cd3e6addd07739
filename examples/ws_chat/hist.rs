//! A latency histogram shared by every client: log-linear buckets (32 per power of two, so
//! about 3% wide), one relaxed atomic each; recording never locks.

use std::sync::atomic::{AtomicU64, Ordering};

/// Sub-buckets per power of two.
const SUB: usize = 32;
/// Powers of two covered (values up to 2^40 µs).
const POWERS: usize = 40;

/// A histogram of microsecond values.
#[derive(Debug)]
pub struct Histogram {
    buckets: Vec<AtomicU64>,
}

impl Default for Histogram {
    fn default() -> Histogram {
        Histogram {
            buckets: (0..SUB * POWERS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// The bucket of `v`.
fn bucket(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let power = 63 - v.leading_zeros() as usize; // v >= 2^power, power >= 5
    let sub = ((v >> (power - 5)) as usize) & (SUB - 1);
    ((power - 4) * SUB + sub).min(SUB * POWERS - 1)
}

/// The smallest value of bucket `b`.
fn bucket_low(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let power = b / SUB + 4;
    let sub = (b % SUB) as u64;
    (SUB as u64 + sub) << (power - 5)
}

impl Histogram {
    /// Records one value.
    pub fn record(&self, v: u64) {
        self.buckets[bucket(v)].fetch_add(1, Ordering::Relaxed);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    /// The value at quantile `q` (0..=1): the lower bound of its bucket; 0 if empty.
    pub fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return bucket_low(i);
            }
        }
        bucket_low(self.buckets.len() - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_tight() {
        let mut last = 0;
        for v in [0u64, 1, 31, 32, 33, 63, 64, 100, 1_000, 12_345, 1 << 30] {
            let b = bucket(v);
            assert!(b >= last, "{v}");
            last = b;
            let low = bucket_low(b);
            assert!(low <= v && v - low <= v / 32 + 1, "{v}: {low}");
        }
        let h = Histogram::default();
        for v in 1..=100 {
            h.record(v * 10);
        }
        assert_eq!(h.quantile(0.5), 496); // bucket of 500
        assert!(h.quantile(0.99) >= 960);
    }
}
