//! CPython 3.11.

use super::{Position, PythonVersion};
use pyo3::ffi;

/// CPython 3.11.
#[derive(Debug)]
pub struct Py311;

impl PythonVersion for Py311 {
    const MINOR_VERSION: u8 = 11;
    const NATIVE_TIME_SLEEP_EVENT: bool = false;

    unsafe fn frame_position(frame: *mut ffi::PyFrameObject) -> Position {
        // SAFETY: forwarded from the caller (GIL held, valid frame).
        unsafe { super::lasti_position(frame) }
    }
}
