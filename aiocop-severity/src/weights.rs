//! Event weights and the scoring rule.

/// Weight of a heavy blocking call: network connects, DNS, subprocesses, recursive tree walks,
/// `time.sleep`, imports.
///
/// ```
/// assert_eq!(aiocop_severity::WEIGHT_HEAVY, 50);
/// ```
pub const WEIGHT_HEAVY: u32 = 50;

/// Weight of a moderate blocking call: opening files, file-system mutations, socket data transfer.
///
/// ```
/// assert_eq!(aiocop_severity::WEIGHT_MODERATE, 10);
/// ```
pub const WEIGHT_MODERATE: u32 = 10;

/// Weight of a light blocking call: `stat`-like metadata checks, locks, signals, syslog.
///
/// ```
/// assert_eq!(aiocop_severity::WEIGHT_LIGHT, 1);
/// ```
pub const WEIGHT_LIGHT: u32 = 1;

/// Weight of a trivial call that is recorded but does not raise the score
/// (`os.getcwd`, `os.path.abspath`, `os.path.islink`, `socket.socket.bind`).
///
/// ```
/// assert_eq!(aiocop_severity::WEIGHT_TRIVIAL, 0);
/// ```
pub const WEIGHT_TRIVIAL: u32 = 0;

/// Weight counted for an event with no known weight (aiocop 1.2.1 counts `None` as moderate).
///
/// ```
/// use aiocop_severity::{DEFAULT_WEIGHT, WEIGHT_MODERATE};
/// assert_eq!(DEFAULT_WEIGHT, WEIGHT_MODERATE);
/// ```
pub const DEFAULT_WEIGHT: u32 = WEIGHT_MODERATE;

/// The name of a weight's class, as reports print it next to the weight: `"heavy"` from
/// [`WEIGHT_HEAVY`] up, `"moderate"` from [`WEIGHT_MODERATE`], `"light"` from [`WEIGHT_LIGHT`],
/// else `"trivial"`.
///
/// ```
/// use aiocop_severity::{weight_label, DEFAULT_WEIGHT};
///
/// assert_eq!(weight_label(50), "heavy");
/// assert_eq!(weight_label(49), "moderate");
/// assert_eq!(weight_label(10), "moderate");
/// assert_eq!(weight_label(9), "light");
/// assert_eq!(weight_label(1), "light");
/// assert_eq!(weight_label(0), "trivial");
/// assert_eq!(weight_label(DEFAULT_WEIGHT), "moderate");
/// ```
pub const fn weight_label(weight: u32) -> &'static str {
    if weight >= WEIGHT_HEAVY {
        "heavy"
    } else if weight >= WEIGHT_MODERATE {
        "moderate"
    } else if weight >= WEIGHT_LIGHT {
        "light"
    } else {
        "trivial"
    }
}

/// Sums the weights of a handle's blocking events; `None` (no known weight) counts
/// [`DEFAULT_WEIGHT`]. The sum saturates at `u32::MAX` instead of overflowing.
///
/// This is aiocop 1.2.1's `calculate_io_severity_score`; an empty input scores 0.
///
/// ```
/// use aiocop_severity::score;
///
/// assert_eq!(score([Some(50), Some(1), None]), 61);
/// assert_eq!(score(std::iter::empty()), 0);
/// assert_eq!(score([Some(u32::MAX), Some(1)]), u32::MAX);
/// ```
pub fn score<I: IntoIterator<Item = Option<u32>>>(weights: I) -> u32 {
    weights.into_iter().fold(0u32, |acc, w| {
        acc.saturating_add(w.unwrap_or(DEFAULT_WEIGHT))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weight_labels() {
        let cases = [
            (0, "trivial"),
            (WEIGHT_TRIVIAL, "trivial"),
            (WEIGHT_LIGHT, "light"),
            (WEIGHT_MODERATE - 1, "light"),
            (WEIGHT_MODERATE, "moderate"),
            (WEIGHT_HEAVY - 1, "moderate"),
            (WEIGHT_HEAVY, "heavy"),
            (u32::MAX, "heavy"),
        ];
        for (weight, label) in cases {
            assert_eq!(weight_label(weight), label, "weight {weight}");
        }
    }

    #[test]
    fn score_table() {
        let cases: &[(&[Option<u32>], u32)] = &[
            (&[], 0),
            (&[None], DEFAULT_WEIGHT),
            (&[Some(WEIGHT_TRIVIAL)], 0),
            (&[Some(WEIGHT_TRIVIAL), Some(WEIGHT_TRIVIAL)], 0),
            (&[Some(WEIGHT_LIGHT); 9], 9),
            (&[Some(WEIGHT_LIGHT); 10], 10),
            (&[Some(WEIGHT_MODERATE), None], 20),
            (&[Some(WEIGHT_HEAVY), Some(WEIGHT_LIGHT), None], 61),
            (&[Some(u32::MAX), None], u32::MAX),
            (&[Some(u32::MAX - 5), Some(5)], u32::MAX),
        ];
        for (weights, expected) in cases {
            assert_eq!(
                score(weights.iter().copied()),
                *expected,
                "weights {weights:?}"
            );
        }
    }
}
