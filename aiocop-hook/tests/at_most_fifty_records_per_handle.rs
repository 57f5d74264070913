//! A handle keeps at most 50 records; the rest are counted as dropped.

use pyo3::prelude::*;

#[test]
fn at_most_fifty_records_per_handle() {
    Python::initialize();
    Python::attach(|py| {
        aiocop_hook::install(py, 5).expect("hook installs");
        let token = aiocop_hook::enter_handle().expect("enters");
        py.run(
            c"import os\nfor _ in range(60):\n    os.listdir('/')\n",
            None,
            None,
        )
        .expect("runs");
        let recorded = aiocop_hook::exit_handle(token).expect("recorded");
        assert_eq!(
            recorded.records.len(),
            aiocop_events::MAX_RECORDS_PER_HANDLE
        );
        assert_eq!(recorded.dropped, 10);
        assert!(recorded
            .records
            .iter()
            .all(|r| r.spec.name == "os.listdir" && r.stack.frames().len() <= 5));
    });
}
