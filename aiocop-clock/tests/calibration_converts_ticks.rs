//! A calibration turns TSC readings into nanoseconds at its measured rate, and a refinement
//! changes the rate without moving the clock.

use aiocop_clock::Calibration;

#[test]
fn the_measured_rate_converts_ticks_from_the_base() {
    // 3 ticks per nanosecond, measured over 1 ms.
    let cal = Calibration::measured(1_000, 5_000_000, 3_001_000, 6_000_000).expect("forward");
    assert_eq!(cal.span_ns(), 1_000_000);
    assert!((cal.ns_per_tick() - 1.0 / 3.0).abs() < 1e-9);
    assert_eq!(cal.ns_at(3_001_000), 6_000_000);
    assert_eq!(cal.ns_at(3_001_000 + 3_000), 6_001_000);
    // A reading from before the base (taken on another thread just before the calibration
    // was published) counts as the base: the clock never goes back past it.
    assert_eq!(cal.ns_at(2_000_000), 6_000_000);
}

#[test]
fn pairs_that_do_not_move_forward_give_no_calibration() {
    assert_eq!(Calibration::measured(10, 10, 10, 20), None);
    assert_eq!(Calibration::measured(10, 10, 20, 10), None);
    assert_eq!(Calibration::measured(20, 10, 10, 20), None);
}

#[test]
fn a_refinement_keeps_the_clock_where_it_was_and_takes_the_new_rate() {
    let first = Calibration::measured(0, 1_000, 3_000, 2_000).expect("forward");
    // Measured from the same origin over a longer span, the rate is a little slower.
    let switch_tsc = 3_000_000;
    let refined = first
        .refined(0, 1_000, switch_tsc, 1_000 + 1_010_000)
        .expect("forward");
    assert_eq!(refined.ns_at(switch_tsc), first.ns_at(switch_tsc));
    assert_eq!(refined.span_ns(), 1_010_000);
    let later = switch_tsc + 3_030;
    assert_eq!(
        refined.ns_at(later) - refined.ns_at(switch_tsc),
        1_020,
        "3030 ticks at 1010/3000 ns per tick"
    );
}

#[test]
fn large_readings_do_not_overflow() {
    let cal = Calibration::measured(0, 1, 3_000_000_000, 1_000_000_001).expect("forward");
    // About 100 years of ticks at 3 GHz.
    let ns = cal.ns_at(9_500_000_000_000_000_000);
    assert!(ns > 3_000_000_000_000_000_000 && ns < u64::MAX);
}
