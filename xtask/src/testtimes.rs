//! `cargo test` with each test's time, and the slowest ones named at the end.
//!
//! libtest times every test with `-Z unstable-options --report-time`, which a stable libtest
//! accepts only when RUSTC_BOOTSTRAP is set *when the test runs*. Setting it for cargo itself
//! would change every crate's fingerprint and rebuild the world, so it reaches the test
//! binaries alone, through cargo's target runner (`env RUSTC_BOOTSTRAP=1 <test binary>`).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{check, output, show, Failure};

/// How many of the slowest tests CI names.
const SLOWEST: usize = 10;

/// Runs `cmd` (a `cargo test ...` without `--`), passing its output through, then prints
/// the slowest tests and the total time.
pub fn run_timed(mut cmd: Command, test_args: &[String]) -> Result<(), Failure> {
    let host = host_triple()?;
    let runner_var = format!(
        "CARGO_TARGET_{}_RUNNER",
        host.to_uppercase().replace(['-', '.'], "_")
    );
    cmd.env(runner_var, "env RUSTC_BOOTSTRAP=1")
        .arg("--")
        .args(["-Z", "unstable-options", "--report-time"])
        .args(test_args)
        .stdout(Stdio::piped());

    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::new(format!("cannot run `{}`: {e}", show(&cmd))))?;
    let mut times = Vec::new();
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(timed) = parse_line(&line) {
                times.push(timed);
            }
            // A closed stdout (a pager quit) must not stop the tests: keep draining.
            let _ = writeln!(out, "{line}");
        }
    }
    let status = child
        .wait()
        .map_err(|e| Failure::new(format!("cannot wait for `{}`: {e}", show(&cmd))))?;
    print_summary(&times, started.elapsed());
    check(&cmd, status)
}

/// `test some::name ... ok <1.234s>` → (name, 1.234 s). Lines of failed and ignored tests
/// carry no time, and so are not counted.
fn parse_line(line: &str) -> Option<(String, Duration)> {
    let rest = line.strip_prefix("test ")?;
    let (name, outcome) = rest.split_once(" ... ")?;
    let seconds = outcome
        .strip_prefix("ok <")?
        .strip_suffix("s>")?
        .parse::<f64>()
        .ok()?;
    Some((name.to_string(), Duration::from_secs_f64(seconds)))
}

fn print_summary(times: &[(String, Duration)], total: Duration) {
    let mut slowest: Vec<&(String, Duration)> = times.iter().collect();
    slowest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    println!(
        "==> the {} slowest of {} timed tests",
        SLOWEST.min(slowest.len()),
        times.len()
    );
    for (name, took) in slowest.iter().take(SLOWEST) {
        println!("{:>9.1} s  {name}", took.as_secs_f64());
    }
    println!(
        "==> cargo test took {:.0} s in all (build included)",
        total.as_secs_f64()
    );
}

fn host_triple() -> Result<String, Failure> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let info = output(Command::new(rustc).arg("-vV"))
        .ok_or_else(|| Failure::new("cannot run `rustc -vV` to learn the host target"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_string)
        .ok_or_else(|| Failure::new("`rustc -vV` names no host target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_passed_test_line_gives_its_name_and_time() {
        let (name, took) = parse_line("test plan::two_engines ... ok <12.345s>").unwrap();
        assert_eq!(name, "plan::two_engines");
        assert_eq!(took, Duration::from_millis(12_345));
    }

    #[test]
    fn untimed_and_failed_lines_are_left_out() {
        assert_eq!(parse_line("test a ... FAILED"), None);
        assert_eq!(parse_line("test a ... ignored"), None);
        assert_eq!(parse_line("test result: ok. 3 passed; 0 failed"), None);
        assert_eq!(parse_line("running 3 tests"), None);
    }
}
