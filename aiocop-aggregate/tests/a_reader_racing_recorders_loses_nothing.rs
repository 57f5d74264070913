//! Reports taken while loop threads record see growing totals and never lose a call: the
//! final report counts exactly what was recorded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use aiocop_aggregate::{record, snapshot, HandleRun};
use aiocop_events::{Frame, Reason, Stack};
use aiocop_severity::Level;

#[test]
fn concurrent_snapshots() {
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut last = 0;
            while !done.load(Ordering::Acquire) {
                let now: u64 = snapshot().sites.iter().map(|s| s.totals.count).sum();
                assert!(now >= last, "totals went back: {last} -> {now}");
                last = now;
            }
        })
    };
    let recorders: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                let stack = Stack::shared(vec![Frame::new("/srv/app/r.py", t, "f")]);
                for _ in 0..20_000 {
                    let run = HandleRun {
                        elapsed_ns: 1_000,
                        level: Level::Low,
                        reason: Reason::IoBlocking,
                    };
                    record(run, [(&stack, "open")]);
                }
            })
        })
        .collect();
    for r in recorders {
        r.join().expect("recorder");
    }
    done.store(true, Ordering::Release);
    reader.join().expect("reader");
    let total: u64 = snapshot().sites.iter().map(|s| s.totals.count).sum();
    assert_eq!(total, 40_000);
}
