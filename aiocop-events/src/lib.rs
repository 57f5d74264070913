//! Event types, formatting and assembly of aiocop's slow-task events.
//!
//! The loop thread hands a finished handle's run over as a [`Slice`]: its duration, the
//! threshold, the blocking-IO records made during it ([`RawRecord`], each sharing its call
//! site's resolved [`Stack`]) and any CPU stack samples. [`assemble`] turns it into the
//! [`SlowTask`] event Python callbacks receive — on the background thread, which formats a new
//! call site's stack once, or in place when [`Slice::is_preformatted`] — formatted as aiocop
//! 1.2.1 does, except that secrets in arguments are masked:
//!
//! - `event` reads `name(arg1, arg2)`, each argument's secrets masked ([`redact`], unless
//!   [`set_redaction`] turned it off) and the argument cut to 100 characters ([`format_event`]);
//! - `trace` is the frames, innermost first, joined by `" <- "`, each `short_path:line:function`
//!   ([`format_trace`], [`shorten_path`]); `entry_point` is the first frame or `"unknown"`;
//! - identical sampled stacks are counted, most frequent first ([`aggregate_samples`]);
//! - where the handle's time went — on CPU, waiting (in which system call), in the garbage
//!   collector — rides along as a [`ThreadTime`] ([`estimate_cpu_ns`]);
//! - scores and levels come from [`aiocop_severity`].
//!
//! Pure Rust: no pyo3, no IO.
//!
//! ```
//! use aiocop_events::{assemble, Frame, RawArgs, RawRecord, Reason, Slice, Stack};
//! use aiocop_severity::Level;
//!
//! let slice = Slice {
//!     elapsed_ns: 120_000_000,
//!     threshold_ns: 30_000_000,
//!     records: vec![RawRecord {
//!         event_name: "socket.getaddrinfo".into(),
//!         args: RawArgs::Values(vec!["example.com".into(), "443".into()]),
//!         stack: Stack::shared(vec![
//!             Frame::new("/usr/lib/python3.11/socket.py", 962, "getaddrinfo"),
//!             Frame::new("/app/src/client.py", 21, "fetch"),
//!         ]),
//!         timestamp: 1_700_000_000.0,
//!         weight: Some(50),
//!     }],
//!     ..Slice::default()
//! };
//!
//! let task = assemble(&slice).expect("a slice with records is reported");
//! assert_eq!(task.reason, Reason::IoBlocking);
//! assert_eq!((task.elapsed_ms, task.threshold_ms), (120.0, 30.0));
//! assert_eq!((task.severity_score, task.severity_level), (50, Level::High));
//! let event = &task.blocking_events[0];
//! assert_eq!(event.event, "socket.getaddrinfo(example.com, 443)");
//! assert_eq!(event.trace(), "socket.py:962:getaddrinfo <- client.py:21:fetch");
//! assert_eq!(event.entry_point(), "socket.py:962:getaddrinfo");
//! ```
#![deny(missing_docs)]

mod args;
pub mod dist;
mod format;
mod frame;
mod origin;
pub mod pep440;
mod record;
mod redact;
pub mod rules;
mod samples;
mod slice;
mod stack;
mod stuck;
mod thread_time;

pub use args::{RawArgs, MAX_ARG_CHARS};
pub use format::{
    entry_point, format_args, format_event, format_frame, format_trace, shorten_path,
    FastBuildHasher, FastHasher,
};
pub use frame::{CodeFacts, Frame};
pub use origin::Origin;
pub use record::{
    format_record, BlockingEvent, RawRecord, BLOCKING_EVENT_FIELDS, MAX_RECORDS_PER_HANDLE,
};
pub use redact::{redact, redaction_enabled, set_redaction};
pub use samples::{aggregate_samples, CpuSample};
pub use slice::{assemble, Reason, Slice, SlowTask};
pub use stack::Stack;
pub use stuck::{coroutine_of, StuckFrame, StuckReport, StuckState};
pub use thread_time::{estimate_cpu_ns, ThreadTime};

// Runs the README's example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
