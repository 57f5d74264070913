//! A call site's resolved stack, shared by its records, and its text made once.

use std::sync::{Arc, OnceLock};

use crate::dist::Distribution;
use crate::format::{entry_point, format_frame, format_trace};
use crate::frame::Frame;
use crate::origin::Origin;

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
    /// The frame the call is attributed to, see [`rules::blamed_index`](crate::rules::blamed_index).
    blamed: Option<usize>,
    /// See [`rules::site_key`](crate::rules::site_key).
    site_key: Option<String>,
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
                blamed: crate::rules::blamed_index(&facts),
                site_key: crate::rules::site_key(&facts),
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

    /// Where the call comes from: the origin of the frame it is attributed to (see
    /// [`rules::blamed_index`](crate::rules::blamed_index)), [`Origin::Stdlib`] when every
    /// frame of the call is the standard library's.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use aiocop_events::dist::Distribution;
    /// use aiocop_events::{CodeFacts, Frame, Origin, Stack};
    ///
    /// let facts = |origin, distribution| Arc::new(CodeFacts { module: None, qualname: "f".into(), origin, distribution });
    /// let stack = Stack::new(vec![
    ///     Frame::new("/usr/lib/python3.11/socket.py", 1, "f").with_code(facts(Origin::Stdlib, None)),
    ///     Frame::new("/sp/botocore/client.py", 2, "f").with_code(facts(Origin::Package, Some(Distribution::new("botocore", "1.34.0")))),
    ///     Frame::new("/srv/app.py", 3, "f").with_code(facts(Origin::User, None)),
    /// ]);
    /// assert_eq!(stack.origin(), Origin::Package);
    /// assert_eq!(stack.distribution().unwrap().name(), "botocore");
    /// assert_eq!(Stack::default().origin(), Origin::Stdlib);
    /// ```
    pub fn origin(&self) -> Origin {
        self.text()
            .blamed
            .map_or(Origin::Stdlib, |i| self.frames[i].origin())
    }

    /// The installed distribution the call is attributed to (a third-party call only).
    pub fn distribution(&self) -> Option<&Distribution> {
        self.text()
            .blamed
            .and_then(|i| self.frames[i].distribution())
    }

    /// The call site's key, stable across edits that move lines: see
    /// [`rules::site_key`](crate::rules::site_key); `None` without frames.
    pub fn site_key(&self) -> Option<&str> {
        self.text().site_key.as_deref()
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
