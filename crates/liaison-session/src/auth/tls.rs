//! [`TlsIdentityAuth`]: the peer is who its TLS certificate says (docs/SESSION.md §3.3).

use std::collections::HashSet;
use std::fmt;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{AuthContext, AuthError, AuthState, AuthStep, Authenticator, PeerIdentity, Role};

/// SHA-256 of a DER-encoded certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Authentication by the TLS peer certificate the transport verified (QUIC).
///
/// The identity is the SHA-256 [`Fingerprint`] of the peer's leaf certificate, optionally
/// checked against an allow-list. Authentication fails if the transport has no verified
/// TLS peer certificate, unless [`allow_anonymous`](Self::allow_anonymous) was set (for a
/// server whose clients present no certificate), in which case such a peer is
/// [`PeerIdentity::Anonymous`]. No proof travels in the session handshake: TLS already
/// proved possession of the key; one empty `AuthProof` and one empty `AuthResult` mark the
/// step (docs/SESSION.md §3.3).
#[derive(Debug, Clone, Default)]
pub struct TlsIdentityAuth {
    allowed: Option<HashSet<Fingerprint>>,
    allow_anonymous: bool,
}

impl TlsIdentityAuth {
    /// Accepts any peer certificate the transport verified.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts only peers whose leaf certificate has one of these fingerprints.
    #[must_use]
    pub fn allow(mut self, fingerprints: impl IntoIterator<Item = Fingerprint>) -> Self {
        self.allowed
            .get_or_insert_with(HashSet::new)
            .extend(fingerprints);
        self
    }

    /// Accepts a peer without a TLS certificate as [`PeerIdentity::Anonymous`].
    #[must_use]
    pub fn allow_anonymous(mut self) -> Self {
        self.allow_anonymous = true;
        self
    }

    fn identify(&self, chain: Option<&[Bytes]>) -> Result<PeerIdentity, AuthError> {
        let Some(leaf) = chain.and_then(<[Bytes]>::first) else {
            return if self.allow_anonymous {
                Ok(PeerIdentity::Anonymous)
            } else {
                Err(AuthError::NoPeerCertificate)
            };
        };
        let fingerprint = Fingerprint::of_der(leaf);
        if let Some(allowed) = &self.allowed {
            if !allowed.contains(&fingerprint) {
                return Err(AuthError::NotAllowed(fingerprint.to_string()));
            }
        }
        Ok(PeerIdentity::Certificate(fingerprint))
    }
}

impl Authenticator for TlsIdentityAuth {
    fn mechanism(&self) -> &str {
        "tls-peer-identity"
    }

    fn start(&self, _role: Role, ctx: &mut AuthContext<'_>) -> Box<dyn AuthState> {
        Box::new(TlsState {
            verdict: Some(self.identify(ctx.tls_peer_certificates)),
        })
    }
}

struct TlsState {
    verdict: Option<Result<PeerIdentity, AuthError>>,
}

impl AuthState for TlsState {
    fn step(&mut self, _incoming: Option<&[u8]>) -> Result<AuthStep, AuthError> {
        let verdict = self.verdict.take().unwrap_or(Err(AuthError::Unexpected(
            "message after authentication ended",
        )))?;
        Ok(AuthStep::Done {
            identity: verdict,
            send: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    fn step(auth: &TlsIdentityAuth, chain: Option<&[Bytes]>) -> Result<AuthStep, AuthError> {
        let mut rng = StdRng::seed_from_u64(0);
        let mut ctx = AuthContext::new(1, chain, &mut rng);
        auth.start(Role::Server, &mut ctx).step(Some(b""))
    }

    #[test]
    fn identity_is_the_leaf_fingerprint() {
        let chain = [Bytes::from_static(b"leaf"), Bytes::from_static(b"ca")];
        let expected = PeerIdentity::Certificate(Fingerprint::of_der(b"leaf"));
        assert_eq!(
            step(&TlsIdentityAuth::new(), Some(&chain)),
            Ok(AuthStep::Done {
                identity: expected,
                send: None
            })
        );
    }

    #[test]
    fn allow_list_is_enforced() {
        let chain = [Bytes::from_static(b"leaf")];
        let other = TlsIdentityAuth::new().allow([Fingerprint::of_der(b"someone else")]);
        assert!(matches!(
            step(&other, Some(&chain)),
            Err(AuthError::NotAllowed(_))
        ));
        let listed = TlsIdentityAuth::new().allow([Fingerprint::of_der(b"leaf")]);
        assert!(step(&listed, Some(&chain)).is_ok());
    }

    #[test]
    fn no_certificate_fails_unless_anonymous_is_allowed() {
        assert_eq!(
            step(&TlsIdentityAuth::new(), None),
            Err(AuthError::NoPeerCertificate)
        );
        assert_eq!(
            step(&TlsIdentityAuth::new().allow_anonymous(), None),
            Ok(AuthStep::Done {
                identity: PeerIdentity::Anonymous,
                send: None
            })
        );
    }
}
