//! Record types: stack frames, audit-event arguments, raw and formatted blocking events.

use std::sync::Arc;

/// At most this many blocking records are kept per monitored handle; later ones are dropped and
/// counted in [`Slice::dropped_records`](crate::Slice::dropped_records).
///
/// ```
/// assert_eq!(aiocop_events::MAX_RECORDS_PER_HANDLE, 50);
/// ```
pub const MAX_RECORDS_PER_HANDLE: usize = 50;

/// Each argument's text is cut to this many characters (Unicode scalar values, as Python's
/// `str[:100]`) in a formatted event.
///
/// ```
/// use aiocop_events::{format_args, RawArgs, MAX_ARG_CHARS};
///
/// let long = "x".repeat(MAX_ARG_CHARS + 5);
/// assert_eq!(format_args(&RawArgs::Values(vec![long])).len(), MAX_ARG_CHARS);
/// ```
pub const MAX_ARG_CHARS: usize = 100;

/// One Python stack frame, resolved to text: file name, line number, function name.
///
/// File and function names are `Arc<str>` so a cache of code objects can hand out the same
/// strings to many frames without copying them.
///
/// ```
/// use aiocop_events::Frame;
///
/// let frame = Frame::new("/app/src/api/views.py", 42, "get_user");
/// assert_eq!(&*frame.filename, "/app/src/api/views.py");
/// assert_eq!(frame.line, 42);
/// assert_eq!(&*frame.function, "get_user");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The code object's `co_filename`, unshortened.
    pub filename: Arc<str>,
    /// The line being executed (CPython's line number; may be negative when unknown).
    pub line: i32,
    /// The code object's `co_name`.
    pub function: Arc<str>,
}

impl Frame {
    /// A frame from a file name, line number and function name.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use aiocop_events::Frame;
    ///
    /// let shared: Arc<str> = Arc::from("/usr/lib/python3.11/socket.py");
    /// let frame = Frame::new(Arc::clone(&shared), 7, String::from("connect"));
    /// assert!(Arc::ptr_eq(&frame.filename, &shared));
    /// ```
    pub fn new(filename: impl Into<Arc<str>>, line: i32, function: impl Into<Arc<str>>) -> Self {
        Frame {
            filename: filename.into(),
            line,
            function: function.into(),
        }
    }
}

/// The arguments of an audit event, already turned into text by the caller (which owns the
/// Python objects).
///
/// ```
/// use aiocop_events::{format_args, RawArgs};
///
/// // open("/etc/hosts", "r", 524288)
/// let native = RawArgs::Values(vec!["/etc/hosts".into(), "r".into(), "524288".into()]);
/// assert_eq!(format_args(&native), "/etc/hosts, r, 524288");
/// // a wrapper's ((sock, ("db", 5432)), {}) pair: only the positional tuple is shown
/// let wrapped = RawArgs::Call(vec!["<socket>".into(), "('db', 5432)".into()]);
/// assert_eq!(format_args(&wrapped), "<socket>, ('db', 5432)");
/// assert_eq!(format_args(&RawArgs::Unformattable), "error_formatting_args");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawArgs {
    /// Each top-level argument's `str()`.
    Values(Vec<String>),
    /// The event's arguments were an `(args_tuple, kwargs_dict)` pair (as aiocop's wrappers
    /// emit): the `str()` of each item of the tuple; only these are shown.
    Call(Vec<String>),
    /// `str()` of some argument raised.
    Unformattable,
}

/// One blocking audit event as recorded inside a monitored handle (aiocop's `RawBlockingEvent`).
///
/// ```
/// use aiocop_events::{format_record, Frame, RawArgs, RawRecord};
///
/// let record = RawRecord {
///     event_name: "time.sleep".into(),
///     args: RawArgs::Values(vec!["0.5".into()]),
///     frames: vec![Frame::new("/app/src/jobs.py", 12, "poll")],
///     timestamp: 1_700_000_000.0,
///     weight: Some(50),
/// };
/// assert_eq!(format_record(&record).event, "time.sleep(0.5)");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// The audit event name, e.g. `"open"`.
    pub event_name: String,
    /// The event's arguments as text.
    pub args: RawArgs,
    /// The Python stack at the event, innermost frame first (aiocop's own frames excluded).
    pub frames: Vec<Frame>,
    /// When the event happened, in Unix seconds.
    pub timestamp: f64,
    /// The event's weight, `None` when unknown (scored as the default weight, 10).
    pub weight: Option<u32>,
}

/// A formatted blocking event, as Python sees it (`BlockingEventInfo`).
///
/// ```
/// use aiocop_events::BlockingEvent;
///
/// let event = BlockingEvent {
///     event: "open(/etc/hosts, r)".into(),
///     trace: "api/views.py:42:get_user".into(),
///     entry_point: "api/views.py:42:get_user".into(),
///     severity: Some(10),
/// };
/// assert_eq!(event.severity, Some(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingEvent {
    /// `name(arg1, arg2)`, see [`format_event`](crate::format_event).
    pub event: String,
    /// The stack, innermost first, see [`format_trace`](crate::format_trace).
    pub trace: String,
    /// The innermost frame or `"unknown"`, see [`entry_point`](crate::entry_point).
    pub entry_point: String,
    /// The event's weight, `None` when unknown.
    pub severity: Option<u32>,
}
