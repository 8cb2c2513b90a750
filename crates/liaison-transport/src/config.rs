//! [`TransportConfig`] and [`QuicConfig`]: limits, timeouts and QUIC tuning shared by every transport.

use std::time::Duration;

use crate::tls::{QuicClientTls, QuicServerTls};

/// Default largest frame on stream transports (TCP, Unix, QUIC streams) and memory: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Settings for binding and connecting any transport.
///
/// ```
/// use liaison_transport::TransportConfig;
///
/// let config = TransportConfig::default().with_max_frame(1 << 20);
/// assert_eq!(config.max_frame, 1 << 20);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Largest frame this end sends or accepts, in bytes (datagram mode uses the connection's
    /// datagram limit instead). Stream transports cap it at [`crate::MAX_STREAM_FRAME`].
    pub max_frame: usize,
    /// Capacity, in frames, of each direction of a memory connection: a full channel makes
    /// the sender wait (backpressure). At least 1.
    pub memory_capacity: usize,
    /// How long [`connect`](crate::connect) (including the QUIC handshake) and a server-side QUIC
    /// handshake may take.
    pub connect_timeout: Duration,
    /// TCP keep-alive idle time for TCP connections (`None` leaves the system default).
    /// `TCP_NODELAY` is always set.
    pub tcp_keepalive: Option<Duration>,
    /// QUIC settings (TLS, keep-alive, windows).
    pub quic: QuicConfig,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_frame: DEFAULT_MAX_FRAME,
            memory_capacity: 256,
            connect_timeout: Duration::from_secs(10),
            tcp_keepalive: Some(Duration::from_secs(30)),
            quic: QuicConfig::default(),
        }
    }
}

impl TransportConfig {
    /// Sets [`max_frame`](Self::max_frame).
    #[must_use]
    pub fn with_max_frame(mut self, max_frame: usize) -> Self {
        self.max_frame = max_frame;
        self
    }

    /// Sets [`memory_capacity`](Self::memory_capacity).
    #[must_use]
    pub fn with_memory_capacity(mut self, capacity: usize) -> Self {
        self.memory_capacity = capacity;
        self
    }

    /// Sets [`connect_timeout`](Self::connect_timeout).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`quic`](Self::quic).
    #[must_use]
    pub fn with_quic(mut self, quic: QuicConfig) -> Self {
        self.quic = quic;
        self
    }
}

/// QUIC settings: TLS on both sides and the quinn transport tuning.
///
/// Streams and datagrams use distinct ALPN protocols ([`crate::quic::ALPN_STREAM`],
/// [`crate::quic::ALPN_DATAGRAM`]), so a client and a server that disagree on the mode fail the
/// handshake instead of waiting on each other.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct QuicConfig {
    /// Certificate and key presented when binding a QUIC listener (required to bind).
    pub server_tls: Option<QuicServerTls>,
    /// How a client verifies servers, and its optional certificate for mutual TLS.
    pub client_tls: QuicClientTls,
    /// Interval of QUIC keep-alive packets (`None` disables them).
    pub keep_alive_interval: Option<Duration>,
    /// A connection silent for this long is lost.
    pub idle_timeout: Duration,
    /// Flow-control window of the stream, in bytes (how much the peer may send unread).
    ///
    /// With [`send_window`](Self::send_window), it bounds one connection's throughput to
    /// about a window per round trip. The defaults are quinn's own: 1.25 MB, room for
    /// 100 Mbit/s at a 100 ms round trip. Raise both for faster long paths. Larger windows
    /// cost throughput where round trips are short: on loopback, 8 MiB here and 16 MiB of
    /// send window moved about 8% less (`liaison-bench --only bulk-quic`).
    pub stream_receive_window: u32,
    /// Flow-control window of the whole connection, in bytes.
    pub receive_window: u32,
    /// How many bytes may be in flight unacknowledged (quinn's default: 10 MB).
    pub send_window: u64,
    /// Datagram mode: bytes of received datagrams buffered until read (oldest dropped beyond).
    pub datagram_receive_buffer: usize,
    /// Datagram mode: bytes of datagrams queued for sending (senders wait beyond).
    pub datagram_send_buffer: usize,
    /// Path MTU discovery (raises the datagram size limit above the initial 1200-byte packets).
    pub mtu_discovery: bool,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            server_tls: None,
            client_tls: QuicClientTls::default(),
            keep_alive_interval: Some(Duration::from_secs(5)),
            idle_timeout: Duration::from_secs(30),
            stream_receive_window: 1_250_000,
            receive_window: 16 * 1024 * 1024,
            send_window: 10_000_000,
            datagram_receive_buffer: 4 * 1024 * 1024,
            datagram_send_buffer: 1024 * 1024,
            mtu_discovery: true,
        }
    }
}

impl QuicConfig {
    /// Sets [`server_tls`](Self::server_tls).
    #[must_use]
    pub fn with_server_tls(mut self, tls: QuicServerTls) -> Self {
        self.server_tls = Some(tls);
        self
    }

    /// Sets [`client_tls`](Self::client_tls).
    #[must_use]
    pub fn with_client_tls(mut self, tls: QuicClientTls) -> Self {
        self.client_tls = tls;
        self
    }
}
