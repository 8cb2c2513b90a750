//! [`NoAuth`]: no authentication, chosen explicitly.

use super::{AuthContext, AuthError, AuthState, AuthStep, Authenticator, PeerIdentity, Role};

/// No authentication: both sides are [`PeerIdentity::Anonymous`].
///
/// This is never a default: a [`ClientConfig`](crate::ClientConfig) or
/// [`ServerConfig`](crate::ServerConfig) must be given it by name. The exchange is one
/// empty `AuthProof` and one empty `AuthResult` (docs/SESSION.md §3.1).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAuth;

impl Authenticator for NoAuth {
    fn mechanism(&self) -> &str {
        "none"
    }

    fn start(&self, _role: Role, _ctx: &mut AuthContext<'_>) -> Box<dyn AuthState> {
        Box::new(NoAuthState)
    }
}

struct NoAuthState;

impl AuthState for NoAuthState {
    fn step(&mut self, _incoming: Option<&[u8]>) -> Result<AuthStep, AuthError> {
        Ok(AuthStep::Done {
            identity: PeerIdentity::Anonymous,
            send: None,
        })
    }
}
