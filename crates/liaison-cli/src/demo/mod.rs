//! `liaison demo`: a self-contained tour of what the stack does, printed as a table.

mod links;

use std::time::Duration;

use clap::Args;

use crate::error::CliError;
use crate::table::Table;

/// Options of `liaison demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Frames sent over each transport.
    #[arg(long, default_value_t = 2_000)]
    frames: u64,
    /// Concurrent exchanges the frames are spread over.
    #[arg(long, default_value_t = 8)]
    exchanges: u64,
    /// Seed of the fault-injected link.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// Runs every part of the demo and prints its table.
pub(crate) async fn run(args: DemoArgs) -> Result<(), CliError> {
    println!("liaison demo: frames over every transport, then a fault-injected link\n");
    let mut table = Table::new(&[
        "transport",
        "reliable",
        "ordered",
        "connect",
        "frames",
        "echoed",
        "intact",
        "bytes",
        "time",
    ]);
    for transport in links::TRANSPORTS {
        let report = links::echo(transport, args.frames, args.exchanges).await?;
        table.row(vec![
            report.transport.to_string(),
            yes_no(report.reliable),
            yes_no(report.ordered),
            ms(report.connect),
            report.frames.to_string(),
            report.echoed.to_string(),
            report.intact.to_string(),
            report.bytes.to_string(),
            ms(report.elapsed),
        ]);
        if report.intact != report.frames {
            return Err(CliError::Check(format!(
                "{}: {} of {} frames came back intact",
                report.transport, report.intact, report.frames
            )));
        }
    }
    println!("{}", table.render());

    let lossy = links::lossy(args.frames, args.seed).await?;
    let mut faults = Table::new(&[
        "link",
        "sent",
        "dropped",
        "duplicated",
        "reordered",
        "received",
        "unique",
        "missing",
        "out of order",
    ]);
    faults.row(vec![
        format!("memory + faults (seed {})", args.seed),
        lossy.sent.to_string(),
        lossy.dropped.to_string(),
        lossy.duplicated.to_string(),
        lossy.reordered.to_string(),
        lossy.received.to_string(),
        lossy.unique.to_string(),
        lossy.missing.to_string(),
        lossy.out_of_order.to_string(),
    ]);
    println!("{}", faults.render());
    if lossy.missing != lossy.dropped
        || lossy.received != lossy.sent - lossy.dropped + lossy.duplicated
    {
        return Err(CliError::Check(format!(
            "the fault counters disagree with what arrived: {lossy:?}"
        )));
    }
    println!(
        "The raw lossy link loses {} of {} frames, duplicates {} and reorders {}: what liaison's sequencing repairs.",
        lossy.missing, lossy.sent, lossy.duplicated, lossy.reordered
    );
    Ok(())
}

fn yes_no(flag: bool) -> String {
    if flag { "yes" } else { "no" }.to_string()
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}
