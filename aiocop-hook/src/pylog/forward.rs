//! Rust diagnostics on the `aiocop` logger: the `tracing` events at WARN and ERROR that
//! aiocop's threads emit where they cannot take the GIL (the CPU sampler's watchdog, the
//! dispatch thread, the stuck-loop reporter) are handed to a thread of their own, which takes
//! the GIL and logs them. Handing one over never blocks the thread that emits it (a lock
//! tried, not waited for, and a bounded queue: past [`QUEUE`] lines waiting, the next ones are
//! dropped). An event with the field `logged = true` was logged on the spot by a thread holding
//! the GIL and is not logged again.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, TryLockError};

use pyo3::Python;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{span, Event, Level, Metadata, Subscriber};

/// Lines waiting for the logger at most.
const QUEUE: usize = 256;

/// A diagnostic on its way to the `aiocop` logger.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    error: bool,
    message: String,
}

/// The forwarder's queue, with the process it was started in (a child after `fork()`, which
/// has no forwarder thread, starts its own).
static FORWARDER: Mutex<Option<(u32, SyncSender<Line>)>> = Mutex::new(None);
/// Set at interpreter exit: lines from then on are dropped.
static STOPPED: AtomicBool = AtomicBool::new(false);

/// Makes the bridge the `tracing` default of this extension (its copy of `tracing` is its
/// own: no other library's subscriber is replaced). Call once, from the module's init.
pub fn install() {
    // Err only when a default is set already: then that one stays.
    let _ = tracing::subscriber::set_global_default(Bridge);
}

/// At interpreter exit: lines not logged yet, and later ones, are dropped (the interpreter
/// may no longer be entered).
pub fn stop() {
    STOPPED.store(true, Ordering::Release);
}

/// The subscriber: WARN and ERROR events only, no spans.
struct Bridge;

impl Subscriber for Bridge {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::WARN)
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &Event<'_>) {
        if let Some(line) = line_of(event) {
            send(line);
        }
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

/// The line an event is logged as: its message, then its other fields as `name=value`; `None`
/// for an event already logged (`logged = true`).
fn line_of(event: &Event<'_>) -> Option<Line> {
    let mut fields = Fields::default();
    event.record(&mut fields);
    if fields.logged {
        return None;
    }
    let mut message = fields.message;
    if !fields.rest.is_empty() {
        if !message.is_empty() {
            message.push(' ');
        }
        message.push_str(&fields.rest);
    }
    Some(Line {
        error: *event.metadata().level() == Level::ERROR,
        message,
    })
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
    logged: bool,
}

impl Visit for Fields {
    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "logged" {
            self.logged = value;
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.rest.is_empty() {
                self.rest.push(' ');
            }
            let _ = write!(self.rest, "{}={value:?}", field.name());
        }
    }
}

/// Queues `line` for the forwarder, starting it in this process first if needed; never waits.
fn send(line: Line) {
    if STOPPED.load(Ordering::Acquire) {
        return;
    }
    let mut forwarder = match FORWARDER.try_lock() {
        Ok(guard) => guard,
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
        Err(TryLockError::WouldBlock) => return,
    };
    let pid = std::process::id();
    if !matches!(forwarder.as_ref(), Some((owner, _)) if *owner == pid) {
        *forwarder = spawn().map(|sender| (pid, sender));
    }
    if let Some((_, sender)) = forwarder.as_ref() {
        if let Err(TrySendError::Disconnected(_)) = sender.try_send(line) {
            *forwarder = None;
        }
    }
}

fn spawn() -> Option<SyncSender<Line>> {
    let (sender, receiver) = sync_channel(QUEUE);
    std::thread::Builder::new()
        .name("aiocop-log".into())
        .spawn(move || forward(&receiver))
        .ok()?;
    Some(sender)
}

/// The forwarder thread: takes the GIL for each line and logs it.
fn forward(lines: &Receiver<Line>) {
    while let Ok(line) = lines.recv() {
        if STOPPED.load(Ordering::Acquire) || !crate::compat::interpreter_alive() {
            continue;
        }
        // A panic (a broken logging set-up) loses the line, never the thread.
        let _ = std::panic::catch_unwind(|| {
            Python::attach(|py| {
                if line.error {
                    super::error(py, &line.message);
                } else {
                    super::warning(py, &line.message);
                }
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the lines of the events emitted under it.
    struct Lines(Mutex<Vec<Option<Line>>>);

    impl Subscriber for Lines {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, event: &Event<'_>) {
            self.0.lock().expect("not poisoned").push(line_of(event));
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }

    fn lines_of(emit: impl FnOnce()) -> Vec<Option<Line>> {
        let lines = std::sync::Arc::new(Lines(Mutex::new(Vec::new())));
        tracing::subscriber::with_default(std::sync::Arc::clone(&lines), emit);
        let taken = std::mem::take(&mut *lines.0.lock().expect("not poisoned"));
        taken
    }

    #[test]
    fn a_warning_is_its_message_then_its_fields() {
        let lines = lines_of(|| {
            let err = "disk full";
            tracing::warn!("aiocop could not write a report: {err}");
            tracing::warn!(frames = 3, "warmed up");
        });
        assert_eq!(
            lines,
            vec![
                Some(Line {
                    error: false,
                    message: "aiocop could not write a report: disk full".into()
                }),
                Some(Line {
                    error: false,
                    message: "warmed up frames=3".into()
                }),
            ]
        );
    }

    #[test]
    fn an_error_stays_an_error() {
        let lines = lines_of(|| tracing::error!("panic in the sampler"));
        assert_eq!(lines[0].as_ref().map(|l| l.error), Some(true));
    }

    #[test]
    fn an_event_already_logged_is_not_logged_again() {
        let lines = lines_of(|| {
            tracing::warn!(logged = true, "said on the aiocop logger already");
            tracing::warn!(logged = false, "not yet");
        });
        assert_eq!(lines[0], None);
        assert_eq!(
            lines[1].as_ref().map(|l| l.message.as_str()),
            Some("not yet")
        );
    }

    #[test]
    fn the_bridge_takes_warnings_and_errors_only() {
        let levels = tracing::subscriber::with_default(Bridge, || {
            [
                tracing::enabled!(Level::ERROR),
                tracing::enabled!(Level::WARN),
                tracing::enabled!(Level::INFO),
                tracing::enabled!(Level::DEBUG),
            ]
        });
        assert_eq!(levels, [true, true, false, false]);
    }
}
