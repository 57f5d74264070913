//! `cargo xtask test`: every test of the project — the Rust workspace's, the loom models of
//! the delivery state machines, the fuzz targets in smoke mode, then the Python suite against a
//! release build installed in `.venv`, then the bench in smoke mode and a 15-second soak (so
//! the harnesses keep working), then the Python suite on every other CPython this machine has
//! (`--python` chooses them, and adds their interpreter-dependent Rust tests).

use std::path::{Path, PathBuf};

use crate::{bench, cargo, exec, fuzz, pythons, soak, step, venv, Result};

pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let (others, pytest_args) = parse_args(args)?;

    step("[1/7] cargo test --workspace");
    crate::modgraph::run(root)?;
    exec(cargo(root).args(["test", "--workspace"]))?;

    step("[2/7] loom models of aiocop-delivery (RUSTFLAGS=\"--cfg loom\")");
    loom_models(root)?;

    step("[3/7] cargo xtask fuzz --smoke");
    fuzz::smoke(root, None)?;

    step("[4/7] prepare .venv and build aiocop, and aiocop 1.2.1 in its own venv");
    let venv = venv::prepare(root)?;
    // The differential test runs the same program on aiocop 1.2.1 and on ours.
    let incumbent = venv::ensure_at(root, bench::INCUMBENT_VENV, bench::INCUMBENT_PACKAGES)?;

    step("[5/7] pytest tests/python");
    pytest(&venv, Some(&incumbent), pytest_args)?;

    step("[6/7] cargo xtask bench --smoke");
    bench::run_with(root, &venv, &bench::Options::smoke())?;

    step("[7/7] cargo xtask soak --minutes 0.25");
    soak::run_with(root, &venv, 0.25)?;

    let main = main_version(&venv);
    let (versions, with_rust) = match others {
        Others::Found => (pythons::found_other_than(main.as_deref()), false),
        Others::Chosen(versions) => (versions, true),
        Others::None => (Vec::new(), false),
    };
    for version in &versions {
        other_python(root, version, main.as_deref(), with_rust, pytest_args)?;
    }
    Ok(())
}

/// The interpreters the suite runs on besides the main one.
#[derive(Debug, PartialEq, Eq)]
enum Others {
    /// No `--python`: every other CPython 3.10+ found, the pytest suite only.
    Found,
    /// `--python 3.10,3.12`: those, with their interpreter-dependent Rust tests.
    Chosen(Vec<String>),
    /// `--python none`: the main interpreter only.
    None,
}

/// `pytest tests/python` in `venv`; the differential tests run aiocop 1.2.1 from `incumbent`
/// (on the same interpreter version: without one they are skipped).
fn pytest(venv: &venv::Venv, incumbent: Option<&venv::Venv>, args: &[String]) -> Result {
    let mut cmd = venv.command("python")?;
    cmd.args([
        "-m",
        "pytest",
        "tests/python",
        "-q",
        "-p",
        "no:cacheprovider",
    ])
    .args(args)
    .env("PYTHONDONTWRITEBYTECODE", "1")
    .env_remove("AIOCOP_INCUMBENT_PYTHON");
    if let Some(incumbent) = incumbent {
        cmd.env("AIOCOP_INCUMBENT_PYTHON", incumbent.bin("python"));
    }
    exec(&mut cmd)
}

/// On CPython `version`: the pytest suite against a build for it and, `with_rust`, the Rust
/// tests of the crates whose code differs by interpreter (aiocop-hook, aiocop-loop), each in a
/// target directory and venv of its own (`target/py3.N`, `.venvs/py3.N`); the differential test
/// against aiocop 1.2.1 runs with the main interpreter only (standard-library line numbers
/// differ between versions). A version this machine lacks, or the one the main run used, is
/// said and skipped.
fn other_python(
    root: &Path,
    version: &str,
    main: Option<&str>,
    with_rust: bool,
    pytest_args: &[String],
) -> Result {
    let Some(python) = pythons::find(version) else {
        step(&format!(
            "python {version}: not found on this machine, skipped"
        ));
        return Ok(());
    };
    if main == Some(version) {
        step(&format!(
            "python {version}: the main run's interpreter, done above"
        ));
        return Ok(());
    }
    let target = root.join("target").join(format!("py{version}"));
    if with_rust {
        step(&format!(
            "python {version} ({}): cargo test -p aiocop-hook -p aiocop-loop",
            python.display()
        ));
        let mut cmd = cargo(root);
        cmd.args(["test", "-p", "aiocop-hook", "-p", "aiocop-loop"])
            .env("PYO3_PYTHON", &python)
            .env("CARGO_TARGET_DIR", &target);
        if let Some(lib) = pythons::lib_dir(&python) {
            cmd.env("LD_LIBRARY_PATH", lib);
        }
        exec(&mut cmd)?;
    }
    let venv = venv::prepare_other(root, &format!(".venvs/py{version}"), &python, &target)?;
    step(&format!("python {version}: pytest tests/python"));
    pytest(&venv, None, pytest_args)
}

/// The `3.N` of the main venv's interpreter.
fn main_version(venv: &venv::Venv) -> Option<String> {
    let output = std::process::Command::new(venv.bin("python"))
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .ok()?;
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}

/// The loom models (`aiocop-delivery/tests/models/`): the crate built with `--cfg loom` in a
/// target directory of its own (the flag would otherwise rebuild the workspace's), optimized
/// (loom runs each model thousands of times), with at most eight preemptions per execution
/// unless `LOOM_MAX_PREEMPTIONS` says otherwise (more than any of these small models can use):
/// about 20 s to build the first time, a tenth of a second to run.
fn loom_models(root: &Path) -> Result {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("loom");
    let mut cmd = cargo(root);
    cmd.args([
        "test",
        "-p",
        "aiocop-delivery",
        "--release",
        "--test",
        "models",
    ])
    .env("RUSTFLAGS", "--cfg loom")
    .env("CARGO_TARGET_DIR", target);
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        cmd.env("LOOM_MAX_PREEMPTIONS", "8");
    }
    exec(&mut cmd)
}

/// `[--python VERSIONS|none] [-- <pytest args>]`: the other interpreters, and what goes to
/// pytest.
fn parse_args(args: &[String]) -> Result<(Others, &[String])> {
    let mut others = Others::Found;
    let mut rest = args;
    loop {
        match rest {
            [] => return Ok((others, &[])),
            [sep, pytest @ ..] if sep == "--" => return Ok((others, pytest)),
            [flag, value, more @ ..] if flag == "--python" => {
                others = parse_others(value)?;
                rest = more;
            }
            [flag, more @ ..] if flag.starts_with("--python=") => {
                others = parse_others(&flag["--python=".len()..])?;
                rest = more;
            }
            [first, ..] => {
                return Err(format!(
                    "unexpected argument `{first}`: expected [--python 3.10,3.12,...|none] and \
                     pytest arguments after `--`, e.g. `cargo xtask test -- -k name`"
                )
                .into())
            }
        }
    }
}

fn parse_others(value: &str) -> Result<Others> {
    if value == "none" {
        return Ok(Others::None);
    }
    Ok(Others::Chosen(pythons::parse_versions(value)?))
}

#[cfg(test)]
mod tests {
    use super::{parse_args, Others};

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn pytest_args_come_after_the_separator() {
        assert!(parse_args(&[]).is_ok_and(|(v, args)| v == Others::Found && args.is_empty()));
        let args = strings(&["--", "-k", "uvloop"]);
        assert!(parse_args(&args).is_ok_and(|(_, args)| args == ["-k", "uvloop"]));
        assert!(parse_args(&strings(&["-k", "uvloop"])).is_err());
    }

    #[test]
    fn other_interpreters_come_before_it() {
        let args = strings(&["--python", "3.10,3.13", "--", "-x"]);
        let (versions, pytest) = parse_args(&args).expect("valid");
        assert_eq!(
            (versions, pytest),
            (
                Others::Chosen(vec!["3.10".to_owned(), "3.13".to_owned()]),
                &args[3..]
            )
        );
        assert!(parse_args(&strings(&["--python=3.12"]))
            .is_ok_and(|(v, _)| v == Others::Chosen(vec!["3.12".to_owned()])));
        assert!(parse_args(&strings(&["--python", "none"])).is_ok_and(|(v, _)| v == Others::None));
        assert!(parse_args(&strings(&["--python", "2.7"])).is_err());
    }
}
