//! The real-server bench: `benches/python/server.py` (Starlette) served by uvicorn on uvloop
//! and httptools, one worker on 127.0.0.1, loaded by `benches/python/loadgen.py` in another
//! process. Each round starts one server per mode, in turn, and loads each endpoint.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{median, run_json, Bench, Mode};
use crate::{display, step, Result};

/// An endpoint of the app, and the share of the unmonitored throughput ours must keep.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(crate) path: &'static str,
    pub(crate) min_share: f64,
}

const ENDPOINTS: [Endpoint; 3] = [
    Endpoint {
        path: "/async",
        min_share: 0.98,
    },
    Endpoint {
        path: "/stat",
        min_share: 0.95,
    },
    Endpoint {
        path: "/read",
        min_share: 0.95,
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
    pub(crate) errors: f64,
}

impl Row {
    /// median requests/s of `mode` over median requests/s with no monitor.
    pub(crate) fn share(&self, mode: Mode) -> Option<f64> {
        Some(median(&self.rps[mode as usize])? / median(&self.rps[Mode::None as usize])?)
    }

    pub(crate) fn meets_target(&self) -> Option<bool> {
        self.share(Mode::Ours)
            .map(|share| share >= self.endpoint.min_share)
    }
}

/// The measured seconds and the uncounted warm-up seconds of one load run.
fn durations(smoke: bool) -> (&'static str, &'static str) {
    if smoke {
        ("0.5", "0.2")
    } else {
        ("5", "1")
    }
}

pub(crate) fn run(bench: &Bench<'_>) -> Result<Vec<Row>> {
    let mut rows = ENDPOINTS.each_ref().map(|endpoint| Row {
        endpoint,
        rps: Default::default(),
        p50_ms: Default::default(),
        p99_ms: Default::default(),
        errors: 0.0,
    });
    let (duration, warmup) = durations(bench.options.smoke);
    let rounds = bench.options.rounds;
    for round in 1..=rounds {
        step(&format!(
            "server, round {round}/{rounds}: uvicorn + Starlette, {CONNECTIONS} connections, \
             {duration} s per endpoint"
        ));
        // The modes take turns going first, so drift over a round (other load on a shared
        // machine, warm caches) does not always favour the same one.
        let mut order = Mode::ALL;
        order.rotate_left((round - 1) % Mode::ALL.len());
        for mode in order {
            let server = Server::start(bench, mode)?;
            for row in &mut rows {
                let mut cmd = bench.script(Mode::None, "loadgen.py")?;
                cmd.args([
                    "--port",
                    &server.port.to_string(),
                    "--path",
                    row.endpoint.path,
                ])
                .args(["--connections", &CONNECTIONS.to_string()])
                .args(["--duration", duration, "--warmup", warmup]);
                let result = run_json(&mut cmd)?;
                let i = mode as usize;
                row.rps[i].push(result.f64("rps")?);
                row.p50_ms[i].push(result.f64("p50_ms")?);
                row.p99_ms[i].push(result.f64("p99_ms")?);
                row.errors += result.f64("errors")?;
                println!(
                    "{:>10} {:<7} {:>8.0} req/s  p50 {:.2} ms  p99 {:.2} ms",
                    mode.name(),
                    row.endpoint.path,
                    result.f64("rps")?,
                    result.f64("p50_ms")?,
                    result.f64("p99_ms")?
                );
            }
            server.stop();
        }
    }
    Ok(rows.into())
}

/// A uvicorn process, stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(bench: &Bench<'_>, mode: Mode) -> Result<Server> {
        let port = free_port()?;
        let mut cmd = bench.python(mode)?;
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
