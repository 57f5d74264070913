//! Criterion benches of the pure crates.
