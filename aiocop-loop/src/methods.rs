//! The four scheduling methods aiocop replaces on a loop, as one table: their names, where
//! the callback stands among their positionals, and their slot in a patch's originals.

/// A loop's scheduling method that aiocop replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)] // named after the loop methods they replace
pub(crate) enum Method {
    CallSoon,
    CallLater,
    CallAt,
    CallSoonThreadsafe,
}

impl Method {
    /// All four, in the order of [`Method::index`].
    pub(crate) const ALL: [Method; 4] = [
        Method::CallSoon,
        Method::CallLater,
        Method::CallAt,
        Method::CallSoonThreadsafe,
    ];

    /// How many positionals come before the callback: 0, or 1 (the delay or the time).
    pub(crate) const fn leading(self) -> usize {
        match self {
            Self::CallSoon | Self::CallSoonThreadsafe => 0,
            Self::CallLater | Self::CallAt => 1,
        }
    }

    /// The loop attribute's name.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::CallSoon => "call_soon",
            Self::CallLater => "call_later",
            Self::CallAt => "call_at",
            Self::CallSoonThreadsafe => "call_soon_threadsafe",
        }
    }

    /// The method's position in [`Method::ALL`] (and in a patch's originals).
    pub(crate) const fn index(self) -> usize {
        match self {
            Self::CallSoon => 0,
            Self::CallLater => 1,
            Self::CallAt => 2,
            Self::CallSoonThreadsafe => 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Method;

    #[test]
    fn the_table_is_in_index_order_and_names_the_loop_methods() {
        for (i, method) in Method::ALL.into_iter().enumerate() {
            assert_eq!(method.index(), i);
        }
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(
            names,
            ["call_soon", "call_later", "call_at", "call_soon_threadsafe"]
        );
        let leading: Vec<usize> = Method::ALL.iter().map(|m| m.leading()).collect();
        assert_eq!(leading, [0, 1, 1, 0]);
    }
}
