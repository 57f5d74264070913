//! The per-thread record list is reset between handles: a handle that filled it (50 records,
//! the rest counted) leaves nothing to the next one, neither records nor the count of those
//! dropped; `reset_records()` forgets what the running handle took so far; and another
//! thread's handle, running at the same time, never sees this thread's records. Runs a real
//! embedded CPython.

use pyo3::prelude::*;

const OPEN: &std::ffi::CStr = c"open('/dev/null', 'rb').close()";

fn open_times(py: Python<'_>, n: usize) {
    for _ in 0..n {
        py.run(OPEN, None, None).expect("runs");
    }
}

#[test]
fn each_handle_starts_with_no_records() {
    Python::initialize();
    Python::attach(|py| {
        aiocop_hook::install(py, 5).expect("hook installs");

        let token = aiocop_hook::enter_handle().expect("enters");
        open_times(py, 60);
        let full = aiocop_hook::exit_handle(token).expect("recorded");
        assert_eq!(full.records.len(), aiocop_events::MAX_RECORDS_PER_HANDLE);
        assert_eq!(full.dropped, 10);

        let token = aiocop_hook::enter_handle().expect("enters");
        open_times(py, 2);
        let next = aiocop_hook::exit_handle(token).expect("recorded");
        assert_eq!(next.records.len(), 2, "only this handle's records");
        assert_eq!(next.dropped, 0, "the count of dropped records starts again");

        let token = aiocop_hook::enter_handle().expect("enters");
        assert!(
            aiocop_hook::exit_handle(token).is_none(),
            "an empty handle takes the fast path"
        );

        let token = aiocop_hook::enter_handle().expect("enters");
        open_times(py, 3);
        aiocop_hook::reset_records();
        open_times(py, 1);
        let reset = aiocop_hook::exit_handle(token).expect("recorded");
        assert_eq!(
            reset.records.len(),
            1,
            "what came before the reset is forgotten"
        );

        // Another thread in a handle of its own while this one is in a handle too.
        let token = aiocop_hook::enter_handle().expect("enters");
        open_times(py, 1);
        let other = py.detach(|| {
            std::thread::spawn(|| {
                Python::attach(|py| {
                    let token = aiocop_hook::enter_handle().expect("enters on its thread");
                    open_times(py, 2);
                    let recorded = aiocop_hook::exit_handle(token).expect("recorded");
                    (recorded.records.len(), recorded.dropped)
                })
            })
            .join()
            .expect("the other thread does not panic")
        });
        let mine = aiocop_hook::exit_handle(token).expect("recorded");
        assert_eq!(
            other,
            (2, 0),
            "the other thread's handle has its own records"
        );
        assert_eq!(mine.records.len(), 1, "and this one keeps its own");
    });
}
