//! [`Histogram`]: durations in log-spaced buckets, for a call site's percentiles.

/// Sub-buckets per power of two (2 bits: a bucket spans at most a quarter of its value).
const SUB_BITS: u32 = 2;
const SUB: u64 = 1 << SUB_BITS;
/// Buckets: values up to 2^32 µs (71 minutes); longer ones land in the last bucket.
const BUCKETS: usize = 128;

/// Durations counted in log-spaced buckets of microseconds: exact below 4 µs, then four
/// buckets per power of two, so a percentile read from it is off by at most a quarter of its
/// value (reported as the bucket's upper bound, never above the largest value seen).
///
/// ```
/// use aiocop_aggregate::Histogram;
///
/// let mut h = Histogram::default();
/// for ms in [1, 2, 3, 4, 100] {
///     h.add(ms * 1_000_000);
/// }
/// assert_eq!(h.count(), 5);
/// let p50 = h.quantile_ns(0.5);
/// assert!((3_000_000..=3_750_000).contains(&p50), "{p50}");
/// assert_eq!(h.quantile_ns(1.0), 100_000_000);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            max_ns: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("max_ns", &self.max_ns)
            .finish_non_exhaustive()
    }
}

/// The bucket of a duration in microseconds.
fn bucket(us: u64) -> usize {
    if us < SUB {
        return us as usize;
    }
    let octave = 63 - u64::from(us.leading_zeros()); // >= SUB_BITS
    let sub = (us >> (octave - u64::from(SUB_BITS))) & (SUB - 1);
    let index = (octave - u64::from(SUB_BITS) + 1) * SUB + sub;
    (index as usize).min(BUCKETS - 1)
}

/// The smallest duration in microseconds that falls in `index`.
fn lower_us(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB {
        return index;
    }
    let octave = index / SUB + u64::from(SUB_BITS) - 1;
    let sub = index % SUB;
    (SUB + sub) << (octave - u64::from(SUB_BITS))
}

impl Histogram {
    /// Counts one duration.
    #[inline]
    pub fn add(&mut self, ns: u64) {
        self.counts[bucket(ns / 1_000)] += 1;
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    /// Adds every duration counted in `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// How many durations were counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The `q` quantile (`0.5` for the median) in nanoseconds: the upper bound of the bucket
    /// holding it, at most the largest duration counted; 0 when empty. `q` is clamped to 0..=1.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        // The rank of the quantile, 1-based: at least the first value.
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper_ns = lower_us(index + 1).saturating_mul(1_000);
                return upper_ns.min(self.max_ns);
            }
        }
        self.max_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_increasing() {
        for index in 0..BUCKETS - 1 {
            assert!(lower_us(index) < lower_us(index + 1), "{index}");
            assert_eq!(bucket(lower_us(index)), index);
            assert_eq!(bucket(lower_us(index + 1) - 1), index);
        }
        assert_eq!(bucket(u64::MAX), BUCKETS - 1);
    }

    #[test]
    fn a_bucket_spans_at_most_a_quarter_of_its_value() {
        for index in SUB as usize..BUCKETS - 1 {
            let (low, high) = (lower_us(index), lower_us(index + 1));
            assert!((high - low) * 4 <= low, "{index}: {low}..{high}");
        }
    }
}
