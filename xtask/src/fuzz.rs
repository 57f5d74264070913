//! `cargo xtask fuzz`: the fuzz targets of `fuzz/` (the event formatter, the argument
//! redactor, the allow-rule parser in its spec, `AIOCOP_ALLOW` and `pyproject.toml` forms).
//!
//! Without `--smoke`, real fuzzing with cargo-fuzz (libFuzzer, a nightly toolchain): each
//! target for `--time` seconds, new inputs kept in `target/fuzz-corpus/<target>/` (the checked-in
//! seeds in `fuzz/corpus/<target>/` are read, not written), crashes in `fuzz/artifacts/`.
//! With `--smoke`, on stable and without cargo-fuzz: the fuzz crate's driver runs each target
//! on its seed corpus and a fixed set of mutations of it, in seconds (a step of `xtask test`).

use std::path::Path;
use std::process::{Command, Stdio};

use crate::{cargo, exec, step, Result};

/// Seconds each target is fuzzed for without `--smoke`, unless `--time` says otherwise.
const DEFAULT_SECONDS: u64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) smoke: bool,
    /// Seconds per target (real fuzzing only).
    pub(crate) seconds: u64,
    /// One target, or all of them.
    pub(crate) target: Option<String>,
}

/// `cargo xtask fuzz [--smoke] [--time SECS] [TARGET]`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let options = parse_args(args)?;
    let targets = targets(root)?;
    let selected: Vec<&str> = match &options.target {
        None => targets.iter().map(String::as_str).collect(),
        Some(target) if targets.contains(target) => vec![target.as_str()],
        Some(target) => {
            return Err(format!(
                "unknown fuzz target `{target}`; targets: {}",
                targets.join(", ")
            )
            .into())
        }
    };
    if options.smoke {
        return smoke(root, options.target.as_deref());
    }
    if !cargo_fuzz_available(root) {
        return Err("real fuzzing needs cargo-fuzz and a nightly toolchain \
                    (`rustup toolchain install nightly`, `cargo install cargo-fuzz`); \
                    `cargo xtask fuzz --smoke` runs on stable"
            .into());
    }
    for target in selected {
        let corpus = root.join("target").join("fuzz-corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .map_err(|err| format!("cannot create {}: {err}", corpus.display()))?;
        step(&format!(
            "cargo +nightly fuzz run {target} ({} s)",
            options.seconds
        ));
        exec(
            nightly_cargo(root)
                .args(["fuzz", "run", target])
                .arg(&corpus)
                .arg(root.join("fuzz").join("corpus").join(target))
                .arg("--")
                .arg(format!("-max_total_time={}", options.seconds)),
        )?;
    }
    Ok(())
}

/// The smoke run (what `xtask test` runs): the driver's own unit tests, then every target (or
/// `target`) on its seeds and their mutations; built on the toolchain running xtask, without
/// libFuzzer.
pub(crate) fn smoke(root: &Path, target: Option<&str>) -> Result {
    let mut cmd = cargo(root);
    cmd.args([
        "test",
        "--manifest-path",
        "fuzz/Cargo.toml",
        "--no-default-features",
    ]);
    // The fuzz crate is a workspace of its own; share the project's target directory.
    if std::env::var_os("CARGO_TARGET_DIR").is_none() {
        cmd.arg("--target-dir").arg(root.join("target"));
    }
    match target {
        None => cmd.args(["--lib", "--test", "smoke"]),
        Some(target) => cmd.args(["--test", "smoke", "--", target]),
    };
    exec(&mut cmd)
}

/// The fuzz targets: the files of `fuzz/fuzz_targets/`, by name.
fn targets(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("fuzz").join("fuzz_targets");
    let entries =
        std::fs::read_dir(&dir).map_err(|err| format!("cannot read {}: {err}", dir.display()))?;
    let mut names = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|ext| ext == "rs") {
            if let Some(name) = path.file_stem().and_then(|stem| stem.to_str()) {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// `cargo +nightly` through rustup (not the cargo running xtask, which is stable's).
fn nightly_cargo(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root).arg("+nightly");
    cmd
}

fn cargo_fuzz_available(root: &Path) -> bool {
    nightly_cargo(root)
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut options = Options {
        smoke: false,
        seconds: DEFAULT_SECONDS,
        target: None,
    };
    let mut time_given = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        match flag {
            "--smoke" if inline.is_none() => options.smoke = true,
            "--time" => {
                let value = inline
                    .or_else(|| args.next().cloned())
                    .ok_or("`--time` needs a value")?;
                options.seconds = match value.parse() {
                    Ok(seconds) if seconds > 0 => seconds,
                    _ => return Err(format!("`--time {value}`: expected seconds > 0").into()),
                };
                time_given = true;
            }
            _ if !arg.starts_with('-') && options.target.is_none() => {
                options.target = Some(arg.clone());
            }
            _ => {
                return Err(format!(
                    "unexpected argument `{arg}`: expected [--smoke] [--time SECS] [TARGET]"
                )
                .into())
            }
        }
    }
    if options.smoke && time_given {
        return Err("`--time` is for real fuzzing: the smoke run has a fixed size".into());
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::{parse_args, Options, DEFAULT_SECONDS};

    fn parse(args: &[&str]) -> Option<Options> {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        parse_args(&args).ok()
    }

    #[test]
    fn arguments() {
        let default = Options {
            smoke: false,
            seconds: DEFAULT_SECONDS,
            target: None,
        };
        assert_eq!(parse(&[]), Some(default.clone()));
        assert_eq!(
            parse(&["--smoke"]),
            Some(Options {
                smoke: true,
                ..default.clone()
            })
        );
        assert_eq!(
            parse(&["redact", "--smoke"]),
            Some(Options {
                smoke: true,
                target: Some("redact".into()),
                ..default.clone()
            })
        );
        assert_eq!(
            parse(&["--time", "30", "rule_spec"]),
            Some(Options {
                seconds: 30,
                target: Some("rule_spec".into()),
                ..default.clone()
            })
        );
        assert_eq!(parse(&["--time=5"]).map(|o| o.seconds), Some(5));
        assert!(parse(&["--time"]).is_none());
        assert!(parse(&["--time", "0"]).is_none());
        assert!(parse(&["--time", "x"]).is_none());
        assert!(parse(&["--smoke", "--time", "5"]).is_none());
        assert!(parse(&["--smoke=1"]).is_none());
        assert!(parse(&["--fast"]).is_none());
        assert!(parse(&["redact", "rule_spec"]).is_none());
    }
}
