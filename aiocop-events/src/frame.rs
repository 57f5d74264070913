//! Resolved stack frames and what is known of their code.

use std::sync::Arc;

use crate::dist::Distribution;
use crate::origin::Origin;

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
    /// The installed distribution the code's file belongs to (installed packages only).
    pub distribution: Option<Arc<Distribution>>,
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
    /// A native (C or Rust) frame of a CPU sample, under the Python frames: `function` is the
    /// symbol, `filename` the library's file name, `line` 0.
    pub native: bool,
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
            native: false,
        }
    }

    /// A native frame: the function (symbol) running and the library (file name) it is in.
    ///
    /// ```
    /// use aiocop_events::{format_frame, Frame};
    ///
    /// let frame = Frame::native("sre_ucs1_match", "libpython3.11.so.1.0");
    /// assert!(frame.native);
    /// assert_eq!(format_frame(&frame), "[native] sre_ucs1_match (libpython3.11.so.1.0)");
    /// ```
    pub fn native(function: impl Into<Arc<str>>, library: impl Into<Arc<str>>) -> Self {
        Frame {
            filename: library.into(),
            line: 0,
            function: function.into(),
            code: None,
            native: true,
        }
    }

    /// A native frame as listed in a CPU sample's `native_frames`: `function (library)`.
    ///
    /// ```
    /// use aiocop_events::Frame;
    ///
    /// assert_eq!(Frame::native("sre_search", "python3.11").native_text(), "sre_search (python3.11)");
    /// ```
    pub fn native_text(&self) -> String {
        format!("{} ({})", self.function, self.filename)
    }

    /// The frame with the facts of its code.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use aiocop_events::{CodeFacts, Frame, Origin};
    ///
    /// let facts = Arc::new(CodeFacts { module: Some("app.views".into()), qualname: "View.get".into(), origin: Origin::User, distribution: None });
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

    /// The installed distribution the code belongs to, when known.
    pub fn distribution(&self) -> Option<&Distribution> {
        self.code
            .as_ref()
            .and_then(|code| code.distribution.as_deref())
    }

    /// What allow rules match against.
    pub fn facts(&self) -> crate::rules::FrameFacts<'_> {
        crate::rules::FrameFacts {
            filename: &self.filename,
            module: self.module(),
            function: self.qualname(),
            origin: self.origin(),
            distribution: self.distribution(),
        }
    }
}
