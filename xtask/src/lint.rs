//! `cargo xtask lint`: no module cycles, formatting and clippy, as strict as CI would be.

use std::path::Path;

use crate::{cargo, exec, step, Result};

pub(crate) fn run(root: &Path) -> Result {
    crate::modgraph::run(root)?;
    step("cargo fmt --all -- --check");
    exec(cargo(root).args(["fmt", "--all", "--", "--check"]))?;
    step("cargo clippy --workspace --all-targets -- -D warnings");
    exec(cargo(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}
