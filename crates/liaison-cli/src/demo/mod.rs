//! `liaison demo`: a self-contained tour of what the stack does, printed as tables.

mod links;
mod sessions;

use std::io::Write as _;
use std::time::Duration;

use clap::Args;
use liaison_transport::LoopbackKind;

use crate::error::CliError;
use crate::table::Table;

/// Options of `liaison demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Concurrent exchanges run on each session.
    #[arg(long, default_value_t = 200)]
    exchanges: u64,
    /// Messages each exchange sends (and gets echoed back).
    #[arg(long, default_value_t = 10)]
    messages: u64,
    /// Share of frames the lossy link drops in each direction.
    #[arg(long, default_value_t = 0.10)]
    loss: f64,
    /// Seed of the lossy link.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// Writes to stdout; a closed pipe (`liaison demo | head`) ends the output quietly.
fn emit(text: &str) {
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), CliError> {
    if ok {
        Ok(())
    } else {
        Err(CliError::Check(what()))
    }
}

/// Runs every part of the demo and prints its tables.
pub(crate) async fn run(args: DemoArgs) -> Result<(), CliError> {
    let key: [u8; 32] = rand::random();
    emit(
        "liaison demo: authenticated sessions over every transport, concurrent exchanges,\n\
          an ordered session over a lossy link, and termination\n\n",
    );

    let mut table = Table::new(&[
        "transport",
        "version",
        "client sees",
        "server sees",
        "handshake",
        "exchanges",
        "messages",
        "intact",
        "time",
    ]);
    for kind in LoopbackKind::RELIABLE {
        let r = sessions::over(kind, &key, args.exchanges, args.messages).await?;
        let expected = args.exchanges * args.messages;
        check(r.intact == expected && r.messages == expected, || {
            format!(
                "{kind}: {} of {expected} messages came back intact",
                r.intact
            )
        })?;
        table.row(vec![
            r.transport.to_string(),
            r.version.to_string(),
            r.client_sees,
            r.server_sees,
            ms(r.handshake),
            r.exchanges.to_string(),
            r.messages.to_string(),
            r.intact.to_string(),
            ms(r.elapsed),
        ]);
    }
    emit(&format!(
        "1. PSK-authenticated sessions, {} concurrent exchanges of {} messages each\n\n{}\n",
        args.exchanges,
        args.messages,
        table.render()
    ));

    let raw = links::lossy(2_000, args.seed).await?;
    let ordered = sessions::lossy(
        &key,
        args.loss,
        args.seed,
        args.exchanges / 4,
        args.messages,
    )
    .await?;
    let expected = args.exchanges / 4 * args.messages;
    check(
        ordered.intact == expected && ordered.messages == expected,
        || {
            format!(
                "ordered session over the lossy link: {} of {expected} intact",
                ordered.intact
            )
        },
    )?;
    let mut faults = Table::new(&[
        "link",
        "frames sent",
        "dropped",
        "duplicated",
        "reordered",
        "messages",
        "lost",
        "delivered twice",
        "out of order",
        "time",
    ]);
    faults.row(vec![
        "raw link, no sequencing".into(),
        raw.sent.to_string(),
        raw.dropped.to_string(),
        raw.duplicated.to_string(),
        raw.reordered.to_string(),
        raw.sent.to_string(),
        raw.missing.to_string(),
        (raw.received - raw.unique).to_string(),
        raw.out_of_order.to_string(),
        "-".into(),
    ]);
    let (c, s) = (ordered.client_faults, ordered.server_faults);
    faults.row(vec![
        "ordered liaison session".into(),
        (c.frames + s.frames).to_string(),
        (c.dropped + s.dropped).to_string(),
        (c.duplicated + s.duplicated).to_string(),
        (c.reordered + s.reordered).to_string(),
        ordered.messages.to_string(),
        (expected - ordered.intact).to_string(),
        "0".into(),
        "0".into(),
        ms(ordered.elapsed),
    ]);
    emit(&format!(
        "2. A memory link dropping {:.0}% of frames each way (and duplicating and reordering some)\n\n{}\n",
        args.loss * 100.0,
        faults.render()
    ));

    let t = sessions::termination(&key, 100).await?;
    check(t.aborted == t.pending && t.revoked_after, || {
        format!("termination: {t:?}")
    })?;
    emit(&format!(
        "3. Termination with {} calls pending: {} resolved Aborted, the root capability is {}\n   ({})\n",
        t.pending,
        t.aborted,
        if t.revoked_after { "revoked" } else { "NOT revoked" },
        t.reason
    ));
    Ok(())
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}
