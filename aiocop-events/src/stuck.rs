//! Stuck loops: a handle still running long after it began is reported while it runs.
//!
//! [`StuckState`] is the schedule of one loop thread's reports: the first when the running
//! handle is `after` old, then at `2 × after`, `4 × after`, ... (the interval doubles each
//! time), for as long as the same handle runs. [`StuckReport`] is one report, as the watchdog
//! makes it without the GIL, and [`StuckReport::json_line`] the line appended to the report
//! file (no Python object needed, so a stall that holds the GIL forever is still written).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

/// The report schedule of one loop thread.
///
/// ```
/// use aiocop_events::StuckState;
///
/// let ms = 1_000_000;
/// let mut state = StuckState::new(100 * ms);
/// let start = 5 * ms; // the running handle's start stamp
/// assert_eq!(state.due(start, start + 99 * ms), None);
/// assert_eq!(state.due(start, start + 100 * ms), Some(1));
/// assert_eq!(state.due(start, start + 150 * ms), None);
/// assert_eq!(state.due(start, start + 200 * ms), Some(2));
/// assert_eq!(state.due(start, start + 399 * ms), None);
/// assert_eq!(state.due(start, start + 400 * ms), Some(3));
/// // Another handle: its own schedule from the start.
/// assert_eq!(state.due(start + 500 * ms, start + 620 * ms), Some(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StuckState {
    after_ns: u64,
    /// The start stamp of the handle the schedule is about (0: none yet).
    owner: u64,
    /// Reports made about it.
    reports: u32,
    /// The age at which the next report is due.
    next_age_ns: u64,
}

impl StuckState {
    /// A schedule whose first report comes when a handle is `after_ns` old (at least 1 ns).
    pub fn new(after_ns: u64) -> Self {
        let after_ns = after_ns.max(1);
        Self {
            after_ns,
            owner: 0,
            reports: 0,
            next_age_ns: after_ns,
        }
    }

    /// The first report's age.
    pub fn after_ns(&self) -> u64 {
        self.after_ns
    }

    /// At `now_ns`, for the handle that started at `start_ns` and still runs: the number of
    /// this report (1 for the first) when one is due, else `None`. A handle other than the one
    /// of the last call starts a new schedule. A call that comes late (the watchdog slept past
    /// several due ages) makes one report, and the next is due at the first doubling beyond
    /// the age now: reports never come in bursts.
    pub fn due(&mut self, start_ns: u64, now_ns: u64) -> Option<u32> {
        if start_ns != self.owner {
            self.owner = start_ns;
            self.reports = 0;
            self.next_age_ns = self.after_ns;
        }
        let age = now_ns.saturating_sub(start_ns);
        if age < self.next_age_ns {
            return None;
        }
        self.reports = self.reports.saturating_add(1);
        while self.next_age_ns <= age {
            match self.next_age_ns.checked_mul(2) {
                Some(next) => self.next_age_ns = next,
                None => {
                    self.next_age_ns = u64::MAX;
                    break;
                }
            }
        }
        Some(self.reports)
    }

    /// When the next report about the handle that started at `start_ns` is due, if it still
    /// runs then (the first report's age after its start, for a handle new to the schedule).
    pub fn next_due_ns(&self, start_ns: u64) -> u64 {
        let age = if start_ns == self.owner {
            self.next_age_ns
        } else {
            self.after_ns
        };
        start_ns.saturating_add(age)
    }

    /// Reports made about the handle that started at `start_ns` (0 for any other).
    pub fn reports_for(&self, start_ns: u64) -> u32 {
        if start_ns == self.owner {
            self.reports
        } else {
            0
        }
    }
}

/// One frame of a stuck loop's stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StuckFrame {
    /// The code's file.
    pub file: Arc<str>,
    /// The line being run (-1 when unknown).
    pub line: i32,
    /// The function's name (`co_name`).
    pub function: Arc<str>,
    /// The function's qualified name (`co_qualname`; the name where it is not known).
    pub qualname: Arc<str>,
    /// A native (C, Rust) frame rather than a Python one (none yet: always `false`).
    pub native: bool,
}

/// One report of a loop thread stuck in a handle.
#[derive(Debug, Clone, PartialEq)]
pub struct StuckReport {
    /// The loop thread's identifier (`threading.get_ident()` there).
    pub thread_id: u64,
    /// The name of the task the handle steps (known only where the GIL could be taken).
    pub task_name: Option<String>,
    /// The qualified name of the coroutine or callback the handle runs, read from the stack
    /// ([`coroutine_of`]).
    pub coroutine: Option<String>,
    /// How long the handle has been running, in nanoseconds.
    pub stuck_ns: u64,
    /// The loop thread's stack, innermost frame first.
    pub stack: Vec<StuckFrame>,
    /// Whether the thread was on a CPU (runnable) when seen.
    pub on_cpu: Option<bool>,
    /// The system call the thread was waiting in, when off CPU inside one.
    pub blocked_in: Option<Cow<'static, str>>,
    /// When the report was made, in `time.monotonic()` seconds.
    pub detected_at: f64,
    /// The report's number for this handle (1 for the first).
    pub report_number: u32,
}

/// The qualified name of the coroutine (or plain callback) a handle runs, from its stack
/// (innermost first): the frame just inside the first frame of `asyncio` or `uvloop` code (the
/// loop's `_run` of a handle, or, where the loop runs handles from C, the runner that called
/// the loop). `None` when no such frame is in the stack.
///
/// ```
/// use aiocop_events::{coroutine_of, StuckFrame};
///
/// let frame = |file: &str, name: &str| StuckFrame {
///     file: file.into(), line: 1, function: name.into(), qualname: name.into(), native: false,
/// };
/// let stack = [
///     frame("/app/src/work.py", "crunch"),
///     frame("/app/src/work.py", "Worker.run"),
///     frame("/usr/lib/python3.11/asyncio/events.py", "_run"),
/// ];
/// assert_eq!(coroutine_of(&stack), Some("Worker.run"));
/// assert_eq!(coroutine_of(&stack[..2]), None);
/// ```
pub fn coroutine_of(stack: &[StuckFrame]) -> Option<&str> {
    let loop_frame = stack.iter().position(|frame| is_loop_code(&frame.file))?;
    // The Python frame just inside the loop's code (native frames, innermost, never are).
    stack[..loop_frame]
        .iter()
        .rev()
        .find(|frame| !frame.native)
        .map(|frame| &*frame.qualname)
}

fn is_loop_code(file: &str) -> bool {
    file.contains("/asyncio/") || file.contains("/uvloop/")
}

impl StuckReport {
    /// How long the handle has been running, in milliseconds.
    pub fn stuck_ms(&self) -> f64 {
        self.stuck_ns as f64 / 1e6
    }

    /// The report as one line of JSON (ending in `\n`), with the process id: what the watchdog
    /// appends to the report file, without the GIL.
    ///
    /// ```
    /// use aiocop_events::{StuckFrame, StuckReport};
    ///
    /// let report = StuckReport {
    ///     thread_id: 7,
    ///     task_name: None,
    ///     coroutine: Some("main".into()),
    ///     stuck_ns: 1_500_000,
    ///     stack: vec![StuckFrame { file: "/app/a \"b\".py".into(), line: 3, function: "f".into(), qualname: "f".into(), native: false }],
    ///     on_cpu: Some(true),
    ///     blocked_in: None,
    ///     detected_at: 12.5,
    ///     report_number: 1,
    /// };
    /// assert_eq!(
    ///     report.json_line(42),
    ///     "{\"pid\":42,\"thread_id\":7,\"task_name\":null,\"coroutine\":\"main\",\"stuck_ms\":1.5,\
    ///      \"report_number\":1,\"on_cpu\":true,\"blocked_in\":null,\"detected_at\":12.5,\"stack\":[{\"file\":\
    ///      \"/app/a \\\"b\\\".py\",\"line\":3,\"function\":\"f\",\"qualname\":\"f\",\"native\":false}]}\n"
    /// );
    /// ```
    pub fn json_line(&self, pid: u32) -> String {
        let mut out = String::with_capacity(256 + 128 * self.stack.len());
        let _ = write!(out, "{{\"pid\":{pid},\"thread_id\":{}", self.thread_id);
        out.push_str(",\"task_name\":");
        json_opt_str(&mut out, self.task_name.as_deref());
        out.push_str(",\"coroutine\":");
        json_opt_str(&mut out, self.coroutine.as_deref());
        out.push_str(",\"stuck_ms\":");
        json_number(&mut out, self.stuck_ms());
        let _ = write!(out, ",\"report_number\":{}", self.report_number);
        out.push_str(",\"on_cpu\":");
        out.push_str(match self.on_cpu {
            Some(true) => "true",
            Some(false) => "false",
            None => "null",
        });
        out.push_str(",\"blocked_in\":");
        json_opt_str(&mut out, self.blocked_in.as_deref());
        out.push_str(",\"detected_at\":");
        json_number(&mut out, self.detected_at);
        out.push_str(",\"stack\":[");
        for (i, frame) in self.stack.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"file\":");
            json_str(&mut out, &frame.file);
            let _ = write!(out, ",\"line\":{}", frame.line);
            out.push_str(",\"function\":");
            json_str(&mut out, &frame.function);
            out.push_str(",\"qualname\":");
            json_str(&mut out, &frame.qualname);
            let _ = write!(out, ",\"native\":{}}}", frame.native);
        }
        out.push_str("]}\n");
        out
    }
}

fn json_number(out: &mut String, value: f64) {
    if value.is_finite() {
        let _ = write!(out, "{value}");
    } else {
        out.push_str("null");
    }
}

fn json_opt_str(out: &mut String, value: Option<&str>) {
    match value {
        Some(text) => json_str(out, text),
        None => out.push_str("null"),
    }
}

fn json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn the_coroutine_is_a_python_frame_even_under_native_ones() {
        let frame = |file: &str, name: &str, native: bool| StuckFrame {
            file: file.into(),
            line: 1,
            function: name.into(),
            qualname: name.into(),
            native,
        };
        // A C callback run by the loop: its native frames stand right inside the loop's code.
        let stack = [
            frame("libpython3.11.so.1.0", "sre_ucs1_match", true),
            frame("/usr/lib/python3.11/asyncio/events.py", "_run", false),
        ];
        assert_eq!(coroutine_of(&stack), None);
        let stack = [
            frame("libpython3.11.so.1.0", "sre_ucs1_match", true),
            frame("/app/work.py", "crunch", false),
            frame("/usr/lib/python3.11/asyncio/events.py", "_run", false),
        ];
        assert_eq!(coroutine_of(&stack), Some("crunch"));
    }

    #[test]
    fn reports_come_at_doubling_ages() {
        let mut state = StuckState::new(100 * MS);
        let start = 1_000 * MS;
        let mut reports = Vec::new();
        for age_ms in 0..2_000 {
            if let Some(n) = state.due(start, start + age_ms * MS) {
                reports.push((n, age_ms));
            }
        }
        assert_eq!(
            reports,
            [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1_600)]
        );
        assert_eq!(state.reports_for(start), 5);
        assert_eq!(state.reports_for(start + 1), 0);
    }

    #[test]
    fn the_next_report_is_due_where_the_schedule_says() {
        let mut state = StuckState::new(100 * MS);
        let start = 1_000 * MS;
        assert_eq!(
            state.next_due_ns(start),
            start + 100 * MS,
            "a handle new to it"
        );
        assert_eq!(state.due(start, start + 150 * MS), Some(1));
        assert_eq!(state.next_due_ns(start), start + 200 * MS);
        assert_eq!(state.due(start, start + 199 * MS), None);
        assert_eq!(state.due(start, start + 200 * MS), Some(2));
        assert_eq!(state.next_due_ns(start), start + 400 * MS);
        assert_eq!(
            state.next_due_ns(start + 5),
            start + 5 + 100 * MS,
            "another handle"
        );
        assert_eq!(state.next_due_ns(u64::MAX - 1), u64::MAX, "saturates");
    }

    #[test]
    fn a_late_look_makes_one_report_and_skips_to_the_next_doubling() {
        let mut state = StuckState::new(100 * MS);
        assert_eq!(state.due(MS, MS + 750 * MS), Some(1));
        assert_eq!(state.due(MS, MS + 799 * MS), None);
        assert_eq!(state.due(MS, MS + 800 * MS), Some(2));
    }

    #[test]
    fn a_new_handle_starts_a_new_schedule() {
        let mut state = StuckState::new(100 * MS);
        assert_eq!(state.due(MS, 101 * MS), Some(1));
        assert_eq!(state.due(MS, 201 * MS), Some(2));
        assert_eq!(state.due(300 * MS, 350 * MS), None);
        assert_eq!(state.reports_for(MS), 0);
        assert_eq!(state.due(300 * MS, 400 * MS), Some(1));
    }

    #[test]
    fn the_schedule_saturates_instead_of_overflowing() {
        let mut state = StuckState::new(u64::MAX / 2 + 1);
        assert_eq!(state.due(1, u64::MAX), Some(1));
        assert_eq!(state.due(1, u64::MAX), None);
        let mut zero = StuckState::new(0);
        assert_eq!(zero.after_ns(), 1);
        assert_eq!(zero.due(5, 5), None);
        assert_eq!(zero.due(5, 6), Some(1));
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        json_str(&mut out, "a\"\\\n\u{1}é");
        assert_eq!(out, "\"a\\\"\\\\\\n\\u0001é\"");
        let mut number = String::new();
        json_number(&mut number, f64::NAN);
        assert_eq!(number, "null");
    }
}
