//! Record types: stack frames, audit-event arguments, raw and formatted blocking events.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use crate::format::{entry_point, format_frame, format_trace};
use crate::origin::Origin;

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

/// What is known of a frame's code beyond its names, shared by every frame of that code:
/// the module it belongs to, its qualified name and its [`Origin`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CodeFacts {
    /// The module (from `sys.modules`, by file), when known.
    pub module: Option<Arc<str>>,
    /// The qualified name (`Class.method`, `outer.<locals>.inner`).
    pub qualname: Arc<str>,
    /// Where the code comes from.
    pub origin: Origin,
}

/// One Python stack frame, resolved to text: file name, line number, function name, and,
/// where known, the facts of its code.
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
/// assert!(frame.code.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Frame {
    /// The code object's `co_filename`, unshortened.
    pub filename: Arc<str>,
    /// The line being executed (CPython's line number; may be negative when unknown).
    pub line: i32,
    /// The code object's `co_name`.
    pub function: Arc<str>,
    /// Module, qualified name and origin of the code, when they were looked up.
    pub code: Option<Arc<CodeFacts>>,
}

impl Frame {
    /// A frame from a file name, line number and function name (no code facts).
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
            code: None,
        }
    }

    /// The frame with the facts of its code.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use aiocop_events::{CodeFacts, Frame, Origin};
    ///
    /// let facts = Arc::new(CodeFacts { module: Some("app.views".into()), qualname: "View.get".into(), origin: Origin::User });
    /// let frame = Frame::new("/srv/app/views.py", 9, "get").with_code(facts);
    /// assert_eq!(frame.module(), Some("app.views"));
    /// assert_eq!(frame.qualname(), "View.get");
    /// ```
    #[must_use]
    pub fn with_code(mut self, code: Arc<CodeFacts>) -> Self {
        self.code = Some(code);
        self
    }

    /// Where the frame's code comes from: its facts' origin, else guessed from its path.
    pub fn origin(&self) -> Origin {
        self.code
            .as_ref()
            .map_or_else(|| Origin::of_path(&self.filename), |code| code.origin)
    }

    /// The module the code belongs to, when known.
    pub fn module(&self) -> Option<&str> {
        self.code.as_ref().and_then(|code| code.module.as_deref())
    }

    /// The qualified name when known, else the function's name.
    pub fn qualname(&self) -> &str {
        self.code
            .as_ref()
            .map_or(&*self.function, |code| &*code.qualname)
    }

    /// What allow rules match against.
    pub fn facts(&self) -> crate::rules::FrameFacts<'_> {
        crate::rules::FrameFacts {
            filename: &self.filename,
            module: self.module(),
            function: self.qualname(),
            origin: self.origin(),
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
/// Besides aiocop 1.2.1's `trace` and `entry_point`, it knows the user's call site
/// ([`Stack::site`]: the innermost frame of the user's own code), the trace shown to the user
/// ([`Stack::user_trace`]: cut after the outermost frame of the user's code, so a test's trace
/// ends at the test, not in the runner) and the allow rule that would accept a call made here
/// ([`Stack::suggested_rule`]).
///
/// ```
/// use aiocop_events::{Frame, Stack};
///
/// let stack = Stack::new(vec![
///     Frame::new("/usr/lib/python3.11/pathlib.py", 1044, "open"),
///     Frame::new("/srv/app/config.py", 12, "load"),
///     Frame::new("/srv/app/tests/test_config.py", 8, "test_load"),
///     Frame::new("/venv/lib/python3.11/site-packages/_pytest/python.py", 194, "pytest_pyfunc_call"),
/// ]);
/// assert_eq!(stack.frames().len(), 4);
/// assert_eq!(stack.entry_point(), "pathlib.py:1044:open");
/// assert_eq!(stack.site(), "/srv/app/config.py:12:load");
/// assert_eq!(
///     stack.user_trace(),
///     "pathlib.py:1044:open <- /srv/app/config.py:12:load <- /srv/app/tests/test_config.py:8:test_load"
/// );
/// assert!(stack.trace().ends_with("_pytest/python.py:194:pytest_pyfunc_call"));
/// assert_eq!(Stack::default().entry_point(), "unknown");
/// assert_eq!(Stack::default().site(), "unknown");
/// ```
#[derive(Debug, Default)]
pub struct Stack {
    frames: Vec<Frame>,
    text: OnceLock<StackText>,
}

/// A stack's text, made once.
#[derive(Debug)]
struct StackText {
    trace: String,
    entry_point: String,
    site: String,
    user_trace: String,
    /// What follows `event=<name>,` in the suggested rule; `None` without frames.
    rule_tail: Option<String>,
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

    fn text(&self) -> &StackText {
        match self.text.get() {
            Some(text) => text,
            None => self.format_once(),
        }
    }

    /// Formats the text (once; a stack is shared, so usually by an earlier event).
    #[cold]
    #[inline(never)]
    fn format_once(&self) -> &StackText {
        self.text.get_or_init(|| {
            let frames = &self.frames;
            let facts: Vec<crate::rules::FrameFacts<'_>> =
                frames.iter().map(Frame::facts).collect();
            StackText {
                trace: format_trace(frames),
                entry_point: entry_point(frames),
                site: crate::rules::site_index(&facts)
                    .map_or_else(|| entry_point(&[]), |i| format_frame(&frames[i])),
                user_trace: format_trace(&frames[..crate::rules::user_trace_len(&facts)]),
                rule_tail: crate::rules::suggestion_tail(&facts),
            }
        })
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
        &self.text().trace
    }

    /// The innermost frame or `"unknown"`, see [`entry_point`](crate::entry_point()).
    pub fn entry_point(&self) -> &str {
        &self.text().entry_point
    }

    /// The user's call site, see [`rules::site_index`](crate::rules::site_index); `"unknown"`
    /// without frames.
    pub fn site(&self) -> &str {
        &self.text().site
    }

    /// The trace as shown to the user: the frames of the call up to the outermost one of the
    /// user's own code, see [`rules::user_trace_len`](crate::rules::user_trace_len).
    pub fn user_trace(&self) -> &str {
        &self.text().user_trace
    }

    /// The allow rule that accepts a call of `event` made at this call site and no broader:
    /// see [`rules::suggest`](crate::rules::suggest). `None` without frames (a rule would then
    /// allow every such call).
    pub fn suggested_rule(&self, event: &str) -> Option<String> {
        self.text()
            .rule_tail
            .as_ref()
            .map(|tail| format!("event={event},{tail}"))
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

    /// The allow rule for this call, see [`Stack::suggested_rule`].
    pub fn suggested_rule(&self) -> Option<String> {
        self.stack.suggested_rule(&self.name)
    }
}
