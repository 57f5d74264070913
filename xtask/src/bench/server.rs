//! The real-server bench: `benches/python/server.py` (Starlette) served by uvicorn on uvloop
//! and httptools, one worker on 127.0.0.1, loaded by `benches/python/loadgen.py` in another
//! process. Each round starts one server per mode and loads every endpoint of each, the modes
//! in turn. Then, on a machine with two CPUs or more, paired rounds ([`run_paired`]): a server
//! without monitor and one with ours share one CPU and are loaded at the same time, so that
//! both pay for the same moment of a shared machine.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{median, run_json, Bench, Mode};
use crate::{display, step, Result};

/// An endpoint of the app, and the share of the unmonitored throughput ours must keep: with a
/// slow-task callback (the drop-in path), and with the per-call-site totals only.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) path: &'static str,
    pub(crate) min_share: f64,
    pub(crate) min_share_totals: f64,
}

const ENDPOINTS: [Endpoint; 3] = [
    Endpoint {
        path: "/async",
        min_share: 0.98,
        min_share_totals: 0.99,
    },
    Endpoint {
        path: "/stat",
        min_share: 0.95,
        min_share_totals: 0.98,
    },
    Endpoint {
        path: "/read",
        min_share: 0.95,
        min_share_totals: 0.98,
    },
];

/// Concurrent keep-alive connections of the load generator.
pub(crate) const CONNECTIONS: u32 = 32;

/// One endpoint's measurements, one sample per round, indexed like `Mode::ALL`.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) endpoint: &'static Endpoint,
    pub(crate) rps: [Vec<f64>; 3],
    pub(crate) p50_ms: [Vec<f64>; 3],
    pub(crate) p99_ms: [Vec<f64>; 3],
    /// The server process's CPU time (user + system, all its threads) per answered request,
    /// in microseconds: what each request cost the server, whatever the load generator did.
    pub(crate) cpu_us: [Vec<f64>; 3],
    /// Per paired round: ours' server CPU time per request over no monitor's, the two servers
    /// sharing one CPU and loaded at the same time.
    pub(crate) paired_cpu_ratio: Vec<f64>,
    /// The same for ours keeping only the per-call-site totals (no callback).
    pub(crate) paired_totals_cpu_ratio: Vec<f64>,
    pub(crate) errors: f64,
}

impl Row {
    /// The median over the rounds of `mode`'s requests/s over no monitor's in the same round
    /// (the two measured a few seconds apart, so drift of the machine cancels out).
    pub(crate) fn share(&self, mode: Mode) -> Option<f64> {
        let ratios: Vec<f64> = self.rps[mode as usize]
            .iter()
            .zip(&self.rps[Mode::None as usize])
            .filter(|(_, none)| **none > 0.0)
            .map(|(rps, none)| rps / none)
            .collect();
        median(&ratios)
    }

    /// Median server CPU microseconds per request of `mode` minus no monitor's.
    pub(crate) fn cpu_overhead_us(&self, mode: Mode) -> Option<f64> {
        Some(median(&self.cpu_us[mode as usize])? - median(&self.cpu_us[Mode::None as usize])?)
    }

    /// Ours' throughput share at equal CPU, from the paired rounds: no monitor's server CPU
    /// per request over ours' (the median of the rounds' ratios, inverted).
    pub(crate) fn paired_share(&self) -> Option<f64> {
        inverted_median(&self.paired_cpu_ratio)
    }

    /// The same share for ours keeping only the per-call-site totals.
    pub(crate) fn paired_totals_share(&self) -> Option<f64> {
        inverted_median(&self.paired_totals_cpu_ratio)
    }

    /// Whether ours with the totals only meets its target (paired rounds only).
    pub(crate) fn meets_totals_target(&self) -> Option<bool> {
        self.paired_totals_share()
            .map(|share| share >= self.endpoint.min_share_totals)
    }

    /// Judged on the paired share where there is one (the measurement the machine's drift
    /// moves least), else on the share of requests/s.
    pub(crate) fn meets_target(&self) -> Option<bool> {
        self.paired_share()
            .or_else(|| self.share(Mode::Ours))
            .map(|share| share >= self.endpoint.min_share)
    }
}

/// The median of CPU ratios, inverted into a throughput share at equal CPU.
fn inverted_median(ratios: &[f64]) -> Option<f64> {
    median(ratios)
        .filter(|ratio| *ratio > 0.0)
        .map(|ratio| 1.0 / ratio)
}

/// One empty row per endpoint.
fn new_rows() -> [Row; 3] {
    ENDPOINTS.each_ref().map(|endpoint| Row {
        endpoint,
        rps: Default::default(),
        p50_ms: Default::default(),
        p99_ms: Default::default(),
        cpu_us: Default::default(),
        paired_cpu_ratio: Vec::new(),
        paired_totals_cpu_ratio: Vec::new(),
        errors: 0.0,
    })
}

/// The measured seconds and the uncounted warm-up seconds of one load run.
fn durations(smoke: bool) -> (&'static str, &'static str) {
    if smoke {
        ("0.5", "0.2")
    } else {
        ("5", "1")
    }
}

/// Per round: starts one server per mode (all kept running through the round: an idle server
/// costs nothing), then loads them in turn, per endpoint each mode once, the modes taking turns
/// going first, so the runs compared are seconds apart and drift over a round does not always
/// favour the same one. Fresh processes every round, so that one process's luck (its memory
/// layout, hence which of CPython's cache entries collide) is not counted in every round.
///
/// Without `sequential`, only the paired rounds run (`--only paired`: a few minutes, what the
/// server targets are judged on).
pub(crate) fn run(bench: &Bench<'_>, sequential: bool) -> Result<Vec<Row>> {
    let mut rows = new_rows();
    let (duration, _) = durations(bench.options.smoke);
    let rounds = if sequential { bench.options.rounds } else { 0 };
    for round in 1..=rounds {
        let servers = Mode::ALL
            .into_iter()
            .map(|mode| Server::start(bench, mode))
            .collect::<Result<Vec<_>>>()?;
        step(&format!(
            "server, round {round}/{rounds}: uvicorn + Starlette, {CONNECTIONS} connections, \
             {duration} s per endpoint and mode"
        ));
        let mut order = Mode::ALL;
        order.rotate_left((round - 1) % Mode::ALL.len());
        for row in &mut rows {
            for mode in order {
                let server = &servers[mode as usize];
                let mut cmd = loadgen(bench, server, row.endpoint.path)?;
                let cpu_before = server.cpu_seconds()?;
                let result = run_json(&mut cmd)?;
                let cpu = server.cpu_seconds()? - cpu_before;
                let completed = result.f64("completed")?;
                let i = mode as usize;
                row.rps[i].push(result.f64("rps")?);
                row.p50_ms[i].push(result.f64("p50_ms")?);
                row.p99_ms[i].push(result.f64("p99_ms")?);
                if completed > 0.0 {
                    row.cpu_us[i].push(cpu / completed * 1e6);
                }
                row.errors += result.f64("errors")?;
                println!(
                    "{:>10} {:<7} {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms  server CPU {:.1} us/req",
                    mode.name(),
                    row.endpoint.path,
                    result.f64("rps")?,
                    result.f64("p50_ms")?,
                    result.f64("p99_ms")?,
                    cpu / completed.max(1.0) * 1e6,
                );
            }
        }
        for server in servers {
            server.stop();
        }
    }
    if can_pair() {
        run_paired(bench, &mut rows)?;
    }
    Ok(rows.into())
}

/// The CPU both paired servers run on, and the one both load generators run on: indices
/// among the CPUs the bench may use (`benches/python/monitor.py`'s `pin_to_cpu`).
const SERVER_CPU: usize = 0;
const LOADGEN_CPU: usize = 1;

/// Whether the machine has the two CPUs the paired rounds need.
fn can_pair() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() > LOADGEN_CPU)
}

/// Paired rounds: per round, a fresh server without monitor and a fresh one with ours, both
/// kept on one CPU, and per endpoint both loaded at the same time by two load generators
/// kept on another. Each server's CPU time per answered request is what a request costs it
/// while the other one shares its CPU, its caches and the machine's moment: a busy neighbour
/// or a slower clock costs both alike, so their ratio moves far less than throughputs
/// measured seconds apart. Fresh processes every round (a process's memory layout stays with
/// it); the two take turns starting first.
fn run_paired(bench: &Bench<'_>, rows: &mut [Row; 3]) -> Result {
    let rounds = bench.options.rounds;
    for round in 1..=rounds {
        step(&format!(
            "server, paired round {round}/{rounds}: none and ours on one CPU, loaded at the \
             same time from another"
        ));
        for ours in [Side::of(Mode::Ours), Side::totals_only()] {
            let sides = [Side::of(Mode::None), ours];
            let cpu_us = paired_round(bench, sides, round % 2 == 0, rows)?;
            for (row, [none, cpu]) in rows.iter_mut().zip(cpu_us) {
                println!(
                    "{:>10} {:<7} server CPU {none:.1} us/req (none) / {cpu:.1} us/req ({}), same CPU, same time",
                    "paired", row.endpoint.path, ours.label(),
                );
                if none > 0.0 && cpu > 0.0 {
                    let ratios = if ours.totals {
                        &mut row.paired_totals_cpu_ratio
                    } else {
                        &mut row.paired_cpu_ratio
                    };
                    ratios.push(cpu / none);
                }
            }
        }
    }
    Ok(())
}

/// `cargo xtask bench --against DIR`: paired rounds of ours against ours, the second built
/// elsewhere (the `aiocop` package in `DIR`, put first on `PYTHONPATH`): both on one CPU,
/// loaded at the same time, fresh processes every round, taking turns starting first. Prints
/// per endpoint the CPU per request of `DIR`'s build over this checkout's, round by round,
/// and their median and mean: a change measured at the same moment as what it changes, where
/// two runs of the bench minutes apart drift by a point or two. Writes no results. With
/// `totals_only`, neither side registers a slow-task callback.
pub(crate) fn run_against(bench: &Bench<'_>, dir: &Path, totals_only: bool) -> Result {
    check_package(bench, dir)?;
    let rounds = bench.options.rounds;
    let mut ratios: [Vec<f64>; 3] = Default::default();
    let mut rows = new_rows();
    for round in 1..=rounds {
        step(&format!(
            "against {}, round {round}/{rounds}: both on one CPU, loaded at the same time",
            dir.display()
        ));
        let mut sides = [Side::of(Mode::Ours), Side::from_package(dir)];
        for side in &mut sides {
            side.totals = totals_only;
        }
        let cpu_us = paired_round(bench, sides, round % 2 == 0, &mut rows)?;
        for ((row, [here, there]), ratios) in rows.iter().zip(cpu_us).zip(&mut ratios) {
            println!(
                "{:>10} {:<7} server CPU {here:.1} us/req (this checkout) / {there:.1} us/req (against)",
                "against", row.endpoint.path,
            );
            if here > 0.0 && there > 0.0 {
                ratios.push(there / here);
            }
        }
    }
    step(&format!(
        "CPU per request of {}'s build over this checkout's",
        dir.display()
    ));
    for (row, ratios) in rows.iter().zip(&ratios) {
        let rounds: Vec<String> = ratios.iter().map(|r| format!("{r:.3}")).collect();
        let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
        println!(
            "{:<7} median {:.3}  mean {mean:.3}  rounds {}{}",
            row.endpoint.path,
            median(ratios).unwrap_or(f64::NAN),
            rounds.join(" "),
            if row.errors > 0.0 {
                format!("  ({} failed requests)", row.errors)
            } else {
                String::new()
            },
        );
    }
    Ok(())
}

/// Checks that `dir` holds an `aiocop` package that the bench's interpreter imports from
/// there when `dir` leads `PYTHONPATH`.
fn check_package(bench: &Bench<'_>, dir: &Path) -> Result {
    if !dir.join("aiocop").join("__init__.py").is_file() {
        return Err(format!(
            "--against {}: no aiocop package there (expected {}/aiocop/__init__.py, e.g. a \
             copy of aiocop-py/python/aiocop with its built extension)",
            dir.display(),
            dir.display()
        )
        .into());
    }
    let mut cmd = bench.python(Mode::Ours)?;
    cmd.env("PYTHONPATH", dir).args([
        "-c",
        "import aiocop, sys; sys.stdout.write(aiocop.__file__)",
    ]);
    let out = cmd
        .output()
        .map_err(|err| format!("cannot run `{}`: {err}", display(&cmd)))?;
    let file = String::from_utf8_lossy(&out.stdout);
    let expected = dir
        .canonicalize()
        .map_err(|err| format!("{}: {err}", dir.display()))?;
    let found = Path::new(file.as_ref()).canonicalize().ok();
    if !out.status.success() || !found.is_some_and(|found| found.starts_with(&expected)) {
        return Err(format!(
            "--against {}: `import aiocop` does not load it from there ({}{})",
            dir.display(),
            file.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// One side of a paired round: what the server is measured with, and, for a build of ours
/// other than this checkout's, the directory its `aiocop` package is imported from.
#[derive(Debug, Clone, Copy)]
struct Side<'a> {
    mode: Mode,
    package: Option<&'a Path>,
    /// Ours without a slow-task callback: the per-call-site totals only.
    totals: bool,
}

impl<'a> Side<'a> {
    fn of(mode: Mode) -> Self {
        Side {
            mode,
            package: None,
            totals: false,
        }
    }

    fn totals_only() -> Self {
        Side {
            totals: true,
            ..Side::of(Mode::Ours)
        }
    }

    fn label(&self) -> &'static str {
        if self.totals {
            "ours, totals only"
        } else {
            self.mode.name()
        }
    }

    fn from_package(dir: &'a Path) -> Self {
        Side {
            package: Some(dir),
            ..Side::of(Mode::Ours)
        }
    }
}

/// One paired round: a fresh server for each side, both on [`SERVER_CPU`] (the second one
/// started first when `swap`), and per endpoint both loaded at the same time from
/// [`LOADGEN_CPU`]. Returns per endpoint (in `rows`' order) each side's server CPU
/// microseconds per answered request, in `sides`' order; load errors are added to `rows`.
fn paired_round(
    bench: &Bench<'_>,
    sides: [Side<'_>; 2],
    swap: bool,
    rows: &mut [Row; 3],
) -> Result<[[f64; 2]; 3]> {
    let order = if swap { [1, 0] } else { [0, 1] };
    let mut servers = Vec::with_capacity(2);
    for i in order {
        servers.push((i, Server::start_on(bench, sides[i], Some(SERVER_CPU))?));
    }
    let mut out = [[0.0; 2]; 3];
    for (row, out) in rows.iter_mut().zip(&mut out) {
        let commands = servers
            .iter()
            .map(|(_, server)| {
                let mut cmd = loadgen(bench, server, row.endpoint.path)?;
                cmd.args(["--cpu", &LOADGEN_CPU.to_string()]);
                Ok(cmd)
            })
            .collect::<Result<Vec<_>>>()?;
        let before = servers
            .iter()
            .map(|(_, server)| server.cpu_seconds())
            .collect::<Result<Vec<_>>>()?;
        let results = std::thread::scope(|scope| {
            let runs: Vec<_> = commands
                .into_iter()
                .map(|mut cmd| {
                    scope.spawn(move || run_json(&mut cmd).map_err(|err| err.to_string()))
                })
                .collect();
            runs.into_iter()
                .map(|run| match run.join() {
                    Ok(result) => result.map_err(Into::into),
                    Err(_) => Err("a load generator's thread panicked".into()),
                })
                .collect::<Result<Vec<_>>>()
        })?;
        for (((side, server), result), before) in servers.iter().zip(&results).zip(before) {
            let cpu = server.cpu_seconds()? - before;
            let completed = result.f64("completed")?;
            out[*side] = if completed > 0.0 {
                cpu / completed * 1e6
            } else {
                0.0
            };
            row.errors += result.f64("errors")?;
        }
    }
    for (_, server) in servers {
        server.stop();
    }
    Ok(out)
}

/// The load generator's command for `path` on `server`, for one measured run.
fn loadgen(bench: &Bench<'_>, server: &Server, path: &str) -> Result<Command> {
    let (duration, warmup) = durations(bench.options.smoke);
    let mut cmd = bench.script(Mode::None, "loadgen.py")?;
    cmd.args(["--port", &server.port.to_string(), "--path", path])
        .args(["--connections", &CONNECTIONS.to_string()])
        .args(["--duration", duration, "--warmup", warmup]);
    Ok(cmd)
}

/// Clock ticks per second of `/proc/<pid>/stat`'s times (`USER_HZ`, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// A uvicorn process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(bench: &Bench<'_>, mode: Mode) -> Result<Server> {
        Self::start_on(bench, Side::of(mode), None)
    }

    /// A server of `side`, kept on CPU `cpu` if given (every thread it starts).
    fn start_on(bench: &Bench<'_>, side: Side<'_>, cpu: Option<usize>) -> Result<Server> {
        let port = free_port()?;
        let mut cmd = bench.python(side.mode)?;
        if let Some(package) = side.package {
            cmd.env("PYTHONPATH", package);
        }
        if side.totals {
            cmd.env("AIOCOP_BENCH_MODE", "ours_totals");
        }
        if let Some(cpu) = cpu {
            cmd.env("AIOCOP_BENCH_CPU", cpu.to_string());
        }
        cmd.args(["-m", "uvicorn", "server:app", "--app-dir"])
            .arg(bench.scripts())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--loop", "uvloop", "--http", "httptools", "--workers", "1"])
            .args(["--log-level", "warning", "--no-access-log"])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        let child = cmd
            .spawn()
            .map_err(|err| format!("cannot run `{}`: {err}", display(&cmd)))?;
        let mut server = Server { child, port };
        server.wait_ready(&cmd)?;
        Ok(server)
    }

    /// Waits until the port accepts connections: uvicorn listens once the lifespan startup,
    /// where the monitor is activated, is done.
    fn wait_ready(&mut self, cmd: &Command) -> Result {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!("`{}` exited early ({status})", display(cmd)).into());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            sleep(Duration::from_millis(50));
        }
        Err(format!("`{}` did not listen within 30 s", display(cmd)).into())
    }

    fn stop(self) {
        drop(self);
    }

    /// The process's CPU time so far (user + system, all threads), from `/proc/<pid>/stat`.
    fn cpu_seconds(&self) -> Result<f64> {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = std::fs::read_to_string(&path).map_err(|err| format!("{path}: {err}"))?;
        // The command name (field 2) is in parentheses and may hold spaces: count from after it.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        // Fields 14 and 15 (utime, stime) are the 12th and 13th after the name.
        let ticks = |index: usize| -> Result<f64> {
            fields
                .get(index)
                .and_then(|field| field.parse::<f64>().ok())
                .ok_or_else(|| format!("{path}: no CPU times in `{stat}`").into())
        };
        Ok((ticks(11)? + ticks(12)?) / USER_HZ)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A graceful stop runs the app's lifespan shutdown (which removes its data file).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::{Row, ENDPOINTS};
    use crate::bench::Mode;

    fn row(rps: [f64; 2], paired: &[f64]) -> Row {
        Row {
            endpoint: &ENDPOINTS[1], // `/stat`, ≥95%
            rps: [vec![rps[0]], vec![rps[1]], Vec::new()],
            p50_ms: Default::default(),
            p99_ms: Default::default(),
            cpu_us: Default::default(),
            paired_cpu_ratio: paired.to_vec(),
            paired_totals_cpu_ratio: paired.iter().map(|r| r - 0.03).collect(),
            errors: 0.0,
        }
    }

    #[test]
    fn the_totals_only_share_is_judged_on_its_own_target() {
        // `/stat`: ≥98% with the totals only; ratios 1.01 (99.0%) and 1.05 (95.2%).
        assert_eq!(
            row([100.0, 99.0], &[1.04]).meets_totals_target(),
            Some(true)
        );
        assert_eq!(
            row([100.0, 99.0], &[1.08]).meets_totals_target(),
            Some(false)
        );
        assert_eq!(row([100.0, 99.0], &[]).meets_totals_target(), None);
    }

    #[test]
    fn the_paired_share_is_the_inverted_median_cpu_ratio() {
        let row = row([100.0, 99.0], &[1.10, 1.02, 1.05]);
        let share = row.paired_share().expect("paired rounds");
        assert!((share - 1.0 / 1.05).abs() < 1e-12);
        assert!((row.share(Mode::Ours).expect("rps") - 0.99).abs() < 1e-12);
    }

    #[test]
    fn the_target_is_judged_on_the_paired_share_where_there_is_one() {
        // 99% of the requests/s, but 8% more CPU per request than no monitor at equal footing.
        assert_eq!(row([100.0, 99.0], &[1.08]).meets_target(), Some(false));
        assert_eq!(row([100.0, 90.0], &[1.02]).meets_target(), Some(true));
        // No paired rounds (a single CPU): the share of requests/s decides.
        assert_eq!(row([100.0, 99.0], &[]).meets_target(), Some(true));
        assert_eq!(row([100.0, 90.0], &[]).meets_target(), Some(false));
    }
}
