//! Process-wide settings, read on the hot path with relaxed atomics.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

static ACTIVE: AtomicBool = AtomicBool::new(false);
static DETECT_CONFIGURED: AtomicBool = AtomicBool::new(false);
static THRESHOLD_NS: AtomicU64 = AtomicU64::new(30_000_000);
static DISPATCH: AtomicU8 = AtomicU8::new(Dispatch::Background as u8);
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Where user callbacks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Dispatch {
    /// A background thread assembles the event; callbacks are scheduled on the loop's thread
    /// with `call_soon_threadsafe`.
    Background = 0,
    /// Callbacks run on the loop thread right after the handle (aiocop 1.2.1's behaviour).
    Inline = 1,
}

impl Dispatch {
    /// Parses `"background"` / `"inline"`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "background" => Some(Self::Background),
            "inline" => Some(Self::Inline),
            _ => None,
        }
    }

    /// The mode's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Background => "background",
            Self::Inline => "inline",
        }
    }
}

/// Monitoring is on (`aiocop.activate()`).
#[inline]
pub fn is_active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

/// Turns monitoring on or off.
pub fn set_active(on: bool) {
    ACTIVE.store(on, Ordering::Relaxed);
}

/// `detect_slow_tasks()` has run.
pub fn is_detect_configured() -> bool {
    DETECT_CONFIGURED.load(Ordering::Acquire)
}

/// Records the configuration of `detect_slow_tasks()`; `false` if it was already configured.
pub fn configure_detection(threshold_ns: u64, dispatch: Dispatch) -> bool {
    if DETECT_CONFIGURED.load(Ordering::Acquire) {
        return false;
    }
    THRESHOLD_NS.store(threshold_ns, Ordering::Relaxed);
    DISPATCH.store(dispatch as u8, Ordering::Relaxed);
    !DETECT_CONFIGURED.swap(true, Ordering::AcqRel)
}

/// The slow-task threshold.
#[inline]
pub fn threshold_ns() -> u64 {
    THRESHOLD_NS.load(Ordering::Relaxed)
}

/// The dispatch mode.
#[inline]
pub fn dispatch() -> Dispatch {
    if DISPATCH.load(Ordering::Relaxed) == Dispatch::Inline as u8 {
        Dispatch::Inline
    } else {
        Dispatch::Background
    }
}

/// The interpreter is shutting down: deliveries and sampling stop.
pub(crate) fn begin_shutdown() {
    SHUTTING_DOWN.store(true, Ordering::Release);
}

/// Whether the interpreter is shutting down (see [`begin_shutdown`]).
pub(crate) fn is_shutting_down() -> bool {
    SHUTTING_DOWN.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_parses_known_names_only() {
        assert_eq!(Dispatch::parse("inline"), Some(Dispatch::Inline));
        assert_eq!(Dispatch::parse(" Background "), Some(Dispatch::Background));
        assert_eq!(Dispatch::parse("bogus"), None);
    }
}
