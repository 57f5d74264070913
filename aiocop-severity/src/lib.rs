//! Severity rules of aiocop: event weights, the table of blocking audit events, scoring and levels.
//!
//! This crate is pure Rust (no pyo3, no IO). It holds the facts aiocop 1.2.1 hard-codes:
//!
//! - the weight of each blocking audit event ([`NATIVE_EVENTS`], raised by CPython, and
//!   [`WRAPPED_EVENTS`], raised by aiocop's own stdlib wrappers), looked up by name with the
//!   allocation-free [`lookup`] (fit for a native audit hook) or [`weight_of`];
//! - the score of a handle, the sum of its events' weights ([`score`], a missing weight counts
//!   [`DEFAULT_WEIGHT`]) and the name of a weight's class ([`weight_label`]: heavy, moderate,
//!   light or trivial);
//! - the level of a score ([`level_from_score`], [`level_from_score_f64`] for a float score:
//!   high at >= 50, medium at >= 10, else low);
//! - the table Python sees from `get_blocking_events_dict()` ([`blocking_events`]).
//!
//! ```
//! use aiocop_severity::{level_from_score, lookup, score, weight_of, Level};
//!
//! // A handle that resolved a host name, opened a file and stat'ed it.
//! let weights = [b"socket.getaddrinfo".as_slice(), b"open", b"os.stat"]
//!     .into_iter()
//!     .map(|name| lookup(name).map(|spec| spec.weight));
//! let total = score(weights);
//! assert_eq!(total, 61);
//! assert_eq!(level_from_score(i64::from(total)), Level::High);
//! assert_eq!(level_from_score(i64::from(total)).as_str(), "high");
//! assert_eq!(weight_of("object.__getattr__"), None);
//! ```
#![deny(missing_docs)]

mod level;
mod table;
mod weights;

pub use level::{
    level_from_score, level_from_score_f64, Level, THRESHOLD_HIGH, THRESHOLD_LOW, THRESHOLD_MEDIUM,
};
pub use table::{
    blocking_events, lookup, weight_of, wrapped_events_for, EventSpec, Source, NATIVE_EVENTS,
    WRAPPED_EVENTS,
};
pub use weights::{
    score, weight_label, DEFAULT_WEIGHT, WEIGHT_HEAVY, WEIGHT_LIGHT, WEIGHT_MODERATE,
    WEIGHT_TRIVIAL,
};

// Runs the README's example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
