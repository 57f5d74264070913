//! The CPython interpreters `cargo xtask test` and `cargo xtask wheels` run on: found
//! under pyenv's root (`$PYENV_ROOT`, else `~/.pyenv`: the newest `X.Y.Z` of each `X.Y`) or as
//! `pythonX.Y` on `PATH`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Result;

/// `3.10,3.12` → `["3.10", "3.12"]`: each `3.N`, no repeats.
pub(crate) fn parse_versions(text: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let minor = part
            .strip_prefix("3.")
            .and_then(|m| m.parse::<u32>().ok())
            .filter(|m| *m >= 10);
        if minor.is_none() {
            return Err(format!(
                "`--python {text}`: expected versions like 3.10,3.12 (3.10 or later)"
            )
            .into());
        }
        if !out.iter().any(|v| v == part) {
            out.push(part.to_owned());
        }
    }
    if out.is_empty() {
        return Err(format!("`--python {text}`: no version given").into());
    }
    Ok(out)
}

/// The CPython versions `cargo xtask test` and `cargo xtask wheels` look for by default.
pub(crate) const SUPPORTED: &[&str] = &["3.10", "3.11", "3.12", "3.13", "3.14"];

/// Every supported version this machine has but `main` (the main run's own), said in one line.
pub(crate) fn found_other_than(main: Option<&str>) -> Vec<String> {
    let found: Vec<String> = SUPPORTED
        .iter()
        .filter(|version| Some(**version) != main && find(version).is_some())
        .map(|version| (*version).to_owned())
        .collect();
    let missing: Vec<&str> = SUPPORTED
        .iter()
        .copied()
        .filter(|version| Some(*version) != main && !found.iter().any(|f| f == version))
        .collect();
    crate::step(&format!(
        "other interpreters: {} found{}",
        if found.is_empty() {
            "none".to_owned()
        } else {
            found.join(", ")
        },
        if missing.is_empty() {
            String::new()
        } else {
            format!(" ({} not on this machine, skipped)", missing.join(", "))
        }
    ));
    found
}

/// The interpreter of `version` (`3.12`), if this machine has one.
pub(crate) fn find(version: &str) -> Option<PathBuf> {
    pyenv_root()
        .and_then(|root| newest_under(&root.join("versions"), version))
        .or_else(|| on_path(&format!("python{version}")))
}

fn pyenv_root() -> Option<PathBuf> {
    std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".pyenv")))
}

/// The newest `<version>.N` directory under `versions` that has `bin/python3`.
fn newest_under(versions: &Path, version: &str) -> Option<PathBuf> {
    let prefix = format!("{version}.");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(versions)
        .ok()?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let patch = name.strip_prefix(&prefix)?.parse::<u32>().ok()?;
            let python = versions.join(&name).join("bin").join("python3");
            python.exists().then_some((patch, python))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, python)| python)
}

fn on_path(name: &str) -> Option<PathBuf> {
    let output = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()?;
    let path = String::from_utf8(output.stdout).ok()?;
    let path = path.trim();
    (output.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

/// The `lib` directory beside an interpreter's `bin` (where a pyenv build keeps libpython).
pub(crate) fn lib_dir(python: &Path) -> Option<PathBuf> {
    Some(python.parent()?.parent()?.join("lib"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_versions("3.10, 3.12,3.10").expect("valid"),
            ["3.10", "3.12"]
        );
        assert!(parse_versions("3.9").is_err());
        assert!(parse_versions("2.7").is_err());
        assert!(parse_versions("").is_err());
        assert!(parse_versions("3.x").is_err());
    }

    #[test]
    fn the_newest_patch_release_is_chosen() {
        let dir = std::env::temp_dir().join(format!("xtask-pythons-{}", std::process::id()));
        for name in ["3.12.1", "3.12.10", "3.13.0", "3.12.x"] {
            let bin = dir.join(name).join("bin");
            std::fs::create_dir_all(&bin).expect("created");
            std::fs::write(bin.join("python3"), "").expect("written");
        }
        let found = newest_under(&dir, "3.12").expect("found");
        assert!(found.ends_with("3.12.10/bin/python3"), "{found:?}");
        assert!(newest_under(&dir, "3.11").is_none());
        std::fs::remove_dir_all(&dir).expect("removed");
    }
}
