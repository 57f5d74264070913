//! Record types: a blocking call as recorded, and as reported.

use std::borrow::Cow;
use std::sync::Arc;

use crate::args::RawArgs;
use crate::format::format_event;
use crate::stack::Stack;

/// The keys of a `BlockingEventInfo` dict, in order: aiocop 1.2.1's four, then ours. The
/// Python module exports this list (`aiocop._aiocop.BLOCKING_EVENT_FIELDS`); the typed dict and
/// the pytest plugin read the fields by these names.
pub const BLOCKING_EVENT_FIELDS: [&str; 14] = [
    "event",
    "trace",
    "entry_point",
    "severity",
    "task_name",
    "coroutine",
    "event_name",
    "site",
    "user_trace",
    "suggested_rule",
    "origin",
    "distribution",
    "distribution_version",
    "site_key",
];

/// At most this many blocking records are kept per monitored handle; later ones are dropped and
/// counted in [`Slice::dropped_records`](crate::Slice::dropped_records).
///
/// ```
/// assert_eq!(aiocop_events::MAX_RECORDS_PER_HANDLE, 50);
/// ```
pub const MAX_RECORDS_PER_HANDLE: usize = 50;

/// One blocking audit event as recorded inside a monitored handle (aiocop's `RawBlockingEvent`).
///
/// ```
/// use aiocop_events::{format_record, Frame, RawArgs, RawRecord, Stack};
///
/// let record = RawRecord {
///     event_name: "time.sleep".into(),
///     args: RawArgs::Values(vec!["0.5".into()]),
///     stack: Stack::shared(vec![Frame::new("/app/src/jobs.py", 12, "poll")]),
///     timestamp: 1_700_000_000.0,
///     weight: Some(50),
/// };
/// assert_eq!(format_record(&record).event, "time.sleep(0.5)");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// The audit event name, e.g. `"open"` (borrowed from the event table for recorded calls).
    pub event_name: Cow<'static, str>,
    /// The event's arguments as text.
    pub args: RawArgs,
    /// The Python stack at the event, innermost frame first (aiocop's own frames excluded);
    /// shared by every record made at the same call site.
    pub stack: Arc<Stack>,
    /// When the event happened, in Unix seconds.
    pub timestamp: f64,
    /// The event's weight, `None` when unknown (scored as the default weight, 10).
    pub weight: Option<u32>,
}

/// A formatted blocking event, as Python sees it (`BlockingEventInfo`).
///
/// ```
/// use aiocop_events::{BlockingEvent, Frame, Stack};
///
/// let event = BlockingEvent {
///     name: "open".into(),
///     event: "open(/etc/hosts, r)".into(),
///     stack: Stack::shared(vec![Frame::new("/app/src/api/views.py", 42, "get_user")]),
///     severity: Some(10),
/// };
/// assert_eq!(event.trace(), "api/views.py:42:get_user");
/// assert_eq!(event.entry_point(), "api/views.py:42:get_user");
/// assert_eq!(event.site(), "api/views.py:42:get_user");
/// assert_eq!(event.suggested_rule().as_deref(), Some("event=open,path=*/api/views.py"));
/// assert_eq!(event.severity, Some(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingEvent {
    /// The audit event's name (`open`).
    pub name: Cow<'static, str>,
    /// `name(arg1, arg2)`, see [`format_event`](crate::format_event); empty when the record's
    /// arguments were [`RawArgs::Deferred`] (never empty otherwise: it has at least `name()`).
    pub event: String,
    /// The stack the event was raised from (shared with the record).
    pub stack: Arc<Stack>,
    /// The event's weight, `None` when unknown.
    pub severity: Option<u32>,
}

impl BlockingEvent {
    /// The stack, innermost first, see [`format_trace`](crate::format_trace).
    pub fn trace(&self) -> &str {
        self.stack.trace()
    }

    /// The innermost frame or `"unknown"`, see [`entry_point`](crate::entry_point()).
    pub fn entry_point(&self) -> &str {
        self.stack.entry_point()
    }

    /// The user's call site, see [`Stack::site`].
    pub fn site(&self) -> &str {
        self.stack.site()
    }

    /// The trace as shown to the user, see [`Stack::user_trace`].
    pub fn user_trace(&self) -> &str {
        self.stack.user_trace()
    }

    /// Where the call comes from, see [`Stack::origin`].
    pub fn origin(&self) -> crate::Origin {
        self.stack.origin()
    }

    /// The installed distribution the call is attributed to, see [`Stack::distribution`].
    pub fn distribution(&self) -> Option<&crate::dist::Distribution> {
        self.stack.distribution()
    }

    /// The call site's stable key, see [`Stack::site_key`].
    pub fn site_key(&self) -> Option<&str> {
        self.stack.site_key()
    }

    /// The allow rule for this call, see [`Stack::suggested_rule`].
    pub fn suggested_rule(&self) -> Option<String> {
        self.stack.suggested_rule(&self.name)
    }
}

/// [`format_event`], kept out of line: the loop thread's records defer their text.
#[cold]
#[inline(never)]
fn format_event_text(name: &str, args: &RawArgs) -> String {
    format_event(name, args)
}

/// Formats a raw record as Python's `format_blocking_event()` does: event string, trace, entry
/// point, and the record's weight as `severity`. The stack's text is formatted here when no
/// earlier record of the same call site has formatted it yet.
///
/// ```
/// use aiocop_events::{format_record, Frame, RawArgs, RawRecord, Stack};
///
/// let record = RawRecord {
///     event_name: "open".into(),
///     args: RawArgs::Values(vec!["/etc/hosts".into(), "r".into()]),
///     stack: Stack::shared(vec![
///         Frame::new("/usr/lib/python3.11/pathlib.py", 1044, "open"),
///         Frame::new("/app/src/config.py", 8, "load"),
///     ]),
///     timestamp: 0.0,
///     weight: Some(10),
/// };
/// let event = format_record(&record);
/// assert_eq!(event.event, "open(/etc/hosts, r)");
/// assert_eq!(event.trace(), "pathlib.py:1044:open <- config.py:8:load");
/// assert_eq!(event.entry_point(), "pathlib.py:1044:open");
/// assert_eq!(event.severity, Some(10));
/// ```
pub fn format_record(record: &RawRecord) -> BlockingEvent {
    // Format the shared stack now (off the loop thread, where assembly runs).
    let _ = record.stack.trace();
    BlockingEvent {
        name: record.event_name.clone(),
        event: match record.args {
            RawArgs::Deferred => String::new(),
            _ => format_event_text(&record.event_name, &record.args),
        },
        stack: Arc::clone(&record.stack),
        severity: record.weight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::format_args;
    use crate::frame::Frame;

    #[test]
    fn deferred_arguments_leave_the_event_text_to_their_holder() {
        let record = RawRecord {
            event_name: "os.stat".into(),
            args: RawArgs::Deferred,
            stack: crate::Stack::shared(vec![Frame::new("/app/src/a.py", 3, "f")]),
            timestamp: 0.0,
            weight: Some(10),
        };
        let event = format_record(&record);
        assert_eq!(event.event, "");
        assert_eq!(event.severity, Some(10));
        assert_eq!(event.trace(), "a.py:3:f");
        assert_eq!(format_args(&RawArgs::Deferred), "");
        let resolved = RawRecord {
            args: RawArgs::Values(vec![]),
            ..record
        };
        assert_eq!(format_record(&resolved).event, "os.stat()");
    }

    #[test]
    fn record_keeps_unknown_weight() {
        let record = RawRecord {
            event_name: "custom.event".into(),
            args: RawArgs::Values(vec![]),
            stack: Default::default(),
            timestamp: 1.5,
            weight: None,
        };
        let event = format_record(&record);
        assert_eq!(event.event, "custom.event()");
        assert_eq!((event.trace(), event.entry_point()), ("", "unknown"));
        assert_eq!(event.severity, None);
        assert!(Arc::ptr_eq(&event.stack, &record.stack));
    }
}
