//! Authentication, step 3 of establishment (docs/SESSION.md §3): the [`Authenticator`]
//! trait, its per-connection [`AuthState`], and the identities it yields.
//!
//! Shipped mechanisms: [`NoAuth`] (an explicit opt-in), [`PskAuth`] (pre-shared key,
//! mutual HMAC-SHA256 challenge-response) and [`TlsIdentityAuth`] (the transport's TLS peer
//! certificate).

mod none;
mod psk;
mod tls;

use std::fmt;

use bytes::Bytes;

pub use none::NoAuth;
pub use psk::{PskAuth, PskKey, MIN_KEY_LEN};
pub use tls::{Fingerprint, TlsIdentityAuth};

/// Which end of the connection an endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that opened the connection and sends `Hello`.
    Client,
    /// The side that accepted the connection.
    Server,
}

/// What an [`Authenticator`] may look at when it starts on a connection.
#[non_exhaustive]
pub struct AuthContext<'a> {
    /// The protocol version both sides agreed on (bind it into proofs).
    pub version: u16,
    /// The peer's TLS certificate chain, leaf first, DER-encoded, when the transport
    /// verified one.
    pub tls_peer_certificates: Option<&'a [Bytes]>,
    /// Randomness for nonces. The session passes its own source, so tests are
    /// deterministic; production sessions use the operating system's generator.
    pub rng: &'a mut dyn rand::RngCore,
}

impl<'a> AuthContext<'a> {
    /// A context for `version`, with the peer's certificates (if any) and `rng`.
    pub fn new(
        version: u16,
        tls_peer_certificates: Option<&'a [Bytes]>,
        rng: &'a mut dyn rand::RngCore,
    ) -> Self {
        Self {
            version,
            tls_peer_certificates,
            rng,
        }
    }
}

impl fmt::Debug for AuthContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthContext")
            .field("version", &self.version)
            .field(
                "tls_peer_certificates",
                &self.tls_peer_certificates.map(<[Bytes]>::len),
            )
            .finish_non_exhaustive()
    }
}

/// An authentication mechanism. One value serves every connection of a client or server;
/// [`start`](Self::start) makes the small state machine of one connection.
///
/// # The message flow (docs/SESSION.md §3)
///
/// The client's state is stepped first, with `None`. After that, each side steps its
/// state with every message the peer sends. Client messages travel in `AuthProof` frames;
/// server messages travel in `AuthChallenge` frames, except the server's last one, sent
/// when its state is [`Done`](AuthStep::Done), which travels in `AuthResult`. A side whose
/// peer is done must finish on the message it just received. Any error fails the
/// handshake with "authentication failed", and the peer learns nothing more.
pub trait Authenticator: Send + Sync {
    /// The mechanism's name, sent in `Welcome`: a client and a server must run the same.
    fn mechanism(&self) -> &str;

    /// Starts authentication on one connection, in `role`.
    fn start(&self, role: Role, ctx: &mut AuthContext<'_>) -> Box<dyn AuthState>;
}

/// One connection's authentication in progress.
pub trait AuthState: Send {
    /// Advances with the peer's next message (`None` for the client's first step).
    fn step(&mut self, incoming: Option<&[u8]>) -> Result<AuthStep, AuthError>;
}

/// What an [`AuthState`] wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthStep {
    /// Send this message and wait for the peer's answer.
    Send(Bytes),
    /// This side is satisfied: the peer is `identity`. `send` is a last message for the
    /// peer, if the mechanism has one.
    Done {
        /// Who the peer is.
        identity: PeerIdentity,
        /// A last message to send, if any.
        send: Option<Bytes>,
    },
}

/// Who the peer is, as authentication established it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerIdentity {
    /// No authentication ran ([`NoAuth`]).
    Anonymous,
    /// The peer proved it holds the pre-shared key `key_id`; `name` is the name it
    /// announced, bound into the proofs.
    PreSharedKey {
        /// The id of the key both sides used.
        key_id: String,
        /// The name the peer announced.
        name: String,
    },
    /// The peer's TLS leaf certificate, by SHA-256 fingerprint.
    Certificate(Fingerprint),
    /// An identity from another [`Authenticator`].
    Other {
        /// The mechanism that established it.
        mechanism: String,
        /// The identity, as that mechanism spells it.
        name: String,
    },
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Anonymous => f.write_str("anonymous"),
            Self::PreSharedKey { key_id, name } => write!(f, "psk:{key_id}:{name}"),
            Self::Certificate(fp) => write!(f, "cert:{fp}"),
            Self::Other { mechanism, name } => write!(f, "{mechanism}:{name}"),
        }
    }
}

/// Why authentication failed, as the side that found it knows it. The peer is only told
/// "authentication failed".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A proof did not verify (wrong key, or a proof recorded on another connection).
    #[error("proof did not verify")]
    BadProof,
    /// A message could not be decoded.
    #[error("malformed authentication message: {0}")]
    Malformed(String),
    /// A message arrived that the mechanism does not expect now.
    #[error("unexpected authentication message: {0}")]
    Unexpected(&'static str),
    /// The transport has no verified TLS peer certificate.
    #[error("the transport has no TLS peer certificate")]
    NoPeerCertificate,
    /// The peer's identity is not on the allow-list.
    #[error("peer {0} is not allowed")]
    NotAllowed(String),
    /// The peer runs another mechanism.
    #[error("mechanism mismatch: this side runs {local}, the peer {remote}")]
    MechanismMismatch {
        /// This side's mechanism.
        local: String,
        /// The peer's mechanism.
        remote: String,
    },
    /// Any other failure of a custom mechanism.
    #[error("{0}")]
    Other(String),
}
