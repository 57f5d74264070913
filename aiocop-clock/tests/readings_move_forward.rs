//! Readings of the process's clock (whichever source this machine gets) never go back on a
//! thread, across refinements, and durations are at least what a sleep guarantees.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[test]
fn readings_never_go_back_on_a_thread_even_across_refinements() {
    let source = aiocop_clock::source();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(|| {
                let mut last = aiocop_clock::now_ns();
                assert!(last > 0);
                for i in 0..200_000 {
                    if i % 1_000 == 0 {
                        aiocop_clock::recalibrate();
                    }
                    let now = aiocop_clock::now_ns();
                    assert!(now >= last, "{now} < {last}");
                    last = now;
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no panic");
    }
    // The checks against CLOCK_MONOTONIC made along the way found nothing wrong.
    assert_eq!(aiocop_clock::source(), source);
}

#[test]
fn a_sleep_measures_at_least_its_length() {
    let before = aiocop_clock::now_ns();
    std::thread::sleep(Duration::from_millis(20));
    aiocop_clock::recalibrate();
    let elapsed = aiocop_clock::now_ns() - before;
    // Sleeps last at least what they ask; the first calibration's rate is within 0.1%.
    assert!(elapsed >= 19_900_000, "{elapsed} ns for a 20 ms sleep");
}

#[test]
fn unix_time_follows_the_wall_clock() {
    aiocop_clock::recalibrate();
    let ours = aiocop_clock::unix_now();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    assert!((ours - wall).abs() < 1.0, "{ours} vs {wall}");
}
