//! [`connect`] and [`bind`] for any [`Address`], and [`AddressConnector`] for reconnecting.

use async_trait::async_trait;

use crate::address::Address;
use crate::config::TransportConfig;
use crate::error::TransportError;
use crate::transport::{Connector, Listener, Transport};

/// Opens a connection to `address`.
///
/// Fails with [`TransportError::ConnectionRefused`] when nothing listens there (at once for
/// `mem`, `tcp` and `unix`), and with [`TransportError::TimedOut`] after
/// [`TransportConfig::connect_timeout`] when nothing answers (QUIC cannot tell a closed UDP port
/// from a slow one, so it ends here).
pub async fn connect(
    address: &Address,
    config: &TransportConfig,
) -> Result<Box<dyn Transport>, TransportError> {
    match address {
        Address::Memory(name) => Ok(Box::new(crate::memory::connect(name, config).await?)),
        Address::Tcp(target) => crate::tcp::connect(target, config).await,
        #[cfg(unix)]
        Address::Unix(path) => crate::unix::connect(path, config).await,
        #[cfg(not(unix))]
        Address::Unix(_) => Err(TransportError::UnsupportedScheme {
            scheme: "unix".into(),
        }),
        Address::Quic(target) => {
            crate::quic::connect(target, config, crate::quic::Mode::Stream).await
        }
        Address::QuicDatagram(target) => {
            crate::quic::connect(target, config, crate::quic::Mode::Datagram).await
        }
    }
}

/// Listens at `address`. Fails with [`TransportError::AddressInUse`] when the address is taken.
pub async fn bind(
    address: &Address,
    config: &TransportConfig,
) -> Result<Box<dyn Listener>, TransportError> {
    match address {
        Address::Memory(name) => Ok(Box::new(crate::memory::bind(name, config)?)),
        Address::Tcp(target) => Ok(Box::new(crate::tcp::bind(target, config).await?)),
        #[cfg(unix)]
        Address::Unix(path) => Ok(Box::new(crate::unix::bind(path, config).await?)),
        #[cfg(not(unix))]
        Address::Unix(_) => Err(TransportError::UnsupportedScheme {
            scheme: "unix".into(),
        }),
        Address::Quic(target) => Ok(Box::new(
            crate::quic::bind(target, config, crate::quic::Mode::Stream).await?,
        )),
        Address::QuicDatagram(target) => Ok(Box::new(
            crate::quic::bind(target, config, crate::quic::Mode::Datagram).await?,
        )),
    }
}

impl Address {
    /// Opens a connection to this address; see [`connect`].
    pub async fn connect(
        &self,
        config: &TransportConfig,
    ) -> Result<Box<dyn Transport>, TransportError> {
        connect(self, config).await
    }

    /// Listens at this address; see [`bind`].
    pub async fn bind(
        &self,
        config: &TransportConfig,
    ) -> Result<Box<dyn Listener>, TransportError> {
        bind(self, config).await
    }
}

/// A [`Connector`] that dials a fixed address with a fixed configuration.
#[derive(Debug, Clone)]
pub struct AddressConnector {
    address: Address,
    config: TransportConfig,
}

impl AddressConnector {
    /// Dials `address` with `config` on every [`Connector::connect`].
    pub fn new(address: Address, config: TransportConfig) -> Self {
        Self { address, config }
    }

    /// The address dialled.
    pub fn address(&self) -> &Address {
        &self.address
    }
}

#[async_trait]
impl Connector for AddressConnector {
    async fn connect(&self) -> Result<Box<dyn Transport>, TransportError> {
        connect(&self.address, &self.config).await
    }
}
