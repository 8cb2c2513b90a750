//! Project automation, run as `cargo xtask <command>`: `ci`, `bench`, `fuzz`.
//!
//! Kept dependency-free on purpose: it only sequences cargo invocations and reports them.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

mod disk;
mod services;
mod soak;
mod tidy;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci                  fmt, tidy, clippy, redis-server (installed when missing), tests, doctests, docs
  bench [--quick]     the benchmark suite (release build); writes docs/BENCHMARKS.md
  fuzz [--seconds N]  run every cargo-fuzz target for N seconds each (needs nightly + cargo-fuzz)
  soak [--minutes N]  random workloads with random faults over every transport (release build)
";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("bench") => bench(&args[1..]),
        Some("fuzz") => fuzz(&args[1..]),
        Some("soak") => soak::soak(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

/// Runs one named step, printing one line with its outcome and duration.
fn step(name: &str, run: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    println!("==> {name}");
    let start = Instant::now();
    let outcome = run();
    let secs = start.elapsed().as_secs_f64();
    match &outcome {
        Ok(()) => println!("==> {name}: ok ({secs:.1}s)"),
        Err(e) => println!("==> {name}: FAILED after {secs:.1}s: {e}"),
    }
    outcome
}

fn run(mut cmd: Command) -> Result<(), String> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} exited with {status}"))
    }
}

fn has_cargo_subcommand(name: &str) -> bool {
    cargo()
        .args([name, "--version"])
        .output()
        .is_ok_and(|out| out.status.success())
}

fn ci() -> Result<(), String> {
    let target = disk::target_dir(&root());
    disk::warn_if_short(&target);
    ci_steps().map_err(|error| disk::explain(&target, error))
}

fn ci_steps() -> Result<(), String> {
    let total = Instant::now();
    step("fmt", || {
        let mut cmd = cargo();
        cmd.args(["fmt", "--all", "--check"]);
        run(cmd)
    })?;
    step("tidy", || tidy::check(&root()))?;
    step("clippy", || {
        let mut cmd = cargo();
        cmd.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ]);
        run(cmd)
    })?;
    step("services", services::ensure_redis)?;
    step("test", || {
        let mut cmd = cargo();
        if has_cargo_subcommand("nextest") {
            cmd.args([
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--profile",
                "ci",
            ]);
        } else {
            cmd.args([
                "test",
                "--workspace",
                "--locked",
                "--lib",
                "--bins",
                "--tests",
            ]);
        }
        run(cmd)
    })?;
    step("doctest", || {
        let mut cmd = cargo();
        cmd.args(["test", "--workspace", "--locked", "--doc"]);
        run(cmd)
    })?;
    step("doc", || {
        let mut cmd = cargo();
        cmd.env("RUSTDOCFLAGS", "-D warnings").args([
            "doc",
            "--workspace",
            "--no-deps",
            "--locked",
        ]);
        run(cmd)
    })?;
    println!(
        "==> ci: all steps passed ({:.1}s)",
        total.elapsed().as_secs_f64()
    );
    Ok(())
}

fn bench(args: &[String]) -> Result<(), String> {
    let quick = match args {
        [] => false,
        [flag] if flag == "--quick" => true,
        _ => return Err(format!("bad arguments {args:?}\n{USAGE}")),
    };
    let out = root().join("docs").join("BENCHMARKS.md");
    step("bench", || {
        let mut cmd = cargo();
        cmd.args(["run", "--release", "--locked", "-p", "liaison-bench", "--"])
            .arg("--out")
            .arg(&out);
        if quick {
            cmd.arg("--quick");
        }
        run(cmd)
    })?;
    println!("==> wrote {}", out.display());
    Ok(())
}

fn fuzz(args: &[String]) -> Result<(), String> {
    let seconds = match args {
        [] => 30,
        [flag, n] if flag == "--seconds" => n
            .parse::<u64>()
            .map_err(|_| format!("--seconds takes a whole number, not `{n}`"))?,
        _ => return Err(format!("bad arguments {args:?}\n{USAGE}")),
    };
    let nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    let missing = match (nightly, has_cargo_subcommand("fuzz")) {
        (true, true) => None,
        (false, true) => Some("a nightly toolchain"),
        (true, false) => Some("cargo-fuzz"),
        (false, false) => Some("a nightly toolchain and cargo-fuzz"),
    };
    if let Some(missing) = missing {
        println!(
            "==> fuzz: skipped, {missing} missing (`rustup toolchain install nightly`, \
             `cargo install cargo-fuzz`); the proptest mirror of every target \
             (crates/*/tests/fuzz_mirrors.rs) runs in CI"
        );
        return Ok(());
    }
    let fuzz_dir = root().join("fuzz");
    let list = Command::new("cargo")
        .args(["+nightly", "fuzz", "list"])
        .current_dir(&fuzz_dir)
        .output()
        .map_err(|e| format!("cargo fuzz list: {e}"))?;
    if !list.status.success() {
        return Err(format!(
            "cargo +nightly fuzz list failed (is a nightly toolchain installed?): {}",
            String::from_utf8_lossy(&list.stderr).trim()
        ));
    }
    for target in String::from_utf8_lossy(&list.stdout).lines() {
        step(&format!("fuzz {target} ({seconds}s)"), || {
            let mut cmd = Command::new("cargo");
            cmd.current_dir(&fuzz_dir).args([
                "+nightly",
                "fuzz",
                "run",
                target,
                "--",
                &format!("-max_total_time={seconds}"),
            ]);
            run(cmd)
        })?;
    }
    Ok(())
}
