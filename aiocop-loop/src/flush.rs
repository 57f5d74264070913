//! `aiocop.flush()`: the pending events of the running loop, or, outside a loop, of every
//! monitored loop of this thread, delivered now.

use std::sync::Arc;

use pyo3::prelude::*;

use crate::dispatch::flush;
use crate::loop_patch::loop_patch;
use crate::patching::running_loop;

/// [`flush`] for the running loop, or, outside a loop, for every loop of this thread.
pub fn flush_here(py: Python<'_>) {
    let target = running_loop(py)
        .and_then(|l| loop_patch(&l))
        .map(|p| Arc::clone(p.get().shared()));
    flush(py, target.as_ref());
}
