//! The per-call-site totals (`aiocop-aggregate`) as Python data, for `aiocop.report()` and the
//! exporters: plain tuples and numbers, the Python package makes its typed objects of them.

use aiocop_aggregate::{SiteStats, BOUNDS_SECONDS};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

/// `(site, event, count, total_ns, max_ns, p50_ns, p99_ns)`.
fn site_tuple<'py>(py: Python<'py>, site: &SiteStats) -> PyResult<Bound<'py, PyTuple>> {
    let histogram = &site.totals.histogram;
    (
        site.site.as_str(),
        site.event.as_str(),
        site.totals.count,
        site.totals.total_ns,
        histogram.quantile_ns(1.0),
        histogram.quantile_ns(0.5),
        histogram.quantile_ns(0.99),
    )
        .into_pyobject(py)
}

/// Every thread's totals merged: `sites` (tuples, longest total first, at most `top`),
/// `other`, `slow_tasks` (`(level, reason, count)` for all six), `durations` (`bounds` in
/// seconds, per-bucket `counts` with the unbounded bucket last, `sum_ns`), `dropped` (events
/// dropped because a bounded queue was full).
#[pyfunction]
#[pyo3(signature = (top=None))]
pub(crate) fn _report_snapshot(py: Python<'_>, top: Option<usize>) -> PyResult<Bound<'_, PyDict>> {
    let snapshot = py.detach(aiocop_aggregate::snapshot);
    let dict = PyDict::new(py);
    let shown = top.unwrap_or(usize::MAX);
    let sites = snapshot
        .sites
        .iter()
        .take(shown)
        .map(|site| site_tuple(py, site))
        .collect::<PyResult<Vec<_>>>()?;
    dict.set_item("sites", sites)?;
    dict.set_item("site_count", snapshot.sites.len())?;
    let other = snapshot
        .other
        .as_ref()
        .map(|site| site_tuple(py, site))
        .transpose()?;
    dict.set_item("other", other)?;
    let slow_tasks: Vec<(&str, &str, u64)> = snapshot
        .slow_tasks
        .iter()
        .map(|c| (c.level.as_str(), c.reason.as_str(), c.count))
        .collect();
    dict.set_item("slow_tasks", slow_tasks)?;
    let durations = PyDict::new(py);
    durations.set_item("bounds", BOUNDS_SECONDS.to_vec())?;
    durations.set_item("counts", snapshot.durations.counts().to_vec())?;
    durations.set_item("sum_ns", snapshot.durations.sum_ns())?;
    dict.set_item("durations", durations)?;
    dict.set_item("dropped", aiocop_loop::dispatch::dropped_events())?;
    Ok(dict)
}

/// Forgets every per-call-site total.
#[pyfunction]
pub(crate) fn reset_report(py: Python<'_>) {
    py.detach(aiocop_aggregate::reset);
}

/// Sets the bound on the call sites kept (per loop thread) and reported; calls at further
/// sites count in one `other` row. Returns the previous bound.
#[pyfunction]
pub(crate) fn _set_report_max_sites(max_sites: usize) -> PyResult<usize> {
    if max_sites == 0 {
        return Err(PyValueError::new_err("max_sites must be at least 1, got 0"));
    }
    let previous = aiocop_aggregate::max_sites();
    aiocop_aggregate::set_max_sites(max_sites);
    Ok(previous)
}

/// The bound on the call sites kept and reported.
#[pyfunction]
pub(crate) fn _report_max_sites() -> usize {
    aiocop_aggregate::max_sites()
}

/// Adds the report's functions to the module.
pub(crate) fn add_to(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_report_snapshot, m)?)?;
    m.add_function(wrap_pyfunction!(reset_report, m)?)?;
    m.add_function(wrap_pyfunction!(_set_report_max_sites, m)?)?;
    m.add_function(wrap_pyfunction!(_report_max_sites, m)?)?;
    m.add_function(wrap_pyfunction!(_flamegraph_svg, m)?)?;
    Ok(())
}

/// A flamegraph (SVG) of blocking time by stack: each site's stack, outermost frame at the
/// bottom, its audit event on top, as wide as the summed durations of the handles it blocked.
/// Drawn by `inferno` from [`aiocop_aggregate::folded_stacks`].
#[pyfunction]
pub(crate) fn _flamegraph_svg(py: Python<'_>, title: &str) -> PyResult<String> {
    let lines = py.detach(aiocop_aggregate::folded_stacks);
    let mut options = inferno::flamegraph::Options::default();
    options.title = format!("aiocop: blocking time by stack — {title}");
    options.count_name = "µs".to_owned();
    options.hash = true;
    let mut svg = Vec::new();
    if lines.is_empty() {
        // inferno draws an error message for no input: say what it means instead.
        options.subtitle = Some("no blocking calls were recorded".to_owned());
        inferno::flamegraph::from_lines(&mut options, ["(no blocking calls) 1"], &mut svg)
    } else {
        inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut svg)
    }
    .map_err(|err| PyValueError::new_err(format!("flamegraph: {err}")))?;
    String::from_utf8(svg).map_err(|err| PyValueError::new_err(format!("flamegraph: {err}")))
}
