//! Memory growth under load (`benches/python/memory.py`): RSS before and after many monitored
//! callbacks, a tenth of them doing IO, for ours and, for reference, no monitor.

use super::{run_json, Bench, Mode, Versions};
use crate::{step, Result};

/// One process's result.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) loop_kind: &'static str,
    pub(crate) mode: Mode,
    pub(crate) callbacks: u64,
    pub(crate) io_callbacks: u64,
    pub(crate) rss_before_mib: f64,
    pub(crate) growth_mib: f64,
    pub(crate) seconds: f64,
}

pub(crate) fn run(bench: &Bench<'_>, versions: &mut Versions) -> Result<Vec<Row>> {
    let callbacks: u64 = if bench.options.smoke {
        100_000
    } else {
        10_000_000
    };
    step(&format!(
        "memory: RSS growth over {callbacks} callbacks, {} of them doing IO",
        callbacks / 10
    ));
    let mut rows = Vec::new();
    for loop_kind in ["asyncio", "uvloop"] {
        for mode in [Mode::None, Mode::Ours] {
            let mut cmd = bench.script(mode, "memory.py")?;
            cmd.args(["--loop", loop_kind, "--mode", mode.name()])
                .args(["--callbacks", &callbacks.to_string(), "--io-every", "10"]);
            let result = run_json(&mut cmd)?;
            versions.record(mode, &result);
            let row = Row {
                loop_kind,
                mode,
                callbacks,
                io_callbacks: callbacks / 10,
                rss_before_mib: result.f64("rss_before_kib")? / 1024.0,
                growth_mib: result.f64("growth_mib")?,
                seconds: result.f64("seconds")?,
            };
            println!(
                "{:>10} {:<8} RSS {:.1} MiB, +{:.2} MiB after the run ({:.1} s)",
                mode.name(),
                loop_kind,
                row.rss_before_mib,
                row.growth_mib,
                row.seconds
            );
            rows.push(row);
        }
    }
    Ok(rows)
}
