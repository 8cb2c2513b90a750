//! The tokio driver: one task per session around the sans-IO [`Connection`], plus a writer
//! task that owns the transport's sending half.
//!
//! The session task `select!`s over the abort signal, the scope's cancellation, the
//! writer's health, room in the writer's queue, the core's next deadline, room in the
//! incoming queue, the transport's receiver and the user's commands. Every branch feeds
//! the core; after each, the task hands what `poll_transmit` yields to the writer and
//! delivers what `poll_event` yields. The writer feeds every queued frame and flushes once
//! per batch, so a slow peer blocks the writer, never the session task: pings, timers and
//! aborts keep working, and the user's `send` waits (backpressure).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use liaison_transport::{FrameReceiver, FrameSender, Transport, TransportError};
use liaison_wire::Frame;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::lifecycle::Lifecycle;
use crate::proto::{Connection, Established, Event};
use crate::SessionError;

/// Frames handed to the writer that it has not written yet.
const WRITER_QUEUE: usize = 64;

/// What a [`Session`](crate::Session) handle asks of its driver.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a frame of the layers above.
    Send(Frame),
    /// Close gracefully with this reason.
    Close(String),
}

/// The handles a spawned session task leaves to its owner.
pub(crate) struct Spawned {
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) incoming: mpsc::Receiver<Frame>,
    pub(crate) lifecycle: Arc<Lifecycle>,
    pub(crate) abort: CancellationToken,
    pub(crate) established: oneshot::Receiver<Result<Box<Established>, SessionError>>,
}

/// The reading of the tokio clock the core works with.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The transport's verified TLS peer chain as DER bytes.
pub(crate) fn tls_chain(transport: &dyn Transport) -> Option<Vec<Bytes>> {
    transport
        .info()
        .tls_peer_certificates
        .as_ref()
        .map(|chain| {
            chain
                .iter()
                .map(|cert| Bytes::copy_from_slice(cert.as_ref()))
                .collect()
        })
}

/// Spawns the session task for `conn` over `transport`.
pub(crate) fn spawn(
    conn: Connection,
    transport: Box<dyn Transport>,
    scope: CancellationToken,
    capacities: (usize, usize),
    linger: Duration,
) -> Spawned {
    let (commands_tx, commands_rx) = mpsc::channel(capacities.0.max(1));
    let (incoming_tx, incoming_rx) = mpsc::channel(capacities.1.max(1));
    let (established_tx, established_rx) = oneshot::channel();
    let (writer_tx, writer_rx) = mpsc::channel(WRITER_QUEUE);
    let lifecycle = Arc::new(Lifecycle::default());
    let abort = CancellationToken::new();
    let (sender, receiver) = transport.split();
    let writer = tokio::spawn(write_loop(sender, writer_rx));
    let driver = Driver {
        conn,
        receiver,
        writer_tx,
        writer,
        commands: commands_rx,
        incoming: incoming_tx,
        deliver: VecDeque::new(),
        lifecycle: Arc::clone(&lifecycle),
        scope,
        abort: abort.clone(),
        established: Some(established_tx),
        transport_error: None,
        linger,
    };
    tokio::spawn(driver.run());
    Spawned {
        commands: commands_tx,
        incoming: incoming_rx,
        lifecycle,
        abort,
        established: established_rx,
    }
}

/// Owns the sending half: feeds each batch of queued frames, flushes once, and closes the
/// transport gracefully when the queue ends.
async fn write_loop(
    mut sender: Box<dyn FrameSender>,
    mut queue: mpsc::Receiver<Bytes>,
) -> Result<(), TransportError> {
    while let Some(frame) = queue.recv().await {
        sender.feed(frame).await?;
        while let Ok(frame) = queue.try_recv() {
            sender.feed(frame).await?;
        }
        sender.flush().await?;
    }
    sender.close().await
}

/// Most commands the session task takes in one wake-up before it looks at the transport
/// and its timers again.
const COMMAND_BATCH: usize = 64;

/// What woke the session task.
enum Wake {
    Abort,
    ScopeCancelled,
    WriterEnded(Result<Result<(), TransportError>, tokio::task::JoinError>),
    WriterRoom(Option<mpsc::OwnedPermit<Bytes>>),
    Timeout,
    Delivered(Option<mpsc::OwnedPermit<Frame>>),
    Received(Result<Option<Bytes>, TransportError>),
    Command(Option<Command>),
}

struct Driver {
    conn: Connection,
    receiver: Box<dyn FrameReceiver>,
    writer_tx: mpsc::Sender<Bytes>,
    writer: JoinHandle<Result<(), TransportError>>,
    commands: mpsc::Receiver<Command>,
    incoming: mpsc::Sender<Frame>,
    /// Frames the incoming queue had no room for; while any wait, nothing is read.
    deliver: VecDeque<Frame>,
    lifecycle: Arc<Lifecycle>,
    scope: CancellationToken,
    abort: CancellationToken,
    established: Option<oneshot::Sender<Result<Box<Established>, SessionError>>>,
    transport_error: Option<TransportError>,
    linger: Duration,
}

impl Driver {
    async fn run(mut self) {
        let mut abort_seen = false;
        let mut scope_seen = false;
        let mut writer_done = false;
        let mut receive_done = false;
        let mut commands_open = true;
        loop {
            self.move_transmits();
            self.handle_events();
            if self.conn.is_drained() {
                break;
            }
            let deadline = self.conn.poll_timeout().map(tokio::time::Instant::from_std);
            let has_transmit = self.conn.has_transmit();
            // A sequenced session with a full retransmit buffer takes no more frames until
            // the peer's acks make room (backpressure up to `Session::send`).
            let writable = self.conn.is_writable();
            let wake = tokio::select! {
                biased;
                () = self.abort.cancelled(), if !abort_seen => Wake::Abort,
                () = self.scope.cancelled(), if !scope_seen => Wake::ScopeCancelled,
                result = &mut self.writer, if !writer_done => Wake::WriterEnded(result),
                permit = self.writer_tx.clone().reserve_owned(), if has_transmit => {
                    Wake::WriterRoom(permit.ok())
                }
                () = sleep_until(deadline), if deadline.is_some() => Wake::Timeout,
                permit = self.incoming.clone().reserve_owned(), if !self.deliver.is_empty() => {
                    Wake::Delivered(permit.ok())
                }
                result = self.receiver.recv(), if self.deliver.is_empty() && !receive_done => {
                    Wake::Received(result)
                }
                command = self.commands.recv(), if commands_open && !has_transmit && writable => {
                    Wake::Command(command)
                }
            };
            match wake {
                Wake::Abort => {
                    abort_seen = true;
                    self.conn.abort();
                }
                Wake::ScopeCancelled => {
                    scope_seen = true;
                    self.conn.cancel();
                }
                Wake::WriterEnded(result) => {
                    writer_done = true;
                    let error = match result {
                        Ok(Err(e)) => {
                            let text = e.to_string();
                            self.transport_error = Some(e);
                            text
                        }
                        Ok(Ok(())) => "the transport's sender closed".to_owned(),
                        Err(join) => format!("writer task failed: {join}"),
                    };
                    self.conn.handle_transport_error(&error);
                }
                Wake::WriterRoom(Some(permit)) => {
                    if let Some(frame) = self.conn.poll_transmit(now()) {
                        permit.send(frame.to_bytes());
                    }
                }
                // The writer ended; its branch reports why.
                Wake::WriterRoom(None) => {}
                Wake::Timeout => self.conn.handle_timeout(now()),
                Wake::Delivered(Some(permit)) => {
                    if let Some(frame) = self.deliver.pop_front() {
                        permit.send(frame);
                    }
                    if self.deliver.is_empty() {
                        self.conn.set_receive_paused(now(), false);
                    }
                }
                Wake::Delivered(None) => {
                    // Nobody reads incoming frames any more.
                    self.deliver.clear();
                    self.conn.set_receive_paused(now(), false);
                }
                Wake::Received(Ok(Some(bytes))) => self.conn.handle_bytes(now(), bytes),
                Wake::Received(Ok(None)) => {
                    receive_done = true;
                    self.conn.handle_transport_closed();
                }
                Wake::Received(Err(e)) => {
                    receive_done = true;
                    self.conn.handle_transport_error(&e.to_string());
                    self.transport_error = Some(e);
                }
                Wake::Command(Some(command)) => {
                    self.handle_command(command);
                    // Take what else is queued in the same wake-up, so frames of concurrent
                    // callers go to the writer as one batch.
                    for _ in 1..COMMAND_BATCH {
                        // As in the `select!`: only while the writer takes everything queued.
                        self.move_transmits();
                        if self.conn.has_transmit() || !self.conn.is_writable() {
                            break;
                        }
                        match self.commands.try_recv() {
                            Ok(command) => self.handle_command(command),
                            Err(_) => break,
                        }
                    }
                }
                Wake::Command(None) => {
                    commands_open = false;
                    self.conn.close("every session handle was dropped");
                }
            }
        }
        self.finish(writer_done).await;
    }

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Send(frame) => {
                if let Err(e) = self.conn.send(frame) {
                    tracing::debug!(error = %e, "frame not sent");
                }
            }
            Command::Close(reason) => self.conn.close(&reason),
        }
    }

    /// Hands queued frames to the writer while its queue has room.
    fn move_transmits(&mut self) {
        while self.conn.has_transmit() {
            let Ok(permit) = self.writer_tx.try_reserve() else {
                return;
            };
            if let Some(frame) = self.conn.poll_transmit(now()) {
                permit.send(frame.to_bytes());
            }
        }
    }

    fn handle_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Established(established) => {
                    if let Some(tx) = self.established.take() {
                        // The caller may have given up waiting; the session then ends when
                        // its command channel closes.
                        let _ = tx.send(Ok(established));
                    }
                }
                Event::Frame(frame) => {
                    if !self.deliver.is_empty() {
                        self.deliver.push_back(frame);
                        continue;
                    }
                    match self.incoming.try_send(frame) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(frame)) => {
                            self.deliver.push_back(frame);
                            self.conn.set_receive_paused(now(), true);
                        }
                        Err(mpsc::error::TrySendError::Closed(frame)) => {
                            tracing::trace!(?frame, "incoming frame dropped: nobody reads");
                        }
                    }
                }
                Event::Terminated(reason) => {
                    self.lifecycle.terminate(reason.clone());
                    if let Some(tx) = self.established.take() {
                        let error = match self.transport_error.take() {
                            Some(e) => SessionError::Transport(e),
                            None => SessionError::from(reason),
                        };
                        let _ = tx.send(Err(error));
                    }
                }
            }
        }
    }

    /// After termination: stop delivering, let the writer flush the last frames and close
    /// the transport (for at most the linger time), then report the session finished.
    async fn finish(self, writer_done: bool) {
        let Self {
            writer_tx,
            mut writer,
            incoming,
            receiver,
            lifecycle,
            linger,
            ..
        } = self;
        drop(incoming);
        drop(writer_tx);
        if !writer_done && tokio::time::timeout(linger, &mut writer).await.is_err() {
            tracing::debug!("writer did not finish in time; dropping the transport");
            writer.abort();
        }
        drop(receiver);
        lifecycle.finish();
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
