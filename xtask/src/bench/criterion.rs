//! The criterion benches of the pure crates (`benches/benches/core.rs`).
//!
//! A full run is `cargo bench -p aiocop-benches --bench core`, whose estimates are read back
//! from its output. `--smoke` runs them in criterion's test mode instead (`cargo test`: each
//! bench once, in the test profile that `cargo test --workspace` has already built), since a
//! cold build in the bench profile (fat LTO) alone takes longer than the smoke run may.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use crate::{cargo, display, exec, Result};

/// One bench's estimate: its name and the middle of criterion's interval (`"1.23 ns"`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Estimate {
    pub(crate) name: String,
    pub(crate) time: String,
}

pub(crate) fn run(root: &Path, smoke: bool) -> Result<Vec<Estimate>> {
    let mut cmd = cargo(root);
    if smoke {
        cmd.args(["test", "-p", "aiocop-benches", "--bench", "core"]);
        exec(&mut cmd)?;
        return Ok(Vec::new());
    }
    cmd.args(["bench", "-p", "aiocop-benches", "--bench", "core"])
        .stdout(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|err| format!("cannot run `{}`: {err}", display(&cmd)))?;
    let mut lines = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            lines.push(line);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        return Err(format!("`{}` failed ({status})", display(&cmd)).into());
    }
    Ok(parse(&lines))
}

/// Reads `name  time:   [low unit mid unit high unit]` lines; a long name is on the line before.
fn parse(lines: &[String]) -> Vec<Estimate> {
    let mut estimates = Vec::new();
    let mut previous = "";
    for line in lines {
        if let Some((name, rest)) = line.split_once("time:") {
            let name = if name.trim().is_empty() {
                previous
            } else {
                name
            };
            let interval = rest.trim().trim_start_matches('[').trim_end_matches(']');
            let parts: Vec<&str> = interval.split_whitespace().collect();
            if let [_, _, mid, unit, _, _] = parts.as_slice() {
                estimates.push(Estimate {
                    name: name.trim().to_owned(),
                    time: format!("{mid} {unit}"),
                });
            }
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    estimates
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn reads_criterion_output() {
        let lines: Vec<String> = [
            "baseline                time:   [270.29 ps 270.85 ps 271.48 ps]",
            "Found 3 outliers among 100 measurements (3.00%)",
            "",
            "assemble_2_records_3_samples",
            "                        time:   [1.2051 µs 1.2101 µs 1.2160 µs]",
            "                        change: [-1.0% +0.5% +2.0%] (p = 0.50 > 0.05)",
        ]
        .iter()
        .map(|line| line.to_string())
        .collect();
        let estimates = parse(&lines);
        let found: Vec<(&str, &str)> = estimates
            .iter()
            .map(|e| (e.name.as_str(), e.time.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("baseline", "270.85 ps"),
                ("assemble_2_records_3_samples", "1.2101 µs")
            ]
        );
    }
}
