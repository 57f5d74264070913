//! `aiocop._aiocop`: the Python module. Argument checking and conversion only; the logic lives
//! in `aiocop-hook`, `aiocop-loop`, `aiocop-events` and `aiocop-severity`.

use aiocop_events::rules::AllowRule;
use aiocop_events::{Frame, RawArgs, RawRecord};
use aiocop_hook::{enforce, pylog, rules, PythonVersion};
use aiocop_loop::{config, dispatch, registry, sampler, Dispatch};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyTuple};

mod alloc;
mod redaction;
mod report;
mod validate;

/// mimalloc for the extension's Rust allocations (see `alloc`).
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator;

use validate::{
    boolean, callable, non_negative_ms, optional_ms, positive_int, positive_ms, switch_env,
    type_name,
};

/// Registers the native audit hook (once per process).
#[pyfunction]
fn start_blocking_io_detection(py: Python<'_>, trace_depth: &Bound<'_, PyAny>) -> PyResult<()> {
    let depth = positive_int(trace_depth, "trace_depth")?;
    let redact = switch_env("AIOCOP_REDACT")?;
    if aiocop_hook::is_installed() {
        pylog::warning(
            py,
            "start_blocking_io_detection called more than once, ignoring",
        );
        return Ok(());
    }
    // Shown arguments are redacted unless `AIOCOP_REDACT=0` says otherwise (or a redactor of
    // the user's replaces the built-in redaction).
    redaction::set_builtin(redact.unwrap_or(true));
    aiocop_hook::set_first_record_context(first_record_context);
    aiocop_hook::install(py, depth)?;
    Ok(())
}

fn first_record_context(py: Python<'_>) -> Option<Py<PyAny>> {
    registry::capture_context(py).map(Py::into_any)
}

/// Configures slow-task detection and wraps the running loop, if any.
#[pyfunction]
fn detect_slow_tasks(
    py: Python<'_>,
    threshold_ms: &Bound<'_, PyAny>,
    on_slow_task: &Bound<'_, PyAny>,
    cpu_sampling: &Bound<'_, PyAny>,
    dispatch: &Bound<'_, PyAny>,
    mode: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let threshold_ns = non_negative_ms(threshold_ms, "threshold_ms")?;
    let mode_value = parse_mode(mode, "mode")?;
    let on_slow_task = if on_slow_task.is_none() {
        None
    } else {
        Some(callable(on_slow_task, "on_slow_task")?)
    };
    let cpu_sampling = boolean(cpu_sampling, "cpu_sampling")?;
    let mut mode = match dispatch {
        value if value.is_none() => Dispatch::Background,
        value => {
            let text: String = value.extract().map_err(|_| {
                PyTypeError::new_err("dispatch must be a str: 'background' or 'inline'")
            })?;
            Dispatch::parse(&text).ok_or_else(|| {
                PyValueError::new_err(format!(
                    "dispatch must be 'background' or 'inline', got {text:?}"
                ))
            })?
        }
    };
    if let Ok(env) = std::env::var("AIOCOP_DISPATCH") {
        if !env.trim().is_empty() {
            match Dispatch::parse(&env) {
                Some(from_env) => mode = from_env,
                None => pylog::warning(
                    py,
                    &format!(
                        "AIOCOP_DISPATCH={env:?} is not 'background' or 'inline'; using {:?}",
                        mode.as_str()
                    ),
                ),
            }
        }
    }
    if !config::configure_detection(threshold_ns, mode) {
        pylog::warning(py, "detect_slow_tasks called more than once, ignoring");
        return Ok(());
    }
    if let Some(cb) = on_slow_task {
        registry::register_callback(py, cb);
    }
    enforce::set_default_mode(mode_value);
    if let Err(err) = aiocop_loop::gc_time::install(py) {
        pylog::warning(
            py,
            &format!("aiocop could not time garbage collections (gc_ms stays None): {err}"),
        );
    }
    ensure_loop_patched(py)?;
    if cpu_sampling && !sampler::is_started() {
        sampler::start(sampler::SamplerConfig::default());
        aiocop_hook::remote::settle_current(py);
    }
    Ok(())
}

fn ensure_loop_patched(py: Python<'_>) -> PyResult<bool> {
    if !config::is_detect_configured() {
        return Ok(false);
    }
    match aiocop_loop::running_loop(py) {
        Some(event_loop) => aiocop_loop::patch_loop(&event_loop),
        None => Ok(false),
    }
}

fn parse_mode(value: &Bound<'_, PyAny>, name: &str) -> PyResult<enforce::Mode> {
    let text: String = value
        .extract()
        .map_err(|_| PyTypeError::new_err(format!("{name} must be 'raise' or 'warn'")))?;
    enforce::Mode::parse(&text).ok_or_else(|| {
        PyValueError::new_err(format!("{name} must be 'raise' or 'warn', got {text:?}"))
    })
}

/// Sets the process-wide violation mode: `"raise"` or `"warn"`.
#[pyfunction]
fn set_mode(mode: &Bound<'_, PyAny>) -> PyResult<()> {
    enforce::set_default_mode(parse_mode(mode, "mode")?);
    Ok(())
}

/// The process-wide violation mode.
#[pyfunction]
fn get_mode() -> &'static str {
    enforce::default_mode().as_str()
}

/// Checks a mode argument (for the Python-side context managers).
#[pyfunction]
fn _check_mode(mode: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    parse_mode(mode, "mode").map(enforce::Mode::as_str)
}

/// Makes an allow rule from a spec string or from fields (`event`, `module`, `path`,
/// `function`, `distribution`, `frames`, `source`), not yet in force.
#[pyfunction]
#[pyo3(signature = (spec, fields))]
fn _make_rule(
    py: Python<'_>,
    spec: Option<&str>,
    fields: &Bound<'_, PyDict>,
) -> PyResult<Py<rules::PyAllowRule>> {
    let (rule, source) = rules::from_kwargs(spec, Some(fields))?;
    rules::make(py, rule, &source)
}

/// Puts a rule in force for every thread.
#[pyfunction]
fn _activate_rule(rule: &Bound<'_, rules::PyAllowRule>) {
    rules::activate(rule.get());
}

/// The rules of an `AIOCOP_ALLOW`-style list (specs separated by `;` or newlines), not in
/// force; the first malformed spec is a `ValueError` naming it.
#[pyfunction]
fn _parse_rule_list(
    py: Python<'_>,
    text: &str,
    source: &str,
) -> PyResult<Vec<Py<rules::PyAllowRule>>> {
    aiocop_events::rules::parse_rule_list(text)
        .map_err(|e| PyValueError::new_err(e.to_string()))?
        .into_iter()
        .map(|rule| rules::make(py, rule, source))
        .collect()
}

/// A scoped rule goes in force (`aiocop.allowing` entered).
#[pyfunction]
fn _enter_scoped_rule(rule: &Bound<'_, rules::PyAllowRule>) {
    rules::entered(rule.get());
}

/// Takes a rule (an `AllowRule` or a spec string) out of force; returns how many were removed.
#[pyfunction]
fn disallow(rule: &Bound<'_, PyAny>) -> PyResult<usize> {
    if let Ok(rule) = rule.cast::<rules::PyAllowRule>() {
        return Ok(rules::deactivate(&rule.get().entry().rule));
    }
    let spec: String = rule
        .extract()
        .map_err(|_| PyTypeError::new_err("rule must be an AllowRule or a spec string"))?;
    let parsed = AllowRule::parse(&spec).map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(rules::deactivate(&parsed))
}

/// The allow rules in force, in the order they were added.
#[pyfunction]
fn allow_rules(py: Python<'_>) -> PyResult<Vec<Py<rules::PyAllowRule>>> {
    rules::active(py)
}

/// Takes every allow rule out of force and forgets them.
#[pyfunction]
fn clear_allow_rules() {
    rules::clear();
}

/// The allow rules put in force so far (for every thread or scoped) that blocking calls were
/// checked against and that never matched one; each rule once.
#[pyfunction]
fn unused_allow_rules(py: Python<'_>) -> PyResult<Vec<Py<rules::PyAllowRule>>> {
    rules::unused(py)
}

/// The rule spec that would allow a reported blocking call: the `suggested_rule` of a
/// `BlockingEventInfo` dict (or of a `BlockingCallError`), `None` when the call had no frame to
/// pin a rule to. aiocop makes the suggestion when it records the call (the user's call site,
/// by module and function, or by path relative to the project root); it is never rebuilt from
/// the displayed text.
#[pyfunction]
fn suggest_allow_rule(info: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
    let key = pyo3::intern!(info.py(), "suggested_rule");
    let value = match info.cast::<PyDict>() {
        Ok(dict) => dict.get_item(key)?,
        Err(_) => info.getattr(key).ok(),
    };
    let Some(value) = value else {
        return Err(PyTypeError::new_err(format!(
            "info must be a blocking event reported by aiocop (a BlockingEventInfo dict with \
             'suggested_rule', or a BlockingCallError), got {}",
            info.get_type().name()?
        )));
    };
    if value.is_none() {
        return Ok(None);
    }
    value
        .extract::<String>()
        .map(Some)
        .map_err(|_| PyTypeError::new_err("info['suggested_rule'] must be a str or None"))
}

/// Sets the project's root directory, which suggested `path=` rules are relative to.
#[pyfunction]
fn _set_project_root(root: Option<&str>) {
    aiocop_events::rules::set_project_root(root);
}

/// Tells aiocop where its own Python package lives (its frames are not the user's code).
#[pyfunction]
fn _set_own_package_dir(dir: &str) {
    aiocop_hook::stack::set_own_package_dir(dir);
}

#[pyfunction]
fn _hook_installed() -> bool {
    aiocop_hook::is_installed()
}

#[pyfunction]
fn _set_enforcement(
    at_call_var: &Bound<'_, PyAny>,
    mode_var: &Bound<'_, PyAny>,
    scoped_rules_var: &Bound<'_, PyAny>,
    blocking_call_error: &Bound<'_, PyAny>,
) {
    enforce::set_python_objects(
        at_call_var.clone().unbind(),
        mode_var.clone().unbind(),
        scoped_rules_var.clone().unbind(),
        blocking_call_error.clone().unbind(),
    );
}

/// Starts the CPU stack-sampling watchdog.
#[pyfunction]
fn start_cpu_sampling(
    py: Python<'_>,
    interval_ms: &Bound<'_, PyAny>,
    arm_after_ms: &Bound<'_, PyAny>,
    idle_interval_ms: &Bound<'_, PyAny>,
    max_samples_per_slice: &Bound<'_, PyAny>,
    trace_depth: &Bound<'_, PyAny>,
    native_frames: &Bound<'_, PyAny>,
) -> PyResult<()> {
    if !native_frames.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "native_frames must be a bool, got {}",
            type_name(native_frames)
        )));
    }
    let config = sampler::SamplerConfig {
        interval_ns: positive_ms(interval_ms, "interval_ms")?,
        arm_after_ns: optional_ms(arm_after_ms, "arm_after_ms", true)?,
        idle_interval_ns: optional_ms(idle_interval_ms, "idle_interval_ms", false)?,
        max_samples_per_slice: positive_int(max_samples_per_slice, "max_samples_per_slice")?,
        trace_depth: positive_int(trace_depth, "trace_depth")?,
    };
    if !sampler::start(config) {
        pylog::warning(py, "start_cpu_sampling called more than once, ignoring");
    } else if native_frames.is_truthy()? {
        aiocop_hook::remote::want_native_frames(py);
    }
    aiocop_hook::remote::settle_current(py);
    Ok(())
}

/// Starts reporting handles that run longer than `after_ms` while they still run.
#[pyfunction]
fn detect_stuck_loops(
    py: Python<'_>,
    after_ms: &Bound<'_, PyAny>,
    on_stuck_loop: &Bound<'_, PyAny>,
    report_path: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let after_ns = positive_ms(after_ms, "after_ms")?;
    let callbacks = if on_stuck_loop.is_none() {
        Vec::new()
    } else {
        vec![callable(on_stuck_loop, "on_stuck_loop")?.clone().unbind()]
    };
    let report_path = if report_path.is_none() {
        None
    } else {
        let path = py
            .import("os")?
            .call_method1("fspath", (report_path,))
            .and_then(|p| p.extract::<std::path::PathBuf>())
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "report_path must be a str or os.PathLike, got {}",
                    type_name(report_path)
                ))
            })?;
        Some(path)
    };
    let settings = aiocop_loop::stuck::StuckSettings {
        after_ns,
        callbacks,
        report_path,
    };
    match aiocop_loop::stuck::start(py, settings) {
        Ok(()) => {}
        Err(aiocop_loop::stuck::StartError::AlreadyOn) => {
            pylog::warning(py, "detect_stuck_loops called more than once, ignoring");
            return Ok(());
        }
        Err(aiocop_loop::stuck::StartError::ReportPath(why)) => {
            return Err(PyValueError::new_err(format!(
                "report_path cannot be opened for appending: {why}"
            )));
        }
    }
    sampler::ensure_watchdog();
    aiocop_hook::remote::settle_current(py);
    ensure_loop_patched(py)?;
    Ok(())
}

/// Stops stuck-loop detection (reports already made are still delivered).
#[pyfunction]
fn stop_detecting_stuck_loops() {
    aiocop_loop::stuck::stop();
}

#[pyfunction]
fn is_cpu_sampling_started() -> bool {
    sampler::is_started()
}

/// Turns monitoring on; inside a running loop, also wraps that loop.
#[pyfunction]
fn activate(py: Python<'_>) -> PyResult<()> {
    if !aiocop_events::dist::distributions_known() {
        // Once per process, when no hook install read them first (attribution of events).
        py.import("aiocop._distributions")?.call_method0("load")?;
    }
    config::set_active(true);
    ensure_loop_patched(py)?;
    Ok(())
}

/// Turns monitoring off; the events still pending for this thread's loops are delivered now.
#[pyfunction]
fn deactivate(py: Python<'_>) {
    config::set_active(false);
    dispatch::flush(py, None);
}

#[pyfunction]
fn is_monitoring_active() -> bool {
    config::is_active()
}

#[pyfunction]
fn register_slow_task_callback(py: Python<'_>, callback: &Bound<'_, PyAny>) -> PyResult<()> {
    registry::register_callback(py, callable(callback, "callback")?);
    Ok(())
}

#[pyfunction]
fn unregister_slow_task_callback(py: Python<'_>, callback: &Bound<'_, PyAny>) {
    registry::unregister_callback(py, callback);
}

#[pyfunction]
fn clear_slow_task_callbacks() {
    registry::clear_callbacks();
}

#[pyfunction]
fn register_context_provider(py: Python<'_>, provider: &Bound<'_, PyAny>) -> PyResult<()> {
    registry::register_provider(py, callable(provider, "provider")?);
    Ok(())
}

#[pyfunction]
fn unregister_context_provider(py: Python<'_>, provider: &Bound<'_, PyAny>) {
    registry::unregister_provider(py, provider);
}

#[pyfunction]
fn clear_context_providers() {
    registry::clear_providers();
}

/// Forgets the blocking records taken so far by the current handle on this thread.
#[pyfunction]
fn reset_blocking_events() {
    aiocop_hook::reset_records();
}

/// Whether `detect_slow_tasks()` has configured detection (its threshold is in force).
#[pyfunction]
fn _detection_configured() -> bool {
    config::is_detect_configured()
}

#[pyfunction]
fn get_slow_task_threshold_ms() -> f64 {
    config::threshold_ns() as f64 / 1e6
}

#[pyfunction]
fn get_blocking_events_dict(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    for (name, weight) in
        aiocop_severity::blocking_events(aiocop_hook::CurrentPython::MINOR_VERSION)
    {
        dict.set_item(name, weight)?;
    }
    Ok(dict)
}

/// The events whose wrappers `patch_audit_functions()` installs on this Python, in order.
#[pyfunction]
fn _wrapped_events(py: Python<'_>) -> PyResult<Bound<'_, PyList>> {
    let names: Vec<&str> =
        aiocop_severity::wrapped_events_for(aiocop_hook::CurrentPython::MINOR_VERSION)
            .map(|spec| spec.name)
            .collect();
    PyList::new(py, names)
}

fn frames_from(raw_stack: &Bound<'_, PyAny>) -> PyResult<Vec<Frame>> {
    let mut frames = Vec::new();
    for item in raw_stack.try_iter()? {
        let (filename, line, function): (String, i32, String) = item?.extract().map_err(|_| {
            PyTypeError::new_err("raw_stack must hold (filename, lineno, function) tuples")
        })?;
        frames.push(Frame::new(filename, line, function));
    }
    Ok(frames)
}

fn weight_from(value: Option<Bound<'_, PyAny>>) -> PyResult<Option<u32>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => v
            .extract::<u32>()
            .map(Some)
            .map_err(|_| PyTypeError::new_err("severity must be a non-negative int or None")),
    }
}

/// Formats a `RawBlockingEvent` dict into a `BlockingEventInfo` dict.
#[pyfunction]
fn format_blocking_event<'py>(
    py: Python<'py>,
    raw_event: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let get = |key: &str| -> PyResult<Bound<'py, PyAny>> {
        raw_event.get_item(key).map_err(|_| {
            PyTypeError::new_err(format!(
                "raw_event must be a RawBlockingEvent dict with {key:?}"
            ))
        })
    };
    let event_name: String = get("event_name")?.extract()?;
    let raw_args = get("raw_args")?;
    let args = if raw_args.is_instance_of::<pyo3::types::PyTuple>() {
        aiocop_hook::args::resolve_args(&raw_args)
    } else {
        RawArgs::Unformattable
    };
    let record = RawRecord {
        event_name: event_name.into(),
        args,
        stack: aiocop_events::Stack::shared(frames_from(&get("raw_stack")?)?),
        timestamp: raw_event
            .get_item("timestamp")
            .ok()
            .and_then(|t| t.extract().ok())
            .unwrap_or(0.0),
        weight: weight_from(raw_event.get_item("severity").ok())?,
    };
    let info = aiocop_events::format_record(&record);
    let dict = PyDict::new(py);
    dict.set_item("event", &info.event)?;
    dict.set_item("trace", info.trace())?;
    dict.set_item("entry_point", info.entry_point())?;
    dict.set_item("severity", info.severity)?;
    dict.set_item("event_name", &*info.name)?;
    dict.set_item("site", info.site())?;
    dict.set_item("user_trace", info.user_trace())?;
    dict.set_item("suggested_rule", info.suggested_rule())?;
    dict.set_item("origin", info.origin().label())?;
    dict.set_item("distribution", info.distribution().map(|d| d.name()))?;
    dict.set_item(
        "distribution_version",
        info.distribution().map(|d| d.version()),
    )?;
    dict.set_item("site_key", info.site_key())?;
    Ok(dict)
}

/// Sum of the events' `severity` (a missing or None severity counts 10). `None` scores 0, as
/// in aiocop 1.2.1 (whose signature takes `list | None`); anything but a list of event dicts
/// is a `TypeError` naming the argument.
#[pyfunction]
fn calculate_io_severity_score(blocking_events: &Bound<'_, PyAny>) -> PyResult<u32> {
    if blocking_events.is_none() {
        return Ok(0);
    }
    let not_a_list = |got: String| {
        PyTypeError::new_err(format!(
            "blocking_events must be a list of BlockingEventInfo dicts, got {got}"
        ))
    };
    if blocking_events.is_instance_of::<pyo3::types::PyString>()
        || blocking_events.is_instance_of::<PyDict>()
    {
        return Err(not_a_list(type_name(blocking_events)));
    }
    let mut weights = Vec::new();
    let items = blocking_events
        .try_iter()
        .map_err(|_| not_a_list(type_name(blocking_events)))?;
    for event in items {
        let event = event?;
        let severity = event
            .call_method1("get", ("severity",))
            .map_err(|_| not_a_list(format!("an item of type {}", type_name(&event))))?;
        weights.push(weight_from(Some(severity))?);
    }
    Ok(aiocop_severity::score(weights))
}

/// The level of a score (an int or a float, read as a float): `"high"`, `"medium"` or `"low"`.
#[pyfunction]
fn get_severity_level_from_score(score: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    if score.is_instance_of::<PyBool>()
        || !(score.is_instance_of::<PyInt>() || score.is_instance_of::<PyFloat>())
    {
        return Err(PyTypeError::new_err("score must be a number"));
    }
    let value: f64 = score.extract()?;
    Ok(aiocop_severity::level_from_score_f64(value).as_str())
}

/// The name of a weight's class: `"heavy"`, `"moderate"`, `"light"` or `"trivial"`. An int or
/// float weight is saturated into aiocop-severity's `u32` range (negative and NaN: 0); a float is
/// truncated, which keeps its label, the classes starting at whole numbers.
#[pyfunction]
fn weight_label(weight: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    let weight = if weight.is_instance_of::<PyInt>() {
        match weight.extract::<u32>() {
            Ok(w) => w,
            Err(_) if weight.lt(0)? => 0,
            Err(_) => u32::MAX,
        }
    } else if weight.is_instance_of::<PyFloat>() {
        // `as` saturates, and NaN becomes 0.
        weight.extract::<f64>()? as u32
    } else {
        return Err(PyTypeError::new_err(format!(
            "weight must be a number (int or float), got {}",
            type_name(weight)
        )));
    };
    Ok(aiocop_severity::weight_label(weight))
}

/// Delivers every pending event now, on the calling thread: those of the running loop, or,
/// outside a loop, of every monitored loop of this thread.
#[pyfunction]
fn flush(py: Python<'_>) {
    aiocop_loop::flush_here(py);
}

/// Counters: events dropped because a bounded queue was full, events that could be
/// neither delivered nor logged, blocking records dropped because a handle already had 50,
/// slices lost with a background thread that died or stalled (`lost_events`) and such threads
/// given up (`dispatch_thread_failures`), and deliveries scheduled by the loop thread itself
/// (`deliveries_picked_up`) or by the background thread for an idle loop (`deliveries_woken`);
/// the delivery mode, the clock that times handles (`"tsc"` or `"monotonic"`), and whether the
/// CPU sampler reads stacks without the GIL (`gil_free_sampling`: `None` until decided) and
/// puts native frames under them (`native_frames`: `None` unless asked for).
#[pyfunction]
fn stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let dict = PyDict::new(py);
    dispatch::add_counters(&dict)?;
    dict.set_item("dropped_records", aiocop_hook::dropped_records())?;
    dict.set_item(
        "stuck_loop_reports",
        aiocop_loop::stuck::stuck_loop_reports(),
    )?;
    dict.set_item("dispatch", config::dispatch().as_str())?;
    dict.set_item("clock", aiocop_clock::source().as_str())?;
    dict.set_item(
        "gil_free_sampling",
        aiocop_hook::remote::gil_free_sampling(),
    )?;
    dict.set_item("native_frames", aiocop_hook::native::state())?;
    Ok(dict)
}

/// Called before the Python side first sets an enforcement context variable (until then the
/// audit hook does not read them).
#[pyfunction]
fn _enforcement_in_use() {
    aiocop_hook::enforce::mark_in_use();
}

/// Whether the current thread is inside a monitored handle.
#[pyfunction]
fn _in_handle() -> bool {
    aiocop_hook::in_handle()
}

/// Wraps `original` so that, inside a monitored handle, calling it raises the audit event
/// `event` (with `(args, kwargs)`) first; `is_socket`: skip non-blocking sockets.
#[pyfunction]
fn _audited<'py>(
    original: &Bound<'py, PyAny>,
    event: &str,
    is_socket: bool,
) -> PyResult<Bound<'py, PyAny>> {
    aiocop_hook::audited(original, event, is_socket)
}

#[pyfunction]
fn _set_python_types(
    high_severity_exception: &Bound<'_, pyo3::types::PyType>,
    raise_var: &Bound<'_, PyAny>,
) {
    registry::set_python_types(registry::PythonTypes {
        high_severity_exception: high_severity_exception.clone().into_any().unbind(),
    });
    aiocop_hook::set_raise_var(raise_var.clone().unbind());
}

/// Hands over the installed distributions, read once from `importlib.metadata`: `(path, name,
/// version)` triples, each path a directory holding the distribution's Python files or a
/// single-file module. A code object's distribution is looked up in Rust when its facts are
/// first resolved, and cached with them.
#[pyfunction]
fn _set_distributions(entries: Vec<(String, String, String)>) -> usize {
    let mut map = aiocop_events::dist::DistributionMap::default();
    let mut current: Option<std::sync::Arc<aiocop_events::dist::Distribution>> = None;
    for (path, name, version) in &entries {
        let dist = match &current {
            Some(dist) if dist.name() == name && dist.version() == version => dist.clone(),
            _ => aiocop_events::dist::Distribution::new(name, version),
        };
        map.insert(path, &dist);
        current = Some(dist);
    }
    let known = map.len();
    aiocop_events::dist::set_distributions(map);
    known
}

/// What a baseline accepts at the call: every site (`accept_all`, a baseline being written),
/// else the `(event name, site key)` pairs of `sites` (the pytest plugin's baseline).
#[pyfunction]
fn _set_baseline_sites(accept_all: bool, sites: Vec<(String, String)>) {
    enforce::set_accepted_sites(accept_all, sites);
}

/// Whether the installed distributions have been handed over.
#[pyfunction]
fn _distributions_known() -> bool {
    aiocop_events::dist::distributions_known()
}

#[pyfunction]
fn _after_fork_child(py: Python<'_>) {
    dispatch::after_fork_child();
    aiocop_aggregate::after_fork_child();
    // Before the watchdog starts again: it reads the stuck-loop detection's slot.
    aiocop_loop::stuck::after_fork_child(py);
    sampler::after_fork_child();
}

/// At interpreter exit: pending events are delivered (or logged), then deliveries stop.
#[pyfunction]
fn _shutdown(py: Python<'_>) {
    dispatch::deliver_at_exit(py);
    dispatch::shutdown();
    aiocop_hook::pylog::stop_forwarding();
}

#[pymodule]
fn _aiocop(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The clock is chosen and calibrated here, on the importing thread (with the GIL, which
    // `os.fork()` needs too), before any thread of aiocop's runs: no fork comes in the middle.
    aiocop_clock::now_ns();
    // Diagnostics of aiocop's threads that cannot take the GIL reach the `aiocop` logger.
    aiocop_hook::pylog::forward_rust_diagnostics();
    aiocop_loop::init(m.py())?;
    m.add_function(wrap_pyfunction!(start_blocking_io_detection, m)?)?;
    m.add_function(wrap_pyfunction!(detect_slow_tasks, m)?)?;
    m.add_function(wrap_pyfunction!(start_cpu_sampling, m)?)?;
    m.add_function(wrap_pyfunction!(is_cpu_sampling_started, m)?)?;
    m.add_function(wrap_pyfunction!(detect_stuck_loops, m)?)?;
    m.add_function(wrap_pyfunction!(stop_detecting_stuck_loops, m)?)?;
    m.add_function(wrap_pyfunction!(activate, m)?)?;
    m.add_function(wrap_pyfunction!(deactivate, m)?)?;
    m.add_function(wrap_pyfunction!(is_monitoring_active, m)?)?;
    m.add_function(wrap_pyfunction!(register_slow_task_callback, m)?)?;
    m.add_function(wrap_pyfunction!(unregister_slow_task_callback, m)?)?;
    m.add_function(wrap_pyfunction!(clear_slow_task_callbacks, m)?)?;
    m.add_function(wrap_pyfunction!(register_context_provider, m)?)?;
    m.add_function(wrap_pyfunction!(unregister_context_provider, m)?)?;
    m.add_function(wrap_pyfunction!(clear_context_providers, m)?)?;
    m.add_function(wrap_pyfunction!(reset_blocking_events, m)?)?;
    m.add_function(wrap_pyfunction!(get_slow_task_threshold_ms, m)?)?;
    m.add_function(wrap_pyfunction!(_detection_configured, m)?)?;
    m.add_function(wrap_pyfunction!(get_blocking_events_dict, m)?)?;
    m.add_function(wrap_pyfunction!(format_blocking_event, m)?)?;
    m.add_function(wrap_pyfunction!(_set_distributions, m)?)?;
    m.add_function(wrap_pyfunction!(_distributions_known, m)?)?;
    m.add_function(wrap_pyfunction!(_set_baseline_sites, m)?)?;
    m.add_function(wrap_pyfunction!(calculate_io_severity_score, m)?)?;
    m.add_function(wrap_pyfunction!(get_severity_level_from_score, m)?)?;
    m.add_function(wrap_pyfunction!(weight_label, m)?)?;
    m.add_function(wrap_pyfunction!(flush, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    m.add_function(wrap_pyfunction!(_wrapped_events, m)?)?;
    m.add_function(wrap_pyfunction!(_in_handle, m)?)?;
    m.add_function(wrap_pyfunction!(_enforcement_in_use, m)?)?;
    m.add_function(wrap_pyfunction!(_audited, m)?)?;
    m.add_function(wrap_pyfunction!(_set_python_types, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_child, m)?)?;
    m.add_function(wrap_pyfunction!(_shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(set_mode, m)?)?;
    m.add_function(wrap_pyfunction!(get_mode, m)?)?;
    m.add_function(wrap_pyfunction!(_check_mode, m)?)?;
    m.add_function(wrap_pyfunction!(_make_rule, m)?)?;
    m.add_function(wrap_pyfunction!(_activate_rule, m)?)?;
    m.add_function(wrap_pyfunction!(_enter_scoped_rule, m)?)?;
    m.add_function(wrap_pyfunction!(_parse_rule_list, m)?)?;
    m.add_function(wrap_pyfunction!(disallow, m)?)?;
    m.add_function(wrap_pyfunction!(allow_rules, m)?)?;
    m.add_function(wrap_pyfunction!(clear_allow_rules, m)?)?;
    m.add_function(wrap_pyfunction!(unused_allow_rules, m)?)?;
    m.add_function(wrap_pyfunction!(suggest_allow_rule, m)?)?;
    m.add_function(wrap_pyfunction!(_set_project_root, m)?)?;
    m.add_function(wrap_pyfunction!(_set_own_package_dir, m)?)?;
    m.add_function(wrap_pyfunction!(_set_enforcement, m)?)?;
    m.add_function(wrap_pyfunction!(_hook_installed, m)?)?;
    report::add_to(m)?;
    m.add_function(wrap_pyfunction!(redaction::set_redactor, m)?)?;
    m.add_class::<rules::PyAllowRule>()?;
    m.add_class::<aiocop_loop::SlowTaskEvent>()?;
    m.add_class::<aiocop_loop::stuck::StuckLoopEvent>()?;
    m.add_class::<aiocop_loop::stuck::StuckFrame>()?;
    m.add_class::<aiocop_loop::LoopPatch>()?;
    m.add_class::<aiocop_loop::TrioSteps>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // aiocop-severity's weights and thresholds: the Python package's constants are these.
    m.add("WEIGHT_HEAVY", aiocop_severity::WEIGHT_HEAVY)?;
    m.add(
        "BLOCKING_EVENT_FIELDS",
        PyTuple::new(m.py(), aiocop_events::BLOCKING_EVENT_FIELDS)?,
    )?;
    m.add("WEIGHT_MODERATE", aiocop_severity::WEIGHT_MODERATE)?;
    m.add("WEIGHT_LIGHT", aiocop_severity::WEIGHT_LIGHT)?;
    m.add("WEIGHT_TRIVIAL", aiocop_severity::WEIGHT_TRIVIAL)?;
    m.add("DEFAULT_WEIGHT", aiocop_severity::DEFAULT_WEIGHT)?;
    m.add("THRESHOLD_HIGH", aiocop_severity::THRESHOLD_HIGH)?;
    m.add("THRESHOLD_MEDIUM", aiocop_severity::THRESHOLD_MEDIUM)?;
    m.add("THRESHOLD_LOW", aiocop_severity::THRESHOLD_LOW)?;
    m.add(
        "NATIVE_TIME_SLEEP_EVENT",
        aiocop_hook::CurrentPython::NATIVE_TIME_SLEEP_EVENT,
    )?;
    Ok(())
}
