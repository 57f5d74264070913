//! Formatting of frames, traces, arguments and events as aiocop 1.2.1 renders them, except
//! that arguments are redacted ([`redact`](crate::redact)) before they are cut.

use std::fmt::Write as _;

use crate::args::{RawArgs, MAX_ARG_CHARS};
use crate::frame::Frame;
use crate::redact::{redact_window, redaction_enabled};

/// Text of an [`entry_point`] when there is no frame.
const UNKNOWN_ENTRY_POINT: &str = "unknown";
/// Text of the arguments when one could not be turned into text.
const UNFORMATTABLE_ARGS: &str = "error_formatting_args";
/// Separator between the frames of a trace.
const TRACE_SEPARATOR: &str = " <- ";
/// What marks a native frame in a trace: `[native] sre_ucs1_match (libpython3.11.so.1.0)`.
const NATIVE_PREFIX: &str = "[native] ";
/// Redaction reads at most this many characters of an argument (the cut shows fewer): a secret
/// that starts before the cut is seen whole, and a huge argument is not read through.
const REDACT_WINDOW_CHARS: usize = 4 * MAX_ARG_CHARS;

/// Shortens a source path for display: the part after the first `/src/`, else after the first
/// `/site-packages/`, else, for paths containing `/lib/python`, the file name (after the last
/// `/`), else the path unchanged.
///
/// ```
/// use aiocop_events::shorten_path;
///
/// assert_eq!(shorten_path("/app/src/api/views.py"), "api/views.py");
/// assert_eq!(shorten_path("/venv/lib/python3.11/site-packages/httpx/_client.py"), "httpx/_client.py");
/// assert_eq!(shorten_path("/usr/lib/python3.11/socket.py"), "socket.py");
/// assert_eq!(shorten_path("<frozen importlib._bootstrap>"), "<frozen importlib._bootstrap>");
/// ```
pub fn shorten_path(path: &str) -> &str {
    const SRC: &[u8] = b"/src/";
    const SITE_PACKAGES: &[u8] = b"/site-packages/";
    const LIB_PYTHON: &[u8] = b"/lib/python";
    // One pass over the '/' positions (cheaper than three substring searches): the first
    // "/src/" wins, else the first "/site-packages/", else "/lib/python" means "file name".
    let bytes = path.as_bytes();
    let mut site_packages = None;
    let mut lib_python = false;
    let mut last_slash = None;
    for (at, _) in bytes.iter().enumerate().filter(|(_, &b)| b == b'/') {
        let rest = &bytes[at..];
        if rest.starts_with(SRC) {
            return &path[at + SRC.len()..];
        }
        if site_packages.is_none() && rest.starts_with(SITE_PACKAGES) {
            site_packages = Some(at + SITE_PACKAGES.len());
        }
        lib_python |= rest.starts_with(LIB_PYTHON);
        last_slash = Some(at);
    }
    match (site_packages, lib_python, last_slash) {
        (Some(start), _, _) => &path[start..],
        (None, true, Some(slash)) => &path[slash + 1..],
        _ => path,
    }
}

fn write_frame(out: &mut String, frame: &Frame) {
    if frame.native {
        out.push_str(NATIVE_PREFIX);
        out.push_str(&frame.native_text());
        return;
    }
    let key = (
        std::sync::Arc::as_ptr(&frame.filename).cast::<u8>() as usize,
        std::sync::Arc::as_ptr(&frame.function).cast::<u8>() as usize,
        frame.line,
    );
    FRAME_TEXT.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some((_, text)) = cache.get(&key) {
            out.push_str(text);
            return;
        }
        let mut text = String::with_capacity(frame.filename.len() + frame.function.len() + 12);
        // Writing to a String cannot fail.
        let _ = write!(
            text,
            "{}:{}:{}",
            shorten_path(&frame.filename),
            frame.line,
            frame.function
        );
        out.push_str(&text);
        if cache.len() >= FRAME_TEXT_CAP {
            cache.clear();
        }
        cache.insert(key, (frame.clone(), Box::from(text)));
    });
}

/// Formatted frames, per thread: a hot call site is formatted once. Keyed by the addresses of
/// the frame's `Arc`s and its line; the entry keeps those `Arc`s alive, so an address cannot be
/// reused while its entry exists. Bounded.
const FRAME_TEXT_CAP: usize = 16_384;

type FrameTextKey = (usize, usize, i32);

/// A multiply-rotate hasher for caches keyed by small integers (addresses, offsets), where
/// SipHash would cost more than the lookups it guards. Not DoS-resistant: keys must not come
/// from untrusted input.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

/// `BuildHasher` for [`FastHasher`].
pub type FastBuildHasher = std::hash::BuildHasherDefault<FastHasher>;

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_i32(&mut self, n: i32) {
        self.write_u64(u64::from(n as u32));
    }
}

type FrameTextCache = std::collections::HashMap<FrameTextKey, (Frame, Box<str>), FastBuildHasher>;

thread_local! {
    static FRAME_TEXT: std::cell::RefCell<FrameTextCache> =
        std::cell::RefCell::new(FrameTextCache::default());
}

/// Formats one frame as `short_path:line:function` (path shortened by [`shorten_path`]).
///
/// ```
/// use aiocop_events::{format_frame, Frame};
///
/// let frame = Frame::new("/app/src/api/views.py", 42, "get_user");
/// assert_eq!(format_frame(&frame), "api/views.py:42:get_user");
/// ```
pub fn format_frame(frame: &Frame) -> String {
    let mut out = String::with_capacity(frame.filename.len() + frame.function.len() + 12);
    write_frame(&mut out, frame);
    out
}

/// Formats a stack, innermost frame first, as its frames joined by `" <- "` (empty for no frames).
///
/// ```
/// use aiocop_events::{format_trace, Frame};
///
/// let frames = [
///     Frame::new("/app/src/db.py", 10, "query"),
///     Frame::new("/app/src/api/views.py", 42, "get_user"),
/// ];
/// assert_eq!(format_trace(&frames), "db.py:10:query <- api/views.py:42:get_user");
/// assert_eq!(format_trace(&[]), "");
/// ```
pub fn format_trace(frames: &[Frame]) -> String {
    let mut out = String::new();
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            out.push_str(TRACE_SEPARATOR);
        }
        write_frame(&mut out, frame);
    }
    out
}

/// The entry point of a stack: its first (innermost) Python frame formatted by
/// [`format_frame`] (native frames under it are skipped), or `"unknown"` when there is none.
///
/// ```
/// use aiocop_events::{entry_point, Frame};
///
/// let frames = [Frame::new("/app/src/db.py", 10, "query"), Frame::new("/app/src/main.py", 3, "main")];
/// assert_eq!(entry_point(&frames), "db.py:10:query");
/// assert_eq!(entry_point(&[]), "unknown");
/// ```
pub fn entry_point(frames: &[Frame]) -> String {
    frames
        .iter()
        .find(|frame| !frame.native)
        .map_or_else(|| UNKNOWN_ENTRY_POINT.to_owned(), format_frame)
}

/// `text` cut to its first `chars` characters, never splitting a UTF-8 character.
fn cut_chars(text: &str, chars: usize) -> &str {
    // A text of at most `chars` bytes has at most `chars` characters.
    if text.len() <= chars {
        return text;
    }
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// `text` cut to its first [`MAX_ARG_CHARS`] characters, never splitting a UTF-8 character.
fn cut_arg(text: &str) -> &str {
    cut_chars(text, MAX_ARG_CHARS)
}

/// Appends an argument as shown: when `redacting`, its first [`REDACT_WINDOW_CHARS`]
/// characters redacted (a value running to the end of a cut window is taken as a secret),
/// then cut to [`MAX_ARG_CHARS`] characters.
fn push_arg(out: &mut String, value: &str, redacting: bool) {
    if !redacting {
        out.push_str(cut_arg(value));
        return;
    }
    let window = cut_chars(value, REDACT_WINDOW_CHARS);
    let redacted = redact_window(window, window.len() < value.len());
    out.push_str(cut_arg(&redacted));
}

/// Formats an event's arguments: each value's secrets masked by [`redact`](crate::redact)
/// (unless [`set_redaction`](crate::set_redaction) turned it off), then cut to its first 100
/// characters (not bytes), joined with `", "`; [`RawArgs::Unformattable`] reads
/// `"error_formatting_args"`.
///
/// Redaction reads the first 400 characters of a value (not all of a huge one), so a secret
/// that starts before the cut is masked whole; a value running to the end of those 400
/// characters is taken as a secret.
///
/// ```
/// use aiocop_events::{format_args, RawArgs};
///
/// let args = RawArgs::Values(vec!["a".into(), "é".repeat(150)]);
/// let text = format_args(&args);
/// assert_eq!(text, format!("a, {}", "é".repeat(100)));
/// assert_eq!(format_args(&RawArgs::Values(vec![])), "");
/// assert_eq!(format_args(&RawArgs::Unformattable), "error_formatting_args");
///
/// // Secrets are masked, then the value is cut: a token straddling the cut shows as `***`.
/// let request = RawArgs::Values(vec![
///     "https://user:hunter2@api.example.com/v1?api_key=abc123&page=2".into(),
///     "None".into(),
///     "{'Authorization': 'Bearer xyz'}".into(),
/// ]);
/// assert_eq!(
///     format_args(&request),
///     "https://user:***@api.example.com/v1?api_key=***&page=2, None, {'Authorization': '***'}",
/// );
/// let long = RawArgs::Values(vec![format!("{}&token={}", "a".repeat(90), "s".repeat(40))]);
/// assert_eq!(format_args(&long), format!("{}&token=***", "a".repeat(90)));
/// ```
pub fn format_args(args: &RawArgs) -> String {
    let mut out = String::new();
    write_args(&mut out, args);
    out
}

fn write_args(out: &mut String, args: &RawArgs) {
    write_args_redacting(out, args, redaction_enabled());
}

fn write_args_redacting(out: &mut String, args: &RawArgs, redacting: bool) {
    match args {
        RawArgs::Values(values) | RawArgs::Call(values) => {
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                push_arg(out, value, redacting);
            }
        }
        RawArgs::Unformattable => out.push_str(UNFORMATTABLE_ARGS),
        RawArgs::Deferred => {}
    }
}

/// Formats an event as `name(args)`, the arguments formatted by [`format_args()`].
///
/// ```
/// use aiocop_events::{format_event, RawArgs};
///
/// let args = RawArgs::Values(vec!["example.com".into(), "443".into()]);
/// assert_eq!(format_event("socket.getaddrinfo", &args), "socket.getaddrinfo(example.com, 443)");
/// assert_eq!(format_event("os.getcwd", &RawArgs::Call(vec![])), "os.getcwd()");
/// ```
pub fn format_event(name: &str, args: &RawArgs) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push_str(name);
    out.push('(');
    write_args(&mut out, args);
    out.push(')');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_path_rules() {
        let cases: &[(&str, &str)] = &[
            // after "/src/"
            ("/app/src/api/views.py", "api/views.py"),
            ("/src/main.py", "main.py"),
            // first occurrence of "/src/"
            ("/home/u/src/proj/src/mod.py", "proj/src/mod.py"),
            // "/src/" wins over "/site-packages/", wherever each is
            ("/venv/lib/python3.11/site-packages/pkg/src/x.py", "x.py"),
            (
                "/app/src/venv/lib/python3.11/site-packages/pkg/x.py",
                "venv/lib/python3.11/site-packages/pkg/x.py",
            ),
            // after "/site-packages/" (first occurrence), before the "/lib/python" rule
            (
                "/venv/lib/python3.11/site-packages/httpx/_client.py",
                "httpx/_client.py",
            ),
            (
                "/a/site-packages/b/site-packages/c.py",
                "b/site-packages/c.py",
            ),
            // "/lib/python" paths: the file name
            ("/usr/lib/python3.11/socket.py", "socket.py"),
            (
                "/usr/lib/python3.11/asyncio/base_events.py",
                "base_events.py",
            ),
            ("/usr/lib/python3.11/", ""),
            // no rule applies
            ("/opt/app/main.py", "/opt/app/main.py"),
            (
                "<frozen importlib._bootstrap>",
                "<frozen importlib._bootstrap>",
            ),
            ("<string>", "<string>"),
            ("", ""),
            ("src/main.py", "src/main.py"),
            ("/app/source/x.py", "/app/source/x.py"),
            ("/lib/pythonic/x.py", "x.py"),
            ("C:\\src\\x.py", "C:\\src\\x.py"),
        ];
        for (path, expected) in cases {
            assert_eq!(shorten_path(path), *expected, "{path}");
        }
    }

    #[test]
    fn format_frame_table() {
        let cases: &[(Frame, &str)] = &[
            (Frame::new("/app/src/a.py", 1, "f"), "a.py:1:f"),
            (
                Frame::new("/usr/lib/python3.12/ssl.py", 1100, "recv"),
                "ssl.py:1100:recv",
            ),
            (Frame::new("<stdin>", 0, "<module>"), "<stdin>:0:<module>"),
            (Frame::new("x.py", -1, ""), "x.py:-1:"),
        ];
        for (frame, expected) in cases {
            assert_eq!(format_frame(frame), *expected);
        }
    }

    #[test]
    fn trace_and_entry_point_table() {
        let a = Frame::new("/app/src/a.py", 1, "f");
        let b = Frame::new("/app/src/b.py", 2, "g");
        let c = Frame::new("/opt/c.py", 3, "h");
        let cases: Vec<(Vec<Frame>, &str, &str)> = vec![
            (vec![], "", "unknown"),
            (vec![a.clone()], "a.py:1:f", "a.py:1:f"),
            (
                vec![a.clone(), b.clone()],
                "a.py:1:f <- b.py:2:g",
                "a.py:1:f",
            ),
            (
                vec![c.clone(), b.clone(), a.clone()],
                "/opt/c.py:3:h <- b.py:2:g <- a.py:1:f",
                "/opt/c.py:3:h",
            ),
            // native frames come first (innermost) and are marked; the entry point is the
            // innermost Python frame
            (
                vec![
                    Frame::native("sre_ucs1_match", "libpython3.11.so.1.0"),
                    Frame::native("sre_search", "libpython3.11.so.1.0"),
                    b,
                    a,
                ],
                "[native] sre_ucs1_match (libpython3.11.so.1.0) <- [native] sre_search \
                 (libpython3.11.so.1.0) <- b.py:2:g <- a.py:1:f",
                "b.py:2:g",
            ),
            (
                vec![Frame::native("f", "lib.so")],
                "[native] f (lib.so)",
                "unknown",
            ),
        ];
        for (frames, trace, entry) in cases {
            assert_eq!(format_trace(&frames), trace);
            assert_eq!(entry_point(&frames), entry);
        }
    }

    #[test]
    fn args_table() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let x99 = "x".repeat(99);
        let x100 = "x".repeat(100);
        let x101 = "x".repeat(101);
        let e100 = "é".repeat(100);
        let e101 = "é".repeat(101);
        let emoji = format!("{}🦀🦀", "a".repeat(99));
        let cases: Vec<(RawArgs, String)> = vec![
            (RawArgs::Values(vec![]), String::new()),
            (RawArgs::Call(vec![]), String::new()),
            (RawArgs::Values(s(&["a"])), "a".into()),
            (RawArgs::Values(s(&["a", "b", "c"])), "a, b, c".into()),
            (RawArgs::Call(s(&["a", "b"])), "a, b".into()),
            (RawArgs::Values(s(&["", ""])), ", ".into()),
            (RawArgs::Values(vec![x99.clone()]), x99.clone()),
            (RawArgs::Values(vec![x100.clone()]), x100.clone()),
            (RawArgs::Values(vec![x101]), x100.clone()),
            // 100 chars, not bytes: "é" is 2 bytes
            (RawArgs::Values(vec![e101]), e100.clone()),
            (
                RawArgs::Call(vec![e100.clone(), "z".into()]),
                format!("{e100}, z"),
            ),
            // 4-byte char straddling the cut is kept whole or dropped whole
            (
                RawArgs::Values(vec![emoji]),
                format!("{}🦀", "a".repeat(99)),
            ),
            (RawArgs::Unformattable, "error_formatting_args".into()),
        ];
        for (args, expected) in cases {
            assert_eq!(format_args(&args), expected, "{args:?}");
        }
    }

    fn shown(args: &RawArgs, redacting: bool) -> String {
        let mut out = String::new();
        write_args_redacting(&mut out, args, redacting);
        out
    }

    #[test]
    fn arguments_are_redacted_then_cut() {
        let one = |v: String| RawArgs::Values(vec![v]);
        let a = |n: usize| "a".repeat(n);
        let s = |n: usize| "s".repeat(n);
        let cases: Vec<(RawArgs, String)> = vec![
            (
                RawArgs::Call(vec![
                    "curl".into(),
                    "['curl', '--token=abc', '--password', 'pw']".into(),
                    "None".into(),
                    "{'AWS_SECRET_ACCESS_KEY': 'k', 'PATH': '/bin'}".into(),
                ]),
                "curl, ['curl', '--token=***', '--password', '***'], None, \
                 {'AWS_SECRET_ACCESS_KEY': '***', 'PATH': '/bin'}"
                    .into(),
            ),
            // the secret starts before the cut (character 95) and ends after it
            (
                one(format!("https://h/?q={}&token={}", a(75), s(50))),
                format!("https://h/?q={}&token=***", a(75)),
            ),
            // the value starts at the cut: its mask is cut, none of it shows
            (
                one(format!("{}&token={}", a(93), s(50))),
                format!("{}&token=", a(93)),
            ),
            (
                one(format!("{}&token={}", a(92), s(50))),
                format!("{}&token=*", a(92)),
            ),
            // a password whose '@' lies past the redaction window
            (
                one(format!("https://u:{}@host/", s(1000))),
                "https://u:***".into(),
            ),
            // a value past the window's end, then more text: nothing past the window shows
            (
                one(format!("token={}&{}", s(500), a(200))),
                "token=***".into(),
            ),
            (
                one(format!("{{'password': '{}'}}", s(1000))),
                "{'password': '***".into(),
            ),
            // a secret after the window is not read (and not shown)
            (one(format!("{}&token={}", a(500), s(10))), a(100)),
            // UTF-8 before the secret: characters, not bytes, and none split
            (
                one(format!("{}?sig=🦀🦀🦀", "é".repeat(96))),
                format!("{}?sig", "é".repeat(96)),
            ),
            (
                one(format!("{}?sig=🦀🦀🦀", "é".repeat(90))),
                format!("{}?sig=***", "é".repeat(90)),
            ),
        ];
        for (args, expected) in cases {
            assert_eq!(shown(&args, true), expected, "{args:?}");
        }
    }

    #[test]
    fn without_redaction_arguments_are_only_cut() {
        let args = RawArgs::Values(vec![
            "--token=abc".into(),
            format!("https://u:{}@host/", "p".repeat(200)),
        ]);
        assert_eq!(
            shown(&args, false),
            format!("--token=abc, https://u:{}", "p".repeat(90))
        );
        assert_eq!(shown(&args, true), "--token=***, https://u:***@host/");
    }

    #[test]
    fn each_arg_is_cut_separately() {
        let args = RawArgs::Values(vec!["a".repeat(150), "b".repeat(150)]);
        assert_eq!(
            format_args(&args),
            format!("{}, {}", "a".repeat(100), "b".repeat(100))
        );
    }

    #[test]
    fn event_table() {
        let cases: Vec<(&str, RawArgs, &str)> = vec![
            (
                "open",
                RawArgs::Values(vec!["f.txt".into(), "r".into()]),
                "open(f.txt, r)",
            ),
            ("os.getcwd", RawArgs::Call(vec![]), "os.getcwd()"),
            (
                "socket.socket.connect",
                RawArgs::Call(vec!["<socket>".into(), "('h', 1)".into()]),
                "socket.socket.connect(<socket>, ('h', 1))",
            ),
            (
                "import",
                RawArgs::Unformattable,
                "import(error_formatting_args)",
            ),
        ];
        for (name, args, expected) in cases {
            assert_eq!(format_event(name, &args), expected);
        }
    }
}
