//! `liaison-bench`: liaison's benchmarks beside raw transports, tarpc and yamux, as ratios.
//!
//! Run through `cargo xtask bench` (release build), which writes `docs/BENCHMARKS.md`.

mod baseline_bulk;
mod baseline_rpc;
mod measure;
mod report;

use std::time::Instant;

use measure::Budget;
use report::Figure;

struct Args {
    quick: bool,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--out" => args.out = Some(it.next().ok_or("--out takes a file path")?),
            other => return Err(format!("unknown argument `{other}` (expected --quick, --out FILE)")),
        }
    }
    Ok(args)
}

fn figure(name: &str, value: f64) -> Figure {
    eprintln!("  {name:<40} {value:>14.1}");
    Figure {
        name: name.to_string(),
        value,
    }
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("liaison-bench: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let budget = Budget::new(args.quick);
    let started = Instant::now();
    let figures = runtime.block_on(async {
        let mut figures = Vec::new();
        for inflight in [1, 64] {
            figures.push(figure(&format!("tokio channels, {inflight} in flight"), baseline_rpc::channel(budget, inflight).await));
            figures.push(figure(&format!("raw TCP, {inflight} in flight"), baseline_rpc::tcp(budget, inflight).await));
            figures.push(figure(&format!("tarpc channel, {inflight} in flight"), baseline_rpc::tarpc_channel(budget, inflight).await));
            figures.push(figure(&format!("tarpc TCP, {inflight} in flight"), baseline_rpc::tarpc_tcp(budget, inflight).await));
        }
        figures.push(figure("raw TCP bulk MiB/s", baseline_bulk::tcp(budget).await));
        figures.push(figure("yamux bulk MiB/s", baseline_bulk::yamux(budget).await));
        figures.push(figure("raw quinn bulk MiB/s", baseline_bulk::quinn(budget).await));
        figures
    });
    eprintln!("measured {} figures in {:.1}s", figures.len(), started.elapsed().as_secs_f64());
    let _ = args.out;
}
