//! Which installed distribution a file belongs to.
//!
//! The Python side reads the installed distributions' file lists once (`importlib.metadata`,
//! when the hook is installed or monitoring is activated) and hands over, for each
//! distribution, the directories holding its Python files and its top-level single-file
//! modules. A code object's file is looked up here once, when its facts are resolved (cached
//! with them): an exact file, else its directory — one or two hash lookups.
//!
//! ```
//! use aiocop_events::dist::{self, Distribution, DistributionMap};
//!
//! let mut map = DistributionMap::default();
//! let httpx = Distribution::new("httpx", "0.27.0");
//! map.insert("/venv/lib/python3.11/site-packages/httpx", &httpx);
//! map.insert("/venv/lib/python3.11/site-packages/six.py", &Distribution::new("six", "1.16.0"));
//! let found = map.lookup("/venv/lib/python3.11/site-packages/httpx/_client.py").unwrap();
//! assert_eq!((found.name(), found.version()), ("httpx", "0.27.0"));
//! assert_eq!(map.lookup("/venv/lib/python3.11/site-packages/six.py").unwrap().name(), "six");
//! assert!(map.lookup("/srv/app/views.py").is_none());
//! dist::set_distributions(map);
//! assert!(dist::distribution_of("/venv/lib/python3.11/site-packages/httpx/_api.py").is_some());
//! ```

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::pep440::{normalize_name, Requirement};

/// An installed distribution: its name (as its metadata spells it) and version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Distribution {
    name: Arc<str>,
    version: Arc<str>,
    normalized: Box<str>,
}

impl Distribution {
    /// A distribution from its name and version.
    pub fn new(name: &str, version: &str) -> Arc<Self> {
        Arc::new(Distribution {
            name: Arc::from(name),
            version: Arc::from(version),
            normalized: normalize_name(name).into_boxed_str(),
        })
    }

    /// The name, as the distribution's metadata spells it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The installed version.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether the distribution satisfies `requirement` (name and specifier set).
    ///
    /// ```
    /// use aiocop_events::dist::Distribution;
    /// use aiocop_events::pep440::Requirement;
    ///
    /// let botocore = Distribution::new("botocore", "1.34.5");
    /// assert!(botocore.satisfies(&Requirement::parse("botocore<2").unwrap()));
    /// assert!(!botocore.satisfies(&Requirement::parse("botocore>=2").unwrap()));
    /// assert!(!botocore.satisfies(&Requirement::parse("boto3").unwrap()));
    /// ```
    pub fn satisfies(&self, requirement: &Requirement) -> bool {
        requirement.matches_text(&self.normalized, &self.version)
    }
}

/// Directories and single-file modules → the distribution they belong to.
#[derive(Debug, Default)]
pub struct DistributionMap {
    by_path: HashMap<Box<str>, Arc<Distribution>>,
}

impl DistributionMap {
    /// `path` (a directory holding the distribution's Python files, without a trailing `/`,
    /// or a module file) belongs to `dist`; the first distribution given a path keeps it.
    pub fn insert(&mut self, path: &str, dist: &Arc<Distribution>) {
        let path = path.trim_end_matches('/');
        if !path.is_empty() {
            self.by_path
                .entry(Box::from(path))
                .or_insert_with(|| Arc::clone(dist));
        }
    }

    /// How many paths are known.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    /// Whether no path is known.
    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }

    /// The distribution `filename` belongs to: the file itself, else its directory.
    pub fn lookup(&self, filename: &str) -> Option<Arc<Distribution>> {
        if let Some(dist) = self.by_path.get(filename) {
            return Some(Arc::clone(dist));
        }
        let (dir, _) = filename.rsplit_once('/')?;
        self.by_path.get(dir).cloned()
    }
}

/// The process's map, set by [`set_distributions`].
static DISTRIBUTIONS: RwLock<Option<Arc<DistributionMap>>> = RwLock::new(None);

/// Sets the process's map of installed distributions (replacing an earlier one: code facts
/// resolved before keep what they found).
pub fn set_distributions(map: DistributionMap) {
    *DISTRIBUTIONS
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(map));
}

/// Whether a map has been set.
pub fn distributions_known() -> bool {
    DISTRIBUTIONS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_some()
}

/// The installed distribution `filename` belongs to, from the process's map.
pub fn distribution_of(filename: &str) -> Option<Arc<Distribution>> {
    let map = DISTRIBUTIONS
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()?;
    map.lookup(filename)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_package_directories_and_the_first_owner_win() {
        let mut map = DistributionMap::default();
        let a = Distribution::new("a", "1");
        let b = Distribution::new("b", "2");
        map.insert("/sp/google/cloud/storage/", &a);
        map.insert("/sp/google/cloud/storage", &b);
        map.insert("/sp/google/protobuf", &b);
        assert_eq!(map.len(), 2);
        assert_eq!(
            map.lookup("/sp/google/cloud/storage/blob.py")
                .expect("a value")
                .name(),
            "a"
        );
        assert_eq!(
            map.lookup("/sp/google/protobuf/message.py")
                .expect("a value")
                .name(),
            "b"
        );
        assert!(map.lookup("/sp/google/other/x.py").is_none());
        assert!(map.lookup("no-slash").is_none());
    }
}
