//! The fault-injection points work in test builds, and a panic inside a guarded `extern "C"`
//! entry becomes the entry's failure value instead of unwinding into CPython.

use aiocop_hook::{fault, heaptype};

#[test]
fn an_armed_entry_panics_once_and_the_guard_returns_the_failure_value() {
    fault::arm("test_entry", 1);
    assert_eq!(heaptype::guard("test_entry", || -1, || 1), -1);
    assert_eq!(heaptype::guard("test_entry", || -1, || 1), 1);
    assert_eq!(fault::fired("test_entry"), 1);
    assert_eq!(heaptype::guard("other_entry", || -1, || 2), 2);
    assert_eq!(fault::fired("other_entry"), 0);
}
