//! `cargo xtask`: the project's developer commands, in the style of rust-analyzer's xtask.
//!
//! Run `cargo xtask help` for the list. Every command works from the workspace root, whatever
//! the current directory, and needs nothing beyond cargo and a `python3` (3.10+) with `venv`:
//! the Python tools are installed into `.venv` at the workspace root.

#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod demo;
mod fuzz;
mod lint;
mod modgraph;
mod pythons;
mod soak;
mod test;
mod venv;
mod wheels;

use std::error::Error;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// The error type of every command: a message for the user.
pub(crate) type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  demo [--loop asyncio|uvloop|both]  build into .venv and run examples/quickstart.py
                                     on each loop kind (default: both)
  test [--python VERSIONS|none] [-- <pytest args>]
                                     cargo test --workspace, the loom models of
                                     aiocop-delivery, fuzz --smoke, then build into
                                     .venv and run pytest tests/python (args after `--` go
                                     to pytest), then bench --smoke and a 15 s soak, then
                                     pytest tests/python on every other CPython 3.10+
                                     found (pyenv or PATH), each with a build of its own;
                                     --python 3.10,3.12,...: on those instead, with the
                                     Rust tests of aiocop-hook and aiocop-loop; none: only
                                     the main interpreter
  venv                               create .venv, install the Python tools, and build and
                                     install aiocop into it (maturin develop --release)
  bench [--smoke] [--rounds N] [--only PART]
                                     measure the overhead next to no monitor and to aiocop
                                     1.2.1 (criterion, Python scenarios, a uvicorn server,
                                     memory); writes results/ and docs/benchmarks.md.
                                     --smoke: tiny and fast, results/smoke/ only; PART: a
                                     scenario, criterion, server, paired (the server's
                                     paired rounds alone) or memory
  bench --against DIR [--rounds N] [--totals-only]
                                     paired server rounds of this build against the aiocop
                                     package in DIR (another build), at the same time;
                                     prints the CPU per request ratio, writes nothing;
                                     --totals-only: both without a slow-task callback
  fuzz [--smoke] [--time SECS] [TARGET]
                                     fuzz the event formatter, the argument redactor and
                                     the allow-rule parser (fuzz/fuzz_targets/) with
                                     cargo-fuzz on nightly, SECS (default 60) per target;
                                     --smoke: on stable, each target on its seed corpus and
                                     a fixed set of mutations of it, in seconds
  soak [--minutes N]                 the bench's server keeping only the per-call-site
                                     totals, /stat under load for N minutes (default 10),
                                     scraped every second; fails on RSS growth >= 16 MiB,
                                     an error, or calls counted != requests answered
  wheels [--python VERSIONS]         a release wheel per CPython 3.10+ found (default:
                                     all), audited by maturin (oldest manylinux tag its
                                     symbols allow), installed into a fresh venv and run
                                     (examples/quickstart.py on asyncio and uvloop);
                                     target/wheels/dist/py3.N/
  lint                               cargo fmt --check, cargo clippy -D warnings, and no
                                     module cycles inside any crate
  help                               this text

environment:
  PYTHON   interpreter used to create .venv (default: python3)
";

fn main() -> ExitCode {
    let args = match std::env::args_os()
        .skip(1)
        .map(|arg| arg.into_string())
        .collect::<std::result::Result<Vec<String>, _>>()
    {
        Ok(args) => args,
        Err(arg) => {
            eprintln!("xtask: argument is not valid UTF-8: {arg:?}");
            return ExitCode::from(2);
        }
    };
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match command {
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        "venv" => no_args(command, rest).and_then(|()| venv::run(&root()?)),
        "demo" => root().and_then(|root| demo::run(&root, rest)),
        "test" => root().and_then(|root| test::run(&root, rest)),
        "lint" => no_args(command, rest).and_then(|()| lint::run(&root()?)),
        "bench" => root().and_then(|root| bench::run(&root, rest)),
        "fuzz" => root().and_then(|root| fuzz::run(&root, rest)),
        "soak" => root().and_then(|root| soak::run(&root, rest)),
        "wheels" => root().and_then(|root| wheels::run(&root, rest)),
        unknown => {
            eprintln!("xtask: unknown command `{unknown}`\n");
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask {command}: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn no_args(command: &str, rest: &[String]) -> Result {
    match rest.first() {
        None => Ok(()),
        Some(arg) => Err(format!("`{command}` takes no arguments, got `{arg}`").into()),
    }
}

/// The workspace root: the parent of this crate's directory.
fn root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| "cannot locate the workspace root".into())
}

/// A `cargo` command run at the workspace root, with the cargo that runs xtask when known.
pub(crate) fn cargo(root: &Path) -> Command {
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.current_dir(root);
    cmd
}

/// Prints a one-line step header, so the output of each step is easy to find.
pub(crate) fn step(header: &str) {
    println!("==> {header}");
}

/// Runs `cmd` with inherited stdio, and fails unless it exits successfully.
pub(crate) fn exec(cmd: &mut Command) -> Result {
    let status = cmd
        .status()
        .map_err(|err| format!("cannot run `{}`: {err}", display(cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", display(cmd)).into())
    }
}

/// `program arg1 arg2 ...`, for messages.
pub(crate) fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}
