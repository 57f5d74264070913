//! Where a frame's code comes from.

/// Where a frame's code comes from: what decides which frame is the user's call site, where
/// a trace shown to the user ends, and which frames allow rules look at first.
///
/// ```
/// use aiocop_events::Origin;
///
/// assert_eq!(Origin::of_path("/srv/app/views.py"), Origin::User);
/// assert_eq!(Origin::of_path("/venv/lib/python3.11/site-packages/httpx/_client.py"), Origin::Package);
/// assert_eq!(Origin::of_path("/usr/lib/python3.11/socket.py"), Origin::Stdlib);
/// assert_eq!(Origin::of_path("<frozen importlib._bootstrap>"), Origin::Stdlib);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The project's own code: neither installed nor part of the standard library.
    User,
    /// An installed package (`site-packages`), aiocop's own Python code and test runners
    /// included.
    Package,
    /// The standard library, or code without a file (`<frozen ...>`, `<string>`).
    Stdlib,
}

impl Origin {
    /// The name a blocking event's `origin` field gives it: `"first-party"`, `"third-party"`
    /// or `"stdlib"`.
    ///
    /// ```
    /// use aiocop_events::Origin;
    ///
    /// assert_eq!(Origin::User.label(), "first-party");
    /// assert_eq!(Origin::Package.label(), "third-party");
    /// assert_eq!(Origin::Stdlib.label(), "stdlib");
    /// ```
    pub fn label(self) -> &'static str {
        match self {
            Origin::User => "first-party",
            Origin::Package => "third-party",
            Origin::Stdlib => "stdlib",
        }
    }

    /// The origin guessed from a path alone (for frames whose code was not classified by the
    /// interpreter's own paths): `<...>` and `/lib/python` paths are the standard library,
    /// `/site-packages/` and `/dist-packages/` paths installed packages, anything else the
    /// user's.
    pub fn of_path(path: &str) -> Self {
        if path.starts_with('<') {
            Origin::Stdlib
        } else if path.contains("/site-packages/") || path.contains("/dist-packages/") {
            Origin::Package
        } else if path.contains("/lib/python") {
            Origin::Stdlib
        } else {
            Origin::User
        }
    }
}
