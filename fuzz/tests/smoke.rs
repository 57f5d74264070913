//! `cargo test --no-default-features --test smoke [-- TARGET... [--iterations N] [--seed N]
//! [FILE...]]`: the smoke driver ([`aiocop_fuzz::smoke`]) on the seed corpus and its
//! mutations, or on the given files (absolute, or relative to `fuzz/`: cargo runs tests there).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::process::ExitCode;

use aiocop_fuzz::smoke::{self, Options};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("fuzz smoke: {err}");
            return ExitCode::from(2);
        }
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match smoke::run(root, &options, &mut |line| println!("{line}")) {
        Ok(()) => ExitCode::SUCCESS,
        Err(report) => {
            eprintln!("fuzz smoke: {report}");
            ExitCode::FAILURE
        }
    }
}
