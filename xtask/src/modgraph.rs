//! The module graph of each crate: which of its top-level modules refer to which (through
//! `crate::module`, `use crate::{module, ...}` and the names the crate root re-exports), and
//! the cycles in it. `cargo xtask lint` and `cargo xtask test` fail on a cycle: a module that
//! can be read only together with the modules that read it is not a module of one job.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use crate::{step, Result};

/// The crates checked (every workspace crate with a `src/lib.rs`).
const CRATES: &[&str] = &[
    "aiocop-clock",
    "aiocop-severity",
    "aiocop-events",
    "aiocop-aggregate",
    "aiocop-delivery",
    "aiocop-hook",
    "aiocop-loop",
    "aiocop-py",
];

/// Module → the modules it refers to.
type Graph = BTreeMap<String, BTreeSet<String>>;

pub(crate) fn run(root: &Path) -> Result {
    step("module cycles (each crate's top-level modules)");
    let mut found = Vec::new();
    for name in CRATES {
        let src = root.join(name).join("src");
        let graph = graph(&read_modules(&src)?);
        for cycle in cycles(&graph) {
            found.push(format!("{name}: {}", cycle.join(" -> ")));
        }
    }
    if found.is_empty() {
        println!("no module cycles in {} crates", CRATES.len());
        Ok(())
    } else {
        Err(format!("module cycles:\n  {}", found.join("\n  ")).into())
    }
}

/// `lib.rs`'s text (key `""`) and each top-level module's (a `name.rs`, or every file of a
/// `name/` directory), comments left out.
fn read_modules(src: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in fs::read_dir(src).map_err(|e| format!("{}: {e}", src.display()))? {
        let path = entry?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let key = if stem == "lib" { "" } else { stem }.to_owned();
        let text = if path.is_dir() {
            let mut all = String::new();
            for file in fs::read_dir(&path)? {
                let file = file?.path();
                if file.extension().is_some_and(|e| e == "rs") {
                    all.push_str(&fs::read_to_string(&file)?);
                }
            }
            all
        } else if path.extension().is_some_and(|e| e == "rs") {
            fs::read_to_string(&path)?
        } else {
            continue;
        };
        out.entry(key)
            .or_insert_with(String::new)
            .push_str(&strip_comments(&text));
    }
    Ok(out)
}

fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The words (identifiers) of `text`.
fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
}

/// The module graph of `modules` (as [`read_modules`] gives them).
fn graph(modules: &BTreeMap<String, String>) -> Graph {
    let names: BTreeSet<&str> = modules
        .keys()
        .map(String::as_str)
        .filter(|k| !k.is_empty())
        .collect();
    // Names re-exported at the crate root: `pub use module::{A, B}` / `pub use module::A;`.
    let mut reexported: BTreeMap<&str, &str> = BTreeMap::new();
    if let Some(lib) = modules.get("") {
        for statement in lib.split(';') {
            let Some(rest) = statement.trim().strip_prefix("pub use ") else {
                continue;
            };
            let mut parts = words(rest);
            if let Some(module) = parts.next().filter(|m| names.contains(m)) {
                for item in parts {
                    reexported.insert(item, module);
                }
            }
        }
    }
    let mut out = Graph::new();
    for (module, text) in modules.iter().filter(|(k, _)| !k.is_empty()) {
        let edges = out.entry(module.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let rest = &text[at + "crate::".len()..];
            let referred: Vec<&str> = match rest.strip_prefix('{') {
                Some(group) => words(group.split('}').next().unwrap_or("")).collect(),
                None => words(rest).take(1).collect(),
            };
            for word in referred {
                let target = reexported.get(word).copied().unwrap_or(word);
                if target != module && names.contains(target) {
                    edges.insert(target.to_owned());
                }
            }
        }
    }
    out
}

/// The cycles of `graph`, each as the modules on it, the first repeated at the end.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
        out: &mut Vec<Vec<String>>,
    ) {
        marks.insert(node.to_owned(), Mark::Open);
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::Open => {
                    let start = path.iter().position(|p| p == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    out.push(cycle);
                }
                Mark::New => visit(next, graph, marks, path, out),
                Mark::Done => {}
            }
        }
        path.pop();
        marks.insert(node.to_owned(), Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut out = Vec::new();
    for node in graph.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New {
            visit(node, graph, &mut marks, &mut Vec::new(), &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modules(files: &[(&str, &str)]) -> BTreeMap<String, String> {
        files
            .iter()
            .map(|(k, v)| ((*k).to_owned(), strip_comments(v)))
            .collect()
    }

    #[test]
    fn a_cycle_through_a_root_re_export_is_found() {
        let graph = graph(&modules(&[
            ("", "mod a; mod b; pub use a::Thing;"),
            ("a", "use crate::b::helper;"),
            ("b", "use crate::{Thing, c};"),
        ]));
        assert_eq!(cycles(&graph), vec![vec!["a", "b", "a"]]);
    }

    #[test]
    fn a_tree_has_no_cycle_and_comments_do_not_count() {
        let graph = graph(&modules(&[
            ("", "mod a; mod b; mod c;"),
            ("a", "use crate::{b, c};"),
            ("b", "use crate::c; // see crate::a"),
            ("c", "/// links to [`crate::a`] in docs are comments too"),
        ]));
        assert!(cycles(&graph).is_empty(), "{graph:?}");
        assert_eq!(graph["a"], BTreeSet::from(["b".to_owned(), "c".to_owned()]));
    }
}
