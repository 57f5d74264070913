//! `cargo xtask soak [--minutes N]`: the bench's server with ours keeping only the per-call-site
//! totals, `/stat` under load for N minutes (default 10) and a Prometheus scrape every second
//! (`benches/python/soak.py`); fails on RSS growth of 16 MiB or more after the first minute,
//! a failed request or scrape, or a count of calls other than the requests answered.

use std::path::Path;

use crate::{exec, step, venv, Result};

/// The soak's length unless `--minutes` says otherwise.
const DEFAULT_MINUTES: f64 = 10.0;

pub(crate) fn run(root: &Path, args: &[String]) -> Result {
    let minutes = parse_minutes(args)?;
    let venv = venv::prepare(root)?;
    run_with(root, &venv, minutes)
}

/// The soak on `venv`'s build, `minutes` long.
pub(crate) fn run_with(root: &Path, venv: &venv::Venv, minutes: f64) -> Result {
    step(&format!(
        "soak: /stat under load for {minutes} min, totals scraped every second"
    ));
    let mut cmd = venv.command("python")?;
    cmd.arg(root.join("benches/python/soak.py"))
        .args(["--minutes", &minutes.to_string()]);
    exec(&mut cmd)
}

/// `[--minutes N]` (also `--minutes=N`), N > 0.
fn parse_minutes(args: &[String]) -> Result<f64> {
    let text = match args {
        [] => return Ok(DEFAULT_MINUTES),
        [flag, value] if flag == "--minutes" => value.as_str(),
        [flag] if flag.starts_with("--minutes=") => &flag["--minutes=".len()..],
        _ => {
            return Err(format!("expected `[--minutes N]`, got `{}`", args.join(" ")).into());
        }
    };
    match text.parse::<f64>() {
        Ok(minutes) if minutes > 0.0 && minutes.is_finite() => Ok(minutes),
        _ => Err(format!("--minutes must be a number above 0, got `{text}`").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Option<f64> {
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        parse_minutes(&args).ok()
    }

    #[test]
    fn minutes() {
        assert_eq!(parse(&[]), Some(DEFAULT_MINUTES));
        assert_eq!(parse(&["--minutes", "2"]), Some(2.0));
        assert_eq!(parse(&["--minutes=0.5"]), Some(0.5));
        assert_eq!(parse(&["--minutes", "0"]), None);
        assert_eq!(parse(&["--minutes", "x"]), None);
        assert_eq!(parse(&["--hours", "1"]), None);
    }
}
