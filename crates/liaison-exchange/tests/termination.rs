//! Every eventual value resolves: random workloads of unary calls (answered at once, after a
//! delay, or never), abandoned calls and streaming exchanges over one session, with the
//! session ended at a random point by a close or an abort from either side or a transport
//! failure. On paused time, every call and exchange resolves within a bounded time after
//! the end, with the right variant: values issued before the end complete or resolve
//! `Aborted(reason)` (never-answered ones always `Aborted`), values issued after it
//! `Revoked(reason)`, with the session's reason; and every server handler finishes.

mod common;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use common::{cuttable_sessions, number, session_config};
use liaison_exchange::{Context, Endpoint, Exchange, ExchangeConfig, ExchangeError, Service};
use liaison_session::TerminationReason;
use proptest::prelude::*;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Answers by the first message: `now` at once, `later` + u16 ms after that delay,
/// `never` never (until cancelled), `echo` echoes a stream.
struct Root;

#[async_trait]
impl Service for Root {
    async fn handle(&self, mut exchange: Exchange, ctx: &Context) {
        let Ok(Some(first)) = exchange.recv().await else {
            return;
        };
        match &first[..] {
            b"now" => {
                let _ = exchange.send_last(first).await;
            }
            [b'l', lo, hi] => {
                let ms = u16::from_le_bytes([*lo, *hi]);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(u64::from(ms))) => {
                        let _ = exchange.send_last(first).await;
                    }
                    () = ctx.cancelled() => {}
                }
            }
            b"never" => ctx.cancelled().await,
            b"echo" => {
                while let Ok(Some(message)) = exchange.recv().await {
                    if exchange.send(message).await.is_err() {
                        return;
                    }
                }
                let _ = exchange.end().await;
            }
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum CallKind {
    Now,
    Later(u16),
    Never,
}

impl CallKind {
    fn request(self) -> Bytes {
        match self {
            Self::Now => Bytes::from_static(b"now"),
            Self::Later(ms) => {
                let [lo, hi] = ms.to_le_bytes();
                Bytes::from(vec![b'l', lo, hi])
            }
            Self::Never => Bytes::from_static(b"never"),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Call(CallKind),
    /// A call dropped after this many ms if it has not resolved.
    Abandon(CallKind, u16),
    /// A streaming exchange of this many messages, each echoed.
    Stream(u8),
    Sleep(u16),
}

#[derive(Debug, Clone, Copy)]
enum End {
    ClientClose,
    ServerClose,
    ClientAbort,
    ServerAbort,
    TransportCut,
}

fn call_kind() -> impl Strategy<Value = CallKind> {
    prop_oneof![
        Just(CallKind::Now),
        (1..300u16).prop_map(CallKind::Later),
        Just(CallKind::Never),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => call_kind().prop_map(Op::Call),
        1 => (call_kind(), 1..200u16).prop_map(|(kind, ms)| Op::Abandon(kind, ms)),
        2 => (1..12u8).prop_map(Op::Stream),
        2 => (1..200u16).prop_map(Op::Sleep),
    ]
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        Just(End::ClientClose),
        Just(End::ServerClose),
        Just(End::ClientAbort),
        Just(End::ServerAbort),
        Just(End::TransportCut),
    ]
}

/// What a task saw: whether the session had ended when it started, and its outcome.
enum Outcome {
    Call {
        kind: CallKind,
        ended_before: bool,
        result: Result<Bytes, ExchangeError>,
    },
    Abandoned {
        ended_before: bool,
        result: Option<Result<Bytes, ExchangeError>>,
    },
    Stream {
        ended_before: bool,
        result: Result<(), ExchangeError>,
    },
}

async fn stream(client: &Endpoint, messages: u8) -> Result<(), ExchangeError> {
    let mut exchange = client
        .root()?
        .begin_with(Bytes::from_static(b"echo"))
        .await?;
    for i in 0..u64::from(messages) {
        exchange.send(number(i)).await?;
        let echoed = exchange.recv().await?;
        if echoed != Some(number(i)) {
            return Err(ExchangeError::Protocol(format!(
                "echo {i} came back as {echoed:?}"
            )));
        }
    }
    exchange.end().await?;
    match exchange.recv().await? {
        None => Ok(()),
        Some(extra) => Err(ExchangeError::Protocol(format!("unexpected {extra:?}"))),
    }
}

fn spawn(client: &Endpoint, op: &Op) -> Option<JoinHandle<Outcome>> {
    let client = client.clone();
    match *op {
        Op::Call(kind) => Some(tokio::spawn(async move {
            let root = client.root().expect("root");
            let ended_before = client.is_terminated();
            let result = root.call(kind.request()).await;
            Outcome::Call {
                kind,
                ended_before,
                result,
            }
        })),
        Op::Abandon(kind, ms) => Some(tokio::spawn(async move {
            let root = client.root().expect("root");
            let ended_before = client.is_terminated();
            let call = root.call(kind.request());
            let result = tokio::time::timeout(Duration::from_millis(u64::from(ms)), call)
                .await
                .ok();
            Outcome::Abandoned {
                ended_before,
                result,
            }
        })),
        Op::Stream(messages) => Some(tokio::spawn(async move {
            let ended_before = client.is_terminated();
            let result = stream(&client, messages).await;
            Outcome::Stream {
                ended_before,
                result,
            }
        })),
        Op::Sleep(_) => None,
    }
}

fn is_aborted_with<T: std::fmt::Debug>(
    result: &Result<T, ExchangeError>,
    reason: &TerminationReason,
) -> bool {
    matches!(result, Err(ExchangeError::Aborted(r)) if r == reason)
}

fn is_revoked_with<T: std::fmt::Debug>(
    result: &Result<T, ExchangeError>,
    reason: &TerminationReason,
) -> bool {
    matches!(result, Err(ExchangeError::Revoked(r)) if r == reason)
}

fn check(outcome: &Outcome, reason: &TerminationReason) -> Result<(), TestCaseError> {
    match outcome {
        Outcome::Call {
            kind,
            ended_before,
            result,
        } => {
            if *ended_before {
                prop_assert!(is_revoked_with(result, reason), "{result:?}");
            } else {
                let completed = match kind {
                    CallKind::Never => false,
                    CallKind::Now | CallKind::Later(_) => {
                        matches!(result, Ok(reply) if *reply == kind.request())
                    }
                };
                prop_assert!(
                    completed || is_aborted_with(result, reason),
                    "{kind:?}: {result:?}"
                );
            }
        }
        Outcome::Abandoned {
            ended_before,
            result: Some(result),
        } => {
            if *ended_before {
                prop_assert!(is_revoked_with(result, reason), "{result:?}");
            } else {
                prop_assert!(
                    result.is_ok() || is_aborted_with(result, reason),
                    "{result:?}"
                );
            }
        }
        Outcome::Abandoned { result: None, .. } => {}
        Outcome::Stream {
            ended_before,
            result,
        } => {
            if *ended_before {
                prop_assert!(is_revoked_with(result, reason), "{result:?}");
            } else {
                prop_assert!(
                    result.is_ok() || is_aborted_with(result, reason),
                    "{result:?}"
                );
            }
        }
    }
    Ok(())
}

/// Runs `ops`, ending the session before op `stop` (or after the last), and checks that
/// everything resolves in time with the right variant.
async fn workload(ops: Vec<Op>, stop: usize, how: End) -> Result<(), TestCaseError> {
    let (client, server, cut) = cuttable_sessions(session_config(64)).await;
    let server = Endpoint::builder(server)
        .root(Root)
        .start()
        .expect("server");
    let mut config = ExchangeConfig::default();
    config.window = 4;
    let client = Endpoint::new(client, config).expect("client");

    let end = |client: &Endpoint, server: &Endpoint| match how {
        End::ClientClose => {
            let client = client.clone();
            tokio::spawn(async move { client.close("client done").await });
        }
        End::ServerClose => {
            let server = server.clone();
            tokio::spawn(async move { server.close("server done").await });
        }
        End::ClientAbort => client.abort(),
        End::ServerAbort => server.abort(),
        End::TransportCut => cut.cut(),
    };

    let mut tasks = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if i == stop {
            end(&client, &server);
        }
        if let Op::Sleep(ms) = op {
            tokio::time::sleep(Duration::from_millis(u64::from(*ms))).await;
        }
        tasks.extend(spawn(&client, op));
    }
    if stop >= ops.len() {
        end(&client, &server);
    }

    // Everything resolves within a bounded (paused) time after the end.
    let reason = tokio::time::timeout(Duration::from_secs(5), client.closed())
        .await
        .map_err(|_| TestCaseError::fail("the session did not end"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    for task in tasks {
        let outcome = tokio::time::timeout_at(deadline, task)
            .await
            .map_err(|_| TestCaseError::fail("an eventual value never resolved"))?
            .map_err(|e| TestCaseError::fail(format!("task failed: {e}")))?;
        check(&outcome, &reason)?;
    }
    tokio::time::timeout_at(deadline, async {
        while server.stats().running_handlers > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| TestCaseError::fail("a server handler never finished"))?;
    let stats = client.stats();
    prop_assert_eq!((stats.outgoing, stats.buffered_messages), (0, 0));
    // Capabilities are revoked for good.
    let late = client.root().expect("root").call(Bytes::new()).await;
    prop_assert!(is_revoked_with(&late, &reason), "{:?}", late);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_eventual_value_resolves_with_the_right_variant(
        ops in proptest::collection::vec(op(), 0..24),
        stop in any::<prop::sample::Index>(),
        how in end(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let stop = stop.index(ops.len() + 1);
        runtime.block_on(workload(ops, stop, how))?;
    }
}
