//! `liaison demo`: a self-contained tour of what the stack does, printed as tables.

mod links;
mod resume;
mod sessions;
mod state;

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
    /// Messages streamed across the cut connection of the resume part.
    #[arg(long, default_value_t = 2_000)]
    stream: u64,
    /// Concurrent writers of the session-state part.
    #[arg(long, default_value_t = 8)]
    writers: u64,
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
          an ordered session over a lossy link, termination, session state under a lock,\n\
          and sessions resumed after a cut connection and a server restart\n\n",
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
    let mut summary = Table::new(&[
        "transport",
        "handshake",
        "exchanges",
        "messages",
        "resumes",
        "lost",
        "duplicated",
        "aborted as expected",
    ]);
    for kind in LoopbackKind::RELIABLE {
        let r = sessions::over(kind, &key, args.exchanges, args.messages).await?;
        let expected = args.exchanges * args.messages;
        let e = r.echoes;
        check(
            e.intact == expected && e.echoed == expected && e.lost == 0 && e.duplicated == 0,
            || format!("{kind}: {e:?} of {expected} messages"),
        )?;
        summary.row(vec![
            kind.to_string(),
            ms(r.handshake),
            r.exchanges.to_string(),
            e.echoed.to_string(),
            "0".into(),
            e.lost.to_string(),
            e.duplicated.to_string(),
            "-".into(),
        ]);
        table.row(vec![
            r.transport.to_string(),
            r.version.to_string(),
            r.client_sees,
            r.server_sees,
            ms(r.handshake),
            r.exchanges.to_string(),
            e.echoed.to_string(),
            e.intact.to_string(),
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
    let e = ordered.echoes;
    check(
        e.intact == expected && e.echoed == expected && e.lost == 0 && e.duplicated == 0,
        || format!("ordered session over the lossy link: {e:?} of {expected} messages"),
    )?;
    summary.row(vec![
        format!("memory, {:.0}% loss, ordered", args.loss * 100.0),
        ms(ordered.handshake),
        (args.exchanges / 4).to_string(),
        e.echoed.to_string(),
        "0".into(),
        e.lost.to_string(),
        e.duplicated.to_string(),
        "-".into(),
    ]);
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
        e.echoed.to_string(),
        e.lost.to_string(),
        e.duplicated.to_string(),
        (e.echoed - e.intact).to_string(),
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
    let st = state::concurrent_updates(&key, args.writers).await?;
    check(
        st.version == st.writers && st.present == st.writers && st.duplicated == 0,
        || format!("state: {st:?}"),
    )?;
    emit(&format!(
        "\n4. Session state: {} writers on {} sessions update one key at once, each under its lock:\n   \
         final version {}, {} of {} writes present, {} duplicated ({})\n",
        st.writers,
        st.writers,
        st.version,
        st.present,
        st.writers,
        st.duplicated,
        ms(st.elapsed)
    ));
    summary.row(vec![
        "memory, state under a lock".into(),
        ms(st.handshake),
        st.writers.to_string(),
        st.version.to_string(),
        "0".into(),
        (st.writers - st.present).to_string(),
        st.duplicated.to_string(),
        "-".into(),
    ]);
    let cut = resume::cut_mid_stream(&key, args.stream).await?;
    check(
        cut.received == cut.requested && cut.lost == 0 && cut.duplicated == 0 && cut.resumes >= 1,
        || format!("cut and resume: {cut:?}"),
    )?;
    let restart = resume::server_restart(&key, 200).await?;
    check(
        restart.echoed == restart.sent
            && restart.lost == 0
            && restart.duplicated == 0
            && restart.resumes == 1
            && restart.aborted
            && restart.state_restored
            && restart.same_id,
        || format!("server restart: {restart:?}"),
    )?;
    emit(&format!(
        "\n5. Resume: a TCP connection cut after {} of {} streamed messages; the session resumed\n   \
         ({} resume) and the stream went on: {} received, {} lost, {} duplicated ({}).\n   \
         A server restarted on its redb store: the client resumed the same session ({}),\n   \
         its state rebuilt it ({}), the call pending across the restart resolved Aborted\n   \
         (peer restarted): {}; {} of {} messages echoed ({})\n",
        cut.requested / 2,
        cut.requested,
        cut.resumes,
        cut.received,
        cut.lost,
        cut.duplicated,
        ms(cut.elapsed),
        if restart.same_id { "same id" } else { "NEW id" },
        if restart.state_restored {
            "state received"
        } else {
            "NO state"
        },
        if restart.aborted { "yes" } else { "NO" },
        restart.echoed,
        restart.sent,
        ms(restart.elapsed),
    ));
    summary.row(vec![
        "tcp, cut mid-stream".into(),
        ms(cut.handshake),
        "1".into(),
        cut.received.to_string(),
        cut.resumes.to_string(),
        cut.lost.to_string(),
        cut.duplicated.to_string(),
        "-".into(),
    ]);
    summary.row(vec![
        "tcp, server restart (redb)".into(),
        ms(restart.handshake),
        "1".into(),
        restart.echoed.to_string(),
        restart.resumes.to_string(),
        restart.lost.to_string(),
        restart.duplicated.to_string(),
        if restart.aborted { "1 of 1" } else { "0 of 1" }.into(),
    ]);
    summary.row(vec![
        "memory, terminated".into(),
        ms(t.handshake),
        t.pending.to_string(),
        "0".into(),
        "0".into(),
        "0".into(),
        "0".into(),
        format!("{} of {}", t.aborted, t.pending),
    ]);
    emit(&format!(
        "\nSummary: every message delivered exactly once, every pending call aborted\n\n{}",
        summary.render()
    ));
    Ok(())
}

fn ms(duration: Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1e3)
}
