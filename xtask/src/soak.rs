//! `cargo xtask soak --minutes N`: builds the liaison-tests crate's `soak` binary in release
//! and runs it for N minutes (random workloads with random faults over every transport).

use crate::{cargo, run, step};

/// Parses `--minutes N` (default 2) and runs the soak binary, which prints its own table of
/// messages sent, delivered, lost, duplicated, resumes, aborts and peak memory, and fails
/// if any message was lost or duplicated.
pub(crate) fn soak(args: &[String]) -> Result<(), String> {
    let minutes = match args {
        [] => 2.0,
        [flag, n] if flag == "--minutes" => n
            .parse::<f64>()
            .ok()
            .filter(|m| m.is_finite() && *m > 0.0)
            .ok_or_else(|| format!("--minutes takes a positive number, not `{n}`"))?,
        _ => return Err(format!("bad arguments {args:?}\n{}", crate::USAGE)),
    };
    step(&format!("soak ({minutes} min)"), || {
        let mut cmd = cargo();
        cmd.args([
            "run",
            "--release",
            "--locked",
            "-p",
            "liaison-tests",
            "--bin",
            "soak",
            "--",
            "--minutes",
            &minutes.to_string(),
        ]);
        run(cmd)
    })
}
