//! [`Durations`]: slow handles' durations in fixed buckets, the shape of a Prometheus or
//! OpenTelemetry explicit-bucket histogram.

/// The buckets' upper bounds in seconds (a last, unbounded bucket follows).
pub const BOUNDS_SECONDS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const BOUNDS_NS: [u64; 14] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// Durations counted in the buckets of [`BOUNDS_SECONDS`] (each bucket holds the durations
/// above the previous bound up to its own, inclusive), with their sum.
///
/// ```
/// use aiocop_aggregate::{Durations, BOUNDS_SECONDS};
///
/// let mut d = Durations::default();
/// d.add(1_000_000); // 1 ms: the first bucket (le 0.001)
/// d.add(40_000_000); // 40 ms: le 0.05
/// d.add(60_000_000_000); // a minute: the unbounded bucket
/// assert_eq!(d.counts()[0], 1);
/// assert_eq!(d.counts()[5], 1);
/// assert_eq!(d.counts()[BOUNDS_SECONDS.len()], 1);
/// assert_eq!((d.count(), d.sum_ns()), (3, 60_041_000_000));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Durations {
    counts: [u64; BOUNDS_NS.len() + 1],
    sum_ns: u64,
}

impl Durations {
    /// Counts one duration.
    #[inline]
    pub fn add(&mut self, ns: u64) {
        let index = BOUNDS_NS.partition_point(|&bound| bound < ns);
        self.counts[index] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    /// Adds every duration counted in `other`.
    pub fn merge(&mut self, other: &Durations) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
    }

    /// The count of each bucket (not cumulative), the unbounded one last.
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Their sum in nanoseconds (saturating).
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_agree() {
        for (s, ns) in BOUNDS_SECONDS.iter().zip(BOUNDS_NS) {
            assert_eq!((s * 1e9).round() as u64, ns);
        }
    }

    #[test]
    fn a_duration_on_a_bound_counts_in_that_bucket() {
        let mut d = Durations::default();
        d.add(BOUNDS_NS[3]);
        d.add(BOUNDS_NS[3] + 1);
        assert_eq!(d.counts()[3], 1);
        assert_eq!(d.counts()[4], 1);
    }
}
