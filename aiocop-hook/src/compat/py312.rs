//! CPython 3.12.

use super::{Position, PythonVersion};
use pyo3::ffi;

/// CPython 3.12.
#[derive(Debug)]
pub struct Py312;

impl PythonVersion for Py312 {
    const MINOR_VERSION: u8 = 12;
    const NATIVE_TIME_SLEEP_EVENT: bool = false;

    unsafe fn frame_position(frame: *mut ffi::PyFrameObject) -> Position {
        // SAFETY: GIL held and `frame` a valid frame (this method's own contract).
        unsafe { super::lasti_position(frame) }
    }
}
