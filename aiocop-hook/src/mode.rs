//! What a violation does: raise, or warn (log once per call site).

/// What a violation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Raise (`HighSeverityBlockingIoException` / `BlockingCallError`).
    Raise,
    /// Log once per call site (logger `aiocop`), do not raise.
    Warn,
}

impl Mode {
    /// Parses `"raise"` / `"warn"`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "raise" => Some(Self::Raise),
            "warn" => Some(Self::Warn),
            _ => None,
        }
    }

    /// The mode's name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Raise => "raise",
            Self::Warn => "warn",
        }
    }
}
