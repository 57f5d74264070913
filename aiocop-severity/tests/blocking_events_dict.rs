//! [`blocking_events`] reproduces aiocop 1.2.1's `get_blocking_events_dict()` per CPython version:
//! `BLOCKING_EVENTS_DICT | FUNCTIONS_TO_PATCH_DICT`, a Python dict merge that keeps the first
//! position of a repeated key.

use aiocop_severity::{blocking_events, NATIVE_EVENTS, WRAPPED_EVENTS};

/// Python's `dict | dict` on ordered pairs.
fn python_dict_merge(
    left: &[(&'static str, u32)],
    right: &[(&'static str, u32)],
) -> Vec<(&'static str, u32)> {
    let mut out = left.to_vec();
    for &(name, weight) in right {
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = weight,
            None => out.push((name, weight)),
        }
    }
    out
}

fn expected_for(minor: u8) -> Vec<(&'static str, u32)> {
    let native: Vec<_> = NATIVE_EVENTS.iter().map(|s| (s.name, s.weight)).collect();
    let patched: Vec<_> = WRAPPED_EVENTS
        .iter()
        .filter(|s| s.name != "time.sleep" || minor < 13)
        .map(|s| (s.name, s.weight))
        .collect();
    python_dict_merge(&native, &patched)
}

#[test]
fn matches_python_dict_on_each_version() {
    for minor in 9..=14 {
        assert_eq!(blocking_events(minor), expected_for(minor), "3.{minor}");
    }
}

#[test]
fn time_sleep_once_first_with_heavy_weight() {
    for minor in [11, 13] {
        let events = blocking_events(minor);
        let sleeps: Vec<_> = events
            .iter()
            .enumerate()
            .filter(|(_, (name, _))| *name == "time.sleep")
            .collect();
        assert_eq!(sleeps, [(0, &("time.sleep", 50))], "3.{minor}");
    }
}

#[test]
fn native_order_then_wrapped_order() {
    let names: Vec<_> = blocking_events(11)
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names[..3],
        ["time.sleep", "socket.getaddrinfo", "socket.getnameinfo"]
    );
    assert_eq!(
        names[48..53],
        [
            "syslog.syslog",
            "syslog.openlog",
            "os.getcwd",
            "os.path.abspath",
            "os.path.islink"
        ]
    );
    assert_eq!(names.last(), Some(&"ssl.SSLSocket.recv"));
}
