//! The allow-rule registry: the rules in force for every thread, the scoped ones (a context
//! variable holding a tuple of rules, set by `aiocop.allowing(...)`), hit counts, and the
//! `AllowRule` Python type.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use aiocop_events::rules::{AllowRule, Candidate, FrameFacts, FrameScope, RuleFields, RULE_KEYS};
use aiocop_events::Frame;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::PyDict;

/// A rule with where it came from and how often it matched.
#[derive(Debug)]
pub struct RuleEntry {
    /// The rule.
    pub rule: AllowRule,
    /// Where it came from: "api", "env", "pyproject", "marker", ...
    pub source: String,
    hits: AtomicU64,
    /// Blocking calls checked while the rule was in force in their context (scoped).
    scoped_checks: AtomicU64,
    /// [`CHECKS`] when the rule was put in force for every thread; `u64::MAX`: never.
    active_since: AtomicU64,
}

/// Blocking calls checked against the rules in force for every thread, since the process
/// started (each call once, whichever rule matched it).
static CHECKS: AtomicU64 = AtomicU64::new(0);

impl RuleEntry {
    fn new(rule: AllowRule, source: &str) -> Self {
        Self {
            rule,
            source: source.to_owned(),
            hits: AtomicU64::new(0),
            scoped_checks: AtomicU64::new(0),
            active_since: AtomicU64::new(u64::MAX),
        }
    }

    /// How many blocking calls the rule allowed.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// How many blocking calls were checked while the rule was in force (whether it or an
    /// earlier rule matched them, or none did).
    pub fn checked(&self) -> u64 {
        let since = self.active_since.load(Ordering::Relaxed);
        let active = if since == u64::MAX {
            0
        } else {
            CHECKS.load(Ordering::Relaxed).saturating_sub(since)
        };
        self.scoped_checks.load(Ordering::Relaxed) + active
    }
}

/// `aiocop.AllowRule`: an allow rule (see `aiocop.allow`).
#[pyclass(frozen, module = "aiocop", name = "AllowRule")]
#[derive(Debug)]
pub struct PyAllowRule {
    entry: Arc<RuleEntry>,
}

impl PyAllowRule {
    /// The shared entry.
    pub fn entry(&self) -> &Arc<RuleEntry> {
        &self.entry
    }
}

/// The keyword fields of a rule (`AllowRule(...)`, `aiocop.allow(...)`): a spec's keys
/// ([`RULE_KEYS`], in their order), then `source`.
fn field_keys() -> impl Iterator<Item = &'static str> {
    RULE_KEYS.iter().copied().chain(["source"])
}

/// A rule from a spec string or from fields (not both); `frames="any"` given with a spec
/// string applies to it (as `,frames=any` in the spec would). A malformed rule is a
/// `ValueError` naming it (and, for a bad specifier, `distribution`).
pub fn build(spec: Option<&str>, fields: &RuleFields<'_>) -> PyResult<AllowRule> {
    let any_field = fields.event.is_some()
        || fields.module.is_some()
        || fields.path.is_some()
        || fields.function.is_some()
        || fields.distribution.is_some();
    match spec {
        Some(spec) if any_field => Err(PyValueError::new_err(format!(
            "malformed allow rule {spec:?}: give a spec string or fields, not both"
        ))),
        Some(spec) => AllowRule::parse(spec)
            .and_then(|rule| match fields.frames {
                FrameScope::Any if rule.frames() == FrameScope::First => {
                    let distribution = rule.distribution().map(ToString::to_string);
                    AllowRule::from_rule_fields(&RuleFields {
                        event: rule.event().map(|g| g.as_str()),
                        module: rule.module().map(|g| g.as_str()),
                        path: rule.path().map(|g| g.as_str()),
                        function: rule.function().map(|g| g.as_str()),
                        distribution: distribution.as_deref(),
                        frames: FrameScope::Any,
                    })
                }
                _ => Ok(rule),
            })
            .map_err(|e| PyValueError::new_err(e.to_string())),
        None => {
            AllowRule::from_rule_fields(fields).map_err(|e| PyValueError::new_err(e.to_string()))
        }
    }
}

/// A rule and its source from keyword fields (`event`, `module`, `path`, `function`,
/// `distribution`: a str or None; `frames`: "first" or "any"; `source`: a str): a wrong key or
/// type is a `TypeError` naming it, a bad `frames` a `ValueError`.
pub fn from_kwargs(
    spec: Option<&str>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<(AllowRule, String)> {
    let mut values: [Option<String>; RULE_KEYS.len() + 1] = Default::default();
    if let Some(kwargs) = kwargs {
        for (key, value) in kwargs.iter() {
            let key: String = key.extract()?;
            let Some(slot) = field_keys().position(|k| k == key) else {
                return Err(PyTypeError::new_err(format!(
                    "AllowRule got an unexpected keyword argument {key:?} (expected some of {})",
                    field_keys().collect::<Vec<_>>().join(", ")
                )));
            };
            if value.is_none() && slot < 5 {
                continue;
            }
            let text: String = value.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{key} must be a string, got {}",
                    value
                        .get_type()
                        .name()
                        .map_or_else(|_| "?".into(), |n| n.to_string())
                ))
            })?;
            values[slot] = Some(text);
        }
    }
    let frames = match values[5].as_deref().unwrap_or("first") {
        "first" => FrameScope::First,
        "any" => FrameScope::Any,
        other => {
            return Err(PyValueError::new_err(format!(
                "frames must be 'first' or 'any', got {other:?}"
            )))
        }
    };
    let rule = build(
        spec,
        &RuleFields {
            event: values[0].as_deref(),
            module: values[1].as_deref(),
            path: values[2].as_deref(),
            function: values[3].as_deref(),
            distribution: values[4].as_deref(),
            frames,
        },
    )?;
    let source = values[6].take().unwrap_or_else(|| "api".to_owned());
    Ok((rule, source))
}

#[pymethods]
impl PyAllowRule {
    /// `AllowRule("event=open,module=app.*")` or `AllowRule(event=..., module=..., path=...,
    /// function=..., distribution="botocore<2", frames="first", source="api")`: a rule, not in
    /// force (see `aiocop.allow`).
    #[new]
    #[pyo3(signature = (spec = None, **fields))]
    fn py_new(spec: Option<&str>, fields: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        let (rule, source) = from_kwargs(spec, fields)?;
        Ok(PyAllowRule {
            entry: Arc::new(RuleEntry::new(rule, &source)),
        })
    }

    /// The rule as a spec string (`event=open,module=app.*`).
    #[getter]
    fn spec(&self) -> &str {
        self.entry.rule.spec()
    }

    /// Where the rule came from.
    #[getter]
    fn source(&self) -> &str {
        &self.entry.source
    }

    /// How many blocking calls the rule allowed so far.
    #[getter]
    fn hits(&self) -> u64 {
        self.entry.hits()
    }

    /// How many blocking calls were checked against the rule while it was in force (a rule
    /// that was checked and never matched is unused).
    #[getter]
    fn checked(&self) -> u64 {
        self.entry.checked()
    }

    #[getter]
    fn event(&self) -> Option<&str> {
        self.entry.rule.event().map(|g| g.as_str())
    }

    #[getter]
    fn module(&self) -> Option<&str> {
        self.entry.rule.module().map(|g| g.as_str())
    }

    #[getter]
    fn path(&self) -> Option<&str> {
        self.entry.rule.path().map(|g| g.as_str())
    }

    #[getter]
    fn function(&self) -> Option<&str> {
        self.entry.rule.function().map(|g| g.as_str())
    }

    /// The distribution with its PEP 440 specifier set (`botocore<2`), if any.
    #[getter]
    fn distribution(&self) -> Option<String> {
        self.entry.rule.distribution().map(ToString::to_string)
    }

    /// `"first"` or `"any"`.
    #[getter]
    fn frames(&self) -> &'static str {
        match self.entry.rule.frames() {
            FrameScope::First => "first",
            FrameScope::Any => "any",
        }
    }

    fn __str__(&self) -> &str {
        self.entry.rule.spec()
    }

    fn __repr__(&self) -> String {
        format!(
            "AllowRule({:?}, source={:?}, hits={})",
            self.entry.rule.spec(),
            self.entry.source,
            self.entry.hits()
        )
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp, py: Python<'_>) -> Py<PyAny> {
        let Ok(other) = other.cast::<PyAllowRule>() else {
            return py.NotImplemented();
        };
        let same = self.entry.rule == other.get().entry.rule;
        match op {
            CompareOp::Eq => same
                .into_pyobject(py)
                .map(|b| b.to_owned().into_any().unbind()),
            CompareOp::Ne => (!same)
                .into_pyobject(py)
                .map(|b| b.to_owned().into_any().unbind()),
            _ => return py.NotImplemented(),
        }
        .unwrap_or_else(|_| py.NotImplemented())
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.entry.rule.hash(&mut hasher);
        hasher.finish()
    }
}

static ACTIVE: RwLock<Vec<Arc<RuleEntry>>> = RwLock::new(Vec::new());
static ACTIVE_COUNT: AtomicUsize = AtomicUsize::new(0);
/// Every rule put in force (for every thread, or scoped), for the unused-rule report. Bounded.
static LEDGER: Mutex<Vec<Arc<RuleEntry>>> = Mutex::new(Vec::new());
const LEDGER_CAP: usize = 10_000;

/// Makes a rule object (not in force, not in the unused-rule report until it is).
pub fn make(py: Python<'_>, rule: AllowRule, source: &str) -> PyResult<Py<PyAllowRule>> {
    Py::new(
        py,
        PyAllowRule {
            entry: Arc::new(RuleEntry::new(rule, source)),
        },
    )
}

/// Puts `entry` in the unused-rule report (once).
fn track(entry: &Arc<RuleEntry>) {
    let mut ledger = LEDGER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if ledger.len() < LEDGER_CAP && !ledger.iter().any(|e| Arc::ptr_eq(e, entry)) {
        ledger.push(Arc::clone(entry));
    }
}

/// A scoped rule goes in force (`aiocop.allowing` entered): it joins the unused-rule report.
pub fn entered(rule: &PyAllowRule) {
    track(&rule.entry);
}

/// Puts a rule in force for every thread (a rule equal to one in force is not added twice).
pub fn activate(rule: &PyAllowRule) {
    track(&rule.entry);
    let _ = rule.entry.active_since.compare_exchange(
        u64::MAX,
        CHECKS.load(Ordering::Relaxed),
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    let mut active = ACTIVE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !active.iter().any(|e| e.rule == rule.entry.rule) {
        active.push(Arc::clone(&rule.entry));
    }
    ACTIVE_COUNT.store(active.len(), Ordering::Release);
}

/// Takes the rules equal to `rule` out of force (and out of the unused-rule report). Returns
/// how many were removed.
pub fn deactivate(rule: &AllowRule) -> usize {
    let removed = {
        let mut active = ACTIVE
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = active.len();
        active.retain(|e| &e.rule != rule);
        ACTIVE_COUNT.store(active.len(), Ordering::Release);
        before - active.len()
    };
    LEDGER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .retain(|e| &e.rule != rule);
    removed
}

/// Takes every rule out of force and forgets them.
pub fn clear() {
    ACTIVE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
    ACTIVE_COUNT.store(0, Ordering::Release);
    LEDGER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clear();
}

/// The rules in force, in the order they were added.
pub fn active(py: Python<'_>) -> PyResult<Vec<Py<PyAllowRule>>> {
    let entries: Vec<Arc<RuleEntry>> = ACTIVE
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    entries
        .into_iter()
        .map(|entry| Py::new(py, PyAllowRule { entry }))
        .collect()
}

/// The rules put in force so far that blocking calls were checked against and that never
/// matched one; each rule once (equal rules of one source count together: one of them
/// matching makes the rule used).
pub fn unused(py: Python<'_>) -> PyResult<Vec<Py<PyAllowRule>>> {
    let entries: Vec<Arc<RuleEntry>> = LEDGER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut groups: Vec<(Arc<RuleEntry>, u64, u64)> = Vec::new();
    for entry in entries {
        let (hits, checked) = (entry.hits(), entry.checked());
        match groups
            .iter_mut()
            .find(|(first, ..)| first.rule == entry.rule && first.source == entry.source)
        {
            Some((_, group_hits, group_checked)) => {
                *group_hits += hits;
                *group_checked += checked;
            }
            None => groups.push((entry, hits, checked)),
        }
    }
    groups
        .into_iter()
        .filter(|&(_, hits, checked)| hits == 0 && checked > 0)
        .map(|(entry, ..)| Py::new(py, PyAllowRule { entry }))
        .collect()
}

/// Whether any rule is in force for every thread (one atomic load).
#[inline]
pub(crate) fn has_active() -> bool {
    ACTIVE_COUNT.load(Ordering::Acquire) > 0
}

/// The first rule (scoped rules first) that allows `event` called through `frames` (a call
/// site's, with their code facts); its hit count is incremented.
pub(crate) fn find_match(
    event: &str,
    frames: &[Frame],
    scoped: &[Arc<RuleEntry>],
) -> Option<Arc<RuleEntry>> {
    let facts: Vec<FrameFacts<'_>> = frames.iter().map(Frame::facts).collect();
    let candidate = Candidate {
        event,
        frames: &facts,
    };
    for entry in scoped {
        entry.scoped_checks.fetch_add(1, Ordering::Relaxed);
    }
    if has_active() {
        CHECKS.fetch_add(1, Ordering::Relaxed);
    }
    let hit = scoped
        .iter()
        .find(|e| e.rule.matches(&candidate))
        .cloned()
        .or_else(|| {
            if !has_active() {
                return None;
            }
            ACTIVE
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .find(|e| e.rule.matches(&candidate))
                .cloned()
        })?;
    hit.hits.fetch_add(1, Ordering::Relaxed);
    Some(hit)
}
