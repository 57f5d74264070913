//! Record types: stack frames, audit-event arguments, raw and formatted blocking events.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use crate::format::{entry_point, format_trace};

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
    /// Not made yet: whoever holds the argument objects makes the text when the event is read
    /// (see [`BlockingEvent::event`]). Formats as no text.
    Deferred,
}

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

/// A resolved stack, innermost frame first, and its text, formatted once on first use.
///
/// A stack is resolved once per call site and shared (`Arc<Stack>`) by every record made there,
/// so a call site that blocks on every request formats its trace once, not once per request.
///
/// ```
/// use aiocop_events::{Frame, Stack};
///
/// let stack = Stack::new(vec![
///     Frame::new("/app/src/db.py", 10, "query"),
///     Frame::new("/app/src/api/views.py", 42, "get_user"),
/// ]);
/// assert_eq!(stack.frames().len(), 2);
/// assert_eq!(stack.trace(), "db.py:10:query <- api/views.py:42:get_user");
/// assert_eq!(stack.entry_point(), "db.py:10:query");
/// assert_eq!(Stack::default().entry_point(), "unknown");
/// ```
#[derive(Debug, Default)]
pub struct Stack {
    frames: Vec<Frame>,
    text: OnceLock<(String, String)>,
}

impl Stack {
    /// A stack of `frames`, innermost first; formatted on first use.
    pub fn new(frames: Vec<Frame>) -> Self {
        Stack {
            frames,
            text: OnceLock::new(),
        }
    }

    /// A stack of `frames` behind an `Arc`, ready to be shared by records.
    pub fn shared(frames: Vec<Frame>) -> Arc<Self> {
        Arc::new(Stack::new(frames))
    }

    /// The frames, innermost first.
    pub fn frames(&self) -> &[Frame] {
        &self.frames
    }

    fn text(&self) -> &(String, String) {
        match self.text.get() {
            Some(text) => text,
            None => self.format_once(),
        }
    }

    /// Formats the text (once; a stack is shared, so usually by an earlier event).
    #[cold]
    #[inline(never)]
    fn format_once(&self) -> &(String, String) {
        self.text
            .get_or_init(|| (format_trace(&self.frames), entry_point(&self.frames)))
    }

    /// Whether the text has been formatted already (by an earlier use of this stack).
    ///
    /// ```
    /// use aiocop_events::{Frame, Stack};
    ///
    /// let stack = Stack::new(vec![Frame::new("/app/src/db.py", 10, "query")]);
    /// assert!(!stack.is_formatted());
    /// let _ = stack.trace();
    /// assert!(stack.is_formatted());
    /// ```
    pub fn is_formatted(&self) -> bool {
        self.text.get().is_some()
    }

    /// The frames joined by `" <- "`, see [`format_trace`](crate::format_trace).
    pub fn trace(&self) -> &str {
        &self.text().0
    }

    /// The innermost frame or `"unknown"`, see [`entry_point`](crate::entry_point()).
    pub fn entry_point(&self) -> &str {
        &self.text().1
    }
}

impl From<Vec<Frame>> for Stack {
    fn from(frames: Vec<Frame>) -> Self {
        Stack::new(frames)
    }
}

/// Two stacks are equal when their frames are.
impl PartialEq for Stack {
    fn eq(&self, other: &Self) -> bool {
        self.frames == other.frames
    }
}

impl Eq for Stack {}

/// A formatted blocking event, as Python sees it (`BlockingEventInfo`).
///
/// ```
/// use aiocop_events::{BlockingEvent, Frame, Stack};
///
/// let event = BlockingEvent {
///     event: "open(/etc/hosts, r)".into(),
///     stack: Stack::shared(vec![Frame::new("/app/src/api/views.py", 42, "get_user")]),
///     severity: Some(10),
/// };
/// assert_eq!(event.trace(), "api/views.py:42:get_user");
/// assert_eq!(event.entry_point(), "api/views.py:42:get_user");
/// assert_eq!(event.severity, Some(10));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockingEvent {
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
}
