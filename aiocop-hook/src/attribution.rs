//! A blocking event's attribution as Python data, set on a dict: `origin`, `distribution`,
//! `distribution_version` and `site_key`. One place for both dicts that carry it: a slow-task
//! event's `BlockingEventInfo` and the keyword arguments of a `BlockingCallError`.

use aiocop_events::BlockingEvent;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Sets `event`'s attribution on `dict`: who the call is attributed to (`origin`: a label of
/// [`aiocop_events::Origin`]), the installed distribution and its version (or None), and the
/// call site's key (or None without frames).
pub fn add_attribution(
    py: Python<'_>,
    dict: &Bound<'_, PyDict>,
    event: &BlockingEvent,
) -> PyResult<()> {
    let distribution = event.distribution();
    dict.set_item(pyo3::intern!(py, "origin"), event.origin().label())?;
    dict.set_item(
        pyo3::intern!(py, "distribution"),
        distribution.map(|d| d.name()),
    )?;
    dict.set_item(
        pyo3::intern!(py, "distribution_version"),
        distribution.map(|d| d.version()),
    )?;
    dict.set_item(pyo3::intern!(py, "site_key"), event.site_key())
}
