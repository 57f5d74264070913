//! Where a compact string's characters start, for the GIL-free reader: `PyASCIIObject` and
//! `PyCompactUnicodeObject` as this build's CPython lays them out (with `wstr` until 3.12,
//! without from 3.12), field for field from `Include/cpython/unicodeobject.h`.

use std::ffi::c_char;
use std::mem::size_of;

use pyo3::ffi;

use super::UnicodeFields;

/// `PyASCIIObject`: `length`, `hash`, `state`, then `wstr` (until 3.12).
#[cfg(not(Py_3_12))]
#[repr(C)]
struct AsciiObject {
    ob_base: ffi::PyObject,
    length: isize,
    hash: isize,
    state: u32,
    wstr: *mut std::ffi::c_void,
}

/// `PyCompactUnicodeObject` (until 3.12).
#[cfg(not(Py_3_12))]
#[repr(C)]
struct CompactUnicodeObject {
    base: AsciiObject,
    utf8_length: isize,
    utf8: *mut c_char,
    wstr_length: isize,
}

/// `PyASCIIObject` (no `wstr` from 3.12).
#[cfg(Py_3_12)]
#[repr(C)]
struct AsciiObject {
    ob_base: ffi::PyObject,
    length: isize,
    hash: isize,
    state: u32,
}

/// `PyCompactUnicodeObject` (from 3.12).
#[cfg(Py_3_12)]
#[repr(C)]
struct CompactUnicodeObject {
    base: AsciiObject,
    utf8_length: isize,
    utf8: *mut c_char,
}

/// This build's compact string layout.
pub(super) const FIELDS: UnicodeFields = UnicodeFields {
    ascii_data: size_of::<AsciiObject>(),
    compact_data: size_of::<CompactUnicodeObject>(),
};

// Checked against a C compiler's `sizeof` on each version's headers (x86-64, aarch64).
#[cfg(all(
    target_pointer_width = "64",
    not(py_sys_config = "Py_TRACE_REFS"),
    not(Py_3_12)
))]
const _: () = {
    assert!(size_of::<AsciiObject>() == 48);
    assert!(size_of::<CompactUnicodeObject>() == 72);
};
#[cfg(all(
    target_pointer_width = "64",
    not(py_sys_config = "Py_TRACE_REFS"),
    Py_3_12
))]
const _: () = {
    assert!(size_of::<AsciiObject>() == 40);
    assert!(size_of::<CompactUnicodeObject>() == 56);
};
