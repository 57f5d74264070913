//! `cargo xtask bench`: what the monitor costs, next to no monitor and to the incumbent
//! (aiocop 1.2.1 from PyPI, in `.venvs/incumbent`).
//!
//! Parts, each selectable with `--only`: the criterion benches of the pure crates (`criterion`),
//! the Python micro-scenarios of `benches/python/scenarios.py` (by scenario name), a real
//! Starlette + uvicorn server under load (`server`) and memory growth under load (`memory`).
//! Every measurement runs in its own process; the three modes run alternately, several rounds,
//! and the report compares medians. Results go to `results/` (`results/smoke/` for `--smoke`),
//! and a complete, non-smoke run rewrites `docs/benchmarks.md`.

mod criterion;
mod json;
mod memory;
mod micro;
mod report;
mod server;
mod svg;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::venv::{self, Venv};
use crate::{display, step, Result};
use json::Value;

/// The incumbent's venv, under the workspace root, and what goes into it.
pub(crate) const INCUMBENT_VENV: &str = ".venvs/incumbent";
pub(crate) const INCUMBENT_PACKAGES: &[&str] = &[
    "aiocop==1.2.1",
    "uvloop",
    "starlette",
    "uvicorn",
    "httptools",
];

/// The Python bench scripts, relative to the workspace root.
const SCRIPTS: &str = "benches/python";

/// Parts that are not micro-scenarios, for `--only`.
const PARTS: [&str; 4] = ["criterion", "server", "paired", "memory"];

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Options {
    pub(crate) smoke: bool,
    pub(crate) rounds: usize,
    pub(crate) only: Option<String>,
    /// `--against DIR`: only paired rounds of this checkout's build against the `aiocop`
    /// package in `DIR` ([`server::run_against`]).
    pub(crate) against: Option<PathBuf>,
    /// `--totals-only` (with `--against`): both builds without a slow-task callback.
    pub(crate) totals_only: bool,
}

impl Options {
    /// `--smoke`: one round, tiny sizes, results under `results/smoke/`; what `xtask test` runs.
    pub(crate) fn smoke() -> Options {
        Options {
            smoke: true,
            rounds: 1,
            only: None,
            against: None,
            totals_only: false,
        }
    }

    /// Whether the part named `part` runs.
    fn runs(&self, part: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == part)
    }

    fn runs_micro(&self) -> bool {
        self.only
            .as_deref()
            .is_none_or(|only| !PARTS.contains(&only))
    }
}

/// What a process is measured with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    None,
    Ours,
    Incumbent,
}

impl Mode {
    /// In the order they run in each round.
    pub(crate) const ALL: [Mode; 3] = [Mode::None, Mode::Ours, Mode::Incumbent];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Ours => "ours",
            Mode::Incumbent => "incumbent",
        }
    }
}

/// The two venvs and the run's settings: makes the commands of each mode.
#[derive(Debug)]
pub(crate) struct Bench<'a> {
    pub(crate) root: &'a Path,
    pub(crate) options: &'a Options,
    ours: &'a Venv,
    incumbent: Venv,
}

impl Bench<'_> {
    /// `python` in the venv of `mode`, with `AIOCOP_BENCH_MODE` set.
    pub(crate) fn python(&self, mode: Mode) -> Result<Command> {
        let venv = match mode {
            Mode::None | Mode::Ours => self.ours,
            Mode::Incumbent => &self.incumbent,
        };
        let mut cmd = venv.command("python")?;
        cmd.env("PYTHONDONTWRITEBYTECODE", "1")
            .env("AIOCOP_BENCH_MODE", mode.name())
            .env_remove("AIOCOP_DISPATCH");
        Ok(cmd)
    }

    /// `python benches/python/<script>` in the venv of `mode`.
    pub(crate) fn script(&self, mode: Mode, script: &str) -> Result<Command> {
        let mut cmd = self.python(mode)?;
        cmd.arg(self.scripts().join(script));
        Ok(cmd)
    }

    /// The directory of the Python bench scripts.
    pub(crate) fn scripts(&self) -> PathBuf {
        self.root.join(SCRIPTS)
    }

    /// The directory results are written to.
    fn results_dir(&self) -> PathBuf {
        let dir = self.root.join("results");
        if self.options.smoke {
            dir.join("smoke")
        } else {
            dir
        }
    }
}

/// What the bench processes ran with: `<mode>.python`, `<mode>.uvloop`, `<mode>.aiocop`, and
/// `ours.build` (the extension's mtime) and `ours.clock` (`aiocop.stats()["clock"]`), each with
/// every distinct value seen.
#[derive(Debug, Default)]
pub(crate) struct Versions(BTreeMap<String, Vec<String>>);

impl Versions {
    /// Records the versions a process of `mode` reported in its JSON `result`.
    pub(crate) fn record(&mut self, mode: Mode, result: &Value) {
        for key in ["python", "uvloop", "aiocop", "build", "clock"] {
            if let Some(version) = result.text(key) {
                let seen = self.0.entry(format!("{}.{key}", mode.name())).or_default();
                if !seen.iter().any(|v| v == version) {
                    seen.push(version.to_owned());
                }
            }
        }
    }

    /// The values seen for `key`, comma-separated (`?` if none).
    pub(crate) fn get(&self, key: &str) -> String {
        self.0
            .get(key)
            .map_or_else(|| "?".into(), |values| values.join(", "))
    }

    /// Whether processes reported more than one value for `key`.
    pub(crate) fn changed(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|values| values.len() > 1)
    }

    pub(crate) fn to_json(&self) -> Value {
        Value::Obj(
            self.0
                .keys()
                .map(|key| (key.clone(), Value::str(self.get(key))))
                .collect(),
        )
    }
}

/// Runs `cmd` to completion and parses the last line of its stdout as JSON.
pub(crate) fn run_json(cmd: &mut Command) -> Result<Value> {
    let output = cmd
        .output()
        .map_err(|err| format!("cannot run `{}`: {err}", display(cmd)))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "`{}` failed ({}):\n{}{}",
            display(cmd),
            output.status,
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let line = stdout.lines().rev().find(|line| !line.trim().is_empty());
    json::parse(line.unwrap_or_default())
        .map_err(|err| format!("`{}`: {err} in output {stdout:?}", display(cmd)).into())
}

/// The median of `values` (the mean of the middle two for an even count), if any.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[mid]),
        _ => Some((sorted[mid - 1] + sorted[mid]) / 2.0),
    }
}

/// `cargo xtask bench [--smoke] [--rounds N] [--only PART] [--against DIR]`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let options = parse_args(args)?;
    let venv = venv::prepare(root)?;
    run_with(root, &venv, &options)
}

/// The bench with `.venv` already prepared (built and installed).
pub(crate) fn run_with(root: &Path, ours: &Venv, options: &Options) -> Result {
    let incumbent = venv::ensure_at(root, INCUMBENT_VENV, INCUMBENT_PACKAGES)?;
    let bench = Bench {
        root,
        options,
        ours,
        incumbent,
    };
    if let Some(dir) = &options.against {
        return server::run_against(&bench, dir, options.totals_only);
    }
    let started = report::start();
    let mut results = report::Results::default();
    if options.runs("criterion") {
        step("criterion benches (cargo bench -p aiocop-benches --bench core)");
        results.criterion = criterion::run(root, options.smoke)?;
    }
    if options.runs_micro() {
        results.micro = micro::run(&bench, &mut results.versions)?;
    }
    if options.runs("server") {
        results.server = server::run(&bench, true)?;
    } else if options.runs("paired") {
        results.server = server::run(&bench, false)?;
    }
    if options.runs("memory") {
        results.memory = memory::run(&bench, &mut results.versions)?;
    }
    report::write(&bench, &results, &started)
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut options = Options {
        smoke: false,
        rounds: 5,
        only: None,
        against: None,
        totals_only: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next().cloned())
                .ok_or_else(|| format!("`{flag}` needs a value"))
        };
        match flag {
            "--smoke" if inline.is_none() => options.smoke = true,
            "--rounds" => {
                let rounds = value()?;
                options.rounds = match rounds.parse() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("`--rounds {rounds}`: expected a count > 0").into()),
                };
            }
            "--only" => {
                let only = value()?;
                if !PARTS.contains(&only.as_str()) && micro::scenario(&only).is_none() {
                    return Err(format!(
                        "`--only {only}`: expected one of {}, {}",
                        micro::names().join(", "),
                        PARTS.join(", ")
                    )
                    .into());
                }
                options.only = Some(only);
            }
            "--against" => options.against = Some(PathBuf::from(value()?)),
            "--totals-only" => options.totals_only = true,
            _ => {
                return Err(format!(
                    "unexpected argument `{arg}`: expected [--smoke] [--rounds N] [--only PART] \
                     [--against DIR [--totals-only]]"
                )
                .into())
            }
        }
    }
    if options.against.is_some() && (options.smoke || options.only.is_some()) {
        return Err(
            "`--against DIR` runs its paired rounds alone: without --smoke or --only".into(),
        );
    }
    if options.totals_only && options.against.is_none() {
        return Err("`--totals-only` goes with `--against DIR`".into());
    }
    if options.smoke {
        options.rounds = 1;
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::{median, parse_args, Options};

    fn parse(args: &[&str]) -> Option<Options> {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        parse_args(&args).ok()
    }

    #[test]
    fn arguments() {
        let default = Options {
            smoke: false,
            rounds: 5,
            only: None,
            against: None,
            totals_only: false,
        };
        assert_eq!(parse(&[]), Some(default.clone()));
        assert_eq!(parse(&["--smoke", "--rounds", "3"]), Some(Options::smoke()));
        assert_eq!(
            parse(&["--rounds=3", "--only", "stat"]),
            Some(Options {
                rounds: 3,
                only: Some("stat".into()),
                ..default.clone()
            })
        );
        assert!(parse(&["--only", "server"]).is_some());
        assert!(parse(&["--only", "paired"]).is_some());
        assert!(parse(&["--only", "nope"]).is_none());
        assert!(parse(&["--rounds", "0"]).is_none());
        assert!(parse(&["--rounds"]).is_none());
        assert!(parse(&["--smoke=1"]).is_none());
        assert!(parse(&["extra"]).is_none());
        assert_eq!(
            parse(&["--against", "/tmp/other", "--rounds", "8"]),
            Some(Options {
                rounds: 8,
                against: Some("/tmp/other".into()),
                ..default.clone()
            })
        );
        assert!(parse(&["--against"]).is_none());
        assert!(parse(&["--against", "/tmp/other", "--only", "paired"]).is_none());
        assert!(parse(&["--against=/tmp/other", "--smoke"]).is_none());
        assert_eq!(
            parse(&["--against", "/tmp/other", "--totals-only"]),
            Some(Options {
                against: Some("/tmp/other".into()),
                totals_only: true,
                ..default
            })
        );
        assert!(parse(&["--totals-only"]).is_none());
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }
}
