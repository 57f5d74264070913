//! CPython 3.14.

use super::{Position, PythonVersion};
use pyo3::ffi;

/// CPython 3.14.
#[derive(Debug)]
pub struct Py314;

impl PythonVersion for Py314 {
    const MINOR_VERSION: u8 = 14;
    const NATIVE_TIME_SLEEP_EVENT: bool = true;

    unsafe fn frame_position(frame: *mut ffi::PyFrameObject) -> Position {
        // SAFETY: GIL held and `frame` a valid frame (this method's own contract).
        unsafe { super::lasti_position(frame) }
    }
}
