//! `liaison`: the command-line tool of the liaison session layer.
//!
//! `serve` listens on TCP, Unix sockets and QUIC and serves an echo service, a stream
//! service and the session-state service on every authenticated session; `connect` and
//! `state` are their clients; `demo` runs the whole stack in one process and prints what
//! happened; `bench` runs the benchmark suite. `liaison --help` lists every option.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod bench;
mod certs;
mod client;
mod connect;
mod demo;
mod error;
mod options;
mod output;
mod serve;
mod services;
mod store;
mod table;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::output::Output;

/// liaison: an authenticated, resumable session layer over TCP, Unix sockets and QUIC.
///
/// Logs go to stderr, filtered by RUST_LOG (default: `info` for serve, `warn` otherwise).
#[derive(Debug, Parser)]
#[command(name = "liaison", version, about, long_about)]
struct Cli {
    /// Print results as JSON lines for scripts.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the echo, stream and session-state services until Ctrl-C.
    Serve(serve::ServeArgs),
    /// Open a session with a server: interactive, or one call or stream.
    Connect(connect::ConnectArgs),
    /// Read or write a state of the server's session-state service.
    State(connect::StateArgs),
    /// Run a self-contained tour over every transport and print what happened.
    Demo(demo::DemoArgs),
    /// Run the benchmark suite quickly (liaison-bench --quick).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_filter = match cli.command {
        Command::Serve(_) => "info",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let out = Output::new(cli.json);
    let outcome = match cli.command {
        Command::Bench(args) => bench::run(&args),
        command => run_async(command, out),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("liaison: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_async(command: Command, out: Output) -> Result<(), error::CliError> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| error::CliError::io("cannot start the async runtime", e))?;
    runtime.block_on(async {
        match command {
            Command::Serve(args) => serve::run(args, out).await,
            Command::Connect(args) => connect::run(args, out).await,
            Command::State(args) => connect::run_state(args, out).await,
            Command::Demo(args) => demo::run(args).await,
            Command::Bench(args) => bench::run(&args),
        }
    })
}
