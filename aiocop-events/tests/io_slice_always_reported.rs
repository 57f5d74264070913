//! A handle that made blocking IO calls is reported as `io_blocking` whatever its duration, with
//! every record formatted in call order and scored by the severity table.

use aiocop_events::{
    assemble, Frame, RawArgs, RawRecord, Reason, Slice, Stack, MAX_RECORDS_PER_HANDLE,
};
use aiocop_severity::{weight_of, Level};

fn record(name: &str, args: RawArgs, frames: Vec<Frame>) -> RawRecord {
    RawRecord {
        event_name: name.to_owned().into(),
        args,
        stack: Stack::shared(frames),
        timestamp: 1_700_000_000.25,
        weight: weight_of(name),
    }
}

fn handler_stack() -> Vec<Frame> {
    vec![
        Frame::new("/usr/lib/python3.11/pathlib.py", 1044, "open"),
        Frame::new("/app/src/service/config.py", 17, "load_settings"),
        Frame::new(
            "/venv/lib/python3.11/site-packages/starlette/routing.py",
            74,
            "app",
        ),
    ]
}

#[test]
fn reported_under_threshold_with_formatted_events() {
    let slice = Slice {
        elapsed_ns: 1_250_000,
        threshold_ns: 30_000_000,
        records: vec![
            record(
                "open",
                RawArgs::Values(vec!["/etc/app.toml".into(), "r".into(), "524288".into()]),
                handler_stack(),
            ),
            record(
                "os.stat",
                RawArgs::Call(vec!["/etc/app.toml".into()]),
                handler_stack()[1..].to_vec(),
            ),
            record("custom.unknown", RawArgs::Unformattable, vec![]),
        ],
        ..Slice::default()
    };
    assert!(!slice.exceeded_threshold());
    assert!(slice.is_reportable());

    let task = assemble(&slice).expect("a slice with records is always reported");
    assert_eq!(task.reason, Reason::IoBlocking);
    assert_eq!(task.reason.as_str(), "io_blocking");
    assert!(!task.exceeded_threshold);
    assert_eq!(task.elapsed_ms, 1.25);
    assert_eq!(task.threshold_ms, 30.0);
    // open 10 + os.stat 1 + unknown (counts 10)
    assert_eq!(task.severity_score, 21);
    assert_eq!(task.severity_level, Level::Medium);
    assert!(task.cpu_stack_samples.is_empty());
    assert_eq!(task.dropped_records, 0);

    let events: Vec<_> = task
        .blocking_events
        .iter()
        .map(|e| (e.event.as_str(), e.entry_point(), e.severity))
        .collect();
    assert_eq!(
        events,
        [
            (
                "open(/etc/app.toml, r, 524288)",
                "pathlib.py:1044:open",
                Some(10)
            ),
            (
                "os.stat(/etc/app.toml)",
                "service/config.py:17:load_settings",
                Some(1)
            ),
            ("custom.unknown(error_formatting_args)", "unknown", None),
        ]
    );
    assert_eq!(
        task.blocking_events[0].trace(),
        "pathlib.py:1044:open <- service/config.py:17:load_settings <- starlette/routing.py:74:app"
    );
    assert_eq!(task.blocking_events[2].trace(), "");
}

#[test]
fn full_handle_reports_dropped_records() {
    let records = (0..MAX_RECORDS_PER_HANDLE)
        .map(|_| {
            record(
                "socket.socket.send",
                RawArgs::Call(vec!["b'x'".into()]),
                vec![],
            )
        })
        .collect();
    let slice = Slice {
        elapsed_ns: 90_000_000,
        threshold_ns: 30_000_000,
        records,
        dropped_records: 12,
        ..Slice::default()
    };
    let task = assemble(&slice).expect("reported");
    assert_eq!(task.reason, Reason::IoBlocking);
    assert!(task.exceeded_threshold);
    assert_eq!(task.blocking_events.len(), MAX_RECORDS_PER_HANDLE);
    assert_eq!(task.dropped_records, 12);
    assert_eq!(task.severity_score, 500);
    assert_eq!(task.severity_level, Level::High);
}
