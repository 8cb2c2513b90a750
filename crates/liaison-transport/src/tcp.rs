//! TCP transport: length-prefixed frames ([`crate::codec`]) over a `TcpStream`, `TCP_NODELAY` on.

use std::net::SocketAddr;

use async_trait::async_trait;
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener as TokioTcpListener, TcpStream};

use crate::address::{Address, HostPort};
use crate::config::TransportConfig;
use crate::error::TransportError;
use crate::framed::FramedTransport;
use crate::transport::{Listener, Properties, Transport, TransportInfo};

/// A TCP connection carrying frames.
type TcpTransport =
    FramedTransport<tokio::net::tcp::OwnedReadHalf, tokio::net::tcp::OwnedWriteHalf>;

fn configure(stream: &TcpStream, config: &TransportConfig) -> Result<(), TransportError> {
    stream.set_nodelay(true)?;
    if let Some(idle) = config.tcp_keepalive {
        SockRef::from(stream).set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
    }
    Ok(())
}

fn transport(
    stream: TcpStream,
    local: SocketAddr,
    peer: SocketAddr,
    config: &TransportConfig,
) -> TcpTransport {
    let info = TransportInfo {
        properties: Properties {
            reliable: true,
            ordered: true,
            max_frame: config.max_frame.min(crate::MAX_STREAM_FRAME),
        },
        local: Address::tcp(local).to_string(),
        peer: Address::tcp(peer).to_string(),
        tls_peer_certificates: None,
    };
    let (read, write) = stream.into_split();
    FramedTransport::new(read, write, info)
}

/// Connects to `target`, trying each resolved address in turn within `connect_timeout`.
pub(crate) async fn connect(
    target: &HostPort,
    config: &TransportConfig,
) -> Result<Box<dyn Transport>, TransportError> {
    let addr = Address::Tcp(target.clone()).to_string();
    let attempt = async {
        let mut last = None;
        for socket_addr in target.resolve().await? {
            match TcpStream::connect(socket_addr).await {
                Ok(stream) => return Ok(stream),
                Err(err) => last = Some(TransportError::from_connect_io(&addr, err)),
            }
        }
        Err(last.unwrap_or_else(|| TransportError::invalid_address(&addr, "no address to try")))
    };
    let stream = tokio::time::timeout(config.connect_timeout, attempt)
        .await
        .map_err(|_| TransportError::TimedOut {
            addr: addr.clone(),
            after: config.connect_timeout,
        })??;
    configure(&stream, config)?;
    let (local, peer) = (stream.local_addr()?, stream.peer_addr()?);
    tracing::debug!(%local, %peer, "tcp connected");
    Ok(Box::new(transport(stream, local, peer, config)))
}

/// Binds a TCP listener.
pub(crate) async fn bind(
    target: &HostPort,
    config: &TransportConfig,
) -> Result<TcpListener, TransportError> {
    let addr = Address::Tcp(target.clone()).to_string();
    let mut last = None;
    for socket_addr in target.resolve().await? {
        match TokioTcpListener::bind(socket_addr).await {
            Ok(listener) => {
                let local = listener.local_addr()?;
                tracing::debug!(%local, "tcp listener bound");
                return Ok(TcpListener {
                    listener,
                    local,
                    config: config.clone(),
                });
            }
            Err(err) => last = Some(TransportError::from_bind_io(&addr, err)),
        }
    }
    Err(last.unwrap_or_else(|| TransportError::invalid_address(&addr, "no address to bind")))
}

/// Accepts TCP connections.
#[derive(Debug)]
pub(crate) struct TcpListener {
    listener: TokioTcpListener,
    local: SocketAddr,
    config: TransportConfig,
}

#[async_trait]
impl Listener for TcpListener {
    async fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        // `TcpListener::accept` is cancel-safe.
        let (stream, peer) = self.listener.accept().await?;
        configure(&stream, &self.config)?;
        let local = stream.local_addr()?;
        tracing::debug!(%local, %peer, "tcp connection accepted");
        Ok(Box::new(transport(stream, local, peer, &self.config)))
    }

    fn local_addr(&self) -> Address {
        Address::tcp(self.local)
    }
}
