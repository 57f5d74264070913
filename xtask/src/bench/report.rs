//! The bench's outputs: the tables (console and `docs/benchmarks.md`), `results/*.json` and the
//! chart.

use std::fmt::Write as _;
use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use super::criterion::Estimate;
use super::json::Value;
use super::micro::{self, RATIO_TARGET};
use super::{median, memory, server, svg, Bench, Mode, Options, Versions};
use crate::{step, Result};

/// Everything one run measured.
#[derive(Debug, Default)]
pub(crate) struct Results {
    pub(crate) criterion: Vec<Estimate>,
    pub(crate) micro: Vec<micro::Row>,
    pub(crate) server: Vec<server::Row>,
    pub(crate) memory: Vec<memory::Row>,
    pub(crate) versions: Versions,
}

/// A UTC time, to the second.
#[derive(Debug)]
pub(crate) struct Stamp {
    date: (i64, u32, u32),
    time: (u64, u64, u64),
}

/// When and on how busy a machine a run started.
#[derive(Debug)]
pub(crate) struct Start {
    stamp: Stamp,
    /// The 1, 5 and 15 minute load averages, before the run added its own load.
    loadavg: String,
}

pub(crate) fn start() -> Start {
    let loadavg = fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".into(),
        |text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        },
    );
    Start {
        stamp: now(),
        loadavg,
    }
}

fn now() -> Stamp {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    Stamp {
        date: civil_from_days(days),
        time: (rem / 3600, rem / 60 % 60, rem % 60),
    }
}

/// (year, month, day) of a count of days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(0),
        u32::try_from(day).unwrap_or(0),
    )
}

impl Stamp {
    /// `20250102T030405Z`, for file names.
    fn compact(&self) -> String {
        let ((y, mo, d), (h, mi, s)) = (self.date, self.time);
        format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z")
    }

    /// `2025-01-02 03:04 UTC`.
    fn human(&self) -> String {
        let ((y, mo, d), (h, mi, _)) = (self.date, self.time);
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
    }
}

/// Prints the tables, writes the JSON files and the chart, and, for a complete non-smoke run,
/// rewrites `docs/benchmarks.md`.
pub(crate) fn write(bench: &Bench<'_>, results: &Results, started: &Start) -> Result {
    let options = bench.options;
    let machine = machine(&results.versions, started);
    if results.versions.changed("ours.build") {
        println!(
            "warning: the extension was rebuilt during the run ({}): the numbers mix builds",
            results.versions.get("ours.build")
        );
    }
    let tables = tables(results);
    step("results");
    println!("{tables}");

    let dir = bench.results_dir();
    fs::create_dir_all(&dir)?;
    let json = to_json(results, &machine, options).pretty();
    let file = dir.join(format!("bench-{}.json", started.stamp.compact()));
    fs::write(&file, &json)?;
    fs::write(dir.join("latest.json"), &json)?;
    println!("wrote {} and latest.json", file.display());
    if !results.micro.is_empty() {
        let chart = dir.join("overhead.svg");
        fs::write(&chart, svg::chart(&results.micro))?;
        println!("wrote {}", chart.display());
    }
    if options.smoke || options.only.is_some() {
        println!(
            "docs/benchmarks.md is left as it is: only a complete run without --smoke rewrites it"
        );
        return Ok(());
    }
    let docs = bench.root.join("docs");
    let doc = docs.join("benchmarks.md");
    fs::write(&doc, page(&machine, &tables, options))?;
    println!("wrote {}", doc.display());
    let chart = docs.join("overhead.svg");
    fs::write(&chart, svg::chart(&results.micro))?;
    println!("wrote {}", chart.display());
    Ok(())
}

/// `(label, value)` lines describing where and with what the run happened.
fn machine(versions: &Versions, started: &Start) -> Vec<(&'static str, String)> {
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "?".into());
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "?".into(), |release| release.trim().to_owned());
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    vec![
        ("date", started.stamp.human()),
        ("nproc", nproc.to_string()),
        ("CPU", cpu),
        ("kernel", kernel),
        ("load average at start", started.loadavg.clone()),
        ("Python", versions.get("ours.python")),
        ("uvloop", versions.get("ours.uvloop")),
        ("ours built at", versions.get("ours.build")),
        ("ours' clock", versions.get("ours.clock")),
        (
            "incumbent",
            format!("aiocop {}", versions.get("incumbent.aiocop")),
        ),
    ]
}

fn command(options: &Options) -> String {
    let mut command = String::from("cargo xtask bench");
    if options.smoke {
        command.push_str(" --smoke");
    } else if options.rounds != 5 {
        let _ = write!(command, " --rounds {}", options.rounds);
    }
    if let Some(only) = &options.only {
        let _ = write!(command, " --only {only}");
    }
    command
}

/// All the tables, as Markdown.
fn tables(results: &Results) -> String {
    let mut out = String::new();
    if !results.micro.is_empty() {
        out.push_str(&micro_table(&results.micro));
    }
    if !results.server.is_empty() {
        out.push('\n');
        out.push_str(&server_table(&results.server));
    }
    if !results.memory.is_empty() {
        out.push('\n');
        out.push_str(&memory_table(&results.memory));
    }
    if !results.criterion.is_empty() {
        out.push_str("\n| criterion bench | time |\n|---|---:|\n");
        for estimate in &results.criterion {
            let _ = writeln!(out, "| `{}` | {} |", estimate.name, estimate.time);
        }
    }
    out
}

fn met(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "—",
    }
}

fn opt(value: Option<f64>, fmt: impl Fn(f64) -> String) -> String {
    value.map_or_else(|| "—".into(), fmt)
}

fn micro_table(rows: &[micro::Row]) -> String {
    let mut out = String::from(
        "| scenario | loop | unit | none ns | ours +ns | incumbent +ns | ratio | target | met |\n\
         |---|---|---|---:|---:|---:|---:|---|---|\n",
    );
    for row in rows {
        let scenario = row.scenario;
        let target = match (scenario.target_ns, scenario.ratio_target) {
            (Some(ns), true) => format!("≤{ns:.0} ns, ratio ≤{RATIO_TARGET}"),
            (Some(ns), false) => format!("≤{ns:.0} ns"),
            (None, true) => format!("ratio ≤{RATIO_TARGET}"),
            (None, false) => "—".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {target} | {} |",
            scenario.name,
            row.loop_kind,
            scenario.unit,
            opt(row.median(Mode::None), |ns| format!("{ns:.0}")),
            opt(row.overhead(Mode::Ours), |ns| format!("{ns:+.0}")),
            opt(row.overhead(Mode::Incumbent), |ns| format!("{ns:+.0}")),
            opt(row.ratio(), |r| format!("{r:.3}")),
            met(row.meets_targets()),
        );
    }
    out
}

fn server_table(rows: &[server::Row]) -> String {
    let mut out = String::from(
        "| endpoint | none req/s | ours req/s | incumbent req/s | ours / none | incumbent / none \
         | p50 ms none / ours / incumbent | p99 ms none / ours / incumbent \
         | server CPU µs/request none / ours / incumbent | ours' extra CPU µs/request \
         | ours / none, paired | totals only / none, paired | target | met |\n\
         |---|---:|---:|---:|---:|---:|---|---|---|---:|---:|---:|---|---|\n",
    );
    for row in rows {
        let per_mode = |samples: &[Vec<f64>; 3], digits: usize| {
            Mode::ALL
                .map(|mode| opt(median(&samples[mode as usize]), |v| format!("{v:.digits$}")))
                .join(" / ")
        };
        let rps = |mode: Mode| opt(median(&row.rps[mode as usize]), |v| format!("{v:.0}"));
        let share = |mode: Mode| opt(row.share(mode), |s| format!("{:.1}%", s * 100.0));
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | ours ≥{:.0}%, totals only ≥{:.0}% | {} / {} |",
            row.endpoint.path,
            rps(Mode::None),
            rps(Mode::Ours),
            rps(Mode::Incumbent),
            share(Mode::Ours),
            share(Mode::Incumbent),
            per_mode(&row.p50_ms, 2),
            per_mode(&row.p99_ms, 2),
            per_mode(&row.cpu_us, 1),
            opt(row.cpu_overhead_us(Mode::Ours), |us| format!("{us:+.2}")),
            opt(row.paired_share(), |s| format!("{:.1}%", s * 100.0)),
            opt(row.paired_totals_share(), |s| format!("{:.1}%", s * 100.0)),
            row.endpoint.min_share * 100.0,
            row.endpoint.min_share_totals * 100.0,
            met(row.meets_target()),
            met(row.meets_totals_target()),
        );
    }
    out
}

fn memory_table(rows: &[memory::Row]) -> String {
    let mut out = String::from(
        "| memory | loop | callbacks | with IO | RSS before MiB | growth MiB | seconds |\n\
         |---|---|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {:+.2} | {:.1} |",
            row.mode.name(),
            row.loop_kind,
            row.callbacks,
            row.io_callbacks,
            row.rss_before_mib,
            row.growth_mib,
            row.seconds
        );
    }
    out
}

fn to_json(results: &Results, machine: &[(&str, String)], options: &Options) -> Value {
    let per_mode = |samples: &[Vec<f64>; 3]| {
        Value::Obj(
            Mode::ALL
                .map(|mode| (mode.name().to_owned(), Value::nums(&samples[mode as usize])))
                .into(),
        )
    };
    let micro = results.micro.iter().map(|row| {
        Value::obj([
            ("scenario", Value::str(row.scenario.name)),
            ("loop", Value::str(row.loop_kind)),
            ("unit", Value::str(row.scenario.unit)),
            ("none_ns", Value::num(row.median(Mode::None))),
            ("ours_overhead_ns", Value::num(row.overhead(Mode::Ours))),
            (
                "incumbent_overhead_ns",
                Value::num(row.overhead(Mode::Incumbent)),
            ),
            ("ratio", Value::num(row.ratio())),
            ("target_ns", Value::num(row.scenario.target_ns)),
            (
                "target_ratio",
                Value::num(row.scenario.ratio_target.then_some(RATIO_TARGET)),
            ),
            ("met", row.meets_targets().map_or(Value::Null, Value::Bool)),
            ("samples_ns", per_mode(&row.samples)),
        ])
    });
    let server = results.server.iter().map(|row| {
        Value::obj([
            ("endpoint", Value::str(row.endpoint.path)),
            ("connections", Value::Num(f64::from(server::CONNECTIONS))),
            ("ours_share", Value::num(row.share(Mode::Ours))),
            ("incumbent_share", Value::num(row.share(Mode::Incumbent))),
            ("target_share", Value::Num(row.endpoint.min_share)),
            ("met", row.meets_target().map_or(Value::Null, Value::Bool)),
            ("errors", Value::Num(row.errors)),
            ("rps", per_mode(&row.rps)),
            ("p50_ms", per_mode(&row.p50_ms)),
            ("p99_ms", per_mode(&row.p99_ms)),
            ("server_cpu_us_per_request", per_mode(&row.cpu_us)),
            (
                "ours_extra_cpu_us_per_request",
                Value::num(row.cpu_overhead_us(Mode::Ours)),
            ),
            ("ours_share_paired", Value::num(row.paired_share())),
            (
                "ours_totals_only_share_paired",
                Value::num(row.paired_totals_share()),
            ),
            (
                "target_share_totals_only",
                Value::Num(row.endpoint.min_share_totals),
            ),
            (
                "met_totals_only",
                row.meets_totals_target().map_or(Value::Null, Value::Bool),
            ),
            (
                "paired_cpu_ratio",
                Value::Arr(
                    row.paired_cpu_ratio
                        .iter()
                        .map(|r| Value::Num(*r))
                        .collect(),
                ),
            ),
        ])
    });
    let memory = results.memory.iter().map(|row| {
        Value::obj([
            ("loop", Value::str(row.loop_kind)),
            ("mode", Value::str(row.mode.name())),
            ("callbacks", Value::Num(row.callbacks as f64)),
            ("io_callbacks", Value::Num(row.io_callbacks as f64)),
            ("rss_before_mib", Value::Num(row.rss_before_mib)),
            ("growth_mib", Value::Num(row.growth_mib)),
            ("seconds", Value::Num(row.seconds)),
        ])
    });
    let criterion = results.criterion.iter().map(|estimate| {
        Value::obj([
            ("name", Value::str(&estimate.name)),
            ("time", Value::str(&estimate.time)),
        ])
    });
    Value::obj([
        ("command", Value::str(command(options))),
        ("smoke", Value::Bool(options.smoke)),
        ("rounds", Value::Num(options.rounds as f64)),
        (
            "machine",
            Value::Obj(
                machine
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Value::str(v)))
                    .collect(),
            ),
        ),
        ("versions", results.versions.to_json()),
        ("scenarios", Value::Arr(micro.collect())),
        ("server", Value::Arr(server.collect())),
        ("memory", Value::Arr(memory.collect())),
        ("criterion", Value::Arr(criterion.collect())),
    ])
}

/// `docs/benchmarks.md`.
fn page(machine: &[(&str, String)], tables: &str, options: &Options) -> String {
    let mut out = String::from(PAGE_HEAD);
    let _ = writeln!(out, "## Latest results\n");
    let _ = writeln!(out, "Measured with `{}` on:\n", command(options));
    for (label, value) in machine {
        let _ = writeln!(out, "- {label}: {value}");
    }
    let _ = writeln!(
        out,
        "\n![Overhead per unit over no monitor, ours next to aiocop 1.2.1, log scale](overhead.svg)\n"
    );
    let _ = writeln!(out, "{tables}\n{PAGE_TAIL}");
    out
}

const PAGE_HEAD: &str = "\
# Benchmarks

<!-- Written by `cargo xtask bench`: edit xtask/src/bench/report.rs, not this file. -->

`cargo xtask bench` measures what monitoring costs, side by side: **none** (no monitor imported),
**ours** (this repository's aiocop, release build in `.venv`) and the **incumbent** (the
pure-Python aiocop 1.2.1 from PyPI, in `.venvs/incumbent`, which xtask creates). Both monitors
are set up with the same code, as their READMEs show: `patch_audit_functions()`,
`start_blocking_io_detection()`, `detect_slow_tasks(threshold_ms=30, on_slow_task=<no-op>)`,
then `activate()` inside the running loop (`benches/python/monitor.py`).

```bash
cargo xtask bench                  # everything: ~14 minutes on 2 cores; rewrites this page
cargo xtask bench --rounds 3       # fewer rounds
cargo xtask bench --only stat      # one scenario, or: criterion, server, paired (its paired rounds), memory
cargo xtask bench --smoke          # tiny sizes, one round, results/smoke/ only (run by xtask test)
cargo xtask bench --against DIR    # paired server rounds of this build against another one (DIR/aiocop)
```

`--against DIR` compares two builds of ours rather than ours with no monitor: `DIR` holds an
`aiocop` package (a copy of `aiocop-py/python/aiocop` with its built extension, say of another
commit), imported from there through `PYTHONPATH`; each round a server of this checkout's build
and one of `DIR`'s share one CPU and are loaded at the same time, and the ratio of their CPU
time per request is printed per endpoint and round. Two complete runs minutes apart drift by a
point or two on a shared machine; a change measured against its own baseline at the same moment
does not (the same build on both sides: within about ±1% over 12 windows). It writes nothing.

## Method

- **Scenarios** (`benches/python/scenarios.py`), each on asyncio and on uvloop, one process per
  measurement; in each round the three modes run back to back, and the tables show medians over
  the rounds. Each process reports the fastest of 5 timed runs after a warm-up run (on a shared
  machine noise only adds time). The timed region ends with `aiocop.flush()` where it exists, so
  delivering every event is charged to us.
  - `call_soon`: 200k trivial callbacks through `loop.call_soon` (64 chains, each callback
    schedules the next); unit: a callback.
  - `sleep0`: 5k tasks doing `await asyncio.sleep(0)`, gathered; unit: a task.
  - `stat`: 5k tasks doing `os.stat('.')` then `sleep(0)`: one blocking event per task.
  - `read`: 5k tasks reading 100 bytes of a small file (open/read/close) then `sleep(0)`.
  - `http_handler`: aiocop 1.2.1's \"realistic HTTP handler\", 2k concurrent: `sleep(0.001)`,
    `os.path.exists`, `os.getcwd()`, `sleep(0.001)`.
  - `audit_off_handle`: `sys.audit(...)` in a plain loop on a worker thread (no monitored handle
    running there): the cost of the audit hook itself. `stat_off_handle`: the same with
    `os.stat('.')` (which `patch_audit_functions()` wraps).
- **Overhead** = median(mode) − median(none), in ns per unit; **ratio** = ours / incumbent. The
  issue's targets: `call_soon` ≤150 ns, `sleep0` ≤400 ns/task, `stat` ≤2000 ns/task,
  `audit_off_handle` ≤80 ns, and ratio ≤0.05 on the loop scenarios. Ours times each handle with
  the clock `aiocop.stats()[\"clock\"]` names (shown above; `tsc` where the CPU's time-stamp
  counter is invariant and the kernel keeps time with it).
  On a stock asyncio loop ours does `call_soon`'s own steps natively instead of running the
  Python method (see the README's differences), which can save more than the monitor costs
  where nothing blocks: an overhead (and ratio) below zero on asyncio is that saving.
- **Server** (`benches/python/server.py`): Starlette served by uvicorn (`--loop uvloop --http
  httptools`, one worker, 127.0.0.1), the monitor activated in the lifespan handler, loaded by
  `benches/python/loadgen.py` (raw asyncio sockets, HTTP/1.1 keep-alive, 32 connections, 1 s
  warm-up then 5 s). Each round starts a fresh server per mode and loads every endpoint of each
  mode in turn (the modes taking turns going first), so the runs compared are seconds apart and
  each round draws new processes (a process's memory layout decides which of CPython's cache
  entries collide, which moves its throughput by a few percent for as long as it runs). A
  mode's share is the median over the rounds of its requests/s over no monitor's in the same
  round. Targets: ours keeps ≥98% of none's throughput on `/async`, ≥95% on `/stat` and
  `/read` (judged on the paired share below where there is one). The load generator and the
  server share the machine's 2 cores, so throughput also moves with the load generator's luck;
  the server's own CPU time (user + system, all threads, from `/proc/<pid>/stat` at 10 ms
  resolution) per answered request, warm-up included, is shown next to it: its difference to
  no monitor is what the monitor costs each request. On this kind of machine both move by 10–25% between runs seconds apart (other
  tenants, the clock), several times the difference measured, so the target is judged on
  **paired** rounds (a machine with at least 2 CPUs): per round a fresh server without monitor
  and a fresh one with ours both run on one CPU and are loaded at the same time, per endpoint,
  by two load generators on another (same connections and durations as above; the two servers
  take turns starting first). Each one's CPU time per answered request is what a request
  costs it at the same moment, on the same core and next to the same neighbour, so the drift
  of the machine cancels out of their ratio. **ours / none, paired** is no monitor's CPU per
  request over ours' (the median of the rounds' ratios, inverted): the throughput ours keeps
  where the server is CPU-bound. The two servers' caches are shared and refilled at every
  switch between them, which costs a request more than alone (the CPU per request is higher
  than in the sequential runs) and weighs more on code that brings its own cache lines. Each
  round then pairs no monitor with ours **without a callback** (`ours_totals`: every blocking
  call counted in the per-call-site totals behind `aiocop.report()`, no event built):
  **totals only / none, paired**, targets ≥99% on `/async`, ≥98% on `/stat` and `/read`.
- **Memory** (`benches/python/memory.py`): RSS (`VmRSS`) before and after 10^7 monitored
  callbacks, 10^6 of which call `os.stat` (each one an `io_blocking` event delivered to the
  callback).
- **Criterion** (`benches/benches/core.rs`): the pure crates' hot pieces.

Each run writes `results/bench-<timestamp>.json`, `results/latest.json` (every sample) and
`results/overhead.svg` (the overheads, log scale); `results/` is not committed, but a complete
run also copies the chart next to this page.

";

const PAGE_TAIL: &str = "\
Numbers on a shared 2-core machine move by several percent between runs, more for the small
overheads: read a difference of a few ns, or of a few percent of throughput, as noise. A load
average well above 0 at the start means something else was running; `ours built at` lists more
than one time when the extension was rebuilt during the run.
";

#[cfg(test)]
mod tests {
    use super::civil_from_days;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_417), (2025, 11, 25));
    }
}
