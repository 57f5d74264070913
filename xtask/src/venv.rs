//! `cargo xtask venv`: the project's virtualenv at `<root>/.venv`, its tools, and the build of
//! the extension into it.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{display, exec, step, Result};

/// What the venv needs from PyPI: the build tool, the test runner, the async test plugins the
/// pytest plugin is tested with (`pytest-asyncio`, `anyio`), `trio` (its runs, and anyio's
/// trio backend, are monitored by `aiocop.trio`) and what the tests, the example and
/// the benches (`uvicorn`, `httptools`) import, and the libraries the exporters are tested
/// against (`prometheus-client`, `opentelemetry-sdk`). Changing this list changes the stamp, so the
/// next run reinstalls.
const TOOLS: &[&str] = &[
    "maturin",
    "pytest",
    "pytest-asyncio",
    "anyio",
    "trio",
    "uvloop",
    "starlette",
    "httpx",
    "uvicorn",
    "httptools",
    "prometheus-client",
    "opentelemetry-sdk",
];

/// Stamp files are named `<prefix><hash of TOOLS>`, inside the venv.
const STAMP_PREFIX: &str = ".aiocop-tools-";

/// The project's virtualenv.
#[derive(Debug)]
pub(crate) struct Venv {
    root: PathBuf,
    dir: PathBuf,
}

impl Venv {
    /// The path of an executable installed in the venv (`python`, `maturin`, ...).
    pub(crate) fn bin(&self, name: &str) -> PathBuf {
        let bin_dir = if cfg!(windows) { "Scripts" } else { "bin" };
        self.dir
            .join(bin_dir)
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
    }

    /// A command for one of the venv's executables, run at the workspace root as if the venv
    /// were activated (`VIRTUAL_ENV` set, its bin directory first on `PATH`).
    pub(crate) fn command(&self, name: &str) -> Result<Command> {
        let bin_dir = self.bin("python").parent().map(Path::to_path_buf);
        let mut path = vec![bin_dir.ok_or("venv has no bin directory")?];
        if let Some(old) = std::env::var_os("PATH") {
            path.extend(std::env::split_paths(&old));
        }
        let path: OsString = std::env::join_paths(path)?;
        let mut cmd = Command::new(self.bin(name));
        cmd.current_dir(&self.root)
            .env("VIRTUAL_ENV", &self.dir)
            .env("PATH", path)
            // maturin refuses to pick between a venv and an active conda env.
            .env_remove("CONDA_PREFIX");
        Ok(cmd)
    }
}

/// `cargo xtask venv`: everything `prepare` does.
pub(crate) fn run(root: &Path) -> Result {
    let venv = prepare(root)?;
    println!("ready: {}", venv.dir.display());
    Ok(())
}

/// Ensures the venv and its tools, then builds aiocop in release mode and installs it there.
pub(crate) fn prepare(root: &Path) -> Result<Venv> {
    let venv = ensure(root)?;
    step("maturin develop --release (build aiocop into .venv)");
    exec(
        venv.command("maturin")?
            .args(["develop", "--release", "--quiet"]),
    )?;
    Ok(venv)
}

/// A venv `<root>/<name>` made by `python`, with the tools, and aiocop built into it with
/// `target_dir` as cargo's target directory and a release profile without LTO and with 16
/// codegen units (minutes less to build; these venvs check behaviour on another interpreter,
/// not speed).
pub(crate) fn prepare_other(
    root: &Path,
    name: &str,
    python: &Path,
    target_dir: &Path,
) -> Result<Venv> {
    let venv = ensure_with(root, name, TOOLS, python)?;
    step(&format!(
        "maturin develop --release (build aiocop into {name})"
    ));
    exec(
        venv.command("maturin")?
            .args(["develop", "--release", "--quiet"])
            .env("CARGO_TARGET_DIR", target_dir)
            .env("CARGO_PROFILE_RELEASE_LTO", "off")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16"),
    )?;
    Ok(venv)
}

/// Creates `.venv` if it has no interpreter, and installs `TOOLS` unless the stamp says they are
/// there already (`cargo xtask wheels` takes maturin from it).
pub(crate) fn ensure_main(root: &Path) -> Result<Venv> {
    ensure(root)
}

fn ensure(root: &Path) -> Result<Venv> {
    ensure_at(root, ".venv", TOOLS)
}

/// Creates the venv `<root>/<name>` if it has no interpreter, and installs `packages` (pip
/// requirement specifiers) unless the stamp says they are there already.
pub(crate) fn ensure_at(root: &Path, name: &str, packages: &[&str]) -> Result<Venv> {
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    ensure_with(root, name, packages, Path::new(&python))
}

/// [`ensure_at`] with the venv created by `python` (when it has no interpreter yet).
fn ensure_with(root: &Path, name: &str, packages: &[&str], python: &Path) -> Result<Venv> {
    let venv = Venv {
        root: root.to_path_buf(),
        dir: root.join(name),
    };
    if !venv.bin("python").exists() {
        let mut cmd = Command::new(python);
        cmd.current_dir(root).args(["-m", "venv"]).arg(&venv.dir);
        step(&format!("create {name} ({})", display(&cmd)));
        exec(&mut cmd).map_err(|err| {
            format!("{err}\n(needs Python >= 3.10 with the venv module; set PYTHON to pick one)")
        })?;
    }

    let stamp = venv.dir.join(format!(
        "{STAMP_PREFIX}{:016x}",
        fnv1a(packages.join("\n").as_bytes())
    ));
    if !stamp.exists() {
        step(&format!(
            "install Python tools into {name}: {}",
            packages.join(" ")
        ));
        exec(
            venv.command("python")?
                .args(["-m", "pip", "install", "-q"])
                .args(packages),
        )?;
        remove_stale_stamps(&venv.dir)?;
        fs::write(&stamp, packages.join("\n") + "\n")?;
    }
    Ok(venv)
}

fn remove_stale_stamps(dir: &Path) -> Result {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(STAMP_PREFIX)
        {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// 64-bit FNV-1a: a stable hash (unlike `DefaultHasher`) with no dependency.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    #[test]
    fn fnv1a_matches_reference_values() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
