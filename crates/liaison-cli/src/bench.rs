//! `liaison bench`: a quick run of the benchmark suite (`liaison-bench --quick`).
//!
//! The suite is its own binary: this command runs the `liaison-bench` next to this
//! executable when there is one (a `cargo build --release --workspace` puts both in the same
//! folder), and otherwise `cargo run --release -p liaison-bench -- --quick` from the
//! workspace it is started in.

use std::path::PathBuf;
use std::process::Command;

use clap::Args;

use crate::error::CliError;

/// Options of `liaison bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// Also write the markdown report to this file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The full run (seconds per figure) instead of the quick one.
    #[arg(long)]
    full: bool,
}

/// The `liaison-bench` executable beside this one, if built.
fn sibling() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bench = exe.with_file_name(format!("liaison-bench{}", std::env::consts::EXE_SUFFIX));
    bench.is_file().then_some(bench)
}

/// Runs the suite, its output going straight to this terminal.
pub(crate) fn run(args: &BenchArgs) -> Result<(), CliError> {
    let mut suite_args: Vec<String> = Vec::new();
    if !args.full {
        suite_args.push("--quick".into());
    }
    if let Some(out) = &args.out {
        suite_args.push("--out".into());
        suite_args.push(out.display().to_string());
    }
    let (mut command, shown) = match sibling() {
        Some(bench) => {
            let shown = bench.display().to_string();
            (Command::new(bench), shown)
        }
        None => {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut command = Command::new(&cargo);
            command.args(["run", "--release", "-p", "liaison-bench", "--"]);
            (
                command,
                format!("{cargo} run --release -p liaison-bench --"),
            )
        }
    };
    command.args(&suite_args);
    let status = command
        .status()
        .map_err(|e| CliError::io(format!("cannot run `{shown}`"), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(CliError::Check(format!(
            "`{shown} {}` failed ({status})",
            suite_args.join(" ")
        )))
    }
}
