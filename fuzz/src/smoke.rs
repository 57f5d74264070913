//! The smoke driver: every target on its seed corpus (`corpus/<target>/`) and on a fixed
//! number of inputs made from the seeds by byte-level mutations, drawn from a deterministic
//! generator. Runs on stable, without libFuzzer, in seconds (`cargo xtask fuzz --smoke`).
//!
//! A failing input is shrunk (parts removed while the same property still fails), written to
//! `artifacts/<target>/`, and reported with the property's message.

use std::fmt::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::{target, Target, TARGETS};

/// Mutated inputs per target.
pub const ITERATIONS: usize = 20_000;

/// No input grows beyond this many bytes.
const MAX_LEN: usize = 4096;

/// Bytes and tokens the mutations insert: the redactor's and the rule parser's syntax,
/// multi-byte and broken UTF-8, Unicode whitespace, the targets' separators.
const TOKENS: &[&[u8]] = &[
    b"password=",
    b"token=",
    b"api_key",
    b"://",
    b"https://u:",
    b"@",
    b"=",
    b"==",
    b"'",
    b"\"",
    b" ",
    b"\t",
    b"\n",
    b"\r\n",
    b",",
    b";",
    b":",
    b"&",
    b"?",
    b"-",
    b"--password ",
    b"Bearer ",
    b"basic ",
    b"{'",
    b"': '",
    b"('",
    b"', '",
    b"b'",
    b"\\",
    b"mailto:",
    b"\0",
    b"\x01",
    b"event=",
    b"module=",
    b"path=",
    b"function=",
    b"frames=any",
    b"frames=first",
    b"*",
    b"\xc3\xa9",
    b"\xe2\x82\xac",
    b"\xf0\x9f\xa6\x80",
    b"\xe2\x82",
    b"\xff",
    b"\xc2\x85",
    b"\xc2\xa0",
    b"\x1f",
];

/// xorshift64*: small, fast, and the same sequence everywhere.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value; zero is replaced).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    fn byte(&mut self) -> u8 {
        self.next_u64().to_le_bytes()[0]
    }

    fn token(&mut self) -> &'static [u8] {
        TOKENS[self.below(TOKENS.len())]
    }
}

/// Applies one to four byte-level mutations to `input`: bit flips, byte changes, insertions
/// of bytes or tokens (some repeated up to 120 times, to reach the 100-character cut),
/// deletions, duplications, and splices from another seed.
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(input.len() + 1);
        match rng.below(9) {
            0 if !input.is_empty() => {
                let at = rng.below(input.len());
                input[at] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let at = rng.below(input.len());
                input[at] = match rng.below(2) {
                    0 => rng.byte(),
                    _ => {
                        let token = rng.token();
                        token[rng.below(token.len())]
                    }
                };
            }
            2 => input.insert(at, rng.byte()),
            3 | 4 => {
                let token = rng.token();
                input.splice(at..at, token.iter().copied());
            }
            5 if !input.is_empty() => {
                let len = 1 + rng.below(input.len().min(16));
                let start = rng.below(input.len() - len + 1);
                input.drain(start..start + len);
            }
            6 if !input.is_empty() => {
                let len = 1 + rng.below(input.len().min(64));
                let start = rng.below(input.len() - len + 1);
                let copy = input[start..start + len].to_vec();
                input.splice(at..at, copy);
            }
            7 if !seeds.is_empty() => {
                let other = &seeds[rng.below(seeds.len())];
                let start = rng.below(other.len() + 1);
                let len = rng.below(other.len() - start + 1);
                input.splice(at..at, other[start..start + len].iter().copied());
            }
            _ => {
                let token = rng.token();
                let times = 1 + rng.below(120);
                let run: Vec<u8> = token
                    .iter()
                    .copied()
                    .cycle()
                    .take(token.len() * times)
                    .collect();
                input.splice(at..at, run);
            }
        }
    }
    input.truncate(MAX_LEN);
}

/// The message and place of the last panic, recorded by the driver's panic hook.
static LAST_PANIC: Mutex<Option<(String, String)>> = Mutex::new(None);

/// A failed property: where it failed and what it said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `file:line` of the failed assertion.
    pub location: String,
    /// The panic message.
    pub message: String,
}

/// Runs `target` on `input`, catching a panic.
pub fn check(target: Target, input: &[u8]) -> Result<(), Failure> {
    match panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input))) {
        Ok(()) => Ok(()),
        Err(_) => {
            let (location, message) = LAST_PANIC
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .unwrap_or_default();
            Err(Failure { location, message })
        }
    }
}

/// `input` with parts removed (halves, then smaller and smaller runs, then single bytes)
/// while `target` still fails at the same place.
pub fn shrink(target: Target, input: &[u8], failure: &Failure) -> Vec<u8> {
    let mut best = input.to_vec();
    let mut chunk = best.len().div_ceil(2).max(1);
    let mut attempts = 0;
    while attempts < 20_000 {
        let mut at = 0;
        let mut removed = false;
        while at < best.len() && attempts < 20_000 {
            attempts += 1;
            let mut candidate = best.clone();
            candidate.drain(at..(at + chunk).min(best.len()));
            match check(target, &candidate) {
                Err(again) if again.location == failure.location => {
                    best = candidate;
                    removed = true;
                }
                _ => at += chunk,
            }
        }
        if !removed {
            if chunk == 1 {
                break;
            }
            chunk = chunk.div_ceil(2);
        }
    }
    best
}

/// The files of `dir`, by name.
fn read_corpus(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, String> {
    let entries = std::fs::read_dir(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|err| format!("{}: {err}", dir.display()))?
            .path();
        if path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).map_err(|err| format!("{}: {err}", path.display()))?;
            Ok((path, bytes))
        })
        .collect()
}

/// What the driver runs: targets, the inputs of each, and the generator's seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The targets to run, in order.
    pub targets: Vec<&'static str>,
    /// Files to run instead of the seed corpus and its mutations (to replay a failure).
    pub inputs: Vec<PathBuf>,
    /// Mutated inputs per target.
    pub iterations: usize,
    /// The generator's seed.
    pub seed: u64,
}

impl Options {
    /// `[TARGET...] [--iterations N] [--seed N] [FILE...]`: no target means all of them; files
    /// (absolute, or relative to the working directory: `fuzz/` under `cargo test`) are
    /// replayed, with one target, instead of the corpus.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            targets: Vec::new(),
            inputs: Vec::new(),
            iterations: ITERATIONS,
            seed: 0x00a1_0c09,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut number = |flag: &str| {
                args.next()
                    .and_then(|value| value.parse::<u64>().ok())
                    .ok_or_else(|| format!("`{flag}` needs a number"))
            };
            match arg.as_str() {
                "--iterations" => options.iterations = number(arg)? as usize,
                "--seed" => options.seed = number(arg)?,
                name => match target(name) {
                    Some(target) => options.targets.push(target.name),
                    None if Path::new(name).is_file() => options.inputs.push(name.into()),
                    None => {
                        return Err(format!(
                            "unknown target or file `{name}`; targets: {}",
                            names().join(", ")
                        ))
                    }
                },
            }
        }
        if !options.inputs.is_empty() && options.targets.len() != 1 {
            return Err("replaying files needs exactly one target".into());
        }
        if options.targets.is_empty() {
            options.targets = names();
        }
        Ok(options)
    }
}

/// The targets' names.
pub fn names() -> Vec<&'static str> {
    TARGETS.iter().map(|target| target.name).collect()
}

/// Runs the smoke test as `options` say, with `root` the fuzz crate's directory (its
/// `corpus/` and `artifacts/`). Returns the report of the first failure.
pub fn run(root: &Path, options: &Options, log: &mut dyn FnMut(&str)) -> Result<(), String> {
    let previous_hook = panic::take_hook();
    panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|at| format!("{}:{}", at.file(), at.line()))
            .unwrap_or_default();
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        *LAST_PANIC
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((location, message));
    }));
    let result = options
        .targets
        .iter()
        .try_for_each(|&name| run_target(root, options, name, log));
    panic::set_hook(previous_hook);
    result
}

fn run_target(
    root: &Path,
    options: &Options,
    name: &str,
    log: &mut dyn FnMut(&str),
) -> Result<(), String> {
    let target = target(name).ok_or_else(|| format!("unknown target `{name}`"))?;
    let started = Instant::now();
    let replay = !options.inputs.is_empty();
    let files = if replay {
        options
            .inputs
            .iter()
            .map(|path| {
                std::fs::read(path)
                    .map(|bytes| (path.clone(), bytes))
                    .map_err(|err| format!("{}: {err}", path.display()))
            })
            .collect::<Result<Vec<_>, String>>()?
    } else {
        let files = read_corpus(&root.join("corpus").join(name))?;
        if files.is_empty() {
            return Err(format!("{name}: the seed corpus corpus/{name}/ is empty"));
        }
        files
    };
    for (path, bytes) in &files {
        if let Err(failure) = check(target, bytes) {
            return Err(report(
                root,
                target,
                bytes,
                &failure,
                &path.display().to_string(),
            ));
        }
    }
    let seeds: Vec<Vec<u8>> = files.into_iter().map(|(_, bytes)| bytes).collect();
    let iterations = if replay { 0 } else { options.iterations };
    let mut rng = Rng::new(options.seed ^ fnv1a(name.as_bytes()));
    let mut input = Vec::new();
    for i in 0..iterations {
        // Mostly a fresh seed, sometimes the last input again (mutations pile up).
        if i % 4 != 3 {
            input.clone_from(&seeds[rng.below(seeds.len())]);
        }
        mutate(&mut rng, &seeds, &mut input);
        if let Err(failure) = check(target, &input) {
            let origin = format!("mutated input {i} of seed {:#x}", options.seed);
            return Err(report(root, target, &input, &failure, &origin));
        }
    }
    log(&format!(
        "{name}: ok, {} seed(s) and {iterations} mutated inputs in {:.2} s",
        seeds.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The failure's report; the shrunk input is written to `artifacts/<target>/`.
fn report(root: &Path, target: Target, input: &[u8], failure: &Failure, origin: &str) -> String {
    let shrunk = shrink(target, input, failure);
    let mut text = format!(
        "{}: property failed on {origin}\n  at {}: {}\n  input ({} bytes): \"{}\"\n  shrunk ({} bytes): \"{}\"",
        target.name,
        failure.location,
        failure.message,
        input.len(),
        input.escape_ascii(),
        shrunk.len(),
        shrunk.escape_ascii(),
    );
    let dir = root.join("artifacts").join(target.name);
    let path = dir.join(format!("smoke-{:016x}", fnv1a(&shrunk)));
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &shrunk)) {
        Ok(()) => {
            let _ = write!(
                text,
                "\n  written to {path}; replay it with\n    cargo test --manifest-path fuzz/Cargo.toml \
                 --no-default-features --test smoke -- {name} {path}\n  or (nightly, cargo-fuzz) \
                 cargo fuzz run {name} {path}",
                path = path.display(),
                name = target.name,
            );
        }
        Err(err) => {
            let _ = write!(text, "\n  (not written to {}: {err})", path.display());
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generator_is_deterministic() {
        let draw = |seed| {
            let mut rng = Rng::new(seed);
            (0..4).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        assert_ne!(draw(0)[0], 0);
    }

    #[test]
    fn mutations_stay_bounded() {
        let seeds = vec![b"password=x".to_vec(), Vec::new()];
        let mut rng = Rng::new(1);
        for seed in seeds.iter().cycle().take(2_000) {
            let mut input = seed.clone();
            for _ in 0..8 {
                mutate(&mut rng, &seeds, &mut input);
            }
            assert!(input.len() <= MAX_LEN);
        }
    }

    #[test]
    fn options() {
        let parse = |args: &[&str]| {
            Options::parse(&args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
        };
        let all = parse(&[]).expect("no arguments");
        assert_eq!(all.targets, names());
        assert_eq!(all.iterations, ITERATIONS);
        let one = parse(&["redact", "--iterations", "5"]).expect("a target");
        assert_eq!((one.targets, one.iterations), (vec!["redact"], 5));
        assert!(parse(&["nope"]).is_err());
        assert!(parse(&["--seed"]).is_err());
        assert!(parse(&["Cargo.toml"]).is_err()); // a file needs one target
    }
}
