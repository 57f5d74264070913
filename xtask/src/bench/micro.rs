//! The micro-scenarios of `benches/python/scenarios.py`: one process per (round, scenario,
//! loop, mode), the modes back to back, then overheads from the medians.

use super::{median, run_json, Bench, Mode, Versions};
use crate::{step, Result};

/// One scenario of `scenarios.py`, with its sizes and the targets.
#[derive(Debug)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    /// What one unit is, for the report.
    pub(crate) unit: &'static str,
    n: u64,
    n_smoke: u64,
    /// Target for our overhead, in ns per unit.
    pub(crate) target_ns: Option<f64>,
    /// Whether ours must cost at most `RATIO_TARGET` of the incumbent's overhead.
    pub(crate) ratio_target: bool,
}

/// Our overhead over the incumbent's, at most.
pub(crate) const RATIO_TARGET: f64 = 0.05;

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "call_soon",
        unit: "callback",
        n: 200_000,
        n_smoke: 2_000,
        target_ns: Some(150.0),
        ratio_target: true,
    },
    Scenario {
        name: "sleep0",
        unit: "task",
        n: 5_000,
        n_smoke: 300,
        target_ns: Some(400.0),
        ratio_target: true,
    },
    Scenario {
        name: "stat",
        unit: "task",
        n: 5_000,
        n_smoke: 300,
        target_ns: Some(2000.0),
        ratio_target: true,
    },
    Scenario {
        name: "read",
        unit: "task",
        n: 5_000,
        n_smoke: 300,
        target_ns: None,
        ratio_target: true,
    },
    Scenario {
        name: "http_handler",
        unit: "request",
        n: 2_000,
        n_smoke: 100,
        target_ns: None,
        ratio_target: true,
    },
    Scenario {
        name: "audit_off_handle",
        unit: "call",
        n: 1_000_000,
        n_smoke: 10_000,
        target_ns: Some(80.0),
        ratio_target: false,
    },
    Scenario {
        name: "stat_off_handle",
        unit: "call",
        n: 200_000,
        n_smoke: 2_000,
        target_ns: None,
        ratio_target: false,
    },
];

const LOOPS: [&str; 2] = ["asyncio", "uvloop"];

pub(crate) fn scenario(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.name == name)
}

pub(crate) fn names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|s| s.name).collect()
}

/// The measurements of one scenario on one loop: ns per unit, one sample per round and mode.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) scenario: &'static Scenario,
    pub(crate) loop_kind: &'static str,
    /// Indexed like `Mode::ALL`.
    pub(crate) samples: [Vec<f64>; 3],
}

impl Row {
    pub(crate) fn median(&self, mode: Mode) -> Option<f64> {
        median(&self.samples[mode as usize])
    }

    /// median(mode) - median(none), in ns per unit.
    pub(crate) fn overhead(&self, mode: Mode) -> Option<f64> {
        Some(self.median(mode)? - self.median(Mode::None)?)
    }

    /// Our overhead over the incumbent's.
    pub(crate) fn ratio(&self) -> Option<f64> {
        let incumbent = self.overhead(Mode::Incumbent)?;
        (incumbent > 0.0).then(|| self.overhead(Mode::Ours).map(|ours| ours / incumbent))?
    }

    /// Whether every target of the scenario is met (`None`: it has none, or no data).
    pub(crate) fn meets_targets(&self) -> Option<bool> {
        let ours = self.overhead(Mode::Ours)?;
        let ns = self.scenario.target_ns.map(|target| ours <= target);
        let ratio = if self.scenario.ratio_target {
            Some(self.ratio().is_some_and(|r| r <= RATIO_TARGET) || ours <= 0.0)
        } else {
            None
        };
        match (ns, ratio) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(true) && b.unwrap_or(true)),
        }
    }
}

/// Runs the selected scenarios, `options.rounds` rounds, modes alternating. `versions` gets
/// what the processes report (`<mode>.python`, `<mode>.uvloop`, `<mode>.aiocop`).
pub(crate) fn run(bench: &Bench<'_>, versions: &mut Versions) -> Result<Vec<Row>> {
    let options = bench.options;
    let mut rows: Vec<Row> = SCENARIOS
        .iter()
        .filter(|s| options.only.as_deref().is_none_or(|only| only == s.name))
        .flat_map(|scenario| {
            LOOPS.map(|loop_kind| Row {
                scenario,
                loop_kind,
                samples: Default::default(),
            })
        })
        .collect();
    for round in 1..=options.rounds {
        step(&format!(
            "scenarios, round {round}/{}: ns per unit, modes {}",
            options.rounds,
            Mode::ALL.map(Mode::name).join(" / ")
        ));
        for row in &mut rows {
            measure(bench, row, versions)?;
        }
    }
    Ok(rows)
}

/// One process per mode, back to back, each adding a sample to `row`.
fn measure(bench: &Bench<'_>, row: &mut Row, versions: &mut Versions) -> Result {
    let n = if bench.options.smoke {
        row.scenario.n_smoke
    } else {
        row.scenario.n
    };
    let repeat = if bench.options.smoke { "1" } else { "5" };
    let mut line = format!("{:>16} {:<8}", row.scenario.name, row.loop_kind);
    for mode in Mode::ALL {
        let mut cmd = bench.script(mode, "scenarios.py")?;
        cmd.args(["--scenario", row.scenario.name, "--loop", row.loop_kind])
            .args(["--mode", mode.name(), "--n", &n.to_string()])
            .args(["--repeat", repeat]);
        let result = run_json(&mut cmd)?;
        let ns = result.f64("ns_per_unit")?;
        row.samples[mode as usize].push(ns);
        versions.record(mode, &result);
        line.push_str(&format!(" {:>10.0}", ns));
    }
    println!("{line}");
    Ok(())
}
