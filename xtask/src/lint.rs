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
    ]))?;
    // The fuzz crate is a workspace of its own; on stable, without its libFuzzer targets.
    step("the fuzz crate: cargo fmt --check and cargo clippy -D warnings");
    let manifest = root.join("fuzz").join("Cargo.toml");
    let manifest = manifest.to_string_lossy();
    exec(cargo(root).args(["fmt", "--manifest-path", &manifest, "--", "--check"]))?;
    exec(cargo(root).args([
        "clippy",
        "--manifest-path",
        &manifest,
        "--no-default-features",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}
