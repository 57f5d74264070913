//! Severity levels and the score → level rule.

use std::fmt;

/// Score at or above which a handle's severity is [`Level::High`].
///
/// ```
/// use aiocop_severity::{level_from_score, Level, THRESHOLD_HIGH};
/// assert_eq!(level_from_score(THRESHOLD_HIGH as i64), Level::High);
/// ```
pub const THRESHOLD_HIGH: u32 = 50;

/// Score at or above which a handle's severity is at least [`Level::Medium`].
///
/// ```
/// use aiocop_severity::{level_from_score, Level, THRESHOLD_MEDIUM};
/// assert_eq!(level_from_score(THRESHOLD_MEDIUM as i64), Level::Medium);
/// ```
pub const THRESHOLD_MEDIUM: u32 = 10;

/// The lowest score of a handle that did some weighted blocking IO.
///
/// Kept for API parity with aiocop 1.2.1; [`level_from_score`] does not use it (every score
/// below [`THRESHOLD_MEDIUM`], including 0, is [`Level::Low`]).
///
/// ```
/// assert_eq!(aiocop_severity::THRESHOLD_LOW, 1);
/// ```
pub const THRESHOLD_LOW: u32 = 1;

/// Severity level of a slow handle, ordered `Low < Medium < High`.
///
/// ```
/// use aiocop_severity::Level;
///
/// assert!(Level::Low < Level::Medium && Level::Medium < Level::High);
/// assert_eq!(Level::High.to_string(), "high");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Score below [`THRESHOLD_MEDIUM`]; also every `cpu_blocking` event.
    Low,
    /// Score from [`THRESHOLD_MEDIUM`] up to, not including, [`THRESHOLD_HIGH`].
    Medium,
    /// Score of at least [`THRESHOLD_HIGH`].
    High,
}

impl Level {
    /// The level as aiocop 1.2.1 spells it: `"low"`, `"medium"` or `"high"`.
    ///
    /// ```
    /// use aiocop_severity::Level;
    ///
    /// assert_eq!(Level::Low.as_str(), "low");
    /// assert_eq!(Level::Medium.as_str(), "medium");
    /// assert_eq!(Level::High.as_str(), "high");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Low => "low",
            Level::Medium => "medium",
            Level::High => "high",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The level of a severity score: high at >= 50, medium at >= 10, otherwise low
/// (negative scores, which Python callers may pass, are low).
///
/// This is aiocop 1.2.1's `get_severity_level_from_score`.
///
/// ```
/// use aiocop_severity::{level_from_score, Level};
///
/// assert_eq!(level_from_score(9), Level::Low);
/// assert_eq!(level_from_score(10), Level::Medium);
/// assert_eq!(level_from_score(50), Level::High);
/// assert_eq!(level_from_score(-3), Level::Low);
/// ```
pub const fn level_from_score(score: i64) -> Level {
    if score >= THRESHOLD_HIGH as i64 {
        Level::High
    } else if score >= THRESHOLD_MEDIUM as i64 {
        Level::Medium
    } else {
        Level::Low
    }
}

/// The level of a severity score given as a float, with the thresholds of
/// [`level_from_score`]: high at >= 50.0, medium at >= 10.0, otherwise low. Fractional,
/// negative and infinite scores compare as they are; NaN is low.
///
/// Python's `get_severity_level_from_score` accepts an int or a float and reads it as a float.
///
/// ```
/// use aiocop_severity::{level_from_score_f64, Level};
///
/// assert_eq!(level_from_score_f64(9.99), Level::Low);
/// assert_eq!(level_from_score_f64(10.0), Level::Medium);
/// assert_eq!(level_from_score_f64(49.5), Level::Medium);
/// assert_eq!(level_from_score_f64(50.0), Level::High);
/// assert_eq!(level_from_score_f64(-3.5), Level::Low);
/// assert_eq!(level_from_score_f64(f64::INFINITY), Level::High);
/// assert_eq!(level_from_score_f64(f64::NAN), Level::Low);
/// ```
pub const fn level_from_score_f64(score: f64) -> Level {
    if score >= THRESHOLD_HIGH as f64 {
        Level::High
    } else if score >= THRESHOLD_MEDIUM as f64 {
        Level::Medium
    } else {
        Level::Low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_boundaries() {
        let cases: &[(i64, Level)] = &[
            (i64::MIN, Level::Low),
            (-1, Level::Low),
            (0, Level::Low),
            (1, Level::Low),
            (9, Level::Low),
            (10, Level::Medium),
            (11, Level::Medium),
            (49, Level::Medium),
            (50, Level::High),
            (51, Level::High),
            (i64::from(u32::MAX), Level::High),
            (i64::MAX, Level::High),
        ];
        for &(score, expected) in cases {
            assert_eq!(level_from_score(score), expected, "score {score}");
        }
    }

    #[test]
    fn float_levels_agree_with_integer_levels() {
        for score in -100i64..=200 {
            assert_eq!(
                level_from_score_f64(score as f64),
                level_from_score(score),
                "score {score}"
            );
        }
        let cases: &[(f64, Level)] = &[
            (f64::NEG_INFINITY, Level::Low),
            (-0.0, Level::Low),
            (9.999_999, Level::Low),
            (10.0, Level::Medium),
            (49.999_999, Level::Medium),
            (50.0, Level::High),
            (1e300, Level::High),
            (f64::INFINITY, Level::High),
            (f64::NAN, Level::Low),
        ];
        for &(score, expected) in cases {
            assert_eq!(level_from_score_f64(score), expected, "score {score}");
        }
    }

    #[test]
    fn level_strings() {
        let cases = [
            (Level::Low, "low"),
            (Level::Medium, "medium"),
            (Level::High, "high"),
        ];
        for (level, text) in cases {
            assert_eq!(level.as_str(), text);
            assert_eq!(level.to_string(), text);
        }
    }

    #[test]
    fn levels_are_ordered() {
        assert!(Level::Low < Level::Medium);
        assert!(Level::Medium < Level::High);
    }
}
