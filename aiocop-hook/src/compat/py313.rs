//! CPython 3.13.

use super::{Position, PythonVersion};
use pyo3::ffi;

/// CPython 3.13.
#[derive(Debug)]
pub struct Py313;

impl PythonVersion for Py313 {
    const MINOR_VERSION: u8 = 13;
    const NATIVE_TIME_SLEEP_EVENT: bool = true;

    unsafe fn frame_position(frame: *mut ffi::PyFrameObject) -> Position {
        // SAFETY: GIL held and `frame` a valid frame (this method's own contract).
        unsafe { super::lasti_position(frame) }
    }
}
