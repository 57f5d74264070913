//! The check that gives up the TSC: the calibrated clock moved away from `CLOCK_MONOTONIC` by
//! more than NTP's slewing (at most 500 ppm) explains.

use aiocop_clock::rate_changed;

#[test]
fn small_differences_are_readings_and_slewing() {
    // One second apart, the difference moved by 300 µs (300 ppm): slewing.
    assert!(!rate_changed(1_000_000_000, 5_000, 2_000_000_000, 305_000));
    // 1 ms apart, moved by 40 µs: two readings' worth.
    assert!(!rate_changed(1_000_000_000, 0, 1_001_000_000, -40_000));
    // No time between checks and no movement.
    assert!(!rate_changed(7, 3, 7, 3));
}

#[test]
fn a_tsc_off_its_rate_is_noticed() {
    // One second apart, the calibrated clock ran 10% fast: a host with another TSC rate.
    assert!(rate_changed(1_000_000_000, 0, 2_000_000_000, 100_000_000));
    // Or slow.
    assert!(rate_changed(1_000_000_000, 0, 2_000_000_000, -100_000_000));
    // 2,000 ppm over ten seconds.
    assert!(rate_changed(0, 1_000, 10_000_000_000, 20_001_000));
}
