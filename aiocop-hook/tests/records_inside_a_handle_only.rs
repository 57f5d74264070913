//! The hook records a blocking call made inside a handle, with the caller's frame, and nothing
//! outside one. Runs a real embedded CPython.

use pyo3::prelude::*;

#[test]
fn records_inside_a_handle_only() {
    Python::initialize();
    Python::attach(|py| {
        aiocop_hook::install(py, 20).expect("hook installs");
        // A second install is refused without error.
        assert!(!aiocop_hook::install(py, 20).expect("second install is a no-op"));

        let code = c"def open_devnull():\n    with open('/dev/null', 'rb'):\n        pass\n";
        let globals = pyo3::types::PyDict::new(py);
        py.run(code, Some(&globals), None)
            .expect("defines open_devnull");
        let open_devnull = globals
            .get_item("open_devnull")
            .expect("present")
            .expect("some");

        // Outside a handle: nothing is recorded.
        open_devnull.call0().expect("runs");
        assert!(!aiocop_hook::in_handle());

        let token = aiocop_hook::enter_handle().expect("enters");
        open_devnull.call0().expect("runs");
        let recorded = aiocop_hook::exit_handle(token).expect("something was recorded");
        assert_eq!(recorded.records.len(), 1);
        let record = recorded.records[0].resolve(py);
        assert_eq!(record.event_name, "open");
        assert_eq!(record.weight, Some(10));
        assert_eq!(record.stack.frames()[0].function.as_ref(), "open_devnull");
        assert_eq!(record.stack.frames()[0].line, 2);
        // The first capture settled how stacks are walked: directly on 3.11, whose layout
        // check and walk agree with the C API on this interpreter; through the C API elsewhere.
        assert_eq!(
            aiocop_hook::stack::walks_frames_directly(),
            cfg!(all(Py_3_11, not(Py_3_12)))
        );
        assert_eq!(
            aiocop_events::format_args(&record.args).split(", ").next(),
            Some("/dev/null")
        );

        // And a clean handle takes the fast path.
        let token = aiocop_hook::enter_handle().expect("enters");
        assert!(aiocop_hook::exit_handle(token).is_none());
    });
}
