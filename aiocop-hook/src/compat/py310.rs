//! CPython 3.10.

use super::{Position, PythonVersion};
use pyo3::ffi;

/// CPython 3.10.
#[derive(Debug)]
pub struct Py310;

impl PythonVersion for Py310 {
    const MINOR_VERSION: u8 = 10;
    const NATIVE_TIME_SLEEP_EVENT: bool = false;
    const QUALNAME_ATTR: &'static str = "co_name";

    unsafe fn frame_position(frame: *mut ffi::PyFrameObject) -> Position {
        // SAFETY: the caller holds the GIL and passes a valid frame. 3.10 keeps `f_lasti` in
        // code units inside a private struct, so the public line API is the one to use.
        Position::Line(unsafe { ffi::PyFrame_GetLineNumber(frame) })
    }
}
