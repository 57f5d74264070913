//! `cargo xtask wheels [--python VERSIONS]`: a release wheel per CPython this machine has
//! (3.10+), each checked by maturin's auditwheel step and tagged for the oldest manylinux its
//! symbols allow (maturin's default), then installed into a fresh venv of its interpreter where
//! the quick start runs on asyncio and uvloop.
//!
//! Everything goes under `target/wheels/`: `dist/py3.N/` the wheel, `build-py3.N/` cargo's
//! target directory (one per interpreter: the extension is built against each one's headers),
//! `venv-py3.N/` the fresh venv, made again on every run.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{exec, pythons, step, venv, Result};

/// Besides the wheel, what the quick start needs in the fresh venv.
const QUICKSTART_NEEDS: &[&str] = &["uvloop"];

pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let versions = parse_args(args)?;
    let tools = venv::ensure_main(root)?;
    let mut built = Vec::new();
    for version in &versions {
        let Some(python) = pythons::find(version) else {
            step(&format!(
                "python {version}: not found on this machine, skipped"
            ));
            continue;
        };
        let wheel = build(root, &tools, version, &python)?;
        smoke(root, version, &python, &wheel)?;
        built.push(format!("python {version}: {}", file_name(&wheel)));
    }
    if built.is_empty() {
        return Err("no CPython 3.10+ found: no wheel built".into());
    }
    step("wheels built, audited, installed and run");
    for line in &built {
        println!("    {line}");
    }
    Ok(())
}

/// `[--python VERSIONS]`: the versions to build for (default: every supported one).
fn parse_args(args: &[String]) -> Result<Vec<String>> {
    match args {
        [] => Ok(pythons::SUPPORTED.iter().map(|v| (*v).to_owned()).collect()),
        [flag, value] if flag == "--python" => pythons::parse_versions(value),
        [flag] if flag.starts_with("--python=") => {
            pythons::parse_versions(&flag["--python=".len()..])
        }
        _ => Err(format!(
            "expected `[--python 3.10,3.12,...]`, got `{}`",
            args.join(" ")
        )
        .into()),
    }
}

/// `maturin build --release` for `python`, audited (`--auditwheel check`: a wheel that needs
/// libraries bundled, or that no manylinux policy allows, fails); returns the wheel's path.
fn build(root: &Path, tools: &venv::Venv, version: &str, python: &Path) -> Result<PathBuf> {
    let wheels = root.join("target").join("wheels");
    let out = wheels.join("dist").join(format!("py{version}"));
    if out.exists() {
        fs::remove_dir_all(&out)?;
    }
    step(&format!(
        "python {version} ({}): maturin build --release --auditwheel check",
        python.display()
    ));
    exec(
        tools
            .command("maturin")?
            .args(["build", "--release", "--quiet", "--auditwheel", "check"])
            .arg("--interpreter")
            .arg(python)
            .arg("--out")
            .arg(&out)
            .env(
                "CARGO_TARGET_DIR",
                wheels.join(format!("build-py{version}")),
            ),
    )?;
    let mut found: Vec<PathBuf> = fs::read_dir(&out)?
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .collect();
    match (found.pop(), found.is_empty()) {
        (Some(wheel), true) => Ok(wheel),
        _ => Err(format!("expected one wheel in {}", out.display()).into()),
    }
}

/// Installs `wheel` into a fresh venv of `python` and runs the quick start on both loops there
/// (from the repository root, so that `import aiocop` can only find the installed wheel).
fn smoke(root: &Path, version: &str, python: &Path, wheel: &Path) -> Result {
    let dir = root
        .join("target")
        .join("wheels")
        .join(format!("venv-py{version}"));
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    step(&format!(
        "python {version}: install {} into a fresh venv",
        file_name(wheel)
    ));
    exec(Command::new(python).args(["-m", "venv"]).arg(&dir))?;
    let venv_python = dir.join("bin").join("python");
    exec(
        Command::new(&venv_python)
            .args(["-m", "pip", "install", "-q"])
            .arg(wheel)
            .args(QUICKSTART_NEEDS),
    )?;
    for kind in ["asyncio", "uvloop"] {
        step(&format!(
            "python {version}: examples/quickstart.py --loop {kind}"
        ));
        exec(Command::new(&venv_python).current_dir(root).args([
            "-I",
            "examples/quickstart.py",
            "--loop",
            kind,
        ]))?;
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |name| name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::parse_args;

    #[test]
    fn every_supported_version_by_default() {
        let versions = parse_args(&[]).expect("valid");
        assert_eq!(versions.first().map(String::as_str), Some("3.10"));
        let chosen = parse_args(&["--python".to_owned(), "3.12".to_owned()]).expect("valid");
        assert_eq!(chosen, ["3.12"]);
        assert!(parse_args(&["--python=2.7".to_owned()]).is_err());
        assert!(parse_args(&["--loop".to_owned()]).is_err());
    }
}
