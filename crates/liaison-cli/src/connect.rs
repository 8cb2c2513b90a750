//! `liaison connect`: an interactive client reading commands from stdin, or one call or
//! stream for scripts (`--call echo TEXT`, `--stream N`); and `liaison state get|put`.

use std::io::{IsTerminal as _, Write as _};
use std::time::Instant;

use bytes::Bytes;
use clap::{Args, Subcommand};
use liaison_session::{LinkState, LinkStatus, SequencingMode};
use liaison_state::State;
use liaison_transport::Address;
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;

use crate::client::Client;
use crate::error::CliError;
use crate::options::{AuthArgs, ClientTlsArgs, ModeArg, SessionArgs};
use crate::output::Output;
use crate::services::{ECHO, SERVICES};

/// Where the server is and how to open a session with it.
#[derive(Debug, Args)]
pub(crate) struct ConnectionArgs {
    /// The server: tcp://HOST:PORT, unix://PATH, quic://HOST:PORT or quic+dgram://HOST:PORT.
    #[arg(value_name = "URL")]
    url: Address,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    session: SessionArgs,
    #[command(flatten)]
    tls: ClientTlsArgs,
    /// Sequencing mode to ask for (default: none, or ordered over quic+dgram; a resumable
    /// session is ordered).
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Keep the session across lost connections: reconnect to URL with backoff and resume
    /// it (the server rebuilds it if it restarted).
    #[arg(long)]
    resume: bool,
}

impl ConnectionArgs {
    /// Connects and establishes the session.
    async fn connect(&self) -> Result<Client, CliError> {
        let mode = mode_for(&self.url, self.mode);
        Client::connect(
            &self.url,
            &self.auth,
            &self.session,
            &self.tls,
            mode,
            self.resume,
        )
        .await
    }
}

/// Options of `liaison connect`.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Make one unary call, print the reply and exit (services: echo).
    #[arg(long, num_args = 2, value_names = ["SERVICE", "MESSAGE"], conflicts_with = "stream")]
    call: Option<Vec<String>>,
    /// Ask the stream service for N messages, check them, print a summary and exit.
    #[arg(long, value_name = "N")]
    stream: Option<u64>,
    /// Filler bytes after each streamed message's 8-byte index.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    size: u32,
}

/// `liaison state`: one read or write of the server's session-state service.
#[derive(Debug, Args)]
pub(crate) struct StateArgs {
    #[command(subcommand)]
    op: StateOp,
}

#[derive(Debug, Subcommand)]
enum StateOp {
    /// Print the state of KEY and its version (no lock taken).
    Get {
        #[command(flatten)]
        connection: ConnectionArgs,
        /// The key.
        #[arg(value_name = "KEY")]
        key: String,
    },
    /// Write VALUE as the state of KEY under the key's lock; print the new version.
    Put {
        #[command(flatten)]
        connection: ConnectionArgs,
        /// The key.
        #[arg(value_name = "KEY")]
        key: String,
        /// The new state.
        #[arg(value_name = "VALUE")]
        value: String,
    },
}

const HELP: &str = "\
commands:
  call TEXT              one unary call to the echo service
  send TEXT              send TEXT on the open echo exchange and wait for its echo
  stream N [SIZE]        ask the stream service for N messages (SIZE filler bytes each)
  state get KEY          read KEY's state (no lock)
  state put KEY VALUE    write KEY's state under its lock
  stats                  the session and its counters
  help                   this text
  quit                   close the session (Bye) and exit";

/// The sequencing mode `mode` asks for, or the default for `url`.
pub(crate) fn mode_for(url: &Address, mode: Option<ModeArg>) -> SequencingMode {
    match (mode, url) {
        (Some(mode), _) => mode.into(),
        (None, Address::QuicDatagram(_)) => SequencingMode::Ordered,
        (None, _) => SequencingMode::None,
    }
}

/// Runs `liaison connect`.
pub(crate) async fn run(args: ConnectArgs, out: Output) -> Result<(), CliError> {
    let mut client = args.connection.connect().await?;
    if let Some(call) = &args.call {
        let (service, message) = match call.as_slice() {
            [service, message] => (service.as_str(), message.clone()),
            _ => return Err(CliError::Usage("--call takes SERVICE MESSAGE".into())),
        };
        let outcome = one_call(&mut client, service, message, out).await;
        client.close().await;
        return outcome;
    }
    if let Some(count) = args.stream {
        let outcome = client
            .stream(count, args.size, &mut out.progress("stream", count))
            .await;
        client.close().await;
        let report = outcome?;
        out.emit(&report.describe(), &report.to_json());
        return if report.intact {
            Ok(())
        } else {
            Err(CliError::Check(report.describe()))
        };
    }
    interactive(client, out).await
}

/// Runs `liaison state get|put`.
pub(crate) async fn run_state(args: StateArgs, out: Output) -> Result<(), CliError> {
    let (connection, key, value) = match &args.op {
        StateOp::Get { connection, key } => (connection, key, None),
        StateOp::Put {
            connection,
            key,
            value,
        } => (connection, key, Some(value)),
    };
    let mut client = connection.connect().await?;
    let outcome = match value {
        None => state_get(&mut client, key, out).await,
        Some(value) => state_put(&mut client, key, value, out).await,
    };
    client.close().await;
    outcome
}

async fn one_call(
    client: &mut Client,
    service: &str,
    message: String,
    out: Output,
) -> Result<(), CliError> {
    if service != ECHO {
        return Err(CliError::Usage(format!(
            "`{service}` takes no unary calls (services: {}; unary: {ECHO})",
            SERVICES.join(", ")
        )));
    }
    let start = Instant::now();
    let reply = client.call(service, Bytes::from(message)).await?;
    let text = String::from_utf8_lossy(&reply).into_owned();
    out.emit(
        &text,
        &json!({
            "command": "call",
            "service": service,
            "reply": text,
            "micros": u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        }),
    );
    Ok(())
}

fn state_json(command: &str, key: &str, state: &State) -> serde_json::Value {
    json!({
        "command": command,
        "key": key,
        "value": String::from_utf8_lossy(&state.value),
        "version": state.version,
    })
}

async fn state_get(client: &mut Client, key: &str, out: Output) -> Result<(), CliError> {
    let state = client.state_get(key).await?;
    out.emit(
        &format!(
            "{} {}",
            String::from_utf8_lossy(&state.value),
            out.dim(&format!("(version {})", state.version))
        ),
        &state_json("state get", key, &state),
    );
    Ok(())
}

async fn state_put(
    client: &mut Client,
    key: &str,
    value: &str,
    out: Output,
) -> Result<(), CliError> {
    let state = client
        .state_put(key, Bytes::from(value.to_string()))
        .await?;
    out.emit(
        &format!("{key}: version {}", state.version),
        &state_json("state put", key, &state),
    );
    Ok(())
}

/// Reads commands from stdin until `quit`, end of input or the end of the session.
async fn interactive(mut client: Client, out: Output) -> Result<(), CliError> {
    let terminal = std::io::stdin().is_terminal();
    let (stats, stats_json) = client.stats();
    let mut connected = stats_json;
    connected["event"] = json!("connected");
    if let Some(object) = connected.as_object_mut() {
        object.remove("command");
    }
    out.emit(&out.good(&format!("connected: {stats}")), &connected);
    if terminal {
        out.text(&out.dim(HELP));
    }
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut links = client.endpoint().session().link_changes();
    let mut watching = client.endpoint().session().is_resumable();
    // The link's state and resume count last reported: other changes (counters) are not news.
    let mut reported = {
        let status = *links.borrow_and_update();
        (status.state, status.resumes)
    };
    let mut failed = 0u64;
    loop {
        if terminal && !out.is_json() {
            let mut stdout = std::io::stdout().lock();
            let _ = write!(stdout, "{} ", out.bold(">"));
            let _ = stdout.flush();
        }
        let line = tokio::select! {
            line = lines.next_line() => line.map_err(|e| CliError::io("cannot read stdin", e))?,
            reason = client.endpoint().closed() => {
                return Err(CliError::Protocol(format!("the session ended: {reason}")));
            }
            changed = links.changed(), if watching => {
                match changed {
                    Ok(()) => {
                        let status = *links.borrow_and_update();
                        if (status.state, status.resumes) != reported {
                            reported = (status.state, status.resumes);
                            report_link(status, out);
                        }
                    }
                    Err(_) => watching = false,
                }
                continue;
            }
        };
        let Some(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let rest = |skip: usize| rest_of(&line, skip);
        let outcome = match words.as_slice() {
            [] => continue,
            ["quit" | "exit"] => break,
            ["help"] => {
                out.text(HELP);
                Ok(())
            }
            ["call", ..] => one_call(&mut client, ECHO, rest(1), out).await,
            ["send", ..] => send(&mut client, &rest(1), out).await,
            ["stream", args @ ..] => stream(&mut client, args, out).await,
            ["state", "get", key] => state_get(&mut client, key, out).await,
            ["state", "put", key, ..] if words.len() > 3 => {
                state_put(&mut client, key, &rest(3), out).await
            }
            ["state", ..] => Err(CliError::Usage(
                "usage: state get KEY | state put KEY VALUE".into(),
            )),
            ["stats"] => {
                let (text, value) = client.stats();
                out.emit(&text, &value);
                Ok(())
            }
            [other, ..] => Err(CliError::Usage(format!(
                "unknown command `{other}` (try `help`)"
            ))),
        };
        if let Err(e) = outcome {
            failed += 1;
            eprintln!("liaison: {e}");
        }
    }
    let reason = client.close().await;
    out.emit(
        &out.dim(&format!("closed: {reason}")),
        &json!({ "event": "closed", "reason": reason.to_string() }),
    );
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::Usage(format!("{failed} command(s) failed")))
    }
}

/// Tells the user that the connection was lost, or that the session resumed.
fn report_link(status: LinkStatus, out: Output) {
    match status.state {
        LinkState::Detached => out.emit(
            &out.dim("connection lost: reconnecting to resume the session"),
            &json!({ "event": "detached" }),
        ),
        LinkState::Attached if status.resumes > 0 => out.emit(
            &out.good(&format!(
                "session resumed ({} resume(s), {} after a server restart)",
                status.resumes, status.restarts
            )),
            &json!({
                "event": "resumed",
                "resumes": status.resumes,
                "restarts": status.restarts,
            }),
        ),
        _ => {}
    }
}

/// `line` without its first `skip` words, its inner spacing kept.
fn rest_of(line: &str, skip: usize) -> String {
    let mut rest = line.trim_start();
    for _ in 0..skip {
        rest = rest
            .split_once(char::is_whitespace)
            .map_or("", |(_, tail)| tail)
            .trim_start();
    }
    rest.trim_end().to_string()
}

async fn send(client: &mut Client, text: &str, out: Output) -> Result<(), CliError> {
    let start = Instant::now();
    let echo = client.send(Bytes::from(text.to_string())).await?;
    let echo = String::from_utf8_lossy(&echo).into_owned();
    out.emit(
        &echo,
        &json!({
            "command": "send",
            "reply": echo,
            "micros": u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX),
        }),
    );
    Ok(())
}

async fn stream(client: &mut Client, args: &[&str], out: Output) -> Result<(), CliError> {
    let usage = || CliError::Usage("usage: stream N [SIZE]".into());
    let (count, size) = match args {
        [count] => (count.parse().map_err(|_| usage())?, 64),
        [count, size] => (
            count.parse().map_err(|_| usage())?,
            size.parse().map_err(|_| usage())?,
        ),
        _ => return Err(usage()),
    };
    let report = client
        .stream(count, size, &mut out.progress("stream", count))
        .await?;
    out.emit(&report.describe(), &report.to_json());
    if report.intact {
        Ok(())
    } else {
        Err(CliError::Check(report.describe()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_of_a_line_keeps_its_inner_spacing() {
        assert_eq!(rest_of("state put k  a  b ", 3), "a  b");
        assert_eq!(rest_of("  call hello world", 1), "hello world");
        assert_eq!(rest_of("call", 1), "");
    }
}
