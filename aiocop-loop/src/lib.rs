//! The loop side of aiocop: wrapping a running loop's `call_soon` / `call_later` / `call_at` /
//! `call_soon_threadsafe` with native callables, timing every handle, correlating the records
//! the audit hook took on this thread with the handle, building the slice on the slow path
//! only, and the background threads (dispatch, CPU sampling) that turn slices into events
//! delivered on the loop's own thread.
//!
//! Architecture invariant: the loop thread never waits on another thread (except in the
//! explicit `flush`), and the background threads run no Python code beyond scheduling delivery
//! and capturing a sampled stack.

pub mod config;
pub use aiocop_hook::pylog;
pub mod deliver;
pub mod dispatch;
pub mod event;
mod loop_end;
mod native;
pub mod registry;
pub mod sampler;
pub mod wrapper;

pub use config::Dispatch;
pub use wrapper::{loop_patch, patch_loop, running_loop, LoopPatch};

/// Creates the native types (call once from the module's init).
pub fn init(py: pyo3::Python<'_>) -> pyo3::PyResult<()> {
    native::init_types(py)
}
