//! Allow rules: which blocking calls are accepted (not reported, never raised).
//!
//! A rule matches on any of: the event name, and — about the calling frame — its module, its
//! file path, its function (qualname, or `module.qualname`). Every field is a glob (`*` any
//! run of characters, `?` one character); a rule with several fields matches when all of them
//! match. Frame fields are checked against the first frame that is not library code (the
//! standard library or an installed package) by default, or against any frame
//! (`frames=any`, all frame fields on the same frame).
//!
//! Written as a spec string, `key=value` pairs separated by commas; a bare value is an event
//! glob:
//!
//! ```
//! use aiocop_events::rules::{AllowRule, Candidate, FrameFacts, FrameScope};
//! use aiocop_events::Origin;
//!
//! let rule = AllowRule::parse("event=open,module=myapp.legacy.*").unwrap();
//! assert_eq!(rule.spec(), "event=open,module=myapp.legacy.*");
//! let frames = [
//!     FrameFacts { filename: "/usr/lib/python3.11/pathlib.py", module: Some("pathlib"), function: "Path.open", origin: Origin::Stdlib, distribution: None },
//!     FrameFacts { filename: "/srv/myapp/legacy/io.py", module: Some("myapp.legacy.io"), function: "load", origin: Origin::User, distribution: None },
//! ];
//! assert!(rule.matches(&Candidate { event: "open", frames: &frames }));
//! assert!(!rule.matches(&Candidate { event: "os.stat", frames: &frames }));
//! assert_eq!(AllowRule::parse("time.sleep").unwrap().spec(), "event=time.sleep");
//! assert!(AllowRule::parse("colour=blue").is_err());
//! # let _ = FrameScope::First;
//! ```

use std::fmt;
use std::sync::RwLock;

use crate::dist::Distribution;
use crate::origin::Origin;
use crate::pep440::Requirement;

/// Which frames a rule's module/path/function fields are checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameScope {
    /// The first (innermost) frame that is not library code.
    First,
    /// Any frame (all frame fields must match on the same frame).
    Any,
}

/// A shell-style glob: `*` matches any run of characters (including `/` and `.`), `?` one
/// character; everything else matches itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Glob(String);

impl Glob {
    /// A glob from its pattern.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self(pattern.into())
    }

    /// The pattern.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` matches the whole pattern.
    ///
    /// ```
    /// use aiocop_events::rules::Glob;
    ///
    /// assert!(Glob::new("socket.*").matches("socket.getaddrinfo"));
    /// assert!(Glob::new("*/migrations/*").matches("/srv/app/migrations/0001.py"));
    /// assert!(Glob::new("os.?tat").matches("os.stat"));
    /// assert!(!Glob::new("open").matches("open2"));
    /// ```
    pub fn matches(&self, text: &str) -> bool {
        let pattern: Vec<char> = self.0.chars().collect();
        let text: Vec<char> = text.chars().collect();
        // Iterative wildcard matching with backtracking to the last '*'.
        let (mut p, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
                p += 1;
                t += 1;
            } else if p < pattern.len() && pattern[p] == '*' {
                star = Some((p, t));
                p += 1;
            } else if let Some((star_p, star_t)) = star {
                p = star_p + 1;
                t = star_t + 1;
                star = Some((star_p, star_t + 1));
            } else {
                return false;
            }
        }
        pattern[p..].iter().all(|&c| c == '*')
    }
}

/// What is known of one frame when a rule is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameFacts<'a> {
    /// The code's file name.
    pub filename: &'a str,
    /// The module the code belongs to, when known.
    pub module: Option<&'a str>,
    /// The function's qualified name (`Class.method`).
    pub function: &'a str,
    /// Where the code comes from; anything but [`Origin::User`] is library code.
    pub origin: Origin,
    /// The installed distribution the code belongs to, when known.
    pub distribution: Option<&'a Distribution>,
}

impl FrameFacts<'_> {
    /// Whether the code is library code (the standard library or an installed package).
    pub fn is_library(&self) -> bool {
        self.origin != Origin::User
    }
}

/// A blocking call being checked against the rules.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// The event name.
    pub event: &'a str,
    /// The stack at the call, innermost first.
    pub frames: &'a [FrameFacts<'a>],
}

/// Why a rule could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The rule as given.
    pub rule: String,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed allow rule {:?}: {}", self.rule, self.reason)
    }
}

impl std::error::Error for RuleError {}

/// One allow rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AllowRule {
    event: Option<Glob>,
    module: Option<Glob>,
    path: Option<Glob>,
    function: Option<Glob>,
    distribution: Option<Requirement>,
    frames: FrameScope,
    spec: String,
}

/// The keys a spec may use.
pub const RULE_KEYS: [&str; 6] = [
    "event",
    "module",
    "path",
    "function",
    "distribution",
    "frames",
];

/// A rule's fields as given (a table of `pyproject.toml`, keyword arguments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleFields<'a> {
    /// The event glob.
    pub event: Option<&'a str>,
    /// The module glob.
    pub module: Option<&'a str>,
    /// The path glob.
    pub path: Option<&'a str>,
    /// The function glob.
    pub function: Option<&'a str>,
    /// A distribution name with an optional PEP 440 specifier set (`botocore<2`).
    pub distribution: Option<&'a str>,
    /// Which frames the frame fields are checked against.
    pub frames: FrameScope,
}

impl AllowRule {
    /// Builds a rule from its fields; at least one of event/module/path/function is required.
    pub fn from_fields(
        event: Option<&str>,
        module: Option<&str>,
        path: Option<&str>,
        function: Option<&str>,
        frames: FrameScope,
    ) -> Result<Self, RuleError> {
        Self::from_rule_fields(&RuleFields {
            event,
            module,
            path,
            function,
            distribution: None,
            frames,
        })
    }

    /// Builds a rule from its fields, a distribution included; at least one of
    /// event/module/path/function/distribution is required. A malformed distribution
    /// specifier is an error naming `distribution`.
    ///
    /// ```
    /// use aiocop_events::rules::{AllowRule, FrameScope, RuleFields};
    ///
    /// let fields = RuleFields { event: None, module: None, path: None, function: None, distribution: Some("botocore >=1, <2"), frames: FrameScope::First };
    /// assert_eq!(AllowRule::from_rule_fields(&fields).unwrap().spec(), "distribution=botocore>=1,<2");
    /// let bad = RuleFields { distribution: Some("botocore<<2"), ..fields };
    /// assert!(AllowRule::from_rule_fields(&bad).unwrap_err().reason.starts_with("distribution: "));
    /// ```
    pub fn from_rule_fields(given: &RuleFields<'_>) -> Result<Self, RuleError> {
        let RuleFields {
            event,
            module,
            path,
            function,
            distribution,
            frames,
        } = *given;
        let fields = [
            ("event", event),
            ("module", module),
            ("path", path),
            ("function", function),
            ("distribution", distribution),
        ];
        let mut parts = Vec::new();
        for (key, value) in fields {
            if let Some(value) = value {
                let trimmed = value.trim();
                if trimmed.is_empty() {
                    return Err(RuleError {
                        rule: describe(&fields, frames),
                        reason: format!("{key} is empty"),
                    });
                }
                if (key != "distribution" && trimmed.contains(',')) || trimmed.contains(';') {
                    return Err(RuleError {
                        rule: describe(&fields, frames),
                        reason: format!("{key} must not contain ',' or ';'"),
                    });
                }
                if key != "distribution" {
                    parts.push(format!("{key}={trimmed}"));
                }
            }
        }
        let requirement = match distribution {
            Some(text) => {
                let requirement = Requirement::parse(text).map_err(|e| RuleError {
                    rule: describe(&fields, frames),
                    reason: format!("distribution: {e}"),
                })?;
                parts.push(format!("distribution={requirement}"));
                Some(requirement)
            }
            None => None,
        };
        if parts.is_empty() {
            return Err(RuleError {
                rule: describe(&fields, frames),
                reason: "a rule needs at least one of event, module, path, function, distribution"
                    .into(),
            });
        }
        if frames == FrameScope::Any {
            parts.push("frames=any".into());
        }
        let glob = |v: Option<&str>| v.map(|v| Glob::new(v.trim()));
        Ok(Self {
            event: glob(event),
            module: glob(module),
            path: glob(path),
            function: glob(function),
            distribution: requirement,
            frames,
            spec: parts.join(","),
        })
    }

    /// Parses a spec: `key=value` pairs separated by commas (keys: event, module, path,
    /// function, frames=first|any); a bare value is an event glob.
    pub fn parse(spec: &str) -> Result<Self, RuleError> {
        let error = |reason: String| RuleError {
            rule: spec.to_owned(),
            reason,
        };
        let mut values: [Option<String>; 5] = Default::default();
        let mut frames = FrameScope::First;
        let mut any_part = false;
        let mut last_key = "";
        for part in spec.split(',') {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            any_part = true;
            // `distribution=botocore>=1,<2`: a specifier clause continues the distribution.
            if last_key == "distribution" && part.starts_with(['<', '>', '=', '!', '~']) {
                if let Some(value) = values[4].as_mut() {
                    value.push(',');
                    value.push_str(part);
                }
                continue;
            }
            let (key, value) = match part.split_once('=') {
                Some((key, value)) => (key.trim(), value.trim()),
                None => ("event", part),
            };
            if value.is_empty() {
                return Err(error(format!("{key} is empty")));
            }
            let slot = match key {
                "event" => 0,
                "module" => 1,
                "path" => 2,
                "function" => 3,
                "distribution" => 4,
                "frames" => {
                    frames = match value {
                        "first" => FrameScope::First,
                        "any" => FrameScope::Any,
                        other => {
                            return Err(error(format!(
                                "frames must be 'first' or 'any', not {other:?}"
                            )))
                        }
                    };
                    continue;
                }
                other => {
                    return Err(error(format!(
                        "unknown key {other:?} (expected one of {})",
                        RULE_KEYS.join(", ")
                    )))
                }
            };
            if values[slot].replace(value.to_owned()).is_some() {
                return Err(error(format!("{key} is given twice")));
            }
            last_key = if slot == 4 { "distribution" } else { "" };
        }
        if !any_part {
            return Err(error("the rule is empty".into()));
        }
        let [event, module, path, function, distribution] = &values;
        Self::from_rule_fields(&RuleFields {
            event: event.as_deref(),
            module: module.as_deref(),
            path: path.as_deref(),
            function: function.as_deref(),
            distribution: distribution.as_deref(),
            frames,
        })
        .map_err(|e| error(e.reason))
    }

    /// The rule in spec form (canonical: fields in the order event, module, path, function).
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The event glob, if any.
    pub fn event(&self) -> Option<&Glob> {
        self.event.as_ref()
    }

    /// The module glob, if any.
    pub fn module(&self) -> Option<&Glob> {
        self.module.as_ref()
    }

    /// The path glob, if any.
    pub fn path(&self) -> Option<&Glob> {
        self.path.as_ref()
    }

    /// The function glob, if any.
    pub fn function(&self) -> Option<&Glob> {
        self.function.as_ref()
    }

    /// The distribution requirement, if any.
    pub fn distribution(&self) -> Option<&Requirement> {
        self.distribution.as_ref()
    }

    /// Which frames the frame fields are checked against.
    pub fn frames(&self) -> FrameScope {
        self.frames
    }

    /// Whether the rule checks frames at all (module, path or function).
    pub fn needs_frames(&self) -> bool {
        self.module.is_some()
            || self.path.is_some()
            || self.function.is_some()
            || self.distribution.is_some()
    }

    fn globs_on_frames(&self) -> bool {
        self.module.is_some() || self.path.is_some() || self.function.is_some()
    }

    fn frame_matches(&self, frame: &FrameFacts<'_>) -> bool {
        let module_ok = self
            .module
            .as_ref()
            .is_none_or(|g| frame.module.is_some_and(|m| g.matches(m)));
        let path_ok = self.path.as_ref().is_none_or(|g| g.matches(frame.filename));
        let function_ok = self.function.as_ref().is_none_or(|g| {
            g.matches(frame.function)
                || frame
                    .module
                    .is_some_and(|m| g.matches(&format!("{m}.{}", frame.function)))
        });
        module_ok && path_ok && function_ok
    }

    /// Whether the rule allows `candidate`.
    pub fn matches(&self, candidate: &Candidate<'_>) -> bool {
        if let Some(event) = &self.event {
            if !event.matches(candidate.event) {
                return false;
            }
        }
        if let Some(requirement) = &self.distribution {
            // Any frame of the call (before the loop's own frames) from that distribution.
            let call = &candidate.frames[..call_frames(candidate.frames)];
            let hit = call
                .iter()
                .any(|f| f.distribution.is_some_and(|d| d.satisfies(requirement)));
            if !hit {
                return false;
            }
        }
        if !self.globs_on_frames() {
            return true;
        }
        match self.frames {
            FrameScope::First => {
                first_user_frame(candidate.frames).is_some_and(|frame| self.frame_matches(frame))
            }
            FrameScope::Any => candidate.frames.iter().any(|f| self.frame_matches(f)),
        }
    }
}

impl fmt::Display for AllowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spec)
    }
}

/// Rules from a list of specs separated by `;` or newlines (the `AIOCOP_ALLOW` form): each
/// spec trimmed of whitespace (Unicode's, as [`AllowRule::parse`] trims: a canonical spec reads
/// the same in a list), empty ones skipped, the others parsed by [`AllowRule::parse`]; the
/// first malformed one is the error.
///
/// ```
/// use aiocop_events::rules::parse_rule_list;
///
/// let rules = parse_rule_list("time.sleep; event=open,module=app.*\n\n ;frames=any,path=*/x.py").unwrap();
/// let specs: Vec<&str> = rules.iter().map(|rule| rule.spec()).collect();
/// assert_eq!(specs, ["event=time.sleep", "event=open,module=app.*", "path=*/x.py,frames=any"]);
/// assert!(parse_rule_list(" ;\n").unwrap().is_empty());
/// let err = parse_rule_list("open;colour=blue;event=").unwrap_err();
/// assert_eq!(err.rule, "colour=blue");
/// ```
pub fn parse_rule_list(text: &str) -> Result<Vec<AllowRule>, RuleError> {
    text.split([';', '\n'])
        .map(str::trim)
        .filter(|spec| !spec.is_empty())
        .map(AllowRule::parse)
        .collect()
}

fn describe(fields: &[(&str, Option<&str>)], frames: FrameScope) -> String {
    let mut parts: Vec<String> = fields
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={v}")))
        .collect();
    if frames == FrameScope::Any {
        parts.push("frames=any".into());
    }
    parts.join(",")
}

/// The innermost frame that is not library code.
pub fn first_user_frame<'a, 'b>(frames: &'b [FrameFacts<'a>]) -> Option<&'b FrameFacts<'a>> {
    frames.iter().find(|f| !f.is_library())
}

/// The project's root directory: suggested `path=` rules are relative to it.
static PROJECT_ROOT: RwLock<Option<String>> = RwLock::new(None);

/// Sets the project's root directory (`None`: none known), which suggested `path=` rules are
/// made relative to. Stacks formatted before keep their suggestion.
pub fn set_project_root(root: Option<&str>) {
    let root = root.map(|r| r.trim_end_matches('/').to_owned());
    *PROJECT_ROOT
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = root.filter(|r| !r.is_empty());
}

/// The project's root directory, if set.
pub fn project_root() -> Option<String> {
    PROJECT_ROOT
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// The frames that run an event loop, `(module, qualified name)`: where the frames of a
/// handle end and those of whoever runs the loop begin (what lies beyond is not the call's
/// context: a server's start-up, a test runner, a script's `asyncio.run`). uvloop's loop has
/// no Python frames: its handles' frames follow straight on the frame that started the loop
/// (`asyncio.Runner.run`, `uvloop.run`). A trio task's frames follow on its run loop's
/// `unrolled_run` (under `trio.run`, and in guest mode alike).
const LOOP_FRAMES: [(&str, &str); 8] = [
    ("asyncio.events", "Handle._run"),
    ("asyncio.base_events", "BaseEventLoop._run_once"),
    ("asyncio.base_events", "BaseEventLoop.run_forever"),
    ("asyncio.base_events", "BaseEventLoop.run_until_complete"),
    ("asyncio.runners", "Runner.run"),
    ("asyncio.runners", "run"),
    ("uvloop", "run"),
    ("trio._core._run", "unrolled_run"),
];

fn is_loop_frame(frame: &FrameFacts<'_>) -> bool {
    frame.origin != Origin::User
        && frame.module.is_some_and(|module| {
            LOOP_FRAMES
                .iter()
                .any(|&(m, f)| m == module && f == frame.function)
        })
}

/// How many of `frames` (innermost first) belong to the call: those before the first frame of
/// asyncio running its loop.
fn call_frames(frames: &[FrameFacts<'_>]) -> usize {
    frames
        .iter()
        .position(is_loop_frame)
        .unwrap_or(frames.len())
}

/// The index of the user's call site in `frames` (innermost first): among the frames of the
/// call (before the loop's own frames), the innermost one of the user's own code, else of an
/// installed package, else of a standard library file (not the import machinery's frozen
/// code), else the innermost frame; `None` without frames.
///
/// ```
/// use aiocop_events::rules::{site_index, FrameFacts};
/// use aiocop_events::Origin;
///
/// let f = |filename, module, function, origin| FrameFacts { filename, module: Some(module), function, origin, distribution: None };
/// let frames = [
///     f("/usr/lib/python3.11/pathlib.py", "pathlib", "Path.open", Origin::Stdlib),
///     f("/venv/lib/python3.11/site-packages/lib/io.py", "lib.io", "read", Origin::Package),
///     f("/usr/lib/python3.11/asyncio/events.py", "asyncio.events", "Handle._run", Origin::Stdlib),
///     f("/srv/main.py", "__main__", "<module>", Origin::User),
/// ];
/// assert_eq!(site_index(&frames), Some(1)); // not the script that runs the loop
/// assert_eq!(site_index(&frames[3..]), Some(0));
/// assert_eq!(site_index(&[]), None);
/// ```
pub fn site_index(frames: &[FrameFacts<'_>]) -> Option<usize> {
    let call = &frames[..call_frames(frames)];
    call.iter()
        .position(|f| f.origin == Origin::User)
        .or_else(|| call.iter().position(|f| f.origin == Origin::Package))
        .or_else(|| call.iter().position(|f| !f.filename.starts_with('<')))
        .or_else(|| (!frames.is_empty()).then_some(0))
}

/// The index of the frame a blocking call is attributed to: among the frames of the call
/// (before asyncio's loop frames), the innermost one that is not the standard library's — the
/// code that called into it, the user's own or an installed package's; `None` when the call's
/// frames are all the standard library's (or there are none).
///
/// ```
/// use aiocop_events::rules::{blamed_index, FrameFacts};
/// use aiocop_events::Origin;
///
/// let f = |filename, origin| FrameFacts { filename, module: None, function: "f", origin, distribution: None };
/// let frames = [
///     f("/usr/lib/python3.11/socket.py", Origin::Stdlib),
///     f("/venv/lib/python3.11/site-packages/httpx/_client.py", Origin::Package),
///     f("/srv/app/views.py", Origin::User),
/// ];
/// assert_eq!(blamed_index(&frames), Some(1));
/// assert_eq!(blamed_index(&frames[2..]), Some(0));
/// assert_eq!(blamed_index(&frames[..1]), None);
/// ```
pub fn blamed_index(frames: &[FrameFacts<'_>]) -> Option<usize> {
    frames[..call_frames(frames)]
        .iter()
        .position(|f| f.origin != Origin::Stdlib && !f.filename.starts_with('<'))
}

/// The call site's key, stable across edits that move lines: who owns the call site's frame
/// ([`site_index`]) — the installed distribution's name for a package's frame, else the module
/// (else the file relative to the project root) — and its qualified function name, joined by
/// `:`. No line numbers, no arguments, no absolute paths. `None` without frames.
///
/// ```
/// use aiocop_events::dist::Distribution;
/// use aiocop_events::rules::{site_key, FrameFacts};
/// use aiocop_events::Origin;
///
/// let httpx = Distribution::new("httpx", "0.27.0");
/// let frames = [
///     FrameFacts { filename: "/usr/lib/python3.11/pathlib.py", module: Some("pathlib"), function: "Path.open", origin: Origin::Stdlib, distribution: None },
///     FrameFacts { filename: "/srv/app/config.py", module: Some("app.config"), function: "Config.load", origin: Origin::User, distribution: None },
/// ];
/// assert_eq!(site_key(&frames).unwrap(), "app.config:Config.load");
/// let lib = [FrameFacts { filename: "/venv/site-packages/httpx/_api.py", module: Some("httpx._api"), function: "get", origin: Origin::Package, distribution: Some(&httpx) }];
/// assert_eq!(site_key(&lib).unwrap(), "httpx:get");
/// assert_eq!(site_key(&[]), None);
/// ```
pub fn site_key(frames: &[FrameFacts<'_>]) -> Option<String> {
    let frame = &frames[site_index(frames)?];
    let owner = match (frame.origin, frame.distribution, frame.module) {
        (Origin::Package, Some(dist), _) => dist.name().to_owned(),
        (_, _, Some(module)) => module.to_owned(),
        _ => relative_path(frame.filename),
    };
    Some(format!("{owner}:{}", frame.function))
}

/// How many of `frames` (innermost first) a trace shown to the user keeps: the frames of the
/// call (before the loop's own frames) up to the outermost one of the user's own code, or all
/// the call's frames when none is the user's (what called the user's code — a framework's
/// routing, the loop, a test runner — is left out; a test's trace ends at the test).
pub fn user_trace_len(frames: &[FrameFacts<'_>]) -> usize {
    let call = &frames[..call_frames(frames)];
    match call.iter().rposition(|f| f.origin == Origin::User) {
        Some(last) => last + 1,
        None if call.is_empty() => frames.len(),
        None => call.len(),
    }
}

/// A rule that allows the blocking call `event` made through `frames` (innermost first), and
/// no broader than its call site; `None` without frames (a rule would then allow every such
/// call). The one suggestion aiocop makes, wherever it suggests:
///
/// - the call site ([`site_index`]) is the first frame of the user's own code: the rule names
///   its function, `module.qualname` (the same on every checkout), or, for code whose module
///   is not known, its file relative to the project root (`path=*/app/config.py`, see
///   [`set_project_root`]);
/// - a call site outside the user's code (an installed package's frame, else the innermost
///   frame) is named the same way, with `frames=any` (a rule with the default `frames=first`
///   checks the user's first frame, which is not this one).
///
/// ```
/// use aiocop_events::rules::{suggest, AllowRule, Candidate, FrameFacts};
/// use aiocop_events::Origin;
///
/// let frames = [
///     FrameFacts { filename: "/usr/lib/python3.11/pathlib.py", module: Some("pathlib"), function: "Path.open", origin: Origin::Stdlib, distribution: None },
///     FrameFacts { filename: "/srv/app/views.py", module: Some("app.views"), function: "Index.get", origin: Origin::User, distribution: None },
/// ];
/// let rule = suggest("open", &frames).unwrap();
/// assert_eq!(rule, "event=open,function=app.views.Index.get");
/// assert!(AllowRule::parse(&rule).unwrap().matches(&Candidate { event: "open", frames: &frames }));
/// assert_eq!(suggest("open", &frames[..1]).unwrap(), "event=open,function=pathlib.Path.open,frames=any");
/// assert_eq!(suggest("open", &[]), None);
/// ```
pub fn suggest(event: &str, frames: &[FrameFacts<'_>]) -> Option<String> {
    suggestion_tail(frames).map(|tail| format!("event={event},{tail}"))
}

/// What follows `event=<name>,` in [`suggest`]'s rule (it does not depend on the event).
pub(crate) fn suggestion_tail(frames: &[FrameFacts<'_>]) -> Option<String> {
    let frame = &frames[site_index(frames)?];
    if frame.origin == Origin::User {
        Some(frame_selector(frame))
    } else {
        Some(format!("{},frames=any", frame_selector(frame)))
    }
}

/// `function=module.qualname`, or `path=` the frame's file relative to the project root.
fn frame_selector(frame: &FrameFacts<'_>) -> String {
    match frame.module {
        Some(module) => format!(
            "function={}",
            literal(&format!("{module}.{}", frame.function))
        ),
        None => format!("path={}", relative_glob(frame.filename)),
    }
}

/// `*/` and `path` relative to the project root when under it, else its last two parts.
fn relative_glob(path: &str) -> String {
    format!("*/{}", literal(&relative_path(path)))
}

/// `path` relative to the project root when under it, else its last two parts.
fn relative_path(path: &str) -> String {
    let under_root = project_root().and_then(|root| {
        path.strip_prefix(root.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .map(str::to_owned)
    });
    let relative = under_root.unwrap_or_else(|| {
        let mut parts = path.rsplitn(3, '/');
        let file = parts.next().unwrap_or(path);
        match parts.next() {
            Some(dir) if !dir.is_empty() => format!("{dir}/{file}"),
            _ => file.to_owned(),
        }
    });
    relative
}

/// `text` as a glob that matches it: the characters a spec or a glob gives a meaning to (`,`
/// `;` `*` `?`) become `?` (one character).
fn literal(text: &str) -> String {
    text.chars()
        .map(|c| {
            if matches!(c, ',' | ';' | '*' | '?') {
                '?'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames() -> Vec<FrameFacts<'static>> {
        vec![
            FrameFacts {
                filename: "/usr/lib/python3.11/subprocess.py",
                module: Some("subprocess"),
                function: "Popen._execute_child",
                origin: Origin::Stdlib,
                distribution: None,
            },
            FrameFacts {
                filename: "/srv/app/src/app/jobs.py",
                module: Some("app.jobs"),
                function: "Runner.spawn",
                origin: Origin::User,
                distribution: None,
            },
            FrameFacts {
                filename: "/srv/app/tests/test_jobs.py",
                module: Some("test_jobs"),
                function: "test_spawn",
                origin: Origin::User,
                distribution: None,
            },
        ]
    }

    #[test]
    fn globs() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("*.py", "/x/y.py", true),
            ("?", "", false),
            ("a?c", "abc", true),
            ("**", "x", true),
            ("*a*b*", "xaxxbx", true),
            ("*a*b", "xaxxbx", false),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(
                Glob::new(pattern).matches(text),
                expected,
                "{pattern} vs {text}"
            );
        }
    }

    #[test]
    fn parse_and_canonical_spec() {
        let cases = [
            ("open", "event=open"),
            (" event = open ", "event=open"),
            (
                "module=app.*,event=subprocess.*",
                "event=subprocess.*,module=app.*",
            ),
            ("path=*/jobs.py,frames=any", "path=*/jobs.py,frames=any"),
            ("function=Runner.*,frames=first", "function=Runner.*"),
        ];
        for (spec, canonical) in cases {
            assert_eq!(AllowRule::parse(spec).expect(spec).spec(), canonical);
        }
    }

    #[test]
    fn malformed_rules_name_the_rule() {
        for spec in [
            "",
            " , ",
            "colour=blue",
            "event=",
            "event=a,event=b",
            "frames=some",
            "frames=any",
        ] {
            let err = AllowRule::parse(spec).expect_err(spec);
            assert_eq!(err.rule, spec);
            assert!(err.to_string().contains("malformed allow rule"));
        }
    }

    #[test]
    fn matching_first_user_frame_by_default() {
        let frames = frames();
        let candidate = Candidate {
            event: "subprocess.Popen",
            frames: &frames,
        };
        let matches = |spec: &str| AllowRule::parse(spec).expect(spec).matches(&candidate);
        assert!(matches("event=subprocess.*"));
        assert!(matches("module=app.jobs"));
        assert!(matches("function=Runner.spawn"));
        assert!(matches("function=app.jobs.Runner.*"));
        assert!(matches("path=*/src/app/*"));
        assert!(!matches("module=subprocess")); // a library frame is not the first user frame
        assert!(!matches("module=test_jobs")); // only the first user frame by default
        assert!(matches("module=test_jobs,frames=any"));
        assert!(matches("module=subprocess,frames=any"));
        assert!(!matches("event=open,module=app.jobs"));
        assert!(!matches("module=app.jobs,function=test_spawn,frames=any")); // same frame
    }

    #[test]
    fn rule_lists_split_on_semicolons_and_newlines() {
        let specs = |text: &str| -> Vec<String> {
            parse_rule_list(text)
                .expect(text)
                .iter()
                .map(|rule| rule.spec().to_owned())
                .collect()
        };
        assert!(specs("").is_empty());
        assert!(specs(" ;;\n\r\n\t; \u{85} ").is_empty());
        assert_eq!(specs("a;b\nc"), ["event=a", "event=b", "event=c"]);
        assert_eq!(specs("\u{a0}open\u{85}"), ["event=open"]);
        // trimmed as a spec's values are, so a canonical spec reads the same in a list
        // (Python's `str.strip` also takes U+001C..U+001F, which `str::trim` keeps)
        let rule = AllowRule::parse(",\u{1e},").expect("an event glob");
        assert_eq!(specs(rule.spec()), [rule.spec()]);
        assert_eq!(
            specs(" module=app.* , event=open \r\n"),
            ["event=open,module=app.*"]
        );
        let err = parse_rule_list("open;\u{a0}event= \u{a0};colour=blue").expect_err("malformed");
        assert_eq!(err.rule, "event=");
        assert!(err.to_string().contains("malformed allow rule"));
    }

    #[test]
    fn frame_rules_need_a_user_frame() {
        let rule = AllowRule::parse("module=*").expect("valid");
        assert!(!rule.matches(&Candidate {
            event: "open",
            frames: &[]
        }));
        assert!(AllowRule::parse("event=open")
            .expect("valid")
            .matches(&Candidate {
                event: "open",
                frames: &[]
            }));
    }

    #[test]
    fn a_trio_task_ends_at_its_run_loop() {
        let f = |filename, module, function, origin| FrameFacts {
            filename,
            module: Some(module),
            function,
            origin,
            distribution: None,
        };
        // A pytest-trio-like runner: the task's frames, trio's run loop, then the project's
        // conftest that called trio.run.
        let frames = [
            f("/srv/app/helpers.py", "helpers", "load_data", Origin::User),
            f("/srv/app/test_x.py", "test_x", "test_body", Origin::User),
            f(
                "/venv/lib/python3.11/site-packages/trio/_core/_run.py",
                "trio._core._run",
                "unrolled_run",
                Origin::Package,
            ),
            f(
                "/venv/lib/python3.11/site-packages/trio/_core/_run.py",
                "trio._core._run",
                "run",
                Origin::Package,
            ),
            f(
                "/srv/app/conftest.py",
                "conftest",
                "pytest_pyfunc_call",
                Origin::User,
            ),
        ];
        assert_eq!(site_index(&frames), Some(0));
        assert_eq!(user_trace_len(&frames), 2);
    }
}

#[cfg(test)]
mod distribution_tests {
    use super::*;
    use crate::dist::Distribution;

    fn frames<'a>(botocore: &'a Distribution, boto3: &'a Distribution) -> [FrameFacts<'a>; 4] {
        let f = |filename, module, function, origin, distribution| FrameFacts {
            filename,
            module: Some(module),
            function,
            origin,
            distribution,
        };
        [
            f(
                "/usr/lib/python3.11/socket.py",
                "socket",
                "create_connection",
                Origin::Stdlib,
                None,
            ),
            f(
                "/sp/botocore/endpoint.py",
                "botocore.endpoint",
                "Endpoint.send",
                Origin::Package,
                Some(botocore),
            ),
            f(
                "/sp/boto3/session.py",
                "boto3.session",
                "Session.client",
                Origin::Package,
                Some(boto3),
            ),
            f("/srv/app/s3.py", "app.s3", "upload", Origin::User, None),
        ]
    }

    #[test]
    fn a_distribution_rule_matches_any_frame_of_the_call() {
        let (botocore, boto3) = (
            Distribution::new("botocore", "1.34.2"),
            Distribution::new("boto3", "1.34.0"),
        );
        let frames = frames(&botocore, &boto3);
        let call = Candidate {
            event: "socket.connect",
            frames: &frames,
        };
        for (spec, allowed) in [
            ("distribution=botocore", true),
            ("distribution=botocore<2", true),
            ("distribution=botocore>=1,<2,event=socket.*", true),
            ("event=socket.*,distribution=BotoCore>=1.34,!=1.34.1", true),
            ("distribution=botocore>=2", false),
            ("distribution=requests", false),
            ("distribution=boto3,event=open", false),
            ("distribution=boto3,module=app.*", true),
        ] {
            let rule = AllowRule::parse(spec).expect("a value");
            assert_eq!(rule.matches(&call), allowed, "{spec}");
        }
        // Frames past the loop's own are not the call's.
        let mut with_runner = frames.to_vec();
        with_runner.insert(
            1,
            FrameFacts {
                filename: "/usr/lib/python3.11/asyncio/events.py",
                module: Some("asyncio.events"),
                function: "Handle._run",
                origin: Origin::Stdlib,
                distribution: None,
            },
        );
        let call = Candidate {
            event: "socket.connect",
            frames: &with_runner,
        };
        assert!(!AllowRule::parse("distribution=botocore")
            .expect("a value")
            .matches(&call));
    }

    #[test]
    fn distribution_specs_are_canonical_and_checked() {
        let rule = AllowRule::parse("distribution = botocore >= 1 , < 2 ,frames=any,event=open")
            .expect("a value");
        assert_eq!(
            rule.spec(),
            "event=open,distribution=botocore>=1,<2,frames=any"
        );
        assert_eq!(AllowRule::parse(rule.spec()).expect("a value"), rule);
        let err = AllowRule::parse("distribution=botocore<<2").expect_err("an error");
        assert!(err.reason.starts_with("distribution: "), "{err}");
        assert!(AllowRule::parse("distribution=").is_err());
        assert!(AllowRule::parse("distribution=a,distribution=b").is_err());
    }
}
