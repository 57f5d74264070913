//! Build script: pyo3's `Py_3_x` cfgs and the libpython link arguments for this crate.

fn main() {
    // `Py_3_11`-style cfgs for the CPython version differences, and an rpath so that the
    // crate's own test binaries find libpython.
    pyo3_build_config::use_pyo3_cfgs();
    pyo3_build_config::add_libpython_rpath_link_args();
}
