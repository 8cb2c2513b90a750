//! Unix domain socket transport: the same length-prefixed frames as TCP over a `UnixStream`.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use tokio::net::{UnixListener as TokioUnixListener, UnixStream};

use crate::address::Address;
use crate::config::TransportConfig;
use crate::error::TransportError;
use crate::framed::FramedTransport;
use crate::transport::{Listener, Properties, Transport, TransportInfo};

/// How the unnamed end of a Unix connection is shown.
const UNNAMED: &str = "unix:(unnamed)";

fn transport(
    stream: UnixStream,
    local: String,
    peer: String,
    config: &TransportConfig,
) -> Box<dyn Transport> {
    let info = TransportInfo {
        properties: Properties {
            reliable: true,
            ordered: true,
            max_frame: config.max_frame.min(crate::MAX_STREAM_FRAME),
        },
        local,
        peer,
        tls_peer_certificates: None,
    };
    let (read, write) = stream.into_split();
    Box::new(FramedTransport::new(read, write, info))
}

/// Connects to the socket at `path` within `connect_timeout`.
pub(crate) async fn connect(
    path: &Path,
    config: &TransportConfig,
) -> Result<Box<dyn Transport>, TransportError> {
    let addr = Address::Unix(path.to_owned()).to_string();
    let stream = tokio::time::timeout(config.connect_timeout, UnixStream::connect(path))
        .await
        .map_err(|_| TransportError::TimedOut {
            addr: addr.clone(),
            after: config.connect_timeout,
        })?
        .map_err(|e| TransportError::from_connect_io(&addr, e))?;
    tracing::debug!(%addr, "unix socket connected");
    Ok(transport(stream, UNNAMED.to_owned(), addr, config))
}

/// Binds a listener at `path`. A socket file left behind by a dead listener is replaced; a live
/// listener or a file that is not a socket makes it fail with [`TransportError::AddressInUse`].
pub(crate) async fn bind(
    path: &Path,
    config: &TransportConfig,
) -> Result<UnixListener, TransportError> {
    let addr = Address::Unix(path.to_owned()).to_string();
    let in_use = || TransportError::AddressInUse { addr: addr.clone() };
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(path).await {
            Ok(_) => return Err(in_use()),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
                tracing::debug!(%addr, "removing a stale socket file");
                std::fs::remove_file(path)?;
            }
            Err(err) => return Err(err.into()),
        },
        Ok(_) => return Err(in_use()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err.into()),
    }
    let listener =
        TokioUnixListener::bind(path).map_err(|e| TransportError::from_bind_io(&addr, e))?;
    let meta = std::fs::symlink_metadata(path)?;
    tracing::debug!(%addr, "unix listener bound");
    Ok(UnixListener {
        listener,
        path: path.to_owned(),
        file_id: (meta.dev(), meta.ino()),
        config: config.clone(),
    })
}

/// Accepts Unix socket connections; removes its socket file when dropped.
#[derive(Debug)]
pub(crate) struct UnixListener {
    listener: TokioUnixListener,
    path: PathBuf,
    /// Device and inode of the socket file this listener created, so that dropping it never
    /// removes a file some other listener bound since.
    file_id: (u64, u64),
    config: TransportConfig,
}

#[async_trait]
impl Listener for UnixListener {
    async fn accept(&mut self) -> Result<Box<dyn Transport>, TransportError> {
        // `UnixListener::accept` is cancel-safe.
        let (stream, _) = self.listener.accept().await?;
        let local = Address::Unix(self.path.clone()).to_string();
        tracing::debug!(%local, "unix connection accepted");
        Ok(transport(stream, local, UNNAMED.to_owned(), &self.config))
    }

    fn local_addr(&self) -> Address {
        Address::Unix(self.path.clone())
    }
}

impl Drop for UnixListener {
    fn drop(&mut self) {
        let ours = std::fs::symlink_metadata(&self.path)
            .is_ok_and(|meta| (meta.dev(), meta.ino()) == self.file_id);
        if ours {
            if let Err(err) = std::fs::remove_file(&self.path) {
                tracing::debug!(path = %self.path.display(), %err, "cannot remove the socket file");
            }
        }
        tracing::debug!(path = %self.path.display(), "unix listener closed");
    }
}
