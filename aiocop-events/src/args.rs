//! A blocking call's arguments, as text.

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
