//! Transport addresses: `mem://`, `tcp://`, `unix://`, `quic://` and `quic+dgram://`, parsed and printed.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::TransportError;

/// Where a transport listens or connects.
///
/// The textual form is `scheme://rest`; [`FromStr`] parses it and [`Display`](fmt::Display)
/// prints it back unchanged (for canonical input):
///
/// | form | meaning |
/// | --- | --- |
/// | `mem://name` | in-process listener registered under `name` |
/// | `tcp://host:port` | TCP, frames length-prefixed on the stream |
/// | `unix:///path/to/sock`, `unix://relative/sock` | Unix domain stream socket |
/// | `quic://host:port` | QUIC, one bidirectional stream per connection |
/// | `quic+dgram://host:port` | QUIC unreliable datagrams, one frame per datagram |
///
/// `host` is a DNS name, an IPv4 address or an IPv6 address in brackets (`[::1]`). Port `0`
/// asks the system for a free port when binding; [`Listener::local_addr`](crate::Listener::local_addr)
/// reports the port actually bound.
///
/// ```
/// use liaison_transport::Address;
///
/// let addr: Address = "tcp://[::1]:4000".parse().unwrap();
/// assert_eq!(addr.to_string(), "tcp://[::1]:4000");
/// assert!("ftp://example.org".parse::<Address>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Address {
    /// An in-process listener name (`mem://name`).
    Memory(String),
    /// A TCP endpoint (`tcp://host:port`).
    Tcp(HostPort),
    /// A Unix domain socket path (`unix:///abs/path` or `unix://relative/path`).
    Unix(PathBuf),
    /// A QUIC endpoint carrying one reliable bidirectional stream (`quic://host:port`).
    Quic(HostPort),
    /// A QUIC endpoint carrying unreliable datagrams (`quic+dgram://host:port`).
    QuicDatagram(HostPort),
}

impl Address {
    /// The scheme of this address (`mem`, `tcp`, `unix`, `quic` or `quic+dgram`).
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Memory(_) => "mem",
            Self::Tcp(_) => "tcp",
            Self::Unix(_) => "unix",
            Self::Quic(_) => "quic",
            Self::QuicDatagram(_) => "quic+dgram",
        }
    }

    /// A `tcp://` address for a socket address.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self::Tcp(HostPort::from(addr))
    }

    /// A `quic://` address for a socket address.
    pub fn quic(addr: SocketAddr) -> Self {
        Self::Quic(HostPort::from(addr))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(name) => write!(f, "mem://{name}"),
            Self::Tcp(hp) => write!(f, "tcp://{hp}"),
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Quic(hp) => write!(f, "quic://{hp}"),
            Self::QuicDatagram(hp) => write!(f, "quic+dgram://{hp}"),
        }
    }
}

impl FromStr for Address {
    type Err = TransportError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((scheme, rest)) = s.split_once("://") else {
            return Err(TransportError::invalid_address(
                s,
                "missing scheme (expected scheme://...)",
            ));
        };
        match scheme {
            "mem" => {
                if rest.is_empty() {
                    return Err(TransportError::invalid_address(s, "empty memory name"));
                }
                if rest.chars().any(char::is_whitespace) {
                    return Err(TransportError::invalid_address(
                        s,
                        "memory name contains whitespace",
                    ));
                }
                Ok(Self::Memory(rest.to_owned()))
            }
            "unix" => {
                if rest.is_empty() {
                    return Err(TransportError::invalid_address(s, "empty socket path"));
                }
                if rest.contains('\0') {
                    return Err(TransportError::invalid_address(
                        s,
                        "socket path contains a NUL byte",
                    ));
                }
                Ok(Self::Unix(PathBuf::from(rest)))
            }
            "tcp" => HostPort::parse(s, rest).map(Self::Tcp),
            "quic" => HostPort::parse(s, rest).map(Self::Quic),
            "quic+dgram" => HostPort::parse(s, rest).map(Self::QuicDatagram),
            other => Err(TransportError::UnsupportedScheme {
                scheme: other.to_owned(),
            }),
        }
    }
}

/// A host (DNS name or IP address) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    host: String,
    port: u16,
}

impl HostPort {
    /// A host and port; `host` is a DNS name or an IP address (IPv6 without brackets).
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// The host: a DNS name or an IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host as an IP address, if it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// Resolves the host (a no-op for IP addresses) to socket addresses.
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, TransportError> {
        if let Some(ip) = self.ip() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| {
                TransportError::invalid_address(self.to_string(), format!("cannot resolve: {e}"))
            })?
            .collect();
        if addrs.is_empty() {
            return Err(TransportError::invalid_address(
                self.to_string(),
                "host resolves to no address",
            ));
        }
        Ok(addrs)
    }

    fn parse(whole: &str, rest: &str) -> Result<Self, TransportError> {
        let bad = |reason: &str| TransportError::invalid_address(whole, reason);
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (inside, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("unterminated `[` in IPv6 host"))?;
            inside
                .parse::<Ipv6Addr>()
                .map_err(|_| bad("invalid IPv6 address in brackets"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| bad("missing `:port` after the host"))?;
            (inside, port)
        } else {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("missing `:port` after the host"))?;
            if host.contains(':') {
                return Err(bad("IPv6 hosts must be written in brackets, e.g. [::1]"));
            }
            (host, port)
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        {
            return Err(bad("host contains characters not allowed in a host name"));
        }
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("port is not a number"));
        }
        let port = port
            .parse::<u16>()
            .map_err(|_| bad("port is out of range (0..=65535)"))?;
        Ok(Self::new(host, port))
    }
}

impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> Self {
        Self::new(addr.ip().to_string(), addr.port())
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Address, TransportError> {
        s.parse()
    }

    #[test]
    fn good_addresses_parse() {
        assert_eq!(parse("mem://a-b").unwrap(), Address::Memory("a-b".into()));
        assert_eq!(
            parse("tcp://127.0.0.1:80").unwrap(),
            Address::Tcp(HostPort::new("127.0.0.1", 80))
        );
        assert_eq!(
            parse("tcp://example.org:0").unwrap(),
            Address::Tcp(HostPort::new("example.org", 0))
        );
        assert_eq!(
            parse("quic://[::1]:4433").unwrap(),
            Address::Quic(HostPort::new("::1", 4433))
        );
        assert_eq!(
            parse("quic+dgram://localhost:65535").unwrap(),
            Address::QuicDatagram(HostPort::new("localhost", 65535))
        );
        assert_eq!(
            parse("unix:///tmp/x.sock").unwrap(),
            Address::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            parse("unix://rel/x.sock").unwrap(),
            Address::Unix("rel/x.sock".into())
        );
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "mem://name",
            "tcp://127.0.0.1:9000",
            "tcp://[::1]:9000",
            "tcp://host.example:1",
            "unix:///var/run/l.sock",
            "unix://l.sock",
            "quic://[fe80::1]:443",
            "quic+dgram://10.0.0.1:0",
        ] {
            let addr = parse(s).unwrap();
            assert_eq!(addr.to_string(), s);
            assert_eq!(parse(&addr.to_string()).unwrap(), addr);
        }
        let from_socket = Address::tcp("[::1]:7".parse().unwrap());
        assert_eq!(from_socket.to_string(), "tcp://[::1]:7");
    }

    #[test]
    fn bad_addresses_are_typed_errors() {
        for s in [
            "no-scheme",
            "mem://",
            "mem://a b",
            "unix://",
            "tcp://host",
            "tcp://:80",
            "tcp://host:",
            "tcp://host:65536",
            "tcp://host:-1",
            "tcp://host:80/path",
            "tcp://::1:80",
            "tcp://[::1:80",
            "tcp://[nothost]:80",
            "tcp://[::1]80",
            "quic://ho st:1",
            "tcp://user@host:1",
        ] {
            match parse(s) {
                Err(TransportError::InvalidAddress { addr, reason }) => {
                    assert_eq!(addr, s);
                    assert!(!reason.is_empty());
                }
                other => panic!("{s}: expected InvalidAddress, got {other:?}"),
            }
        }
        assert!(matches!(
            parse("http://x:1"),
            Err(TransportError::UnsupportedScheme { scheme }) if scheme == "http"
        ));
    }

    #[test]
    fn ip_hosts_are_recognised() {
        assert_eq!(
            HostPort::new("::1", 1).ip(),
            Some(IpAddr::V6(Ipv6Addr::LOCALHOST))
        );
        assert_eq!(HostPort::new("localhost", 1).ip(), None);
        assert_eq!(Address::Memory("x".into()).scheme(), "mem");
    }
}
