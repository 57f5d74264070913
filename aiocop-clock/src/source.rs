//! Where readings come from, and the one place that knows the platform.

/// Set to `monotonic` to read `CLOCK_MONOTONIC` even where the TSC would do.
pub const CLOCK_ENV: &str = "AIOCOP_CLOCK";

/// The kernel's clocksource, on Linux.
const KERNEL_CLOCKSOURCE: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";

/// What [`crate::now_ns`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The CPU's time-stamp counter (x86_64, invariant, the kernel's own clocksource).
    Tsc,
    /// `clock_gettime(CLOCK_MONOTONIC)` (`std::time::Instant` off unix).
    Monotonic,
}

impl Source {
    /// The source for this process: the environment's choice, the kernel's clocksource and
    /// the CPU's invariant-TSC flag.
    pub fn detect() -> Source {
        let requested = std::env::var(CLOCK_ENV).ok();
        let kernel = std::fs::read_to_string(KERNEL_CLOCKSOURCE).ok();
        Source::choose(requested.as_deref(), kernel.as_deref(), invariant_tsc())
    }

    /// The TSC when nothing asks for `monotonic`, the CPU's TSC is invariant and the kernel
    /// keeps time with it (so it found it synchronised across CPUs); else `CLOCK_MONOTONIC`.
    pub fn choose(requested: Option<&str>, kernel: Option<&str>, invariant_tsc: bool) -> Source {
        let forced_monotonic =
            requested.is_some_and(|value| value.trim().eq_ignore_ascii_case("monotonic"));
        let kernel_uses_tsc = kernel.is_some_and(|name| name.trim() == "tsc");
        if !forced_monotonic && kernel_uses_tsc && invariant_tsc {
            Source::Tsc
        } else {
            Source::Monotonic
        }
    }

    /// `"tsc"` or `"monotonic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Tsc => "tsc",
            Source::Monotonic => "monotonic",
        }
    }
}

/// CPUID leaf 0x80000007, EDX bit 8: the TSC runs at a constant rate in every power state.
#[cfg(target_arch = "x86_64")]
fn invariant_tsc() -> bool {
    use std::arch::x86_64::__cpuid;
    // CPUID exists on every x86_64 CPU; leaf 0x80000000 gives the highest extended leaf.
    let highest = __cpuid(0x8000_0000).eax;
    highest >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn invariant_tsc() -> bool {
    false
}

/// The TSC (0 off x86_64, where it is never the source).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn read_tsc() -> u64 {
    // SAFETY: RDTSC exists on every x86_64 CPU and only reads a counter.
    unsafe { std::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
pub(crate) fn read_tsc() -> u64 {
    0
}

/// Attempts behind each [`tsc_and_monotonic`] pair.
const PAIR_ATTEMPTS: usize = 5;
/// A pair whose TSC readings lie further apart than this (about 20 µs at 3 GHz) was
/// interrupted: the thread was preempted or the machine paused it between the readings.
const MAX_PAIR_TICKS: u64 = 1 << 16;

/// A TSC reading and a `CLOCK_MONOTONIC` reading taken together: the TSC is the midpoint of two
/// readings around the monotonic one, and of five such attempts the one whose readings lie
/// closest is kept, so a thread preempted in the middle (on a busy machine, milliseconds) does
/// not skew a calibration. `None` when every attempt was interrupted.
pub(crate) fn tsc_and_monotonic() -> Option<(u64, u64)> {
    let mut best: Option<(u64, u64, u64)> = None;
    for _ in 0..PAIR_ATTEMPTS {
        let before = read_tsc();
        let ns = monotonic_ns();
        let after = read_tsc();
        let width = after.wrapping_sub(before);
        if after >= before && best.is_none_or(|(w, _, _)| width < w) {
            best = Some((width, before + width / 2, ns));
        }
    }
    best.filter(|&(width, _, _)| width <= MAX_PAIR_TICKS)
        .map(|(_, tsc, ns)| (tsc, ns))
}

/// `CLOCK_MONOTONIC` in nanoseconds; never 0.
#[cfg(unix)]
pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_MONOTONIC exists on every unix target.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.wrapping_mul(1_000_000_000).wrapping_add(nanos).max(1)
}

/// Nanoseconds since the first call in this process; never 0.
#[cfg(not(unix))]
pub(crate) fn monotonic_ns() -> u64 {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(std::time::Instant::now);
    u64::try_from(base.elapsed().as_nanos())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// The wall clock, in nanoseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
