//! In-process transport: a pair of channels, and the `mem://name` listener registry.
//!
//! Each direction is a channel of frames bounded by a count of frames, so a sender that gets
//! ahead of its receiver waits (backpressure). Frames fed before a flush travel together, as
//! one message of the channel, so a driver that writes a batch pays for one hand-over, not
//! one per frame. A graceful [`close`](FrameSender::close) sends an explicit end marker through
//! the channel; a channel that ends without it (the other end was dropped without closing) is
//! reported as [`TransportError::ConnectionLost`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{mpsc, Semaphore};

use crate::address::Address;
use crate::config::TransportConfig;
use crate::error::TransportError;
use crate::transport::{
    join_parts, FrameReceiver, FrameSender, Listener, Properties, Transport, TransportInfo,
};

/// How many connections may wait in a memory listener's backlog before `connect` waits.
const BACKLOG: usize = 128;

/// Most frames one message of the channel carries.
const BATCH: usize = 64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What travels through a memory channel.
#[derive(Debug)]
enum Message {
    Frame(Bytes),
    /// Frames fed together, in order.
    Frames(Vec<Bytes>),
    /// Graceful end of this direction.
    Close,
}

/// One end of an in-process connection.
#[derive(Debug)]
pub struct MemoryTransport {
    info: TransportInfo,
    sender: MemorySender,
    receiver: MemoryReceiver,
}

impl MemoryTransport {
    /// The sending and receiving halves, without boxing.
    pub fn into_split(self) -> (MemorySender, MemoryReceiver) {
        (self.sender, self.receiver)
    }
}

impl Transport for MemoryTransport {
    fn info(&self) -> &TransportInfo {
        &self.info
    }

    fn split(self: Box<Self>) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        (Box::new(self.sender), Box::new(self.receiver))
    }
}

/// Two connected in-process ends. Each direction holds up to `capacity` frames (at least 1);
/// frames over `max_frame` bytes are refused.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), liaison_transport::TransportError> {
/// use bytes::Bytes;
/// use liaison_transport::{memory, FrameReceiver, FrameSender};
///
/// let (a, b) = memory::pair(16, 1024);
/// let (mut a_tx, _a_rx) = a.into_split();
/// let (_b_tx, mut b_rx) = b.into_split();
/// a_tx.send(Bytes::from_static(b"ping")).await?;
/// a_tx.close().await?;
/// assert_eq!(b_rx.recv().await?, Some(Bytes::from_static(b"ping")));
/// assert_eq!(b_rx.recv().await?, None);
/// # Ok(()) }
/// ```
pub fn pair(capacity: usize, max_frame: usize) -> (MemoryTransport, MemoryTransport) {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    pair_with(
        capacity,
        (format!("mem://pair-{id}/a"), max_frame),
        (format!("mem://pair-{id}/b"), max_frame),
    )
}

/// A connected pair whose ends have their own names and limits.
fn pair_with(
    capacity: usize,
    (a_name, a_max): (String, usize),
    (b_name, b_max): (String, usize),
) -> (MemoryTransport, MemoryTransport) {
    let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
    let (a_to_b, b_from_a) = Sending::new(capacity);
    let (b_to_a, a_from_b) = Sending::new(capacity);
    let end = |local: &str, peer: &str, max_frame, tx: Sending, rx: Receiving| MemoryTransport {
        info: TransportInfo {
            properties: Properties {
                reliable: true,
                ordered: true,
                max_frame,
            },
            local: local.to_owned(),
            peer: peer.to_owned(),
            tls_peer_certificates: None,
        },
        sender: MemorySender {
            tx: Some(tx.tx),
            room: tx.room,
            batch: BATCH.min(capacity),
            queued: Vec::new(),
            max_frame,
        },
        receiver: MemoryReceiver {
            rx: rx.rx,
            room: rx.room,
            taken: Vec::new().into_iter(),
            max_frame,
            ended: false,
        },
    };
    let a = end(&a_name, &b_name, a_max, a_to_b, a_from_b);
    let b = end(&b_name, &a_name, b_max, b_to_a, b_from_a);
    (a, b)
}

/// The sending side of one direction: the channel, and its room counted in frames.
struct Sending {
    tx: mpsc::UnboundedSender<Message>,
    room: Arc<Semaphore>,
}

/// The receiving side of one direction.
struct Receiving {
    rx: mpsc::UnboundedReceiver<Message>,
    room: Arc<Semaphore>,
}

impl Sending {
    /// A direction with room for `capacity` frames.
    fn new(capacity: usize) -> (Self, Receiving) {
        let (tx, rx) = mpsc::unbounded_channel();
        let room = Arc::new(Semaphore::new(capacity));
        let receiving = Receiving {
            rx,
            room: Arc::clone(&room),
        };
        (Self { tx, room }, receiving)
    }
}

/// The sending half of a memory connection.
#[derive(Debug)]
pub struct MemorySender {
    /// `None` once closed.
    tx: Option<mpsc::UnboundedSender<Message>>,
    /// Room in the channel, in frames: a message of `n` frames takes `n` permits, which the
    /// receiver gives back when it takes the message.
    room: Arc<Semaphore>,
    /// Most frames queued before they are handed over: [`BATCH`], or the channel's capacity
    /// if smaller.
    batch: usize,
    /// Frames fed since the last hand-over.
    queued: Vec<Bytes>,
    max_frame: usize,
}

impl MemorySender {
    /// Checks `frame` against the limits and queues it; `true` when the queue is due to be
    /// handed over.
    fn queue(&mut self, frame: Bytes) -> Result<bool, TransportError> {
        if self.tx.is_none() {
            return Err(TransportError::Closed);
        }
        if frame.len() > self.max_frame {
            return Err(TransportError::FrameTooLarge {
                size: frame.len(),
                max: self.max_frame,
            });
        }
        self.queued.push(frame);
        Ok(self.queued.len() >= self.batch)
    }

    /// Hands the queued frames to the channel, waiting for room for all of them.
    async fn hand_over(&mut self) -> Result<(), TransportError> {
        let frames = self.queued.len();
        if frames == 0 {
            return Ok(());
        }
        let tx = self.tx.as_ref().ok_or(TransportError::Closed)?;
        // At most the capacity, so the permits come once the receiver took enough frames; a
        // receiver that went away closes the semaphore.
        self.room
            .acquire_many(u32::try_from(frames).unwrap_or(u32::MAX))
            .await
            .map_err(|_| peer_gone())?
            .forget();
        let message = match frames {
            1 => Message::Frame(self.queued.swap_remove(0)),
            // The next batch is likely as large as this one.
            _ => Message::Frames(std::mem::replace(
                &mut self.queued,
                Vec::with_capacity(frames),
            )),
        };
        tx.send(message).map_err(|_| peer_gone())
    }
}

fn peer_gone() -> TransportError {
    TransportError::lost("the peer dropped its receiving end")
}

#[async_trait]
impl FrameSender for MemorySender {
    async fn feed(&mut self, frame: Bytes) -> Result<(), TransportError> {
        if self.queue(frame)? {
            self.hand_over().await?;
        }
        Ok(())
    }

    async fn feed_parts(&mut self, head: &[u8], body: Bytes) -> Result<(), TransportError> {
        // As the default, without going through `feed`'s boxed future.
        if self.queue(join_parts(head, &body))? {
            self.hand_over().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), TransportError> {
        if self.tx.is_none() {
            return Err(TransportError::Closed);
        }
        self.hand_over().await
    }

    async fn close(&mut self) -> Result<(), TransportError> {
        if self.tx.is_none() {
            return Ok(());
        }
        // Frames queued before the close go first.
        self.hand_over().await?;
        let Some(tx) = self.tx.take() else {
            return Ok(());
        };
        tracing::debug!("closing a memory connection");
        tx.send(Message::Close).map_err(|_| peer_gone())
    }
}

/// The receiving half of a memory connection.
#[derive(Debug)]
pub struct MemoryReceiver {
    rx: mpsc::UnboundedReceiver<Message>,
    /// The channel's room, given back as messages are taken.
    room: Arc<Semaphore>,
    /// The rest of the last message of several frames.
    taken: std::vec::IntoIter<Bytes>,
    max_frame: usize,
    ended: bool,
}

impl MemoryReceiver {
    fn checked(&self, frame: Bytes) -> Result<Option<Bytes>, TransportError> {
        if frame.len() > self.max_frame {
            return Err(TransportError::FrameTooLarge {
                size: frame.len(),
                max: self.max_frame,
            });
        }
        Ok(Some(frame))
    }
}

#[async_trait]
impl FrameReceiver for MemoryReceiver {
    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        loop {
            if let Some(frame) = self.taken.next() {
                return self.checked(frame);
            }
            if self.ended {
                return Ok(None);
            }
            // `mpsc::UnboundedReceiver::recv` is cancel-safe, and so is this method: a
            // message of several frames is kept in `taken` as soon as it is received.
            match self.rx.recv().await {
                Some(Message::Frame(frame)) => {
                    self.room.add_permits(1);
                    return self.checked(frame);
                }
                Some(Message::Frames(frames)) => {
                    self.room.add_permits(frames.len());
                    self.taken = frames.into_iter();
                }
                Some(Message::Close) => {
                    self.ended = true;
                    self.rx.close();
                }
                None => {
                    return Err(TransportError::lost(
                        "the peer dropped its end without closing it",
                    ))
                }
            }
        }
    }
}

impl Drop for MemoryReceiver {
    fn drop(&mut self) {
        // A sender waiting for room learns that none will come.
        self.room.close();
    }
}

/// A registered listener: where `connect` delivers the server end.
struct Registration {
    id: u64,
    backlog: mpsc::Sender<MemoryTransport>,
    max_frame: usize,
    capacity: usize,
}

static REGISTRY: LazyLock<Mutex<HashMap<String, Registration>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn registry() -> std::sync::MutexGuard<'static, HashMap<String, Registration>> {
    // The map stays consistent even if a holder panicked: every operation is a single insert,
    // lookup or remove.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A listener registered under `mem://name`; dropping it frees the name.
#[derive(Debug)]
pub struct MemoryListener {
    name: String,
    id: u64,
    backlog: mpsc::Receiver<MemoryTransport>,
}

/// Registers a listener under `name`. Fails with [`TransportError::AddressInUse`] if a live
/// listener holds the name.
pub fn bind(name: &str, config: &TransportConfig) -> Result<MemoryListener, TransportError> {
    let mut registry = registry();
    if registry.contains_key(name) {
        return Err(TransportError::AddressInUse {
            addr: Address::Memory(name.to_owned()).to_string(),
        });
    }
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(BACKLOG);
    registry.insert(
        name.to_owned(),
        Registration {
            id,
            backlog: tx,
            max_frame: config.max_frame,
            capacity: config.memory_capacity,
        },
    );
    tracing::debug!(name, "memory listener bound");
    Ok(MemoryListener {
        name: name.to_owned(),
        id,
        backlog: rx,
    })
}

/// Connects to the listener registered under `name`; fails at once with
/// [`TransportError::ConnectionRefused`] if there is none, and with [`TransportError::TimedOut`]
/// if its backlog stays full for [`TransportConfig::connect_timeout`].
pub async fn connect(
    name: &str,
    config: &TransportConfig,
) -> Result<MemoryTransport, TransportError> {
    let addr = Address::Memory(name.to_owned()).to_string();
    let refused = |reason: &str| TransportError::ConnectionRefused {
        addr: addr.clone(),
        reason: reason.to_owned(),
    };
    let (backlog, server_max, capacity) = {
        let registry = registry();
        let entry = registry
            .get(name)
            .ok_or_else(|| refused("no listener is bound to this name"))?;
        (entry.backlog.clone(), entry.max_frame, entry.capacity)
    };
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let (client, server) = pair_with(
        capacity,
        (format!("{addr}#{id}"), config.max_frame),
        (addr.clone(), server_max),
    );
    // A listener that does not accept fills its backlog; connecting then waits, within bounds.
    tokio::time::timeout(config.connect_timeout, backlog.send(server))
        .await
        .map_err(|_| TransportError::TimedOut {
            addr: addr.clone(),
            after: config.connect_timeout,
        })?
        .map_err(|_| refused("the listener was dropped"))?;
    tracing::debug!(%addr, id, "memory connection opened");
    Ok(client)
}

#[async_trait]
impl Listener for MemoryListener {
    async fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        // `mpsc::Receiver::recv` is cancel-safe. The registry holds a sender as long as this
        // listener lives, so the channel cannot end while `self` exists.
        let transport = self.backlog.recv().await.ok_or(TransportError::Closed)?;
        tracing::debug!(name = %self.name, peer = %transport.info.peer, "memory connection accepted");
        Ok(Box::new(transport))
    }

    fn local_addr(&self) -> Address {
        Address::Memory(self.name.clone())
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        let mut registry = registry();
        if registry.get(&self.name).is_some_and(|r| r.id == self.id) {
            registry.remove(&self.name);
        }
        tracing::debug!(name = %self.name, "memory listener closed");
    }
}
