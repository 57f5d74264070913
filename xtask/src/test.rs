//! `cargo xtask test`: every test of the project — the Rust workspace's, then the Python suite
//! against a release build installed in `.venv`.

use std::path::Path;

use crate::{cargo, exec, step, venv, Result};

pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let pytest_args = pytest_args(args)?;

    step("[1/3] cargo test --workspace");
    exec(cargo(root).args(["test", "--workspace"]))?;

    step("[2/3] prepare .venv and build aiocop");
    let venv = venv::prepare(root)?;

    step("[3/3] pytest tests/python");
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
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    )
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
