//! Ticks to nanoseconds: a base point and a fixed-point rate.

/// Fractional bits of [`Calibration`]'s rate.
const SHIFT: u32 = 32;

/// Turns TSC readings into nanoseconds: `ns_base + (tsc - tsc_base) * rate`, the rate in
/// nanoseconds per tick as a 32.32 fixed-point number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calibration {
    tsc_base: u64,
    ns_base: u64,
    /// Nanoseconds per tick, times 2^32.
    rate: u64,
    /// How long the rate was measured over.
    span_ns: u64,
}

impl Calibration {
    /// The rate measured between two (tsc, ns) pairs, based at the second. `None` when the
    /// pairs do not both move forward.
    pub fn measured(tsc0: u64, ns0: u64, tsc1: u64, ns1: u64) -> Option<Calibration> {
        let ticks = tsc1.checked_sub(tsc0).filter(|&t| t > 0)?;
        let span_ns = ns1.checked_sub(ns0).filter(|&n| n > 0)?;
        let rate = (u128::from(span_ns) << SHIFT) / u128::from(ticks);
        Some(Calibration {
            tsc_base: tsc1,
            ns_base: ns1,
            rate: u64::try_from(rate).ok()?,
            span_ns,
        })
    }

    /// Nanoseconds at the TSC reading `tsc`, rounded (a reading from before the base counts as the
    /// base); never 0.
    #[inline]
    pub fn ns_at(&self, tsc: u64) -> u64 {
        let ticks = tsc.saturating_sub(self.tsc_base);
        let ns = (u128::from(ticks) * u128::from(self.rate) + (1 << (SHIFT - 1))) >> SHIFT;
        self.ns_base
            .saturating_add(u64::try_from(ns).unwrap_or(u64::MAX))
            .max(1)
    }

    /// The rate measured from the origin `(tsc0, ns0)` to `(tsc, ns)`, based where this
    /// calibration puts `tsc`: the clock goes on from where it is, only its rate changes.
    pub fn refined(&self, tsc0: u64, ns0: u64, tsc: u64, ns: u64) -> Option<Calibration> {
        let measured = Calibration::measured(tsc0, ns0, tsc, ns)?;
        Some(Calibration {
            tsc_base: tsc,
            ns_base: self.ns_at(tsc),
            ..measured
        })
    }

    /// How long the rate was measured over, in nanoseconds.
    pub fn span_ns(&self) -> u64 {
        self.span_ns
    }

    /// Nanoseconds per tick.
    pub fn ns_per_tick(&self) -> f64 {
        self.rate as f64 / (1u64 << SHIFT) as f64
    }
}

/// Largest rate difference between the TSC as calibrated and `CLOCK_MONOTONIC` that is not a
/// changed TSC: NTP slews `CLOCK_MONOTONIC` by at most 500 ppm.
const MAX_RATE_ERROR: u64 = 1_000; // 1 in 1,000
/// Slack for the two readings behind each comparison.
const READING_SLACK_NS: u64 = 50_000;

/// Whether the TSC no longer ticks at the calibrated rate: between two checks of the
/// calibrated clock against `CLOCK_MONOTONIC` (at monotonic times `previous_ns` and `ns`, where
/// calibrated minus monotonic was `previous_drift` and `drift` nanoseconds), the difference
/// moved by more than a thousandth of the time between them (plus slack for the readings).
/// This happens when a virtual machine moves to a host whose TSC runs at another rate, or when
/// the counter stops being synchronised; the kernel then stops keeping time with it too.
pub fn rate_changed(previous_ns: u64, previous_drift: i64, ns: u64, drift: i64) -> bool {
    let interval = ns.saturating_sub(previous_ns);
    let moved = drift.abs_diff(previous_drift);
    moved > interval / MAX_RATE_ERROR + READING_SLACK_NS
}
