//! `cargo xtask demo`: the quick-start example on a release build, on asyncio and on uvloop.

use std::path::Path;

use crate::{exec, step, venv, Result};

const LOOPS: [&str; 2] = ["asyncio", "uvloop"];

pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let loops = parse_loops(args)?;
    let venv = venv::prepare(root)?;
    let mut failed = Vec::new();
    for kind in loops {
        step(&format!("python examples/quickstart.py --loop {kind}"));
        let mut cmd = venv.command("python")?;
        cmd.args(["examples/quickstart.py", "--loop", kind]);
        if let Err(err) = exec(&mut cmd) {
            eprintln!("{err}");
            failed.push(kind);
        }
    }
    match failed.as_slice() {
        [] => Ok(()),
        kinds => Err(format!("the demo failed on: {}", kinds.join(", ")).into()),
    }
}

/// `[--loop asyncio|uvloop|both]` (also `--loop=KIND`); the default is both.
fn parse_loops(args: &[String]) -> Result<Vec<&'static str>> {
    let kind = match args {
        [] => "both",
        [flag, kind] if flag == "--loop" => kind.as_str(),
        [flag] if flag.starts_with("--loop=") => &flag["--loop=".len()..],
        _ => {
            return Err(format!(
                "expected `[--loop asyncio|uvloop|both]`, got `{}`",
                args.join(" ")
            )
            .into())
        }
    };
    match kind {
        "both" => Ok(LOOPS.to_vec()),
        _ => LOOPS
            .iter()
            .find(|&&known| known == kind)
            .map(|&known| vec![known])
            .ok_or_else(|| {
                format!("unknown loop `{kind}`: expected asyncio, uvloop or both").into()
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_loops;

    fn parse(args: &[&str]) -> Option<Vec<&'static str>> {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        parse_loops(&args).ok()
    }

    #[test]
    fn loop_kinds() {
        assert_eq!(parse(&[]), Some(vec!["asyncio", "uvloop"]));
        assert_eq!(parse(&["--loop", "both"]), Some(vec!["asyncio", "uvloop"]));
        assert_eq!(parse(&["--loop", "uvloop"]), Some(vec!["uvloop"]));
        assert_eq!(parse(&["--loop=asyncio"]), Some(vec!["asyncio"]));
        assert_eq!(parse(&["--loop", "trio"]), None);
        assert_eq!(parse(&["--loop"]), None);
        assert_eq!(parse(&["uvloop"]), None);
    }
}
