//! The table of blocking events aiocop reports, and fast lookup by name.

use std::cmp::Ordering;

use crate::weights::{WEIGHT_HEAVY, WEIGHT_LIGHT, WEIGHT_MODERATE, WEIGHT_TRIVIAL};

/// Where an audit event comes from.
///
/// ```
/// use aiocop_severity::{lookup, Source};
///
/// assert_eq!(lookup(b"open").map(|s| s.source), Some(Source::Native));
/// assert_eq!(lookup(b"os.stat").map(|s| s.source), Some(Source::Wrapper));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Raised by CPython itself (native audit event).
    Native,
    /// Emitted by aiocop's own wrapper installed by `patch_audit_functions()`.
    Wrapper,
}

/// One blocking audit event: its name, weight and where it comes from.
///
/// ```
/// use aiocop_severity::{EventSpec, Source, WRAPPED_EVENTS};
///
/// let sleep = WRAPPED_EVENTS.iter().find(|s| s.name == "time.sleep").expect("listed");
/// assert_eq!(
///     *sleep,
///     EventSpec { name: "time.sleep", weight: 50, source: Source::Wrapper, wrap_below_minor: Some(13) }
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSpec {
    /// The audit event name, e.g. `"socket.getaddrinfo"`.
    pub name: &'static str,
    /// The event's severity weight (one of the `WEIGHT_*` constants).
    pub weight: u32,
    /// Whether CPython raises the event or aiocop's wrapper does.
    pub source: Source,
    /// For [`Source::Wrapper`] events: the wrapper is installed only on CPython minor versions
    /// below this (e.g. `Some(13)` for `time.sleep`, native from 3.13); `None` = always.
    pub wrap_below_minor: Option<u8>,
}

impl EventSpec {
    /// Whether this event's wrapper is installed on CPython 3.`minor` (always false for native events).
    const fn wrapped_on(&self, minor: u8) -> bool {
        match (self.source, self.wrap_below_minor) {
            (Source::Native, _) => false,
            (Source::Wrapper, None) => true,
            (Source::Wrapper, Some(below)) => minor < below,
        }
    }
}

const fn native(name: &'static str, weight: u32) -> EventSpec {
    EventSpec {
        name,
        weight,
        source: Source::Native,
        wrap_below_minor: None,
    }
}

const fn wrapper(name: &'static str, weight: u32, wrap_below_minor: Option<u8>) -> EventSpec {
    EventSpec {
        name,
        weight,
        source: Source::Wrapper,
        wrap_below_minor,
    }
}

const NATIVE_ARRAY: [EventSpec; 50] = [
    // Sleep (native from CPython 3.13; wrapped below, see WRAPPED_ARRAY)
    native("time.sleep", WEIGHT_HEAVY),
    // Network operations (socket level)
    native("socket.getaddrinfo", WEIGHT_HEAVY),
    native("socket.getnameinfo", WEIGHT_HEAVY),
    native("socket.gethostbyname", WEIGHT_HEAVY),
    native("socket.gethostbyaddr", WEIGHT_HEAVY),
    // File system: opening and creating
    native("open", WEIGHT_MODERATE),
    native("tempfile.mkdtemp", WEIGHT_MODERATE),
    native("tempfile.mkstemp", WEIGHT_MODERATE),
    // File system: scanning and traversal
    native("os.listdir", WEIGHT_MODERATE),
    native("os.scandir", WEIGHT_MODERATE),
    native("os.walk", WEIGHT_HEAVY),
    native("os.fwalk", WEIGHT_HEAVY),
    native("glob.glob", WEIGHT_HEAVY),
    native("pathlib.Path.glob", WEIGHT_HEAVY),
    native("pathlib.Path.rglob", WEIGHT_HEAVY),
    // File system: mutation
    native("os.mkdir", WEIGHT_MODERATE),
    native("os.rmdir", WEIGHT_MODERATE),
    native("os.remove", WEIGHT_MODERATE),
    native("os.rename", WEIGHT_MODERATE),
    native("os.replace", WEIGHT_MODERATE),
    native("os.link", WEIGHT_MODERATE),
    native("os.symlink", WEIGHT_MODERATE),
    native("os.truncate", WEIGHT_MODERATE),
    native("shutil.copyfile", WEIGHT_MODERATE),
    native("shutil.copymode", WEIGHT_MODERATE),
    native("shutil.copystat", WEIGHT_MODERATE),
    native("shutil.move", WEIGHT_MODERATE),
    // File system: heavy recursion
    native("shutil.copytree", WEIGHT_HEAVY),
    native("shutil.rmtree", WEIGHT_HEAVY),
    // File system: locking
    native("fcntl.flock", WEIGHT_LIGHT),
    native("fcntl.lockf", WEIGHT_LIGHT),
    // High-level network libraries
    native("http.client.connect", WEIGHT_HEAVY),
    native("urllib.Request", WEIGHT_HEAVY),
    native("ftplib.connect", WEIGHT_HEAVY),
    native("smtplib.connect", WEIGHT_HEAVY),
    native("poplib.connect", WEIGHT_HEAVY),
    native("imaplib.open", WEIGHT_HEAVY),
    native("nntplib.connect", WEIGHT_HEAVY),
    // System and subprocess
    native("os.system", WEIGHT_HEAVY),
    native("os.spawn", WEIGHT_HEAVY),
    native("os.posix_spawn", WEIGHT_HEAVY),
    native("os.exec", WEIGHT_HEAVY),
    native("os.fork", WEIGHT_HEAVY),
    native("subprocess.Popen", WEIGHT_HEAVY),
    native("os.kill", WEIGHT_LIGHT),
    // Database
    native("sqlite3.connect", WEIGHT_MODERATE),
    // Miscellaneous IO
    native("builtins.input", WEIGHT_HEAVY),
    native("import", WEIGHT_HEAVY),
    native("syslog.syslog", WEIGHT_LIGHT),
    native("syslog.openlog", WEIGHT_LIGHT),
];

const WRAPPED_ARRAY: [EventSpec; 29] = [
    // Path and metadata
    wrapper("os.getcwd", WEIGHT_TRIVIAL, None),
    wrapper("os.path.abspath", WEIGHT_TRIVIAL, None),
    wrapper("os.path.islink", WEIGHT_TRIVIAL, None),
    wrapper("os.path.ismount", WEIGHT_LIGHT, None),
    wrapper("os.readlink", WEIGHT_LIGHT, None),
    wrapper("os.access", WEIGHT_LIGHT, None),
    wrapper("os.stat", WEIGHT_LIGHT, None),
    wrapper("os.statvfs", WEIGHT_LIGHT, None),
    wrapper("os.path.samestat", WEIGHT_LIGHT, None),
    wrapper("os.path.sameopenfile", WEIGHT_LIGHT, None),
    // Data transfer (syscall level)
    wrapper("os.sendfile", WEIGHT_MODERATE, None),
    // Socket connection
    wrapper("socket.socket.connect", WEIGHT_HEAVY, None),
    wrapper("socket.socket.connect_ex", WEIGHT_HEAVY, None),
    wrapper("socket.socket.accept", WEIGHT_HEAVY, None),
    wrapper("socket.socket.bind", WEIGHT_TRIVIAL, None),
    // Socket data transfer
    wrapper("socket.socket.send", WEIGHT_MODERATE, None),
    wrapper("socket.socket.sendto", WEIGHT_MODERATE, None),
    wrapper("socket.socket.sendmsg", WEIGHT_MODERATE, None),
    wrapper("socket.socket.sendall", WEIGHT_MODERATE, None),
    wrapper("socket.socket.recv", WEIGHT_MODERATE, None),
    wrapper("socket.socket.recv_into", WEIGHT_MODERATE, None),
    wrapper("socket.socket.recvfrom", WEIGHT_MODERATE, None),
    wrapper("socket.socket.recvfrom_into", WEIGHT_MODERATE, None),
    wrapper("socket.socket.recvmsg", WEIGHT_MODERATE, None),
    // SSL data transfer
    wrapper("ssl.SSLSocket.write", WEIGHT_MODERATE, None),
    wrapper("ssl.SSLSocket.send", WEIGHT_MODERATE, None),
    wrapper("ssl.SSLSocket.read", WEIGHT_MODERATE, None),
    wrapper("ssl.SSLSocket.recv", WEIGHT_MODERATE, None),
    // time.sleep gained a native audit event in CPython 3.13
    wrapper("time.sleep", WEIGHT_HEAVY, Some(13)),
];

/// The blocking events CPython raises natively, in aiocop 1.2.1's table order.
///
/// Includes `time.sleep` (weight 50), which is native from CPython 3.13 and emitted by a
/// wrapper before that (see [`WRAPPED_EVENTS`]).
///
/// ```
/// use aiocop_severity::{Source, NATIVE_EVENTS};
///
/// assert_eq!(NATIVE_EVENTS.len(), 50);
/// assert_eq!(NATIVE_EVENTS[0].name, "time.sleep");
/// assert!(NATIVE_EVENTS.iter().all(|s| s.source == Source::Native && s.wrap_below_minor.is_none()));
/// ```
pub static NATIVE_EVENTS: &[EventSpec] = &NATIVE_ARRAY;

/// The blocking events emitted by aiocop's stdlib wrappers (`patch_audit_functions()`), in
/// aiocop 1.2.1's order; `time.sleep` last, wrapped only below CPython 3.13.
///
/// ```
/// use aiocop_severity::{Source, WRAPPED_EVENTS};
///
/// assert_eq!(WRAPPED_EVENTS.len(), 29);
/// assert_eq!(WRAPPED_EVENTS[0].name, "os.getcwd");
/// assert!(WRAPPED_EVENTS.iter().all(|s| s.source == Source::Wrapper));
/// ```
pub static WRAPPED_EVENTS: &[EventSpec] = &WRAPPED_ARRAY;

/// The wrapped events whose wrapper is installed on CPython 3.`minor`, in [`WRAPPED_EVENTS`] order.
///
/// ```
/// use aiocop_severity::wrapped_events_for;
///
/// assert!(wrapped_events_for(11).any(|s| s.name == "time.sleep"));
/// assert!(!wrapped_events_for(13).any(|s| s.name == "time.sleep"));
/// assert_eq!(wrapped_events_for(13).count(), 28);
/// ```
pub fn wrapped_events_for(minor: u8) -> impl Iterator<Item = &'static EventSpec> {
    WRAPPED_EVENTS
        .iter()
        .filter(move |spec| spec.wrapped_on(minor))
}

// ---------------------------------------------------------------------------------------------
// Lookup index: every distinct name of both tables, sorted by bytes at compile time, pointing
// back into the table that wins (native before wrapped); `lookup` finds an entry through a
// hash table over it, also built at compile time (`SLOTS`).

#[derive(Clone, Copy)]
enum Table {
    Native,
    Wrapped,
}

#[derive(Clone, Copy)]
struct IndexEntry {
    name: &'static [u8],
    table: Table,
    idx: u8,
}

const fn bytes_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let mut i = 0;
    while i < a.len() && i < b.len() {
        if a[i] < b[i] {
            return Ordering::Less;
        }
        if a[i] > b[i] {
            return Ordering::Greater;
        }
        i += 1;
    }
    if a.len() < b.len() {
        Ordering::Less
    } else if a.len() > b.len() {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

const fn bytes_eq(a: &[u8], b: &[u8]) -> bool {
    matches!(bytes_cmp(a, b), Ordering::Equal)
}

/// Whether `name` appears in `NATIVE_ARRAY`, or in `WRAPPED_ARRAY[..wrapped_before]`.
const fn seen_before(name: &[u8], wrapped_before: usize, native_before: usize) -> bool {
    let mut i = 0;
    while i < native_before {
        if bytes_eq(NATIVE_ARRAY[i].name.as_bytes(), name) {
            return true;
        }
        i += 1;
    }
    let mut j = 0;
    while j < wrapped_before {
        if bytes_eq(WRAPPED_ARRAY[j].name.as_bytes(), name) {
            return true;
        }
        j += 1;
    }
    false
}

const fn distinct_names() -> usize {
    let mut count = 0;
    let mut i = 0;
    while i < NATIVE_ARRAY.len() {
        if !seen_before(NATIVE_ARRAY[i].name.as_bytes(), 0, i) {
            count += 1;
        }
        i += 1;
    }
    let mut j = 0;
    while j < WRAPPED_ARRAY.len() {
        if !seen_before(WRAPPED_ARRAY[j].name.as_bytes(), j, NATIVE_ARRAY.len()) {
            count += 1;
        }
        j += 1;
    }
    count
}

const INDEX_LEN: usize = distinct_names();

const fn build_index() -> [IndexEntry; INDEX_LEN] {
    let mut out = [IndexEntry {
        name: b"",
        table: Table::Native,
        idx: 0,
    }; INDEX_LEN];
    let mut n = 0;
    let mut i = 0;
    while i < NATIVE_ARRAY.len() {
        let name = NATIVE_ARRAY[i].name.as_bytes();
        if !seen_before(name, 0, i) {
            out[n] = IndexEntry {
                name,
                table: Table::Native,
                idx: i as u8,
            };
            n += 1;
        }
        i += 1;
    }
    let mut j = 0;
    while j < WRAPPED_ARRAY.len() {
        let name = WRAPPED_ARRAY[j].name.as_bytes();
        if !seen_before(name, j, NATIVE_ARRAY.len()) {
            out[n] = IndexEntry {
                name,
                table: Table::Wrapped,
                idx: j as u8,
            };
            n += 1;
        }
        j += 1;
    }
    // Insertion sort by name bytes (names are distinct, so the order is total).
    let mut k = 1;
    while k < INDEX_LEN {
        let mut m = k;
        while m > 0 && matches!(bytes_cmp(out[m - 1].name, out[m].name), Ordering::Greater) {
            let tmp = out[m - 1];
            out[m - 1] = out[m];
            out[m] = tmp;
            m -= 1;
        }
        k += 1;
    }
    out
}

static INDEX: [IndexEntry; INDEX_LEN] = build_index();

/// Slots of the open-addressing hash table over [`INDEX`] (a power of two, at least four times
/// the number of names, so probes are short).
const HASH_SLOTS: usize = 512;
/// An empty slot.
const EMPTY: u8 = u8::MAX;

const _: () = assert!(INDEX_LEN < EMPTY as usize && HASH_SLOTS >= 4 * INDEX_LEN);

/// Up to 8 bytes of `name` from `start`, little-endian.
const fn load8(name: &[u8], start: usize) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < 8 && start + i < name.len() {
        v |= (name[start + i] as u64) << (8 * i);
        i += 1;
    }
    v
}

/// A cheap hash of an event name: its length and its first and last 8 bytes, mixed. Any hash
/// would do (a hit is confirmed by comparing the whole name); this one tells the table's names
/// apart in one or two probes.
const fn name_slot(name: &[u8]) -> usize {
    let len = name.len();
    mix(len, load8(name, 0), load8(name, len.saturating_sub(8)))
}

const fn mix(len: usize, head: u64, tail: u64) -> usize {
    let h = (head ^ ((len as u64) << 56)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ tail.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    ((h ^ (h >> 31)) as usize) & (HASH_SLOTS - 1)
}

/// [`name_slot`] at run time: names of 8 bytes or more are read a word at a time.
#[inline]
fn name_slot_runtime(name: &[u8]) -> usize {
    let len = name.len();
    match (name.first_chunk::<8>(), name.last_chunk::<8>()) {
        (Some(head), Some(tail)) => mix(len, u64::from_le_bytes(*head), u64::from_le_bytes(*tail)),
        _ => name_slot(name),
    }
}

const fn build_slots() -> [u8; HASH_SLOTS] {
    let mut slots = [EMPTY; HASH_SLOTS];
    let mut i = 0;
    while i < INDEX_LEN {
        let mut slot = name_slot(INDEX[i].name);
        while slots[slot] != EMPTY {
            slot = (slot + 1) & (HASH_SLOTS - 1);
        }
        slots[slot] = i as u8;
        i += 1;
    }
    slots
}

/// Positions in [`INDEX`] by [`name_slot`], linear probing; built at compile time.
static SLOTS: [u8; HASH_SLOTS] = build_slots();

// The index stores table positions as u8.
const _: () =
    assert!(NATIVE_ARRAY.len() <= u8::MAX as usize && WRAPPED_ARRAY.len() <= u8::MAX as usize);

/// The spec of the blocking event named `name` (the audit event name's bytes, without a NUL),
/// or `None` when aiocop does not report that event. [`NATIVE_EVENTS`] win over
/// [`WRAPPED_EVENTS`] for a name in both (`time.sleep`).
///
/// Meant to run inside a native audit hook on every audited call: it never allocates; a hash of
/// the name's length and first and last 8 bytes picks a slot of a table built at compile time,
/// and one comparison of the whole name confirms it (a probe or two).
///
/// ```
/// use aiocop_severity::{lookup, Source};
///
/// let spec = lookup(b"socket.getaddrinfo").expect("a blocking event");
/// assert_eq!((spec.weight, spec.source), (50, Source::Native));
/// assert_eq!(lookup(b"time.sleep").map(|s| s.source), Some(Source::Native));
/// assert!(lookup(b"object.__getattr__").is_none());
/// assert!(lookup(b"").is_none());
/// ```
#[inline]
pub fn lookup(name: &[u8]) -> Option<&'static EventSpec> {
    let mut slot = name_slot_runtime(name);
    let entry = loop {
        let at = SLOTS[slot];
        if at == EMPTY {
            return None;
        }
        let entry = &INDEX[usize::from(at)];
        if entry.name == name {
            break entry;
        }
        slot = (slot + 1) & (HASH_SLOTS - 1);
    };
    let idx = usize::from(entry.idx);
    Some(match entry.table {
        Table::Native => &NATIVE_EVENTS[idx],
        Table::Wrapped => &WRAPPED_EVENTS[idx],
    })
}

/// The weight of the blocking event named `name`, or `None` when aiocop does not report it.
///
/// ```
/// use aiocop_severity::weight_of;
///
/// assert_eq!(weight_of("open"), Some(10));
/// assert_eq!(weight_of("os.getcwd"), Some(0));
/// assert_eq!(weight_of("sys._getframe"), None);
/// ```
pub fn weight_of(name: &str) -> Option<u32> {
    lookup(name.as_bytes()).map(|spec| spec.weight)
}

/// aiocop 1.2.1's `get_blocking_events_dict()` on CPython 3.`minor`, as `(name, weight)` pairs:
/// the native events in table order, then the wrapped events installed on that version, each
/// name once (a wrapped name already listed keeps its native position and weight).
///
/// ```
/// use aiocop_severity::blocking_events;
///
/// let on_311 = blocking_events(11);
/// assert_eq!(on_311[0], ("time.sleep", 50));
/// assert_eq!(on_311.iter().filter(|(name, _)| *name == "time.sleep").count(), 1);
/// assert_eq!(on_311.last(), Some(&("ssl.SSLSocket.recv", 10)));
/// assert_eq!(on_311.len(), 78);
/// assert_eq!(blocking_events(13), on_311);
/// ```
pub fn blocking_events(minor: u8) -> Vec<(&'static str, u32)> {
    let mut out: Vec<(&'static str, u32)> =
        Vec::with_capacity(NATIVE_EVENTS.len() + WRAPPED_EVENTS.len());
    for spec in NATIVE_EVENTS.iter().chain(wrapped_events_for(minor)) {
        if !out.iter().any(|(name, _)| *name == spec.name) {
            out.push((spec.name, spec.weight));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference semantics of [`lookup`]: a linear scan, native first.
    fn lookup_linear(name: &[u8]) -> Option<&'static EventSpec> {
        NATIVE_EVENTS
            .iter()
            .chain(WRAPPED_EVENTS)
            .find(|spec| spec.name.as_bytes() == name)
    }

    #[test]
    fn the_run_time_slot_is_the_compile_time_slot() {
        let names: &[&[u8]] = &[
            b"",
            b"open",
            b"os.stat",
            b"os.chdir",
            b"socket.getaddrinfo",
            b"x",
        ];
        for name in names.iter().copied().chain(INDEX.iter().map(|e| e.name)) {
            assert_eq!(name_slot_runtime(name), name_slot(name), "{name:?}");
        }
    }

    #[test]
    fn every_name_is_found_in_its_slot_chain() {
        for entry in &INDEX {
            assert!(
                lookup(entry.name).is_some_and(|spec| spec.name.as_bytes() == entry.name),
                "{:?}",
                std::str::from_utf8(entry.name)
            );
        }
        let longest = INDEX
            .iter()
            .map(|e| {
                let mut slot = name_slot(e.name);
                let mut probes = 1;
                while INDEX[usize::from(SLOTS[slot])].name != e.name {
                    slot = (slot + 1) & (HASH_SLOTS - 1);
                    probes += 1;
                }
                probes
            })
            .max();
        assert!(longest.is_some_and(|p| p <= 3), "{longest:?}");
        for miss in [
            &b""[..],
            b"o",
            b"os.",
            b"object.__getattr__",
            b"open2",
            b"socket.socket.connect_",
        ] {
            assert!(lookup(miss).is_none(), "{:?}", std::str::from_utf8(miss));
        }
    }

    #[test]
    fn index_is_sorted_and_complete() {
        assert!(INDEX.windows(2).all(|w| w[0].name < w[1].name));
        assert_eq!(INDEX_LEN, NATIVE_EVENTS.len() + WRAPPED_EVENTS.len() - 1);
    }

    #[test]
    fn native_weights_table() {
        let cases: &[(u32, &[&str])] = &[
            (
                WEIGHT_HEAVY,
                &[
                    "time.sleep",
                    "socket.getaddrinfo",
                    "socket.getnameinfo",
                    "socket.gethostbyname",
                    "socket.gethostbyaddr",
                    "os.walk",
                    "os.fwalk",
                    "glob.glob",
                    "pathlib.Path.glob",
                    "pathlib.Path.rglob",
                    "shutil.copytree",
                    "shutil.rmtree",
                    "http.client.connect",
                    "urllib.Request",
                    "ftplib.connect",
                    "smtplib.connect",
                    "poplib.connect",
                    "imaplib.open",
                    "nntplib.connect",
                    "os.system",
                    "os.spawn",
                    "os.posix_spawn",
                    "os.exec",
                    "os.fork",
                    "subprocess.Popen",
                    "builtins.input",
                    "import",
                ],
            ),
            (
                WEIGHT_MODERATE,
                &[
                    "open",
                    "tempfile.mkdtemp",
                    "tempfile.mkstemp",
                    "os.listdir",
                    "os.scandir",
                    "os.mkdir",
                    "os.rmdir",
                    "os.remove",
                    "os.rename",
                    "os.replace",
                    "os.link",
                    "os.symlink",
                    "os.truncate",
                    "shutil.copyfile",
                    "shutil.copymode",
                    "shutil.copystat",
                    "shutil.move",
                    "sqlite3.connect",
                ],
            ),
            (
                WEIGHT_LIGHT,
                &[
                    "fcntl.flock",
                    "fcntl.lockf",
                    "os.kill",
                    "syslog.syslog",
                    "syslog.openlog",
                ],
            ),
        ];
        let mut total = 0;
        for (weight, names) in cases {
            for name in *names {
                let spec = NATIVE_EVENTS.iter().find(|s| s.name == *name).expect(name);
                assert_eq!(spec.weight, *weight, "{name}");
                total += 1;
            }
        }
        assert_eq!(total, NATIVE_EVENTS.len());
    }

    #[test]
    fn wrapped_table_exact() {
        let expected: &[(&str, u32, Option<u8>)] = &[
            ("os.getcwd", 0, None),
            ("os.path.abspath", 0, None),
            ("os.path.islink", 0, None),
            ("os.path.ismount", 1, None),
            ("os.readlink", 1, None),
            ("os.access", 1, None),
            ("os.stat", 1, None),
            ("os.statvfs", 1, None),
            ("os.path.samestat", 1, None),
            ("os.path.sameopenfile", 1, None),
            ("os.sendfile", 10, None),
            ("socket.socket.connect", 50, None),
            ("socket.socket.connect_ex", 50, None),
            ("socket.socket.accept", 50, None),
            ("socket.socket.bind", 0, None),
            ("socket.socket.send", 10, None),
            ("socket.socket.sendto", 10, None),
            ("socket.socket.sendmsg", 10, None),
            ("socket.socket.sendall", 10, None),
            ("socket.socket.recv", 10, None),
            ("socket.socket.recv_into", 10, None),
            ("socket.socket.recvfrom", 10, None),
            ("socket.socket.recvfrom_into", 10, None),
            ("socket.socket.recvmsg", 10, None),
            ("ssl.SSLSocket.write", 10, None),
            ("ssl.SSLSocket.send", 10, None),
            ("ssl.SSLSocket.read", 10, None),
            ("ssl.SSLSocket.recv", 10, None),
            ("time.sleep", 50, Some(13)),
        ];
        let actual: Vec<_> = WRAPPED_EVENTS
            .iter()
            .map(|s| (s.name, s.weight, s.wrap_below_minor))
            .collect();
        assert_eq!(actual, expected);
    }

    type LookupCase = (&'static [u8], Option<(u32, Source)>);

    #[test]
    fn lookup_table() {
        let cases: &[LookupCase] = &[
            (b"open", Some((10, Source::Native))),
            (b"import", Some((50, Source::Native))),
            (b"time.sleep", Some((50, Source::Native))),
            (b"os.kill", Some((1, Source::Native))),
            (b"os.stat", Some((1, Source::Wrapper))),
            (b"os.getcwd", Some((0, Source::Wrapper))),
            (b"socket.socket.recvfrom_into", Some((10, Source::Wrapper))),
            (b"object.__getattr__", None),
            (b"sys._getframe", None),
            (b"", None),
            (b"open2", None),
            (b"ope", None),
            (b"OPEN", None),
            (b"open\0", None),
            (b"\xff\xfe", None),
            (b"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", None),
        ];
        for (name, expected) in cases {
            let got = lookup(name).map(|s| (s.weight, s.source));
            assert_eq!(got, *expected, "{:?}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn lookup_matches_linear_scan_and_identity() {
        for spec in NATIVE_EVENTS.iter().chain(WRAPPED_EVENTS) {
            let fast = lookup(spec.name.as_bytes()).expect(spec.name);
            let slow = lookup_linear(spec.name.as_bytes()).expect(spec.name);
            assert!(std::ptr::eq(fast, slow), "{}", spec.name);
            // Every prefix and every one-byte extension is either a listed name or unknown.
            for cut in 0..spec.name.len() {
                let prefix = &spec.name.as_bytes()[..cut];
                assert_eq!(lookup(prefix), lookup_linear(prefix));
            }
            let mut longer = spec.name.as_bytes().to_vec();
            longer.push(b'x');
            assert_eq!(lookup(&longer), None);
        }
    }

    #[test]
    fn wrapped_on_versions() {
        let cases: &[(u8, usize, bool)] = &[
            (8, 29, true),
            (11, 29, true),
            (12, 29, true),
            (13, 28, false),
            (14, 28, false),
        ];
        for &(minor, count, has_sleep) in cases {
            assert_eq!(wrapped_events_for(minor).count(), count, "3.{minor}");
            assert_eq!(
                wrapped_events_for(minor).any(|s| s.name == "time.sleep"),
                has_sleep
            );
        }
    }

    #[test]
    fn blocking_events_per_version() {
        for minor in [9u8, 11, 12, 13, 14] {
            let events = blocking_events(minor);
            assert_eq!(events.len(), 78, "3.{minor}");
            assert_eq!(events[0], ("time.sleep", 50));
            assert_eq!(events[50], ("os.getcwd", 0));
            let mut names: Vec<_> = events.iter().map(|(n, _)| *n).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), events.len());
            for (name, weight) in &events {
                assert_eq!(weight_of(name), Some(*weight), "{name}");
            }
        }
    }
}
