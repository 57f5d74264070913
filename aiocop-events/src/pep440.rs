//! The subset of PEP 440 that allow rules use: versions, and a distribution name with a
//! specifier set (`botocore<2`, `requests>=2.28,!=2.30.*`, `urllib3~=1.26`).
//!
//! Operators: `==`, `!=` (both also with a trailing `.*`), `<`, `<=`, `>`, `>=`, `~=`, joined
//! by commas (all must hold). Versions: an optional epoch (`1!`), a release (`1.26.18`), an
//! optional pre-release (`a1`, `b2`, `rc1`), post-release (`.post1`) and development release
//! (`.dev3`); a local label (`+ubuntu1`) is ignored. Installed pre-releases are matched like any
//! other version.
//!
//! ```
//! use aiocop_events::pep440::{Requirement, Version};
//!
//! let req = Requirement::parse("botocore<2").unwrap();
//! assert_eq!(req.name(), "botocore");
//! assert!(req.matches("botocore", &Version::parse("1.34.0").unwrap()));
//! assert!(!req.matches("botocore", &Version::parse("2.0").unwrap()));
//! assert!(req.matches("BotoCore", &Version::parse("1.0").unwrap()));
//! assert!(Requirement::parse("botocore<<2").is_err());
//! ```

use std::cmp::Ordering;
use std::fmt;

/// A version, compared as PEP 440 orders them.
#[derive(Debug, Clone)]
pub struct Version {
    epoch: u64,
    release: Vec<u64>,
    /// `(0 = a, 1 = b, 2 = rc, number)`.
    pre: Option<(u8, u64)>,
    post: Option<u64>,
    dev: Option<u64>,
}

/// Why a version or a requirement could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecifierError(pub String);

impl fmt::Display for SpecifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecifierError {}

fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Splits a leading letter tag (`rc`, `post`) from the digits that follow, after an optional
/// separator (`.`, `-`, `_`).
fn tagged<'a>(text: &'a str, tags: &[&'static str]) -> Option<(&'static str, &'a str, usize)> {
    let trimmed = text.trim_start_matches(['.', '-', '_']);
    let skipped = text.len() - trimmed.len();
    for tag in tags {
        // `get`: a byte index inside a multi-byte character is no match (never a panic).
        if trimmed
            .get(..tag.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(tag))
        {
            let rest = &trimmed[tag.len()..];
            let rest_trim = rest.trim_start_matches(['.', '-', '_']);
            let digits = rest_trim.bytes().take_while(u8::is_ascii_digit).count();
            let used = skipped + tag.len() + (rest.len() - rest_trim.len()) + digits;
            return Some((tag, &rest_trim[..digits], used));
        }
    }
    None
}

impl Version {
    /// Reads a version (`1.2.3`, `2!1.0`, `1.0rc1`, `1.0.post2.dev1`, `v1.0`, `1.0+local`).
    ///
    /// ```
    /// use aiocop_events::pep440::Version;
    ///
    /// let v = |s| Version::parse(s).unwrap();
    /// assert!(v("1.0.dev1") < v("1.0a1") && v("1.0a1") < v("1.0rc1") && v("1.0rc1") < v("1.0"));
    /// assert!(v("1.0") < v("1.0.post1") && v("1.0.post1") < v("1.1"));
    /// assert_eq!(v("1.0"), v("1.0.0"));
    /// assert!(v("1!0.1") > v("99"));
    /// assert!(Version::parse("one").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, SpecifierError> {
        let bad = || SpecifierError(format!("{text:?} is not a PEP 440 version"));
        let mut rest = text.trim();
        rest = rest.strip_prefix(['v', 'V']).unwrap_or(rest);
        if let Some((public, _local)) = rest.split_once('+') {
            rest = public;
        }
        let mut epoch = 0;
        if let Some((e, r)) = rest.split_once('!') {
            epoch = number(e).ok_or_else(bad)?;
            rest = r;
        }
        let release_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        let mut release_text = &rest[..release_len];
        // A trailing '.' belongs to what follows (`1.0.post1`).
        while release_text.ends_with('.') {
            release_text = &release_text[..release_text.len() - 1];
        }
        let release = release_text
            .split('.')
            .map(number)
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(bad)?;
        rest = &rest[release_text.len()..];
        let mut version = Version {
            epoch,
            release,
            pre: None,
            post: None,
            dev: None,
        };
        if let Some((tag, digits, used)) = tagged(
            rest,
            &["alpha", "beta", "preview", "pre", "rc", "a", "b", "c"],
        ) {
            let kind = match tag {
                "alpha" | "a" => 0,
                "beta" | "b" => 1,
                _ => 2,
            };
            version.pre = Some((kind, number(digits).unwrap_or(0)));
            rest = &rest[used..];
        }
        if let Some((_, digits, used)) = tagged(rest, &["post", "rev", "r"]) {
            version.post = Some(number(digits).unwrap_or(0));
            rest = &rest[used..];
        }
        if let Some((_, digits, used)) = tagged(rest, &["dev"]) {
            version.dev = Some(number(digits).unwrap_or(0));
            rest = &rest[used..];
        }
        if !rest.is_empty() {
            return Err(bad());
        }
        Ok(version)
    }

    /// The release without trailing zeros (`1.0.0` is `1`), for comparisons.
    fn release_key(&self) -> &[u64] {
        let len = self
            .release
            .iter()
            .rposition(|&n| n != 0)
            .map_or(0, |i| i + 1);
        &self.release[..len]
    }

    /// Whether this is a pre-release or a development release.
    pub fn is_prerelease(&self) -> bool {
        self.pre.is_some() || self.dev.is_some()
    }

    fn key(&self) -> (u64, &[u64], (i8, u64), i64, u64) {
        let pre = match (self.pre, self.post, self.dev) {
            (Some((kind, n)), _, _) => (kind as i8, n),
            (None, None, Some(_)) => (-1, 0),
            _ => (3, 0),
        };
        let post = self.post.map_or(-1, |n| n as i64);
        let dev = self.dev.unwrap_or(u64::MAX);
        (self.epoch, self.release_key(), pre, post, dev)
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key().cmp(&other.key())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Compatible,
}

/// One clause of a specifier set (`>=1.2`, `==1.*`).
#[derive(Debug, Clone)]
struct Clause {
    op: Op,
    version: Version,
    /// `==1.2.*` / `!=1.2.*`: a prefix of the release.
    wildcard: bool,
}

impl Clause {
    fn parse(text: &str) -> Result<Self, SpecifierError> {
        let text = text.trim();
        let ops = [
            ("~=", Op::Compatible),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let Some((op, rest)) = ops
            .iter()
            .find_map(|(s, op)| text.strip_prefix(s).map(|rest| (*op, rest.trim())))
        else {
            return Err(SpecifierError(format!(
                "{text:?} does not start with one of ==, !=, <, <=, >, >=, ~="
            )));
        };
        if rest.starts_with(['=', '<', '>', '!', '~']) {
            return Err(SpecifierError(format!("{text:?} has a malformed operator")));
        }
        let (version_text, wildcard) = match rest.strip_suffix(".*") {
            Some(prefix) if matches!(op, Op::Eq | Op::Ne) => (prefix, true),
            Some(_) => {
                return Err(SpecifierError(format!(
                    "{text:?}: a '.*' suffix goes with == and != only"
                )))
            }
            None => (rest, false),
        };
        let version =
            Version::parse(version_text).map_err(|e| SpecifierError(format!("{text:?}: {e}")))?;
        if op == Op::Compatible && version.release.len() < 2 {
            return Err(SpecifierError(format!(
                "{text:?}: ~= needs a release of two parts or more"
            )));
        }
        Ok(Clause {
            op,
            version,
            wildcard,
        })
    }

    fn prefix_matches(&self, version: &Version) -> bool {
        let want = &self.version.release;
        version.epoch == self.version.epoch
            && want
                .iter()
                .enumerate()
                .all(|(i, n)| version.release.get(i).copied().unwrap_or(0) == *n)
    }

    fn matches(&self, version: &Version) -> bool {
        match (self.op, self.wildcard) {
            (Op::Eq, true) => self.prefix_matches(version),
            (Op::Ne, true) => !self.prefix_matches(version),
            (Op::Eq, false) => version == &self.version,
            (Op::Ne, false) => version != &self.version,
            (Op::Lt, _) => version < &self.version,
            (Op::Le, _) => version <= &self.version,
            (Op::Gt, _) => version > &self.version,
            (Op::Ge, _) => version >= &self.version,
            (Op::Compatible, _) => {
                let mut prefix = self.version.clone();
                prefix.release.pop();
                prefix.pre = None;
                prefix.post = None;
                prefix.dev = None;
                let prefix = Clause {
                    op: Op::Eq,
                    version: prefix,
                    wildcard: true,
                };
                version >= &self.version && prefix.prefix_matches(version)
            }
        }
    }
}

/// A distribution name with an optional specifier set: what an allow rule's `distribution`
/// field holds.
#[derive(Debug, Clone)]
pub struct Requirement {
    name: String,
    normalized: String,
    clauses: Vec<Clause>,
    text: String,
}

/// The PEP 503 form of a distribution name: lower case, each run of `-`, `_`, `.` one `-`.
///
/// ```
/// assert_eq!(aiocop_events::pep440::normalize_name("Zope.Interface__x"), "zope-interface-x");
/// ```
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            separator = true;
            continue;
        }
        if separator && !out.is_empty() {
            out.push('-');
        }
        separator = false;
        out.extend(c.to_lowercase());
    }
    out
}

impl Requirement {
    /// Reads `name` followed by an optional comma-joined specifier set (`botocore`,
    /// `botocore<2`, `requests >=2.28, !=2.30.*`).
    ///
    /// ```
    /// use aiocop_events::pep440::{Requirement, Version};
    ///
    /// let req = Requirement::parse("requests >=2.28, !=2.30.*").unwrap();
    /// assert_eq!(req.to_string(), "requests>=2.28,!=2.30.*");
    /// let v = |s| Version::parse(s).unwrap();
    /// assert!(req.matches("requests", &v("2.31.0")));
    /// assert!(!req.matches("requests", &v("2.30.1")));
    /// assert!(!req.matches("requests", &v("2.27")));
    /// assert!(Requirement::parse("urllib3~=1.26").unwrap().matches("urllib3", &v("1.26.18")));
    /// assert!(!Requirement::parse("urllib3~=1.26").unwrap().matches("urllib3", &v("2.0")));
    /// assert!(Requirement::parse("").is_err());
    /// assert!(Requirement::parse("x>=1,").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, SpecifierError> {
        let trimmed = text.trim();
        let name_len = trimmed
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            .count();
        let name = &trimmed[..name_len];
        if name.is_empty()
            || !name.as_bytes()[0].is_ascii_alphanumeric()
            || !name.as_bytes()[name.len() - 1].is_ascii_alphanumeric()
        {
            return Err(SpecifierError(format!(
                "{text:?} does not start with a distribution name"
            )));
        }
        let rest = trimmed[name_len..].trim();
        let clauses = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split(',')
                .map(|clause| {
                    if clause.trim().is_empty() {
                        Err(SpecifierError(format!("{text:?} has an empty specifier")))
                    } else {
                        Clause::parse(clause)
                    }
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let canonical = rest
            .split(',')
            .map(|c| c.split_whitespace().collect::<String>())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
            .join(",");
        Ok(Requirement {
            name: name.to_owned(),
            normalized: normalize_name(name),
            clauses,
            text: format!("{name}{canonical}"),
        })
    }

    /// The distribution's name as written.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether a distribution called `name` at `version` satisfies the requirement.
    pub fn matches(&self, name: &str, version: &Version) -> bool {
        normalize_name(name) == self.normalized && self.clauses.iter().all(|c| c.matches(version))
    }

    /// Whether the requirement holds for a distribution given by its name and version text
    /// (a version that cannot be read matches only a requirement without a specifier).
    pub fn matches_text(&self, name: &str, version: &str) -> bool {
        if normalize_name(name) != self.normalized {
            return false;
        }
        if self.clauses.is_empty() {
            return true;
        }
        Version::parse(version).is_ok_and(|v| self.clauses.iter().all(|c| c.matches(&v)))
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Requirement {
    fn eq(&self, other: &Self) -> bool {
        self.normalized == other.normalized && self.text == other.text
    }
}

impl Eq for Requirement {}

impl std::hash::Hash for Requirement {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> Version {
        Version::parse(text).expect("a value")
    }

    fn holds(req: &str, version: &str) -> bool {
        let req = Requirement::parse(req).expect("a value");
        let name = req.name().to_owned();
        req.matches(&name, &v(version))
    }

    #[test]
    fn every_operator() {
        assert!(holds("x==1.2", "1.2.0"));
        assert!(!holds("x==1.2", "1.2.1"));
        assert!(holds("x!=1.2", "1.2.1"));
        assert!(!holds("x!=1.2", "1.2"));
        assert!(holds("x<2", "1.99"));
        assert!(!holds("x<2", "2"));
        assert!(holds("x<=2", "2.0"));
        assert!(!holds("x<=2", "2.0.1"));
        assert!(holds("x>1", "1.0.1"));
        assert!(!holds("x>1", "1.0"));
        assert!(holds("x>=1", "1"));
        assert!(!holds("x>=1", "0.9"));
        assert!(holds("x~=2.2", "2.9"));
        assert!(!holds("x~=2.2", "3.0"));
        assert!(!holds("x~=2.2.1", "2.3"));
        assert!(holds("x~=2.2.1", "2.2.5"));
        assert!(holds("x==1.*", "1.9.3"));
        assert!(!holds("x==1.*", "2.0"));
        assert!(holds("x!=1.*", "2.0"));
    }

    #[test]
    fn comma_joined_clauses_all_hold() {
        assert!(holds("x>=1,<2", "1.5"));
        assert!(!holds("x>=1,<2", "2.0"));
        assert!(!holds("x>=1,<2,!=1.5", "1.5"));
        assert!(holds(" x >= 1 , < 2 ", "1.0"));
    }

    #[test]
    fn pre_post_dev_and_epoch_order() {
        let order = [
            "1.0.dev0",
            "1.0a1",
            "1.0a2.dev1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0.post1.dev0",
            "1.0.post1",
            "1.1",
            "1!0.1",
        ];
        for pair in order.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
        assert_eq!(v("1.0+local.7"), v("1.0"));
        assert!(v("1.0rc1").is_prerelease() && !v("1.0.post1").is_prerelease());
    }

    #[test]
    fn names_compare_normalized() {
        let req = Requirement::parse("Zope_Interface>=5").expect("a value");
        assert!(req.matches("zope.interface", &v("6")));
        assert!(!req.matches("zope-interfaces", &v("6")));
        assert!(Requirement::parse("botocore")
            .expect("a value")
            .matches_text("botocore", "garbage"));
        assert!(!Requirement::parse("botocore<2")
            .expect("a value")
            .matches_text("botocore", "garbage"));
    }

    #[test]
    fn text_beyond_ascii_is_an_error_not_a_panic() {
        for bad in [
            "e~=4\u{9d}",
            "x==1.0\u{e9}",
            "x==1r\u{e9}",
            "\u{e9}x>=1",
            "x>=1.0p\u{f6}st1",
        ] {
            assert!(Requirement::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn malformed_specifiers_are_errors() {
        for bad in [
            "", "<2", "x<<2", "x=2", "x==", "x>=1,", "x>=a.b", "x~=1", "x>=1.*", "x===1", "-x",
        ] {
            assert!(Requirement::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
