//! The two event tables hold distinct names (but `time.sleep`), and [`lookup`] agrees with
//! [`weight_of`] and the tables for every name.

use std::collections::HashSet;

use aiocop_severity::{lookup, weight_of, Source, NATIVE_EVENTS, WRAPPED_EVENTS};

#[test]
fn no_duplicate_names_but_time_sleep() {
    let mut native = HashSet::new();
    for spec in NATIVE_EVENTS {
        assert!(
            native.insert(spec.name),
            "duplicate native event {}",
            spec.name
        );
    }
    let mut wrapped = HashSet::new();
    for spec in WRAPPED_EVENTS {
        assert!(
            wrapped.insert(spec.name),
            "duplicate wrapped event {}",
            spec.name
        );
    }
    let both: Vec<_> = native.intersection(&wrapped).copied().collect();
    assert_eq!(both, ["time.sleep"]);
}

#[test]
fn sources_match_tables() {
    assert!(NATIVE_EVENTS.iter().all(|s| s.source == Source::Native));
    assert!(NATIVE_EVENTS.iter().all(|s| s.wrap_below_minor.is_none()));
    assert!(WRAPPED_EVENTS.iter().all(|s| s.source == Source::Wrapper));
}

#[test]
fn lookup_agrees_with_weight_of_for_every_name() {
    for spec in NATIVE_EVENTS.iter().chain(WRAPPED_EVENTS) {
        let found = lookup(spec.name.as_bytes()).expect(spec.name);
        assert_eq!(found.name, spec.name);
        assert_eq!(weight_of(spec.name), Some(found.weight), "{}", spec.name);
        assert_eq!(found.weight, spec.weight, "{}", spec.name);
    }
    // The native entry wins for the one name in both tables.
    assert_eq!(
        lookup(b"time.sleep").map(|s| s.source),
        Some(Source::Native)
    );
}

#[test]
fn unknown_names_are_none() {
    for name in [
        "object.__getattr__",
        "",
        "open2",
        "ope",
        "os",
        "socket.socket",
        "time.sleep ",
    ] {
        assert_eq!(lookup(name.as_bytes()), None, "{name:?}");
        assert_eq!(weight_of(name), None, "{name:?}");
    }
}
