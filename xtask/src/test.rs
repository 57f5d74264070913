//! `cargo xtask test`: every test of the project — the Rust workspace's, the loom models of
//! the delivery state machines, the fuzz targets in smoke mode, then the Python suite against a
//! release build installed in `.venv`, then the bench in smoke mode and a 15-second soak (so
//! the harnesses keep working).

use std::path::{Path, PathBuf};

use crate::{bench, cargo, exec, fuzz, soak, step, venv, Result};

pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let pytest_args = pytest_args(args)?;

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
    exec(
        venv.command("python")?
            .args([
                "-m",
                "pytest",
                "tests/python",
                "-q",
                "-p",
                "no:cacheprovider",
            ])
            .args(pytest_args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("AIOCOP_INCUMBENT_PYTHON", incumbent.bin("python")),
    )?;

    step("[6/7] cargo xtask bench --smoke");
    bench::run_with(root, &venv, &bench::Options::smoke())?;

    step("[7/7] cargo xtask soak --minutes 0.25");
    soak::run_with(root, &venv, 0.25)
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

/// Everything after `--` goes to pytest; nothing else is accepted.
fn pytest_args(args: &[String]) -> Result<&[String]> {
    match args.split_first() {
        None => Ok(&[]),
        Some((first, rest)) if first == "--" => Ok(rest),
        Some((first, _)) => Err(format!(
            "unexpected argument `{first}`: pass pytest arguments after `--`, \
             e.g. `cargo xtask test -- -k name`"
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::pytest_args;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|arg| arg.to_string()).collect()
    }

    #[test]
    fn pytest_args_come_after_the_separator() {
        assert!(pytest_args(&[]).is_ok_and(|args| args.is_empty()));
        let args = strings(&["--", "-k", "uvloop"]);
        assert!(pytest_args(&args).is_ok_and(|args| args == ["-k", "uvloop"]));
        assert!(pytest_args(&strings(&["-k", "uvloop"])).is_err());
    }
}
