//! The loop side of aiocop: wrapping a running loop's `call_soon` / `call_later` / `call_at` /
//! `call_soon_threadsafe` with native callables, timing every handle, correlating the records
//! the audit hook took on this thread with the handle, building the slice on the slow path
//! only, and the background threads (dispatch, CPU sampling) that turn slices into events
//! delivered on the loop's own thread.
//!
//! Modules, each with one job (and no cycles between them):
//!
//! - `config`: process-wide settings (active, threshold, dispatch mode, shutting down);
//! - `registry`: the user's callbacks and context providers; `event`: `SlowTaskEvent`;
//!   `deliver`: calling the callbacks with an event; `counters`: what `stats()` reports;
//! - `methods`: the table of the four scheduling methods; `kwnames`: the `("context",)`
//!   keyword names; `direct_call_soon`: asyncio's stock `call_soon`, done natively;
//! - `loop_state`: one loop's delivery state, shared with the background thread (its state
//!   machine, free of Python, is the crate `aiocop-delivery`); `dispatch`: the background
//!   thread, `flush`, what is pending at exit; `flush`: `aiocop.flush()`; `sampler`: the
//!   CPU sampling watchdog; `wake`: when the watchdog wakes next; `thread_watch`: what the watchdog reads of a loop thread (CPU
//!   clock, `/proc`) for a slice's CPU time, waits and samples' state; `gc_time`: the garbage
//!   collector's time per handle, from a `gc.callbacks` entry; `stuck`: stuck-loop
//!   detection (the reports the watchdog makes of a handle that still runs, the report file,
//!   the reporter thread that calls `on_stuck_loop` callbacks);
//! - `handle`: running one monitored handle (timing, fast path, slow path);
//!   `monitored`: the `MonitoredCallback` type that runs it;
//! - `loop_patch`: the state installed on a loop; `scheduling`: the replacements of the four
//!   methods; `loop_end`: the loop's `close`; `readers`: reader and writer callbacks
//!   (asyncio's `_add_reader` / `_add_writer`); `protocols`: protocol classes' callback
//!   methods; `loop_methods`: a uvloop loop's protocol-factory methods and `add_reader` /
//!   `add_writer`; `binding`: those callables binding as methods; `patching`: installing all
//!   of it on a loop;
//! - `trio_steps`: a trio run's task steps, monitored through trio's instrument API with the
//!   same begin/end pair as a handle.
//!
//! Architecture invariant: the loop thread never waits on another thread (except in the
//! explicit `flush`), and the background threads run no Python code beyond scheduling delivery
//! and capturing a sampled stack — except the stuck reporter, which calls the `on_stuck_loop`
//! callbacks (the stuck loop's own thread cannot).

pub mod config;
use aiocop_hook::pylog;
mod binding;
mod counters;
mod deliver;
mod direct_call_soon;
pub mod dispatch;
mod event;
mod flush;
pub mod gc_time;
mod handle;
mod kwnames;
mod loop_end;
mod loop_methods;
mod loop_patch;
mod loop_state;
mod methods;
mod monitored;
mod native_frames;
mod patching;
mod protocols;
mod readers;
pub mod registry;
pub mod sampler;
mod scheduling;
pub mod stuck;
mod thread_watch;
mod trio_steps;
mod wake;

pub use config::Dispatch;
pub use event::SlowTaskEvent;
pub use flush::flush_here;
pub use loop_patch::{loop_patch, LoopPatch};
pub use loop_state::LoopShared;
pub use patching::{patch_loop, running_loop};
pub use trio_steps::TrioSteps;

/// Creates the native types (call once from the module's init).
pub fn init(py: pyo3::Python<'_>) -> pyo3::PyResult<()> {
    monitored::init_types(py)
}
