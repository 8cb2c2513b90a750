//! `liaison-bench`: liaison's benchmarks beside raw transports, tarpc and yamux, as ratios.
//!
//! Run through `cargo xtask bench` (release build), which writes `docs/BENCHMARKS.md`. Every
//! figure of one table is measured in the same run, on the same machine, one after another.

mod baseline_bulk;
mod baseline_rpc;
mod goodput;
mod liaison;
mod measure;
mod report;
mod resume;

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use liaison_transport::LoopbackKind;
use measure::{compare, Budget, Contender};
use report::{Figure, Row};

struct Args {
    quick: bool,
    out: Option<String>,
    /// Prefixes of the groups to run (see [`GROUPS`]); every group when empty.
    only: Vec<String>,
}

/// The benchmark groups, in the order they run. `--only P` runs the groups whose name starts
/// with `P` (`--only bulk` runs both bulk groups, `--only calls` both call groups).
const GROUPS: [&str; 6] = [
    "calls",
    "calls-one-thread",
    "bulk-tcp",
    "bulk-quic",
    "goodput",
    "resume",
];

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        quick: false,
        out: None,
        only: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.quick = true,
            "--out" => args.out = Some(it.next().ok_or("--out takes a file path")?),
            "--only" => {
                let group = it.next().ok_or("--only takes a group name")?;
                if !GROUPS.iter().any(|g| g.starts_with(group.as_str())) {
                    return Err(format!(
                        "unknown group `{group}` (expected one of {})",
                        GROUPS.join(", ")
                    ));
                }
                args.only.push(group);
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (expected --quick, --out FILE, --only GROUP)"
                ))
            }
        }
    }
    Ok(args)
}

/// Unary round trips at 1 and 64 in flight, over memory and TCP, beside the raw transport
/// and tarpc; `runtime` names the runtime they run on in each row's name.
async fn round_trips(budget: Budget, runtime: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    for inflight in [1, 64] {
        let figures = compare(
            budget,
            vec![
                Contender::new(format!("liaison memory, {inflight} in flight"), move |b| {
                    liaison::calls(LoopbackKind::Memory, b, inflight)
                }),
                Contender::new("tokio channels", move |b| {
                    baseline_rpc::channel(b, inflight)
                }),
                Contender::new("tarpc channel", move |b| {
                    baseline_rpc::tarpc_channel(b, inflight)
                }),
            ],
        )
        .await;
        rows.push(row(
            format!("unary calls, memory, {inflight} in flight{runtime}"),
            "calls/s",
            figures,
        ));
        let figures = compare(
            budget,
            vec![
                Contender::new(format!("liaison TCP, {inflight} in flight"), move |b| {
                    liaison::calls(LoopbackKind::Tcp, b, inflight)
                }),
                Contender::new("raw TCP ping-pong", move |b| baseline_rpc::tcp(b, inflight)),
                Contender::new("tarpc TCP", move |b| baseline_rpc::tarpc_tcp(b, inflight)),
            ],
        )
        .await;
        rows.push(row(
            format!("unary calls, TCP loopback, {inflight} in flight{runtime}"),
            "calls/s",
            figures,
        ));
    }
    rows
}

/// A row from figures measured together, liaison's first.
fn row(bench: impl Into<String>, unit: &'static str, mut figures: Vec<Figure>) -> Row {
    let subject = figures.remove(0);
    Row {
        bench: bench.into(),
        unit,
        subject,
        baselines: figures,
    }
}

async fn bulk_tcp(budget: Budget) -> Row {
    let figures = compare(
        budget,
        vec![
            Contender::new("liaison one exchange, TCP", |b| {
                liaison::bulk(LoopbackKind::Tcp, b)
            }),
            Contender::new("raw TCP", baseline_bulk::tcp),
            Contender::new("yamux, one stream over TCP", baseline_bulk::yamux),
        ],
    )
    .await;
    row("bulk, one exchange, 64 KiB messages, TCP", "MiB/s", figures)
}

async fn bulk_quic(budget: Budget) -> Row {
    let figures = compare(
        budget,
        vec![
            Contender::new("liaison one exchange, QUIC", |b| {
                liaison::bulk(LoopbackKind::Quic, b)
            }),
            Contender::new("raw quinn stream", baseline_bulk::quinn),
        ],
    )
    .await;
    row(
        "bulk, one exchange, 64 KiB messages, QUIC",
        "MiB/s",
        figures,
    )
}

async fn lossy_goodput(budget: Budget) -> Vec<Row> {
    const LOSSES: [f64; 3] = [0.01, 0.05, 0.20];
    let mut contenders = vec![Contender::new("liaison ordered, lossless", |b| {
        goodput::goodput(b, 0.0)
    })];
    contenders.extend(LOSSES.map(|loss| {
        Contender::new(
            format!("liaison ordered, {:.0}% loss", loss * 100.0),
            move |b| goodput::goodput(b, loss),
        )
    }));
    let mut figures = compare(budget, contenders).await.into_iter();
    let lossless = figures.next().unwrap_or_else(|| Figure {
        name: "liaison ordered, lossless".into(),
        value: 0.0,
    });
    LOSSES
        .iter()
        .zip(figures)
        .map(|(loss, subject)| Row {
            bench: format!(
                "goodput, ordered session, memory link, {:.0}% loss each way",
                loss * 100.0
            ),
            unit: "MiB/s",
            subject,
            baselines: vec![lossless.clone()],
        })
        .collect()
}

/// Today's date (UTC) as `YYYY-MM-DD`, from the days since the epoch.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    // Civil-from-days (Howard Hinnant's algorithm), valid for dates after 1970.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn document(rows: &[Row], budget: Budget, quick: bool) -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mut out = format!(
        "# Benchmarks\n\n\
         Measured {} on {cores} cores by `cargo xtask bench{}` (release build, one process, \
         client and server on one multi-thread tokio runtime with a worker per core, loopback only; \
         the rows marked *one thread* run on a current-thread runtime instead). Each figure is the median of {} \
         round(s) of {:.1} s, each after a {:.1} s warm-up on a fresh connection; a row's \
         figures take turns in every round, so all of them come from the same stretch of the \
         same run. Ratios are liaison's figure over the baseline's: above 1 means liaison is \
         faster.\n\n",
        today(),
        if quick { " --quick" } else { "" },
        budget.rounds,
        budget.measure.as_secs_f64(),
        budget.warmup.as_secs_f64(),
    );
    out.push_str(&report::markdown(rows, "## Results"));
    out.push_str(
        "\n## What is measured\n\n\
         - **unary calls**: a typed call (`u64` in, `u64` out, serde + bincode) through an \
         authenticated session: one exchange per call, one frame each way. tarpc makes the same \
         call with its bincode transport; the raw baselines echo a 16-byte message with no \
         framing or serialization at all, the floor of the transport. On the multi-thread \
         runtime a call's cost includes waking tasks across workers (each library hands a \
         call between several tasks); the *one thread* rows measure the same calls without \
         that, which leaves the work each library does per call.\n\
         - **bulk**: 64 KiB messages pushed through one exchange (credit-based flow control) to \
         a service that drops them; the baselines push the same bytes through a raw TCP \
         socket, one yamux stream over TCP, or one raw quinn stream.\n\
         - **goodput**: 16 KiB application frames through an ordered session over an in-memory \
         link whose fault injector drops the given share of frames in each direction; the \
         baseline is the same session over the same link without loss. Need-Seq, \
         retransmission and acks do the repair.\n\
         - **resume latency**: a resumable session's connection is cut and one message sent \
         into the cut, many times over; each figure is the time from the client's reconnect \
         source returning the new connection to that message's arrival at the server's \
         application (re-authentication, `Resume` / `ResumeAck`, retransmission). The baseline \
         is the median round trip of a 16-byte frame over a bare connection of the same \
         transport; the ratio is the resume's length in round trips (lower is better).\n",
    );
    out
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
    let runs = |group: &str| args.only.is_empty() || args.only.iter().any(|p| group.starts_with(p));
    let mut rows = runtime.block_on(async {
        let mut rows = Vec::new();
        if runs("calls") {
            rows.extend(round_trips(budget, "").await);
        }
        if runs("bulk-tcp") {
            rows.push(bulk_tcp(budget).await);
        }
        if runs("bulk-quic") {
            rows.push(bulk_quic(budget).await);
        }
        if runs("goodput") {
            rows.extend(lossy_goodput(budget).await);
        }
        if runs("resume") {
            rows.extend(resume::rows(args.quick).await);
        }
        rows
    });
    if runs("calls-one-thread") {
        // The same calls with every task on one thread: no hand-over between workers.
        let one_thread = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let calls = one_thread.block_on(round_trips(budget, ", one thread"));
        // After the multi-thread call rows, before the bulk ones.
        let at = rows
            .iter()
            .take_while(|row| row.bench.starts_with("unary calls"))
            .count();
        rows.splice(at..at, calls);
    }
    eprintln!("measured in {:.1}s", started.elapsed().as_secs_f64());
    let doc = document(&rows, budget, args.quick);
    match args.out {
        Some(path) => {
            if let Err(e) = std::fs::write(&path, &doc) {
                eprintln!("liaison-bench: cannot write {path}: {e}");
                std::process::exit(1);
            }
        }
        None => print!("{doc}"),
    }
}
