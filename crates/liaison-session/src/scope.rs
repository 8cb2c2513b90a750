//! [`Scope`]: a group of sessions and listeners that end together.

use tokio_util::sync::{CancellationToken, DropGuard};

/// A group of sessions and listeners with one lifetime, on a [`CancellationToken`].
///
/// Cancelling a scope, or dropping it, terminates every member: sessions end with
/// [`ScopeCancelled`](crate::TerminationReason::ScopeCancelled) and tell their peers with a
/// `Bye`; servers stop accepting. Scopes nest: cancelling one cancels its
/// [`child`](Self::child)ren, not its parent. A caller that already has a token makes a
/// scope under it with [`with_token`](Self::with_token).
///
/// ```
/// use liaison_session::Scope;
///
/// let game = Scope::new();
/// let match_scope = game.child();
/// let token = match_scope.token();
/// drop(game); // ends the game and every match in it
/// assert!(token.is_cancelled());
/// ```
#[derive(Debug)]
pub struct Scope {
    token: CancellationToken,
    _guard: DropGuard,
}

impl Scope {
    /// A new top-level scope.
    pub fn new() -> Self {
        Self::from_token(CancellationToken::new())
    }

    /// A scope ended when `parent` is cancelled (and, like every scope, when it is
    /// cancelled or dropped itself; dropping it does not cancel `parent`).
    pub fn with_token(parent: &CancellationToken) -> Self {
        Self::from_token(parent.child_token())
    }

    fn from_token(token: CancellationToken) -> Self {
        Self {
            _guard: token.clone().drop_guard(),
            token,
        }
    }

    /// A nested scope, ended with this one.
    pub fn child(&self) -> Self {
        Self::with_token(&self.token)
    }

    /// Ends the scope and every member.
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Whether the scope has ended.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// A clone of the scope's token: cancelled when the scope ends. Cancelling it ends
    /// the scope.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Waits until the scope ends.
    pub async fn cancelled(&self) {
        self.token.cancelled().await;
    }
}

impl Default for Scope {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancelling_a_parent_ends_children_but_not_the_reverse() {
        let parent = Scope::new();
        let child = parent.child();
        let grandchild = child.child();
        child.cancel();
        assert!(grandchild.is_cancelled());
        assert!(!parent.is_cancelled());
        let other = parent.child();
        drop(parent);
        assert!(other.is_cancelled());
    }

    #[test]
    fn with_token_follows_the_callers_token_and_leaves_it_alone_on_drop() {
        let token = CancellationToken::new();
        let scope = Scope::with_token(&token);
        let member = scope.token();
        drop(scope);
        assert!(member.is_cancelled());
        assert!(!token.is_cancelled());
        let scope = Scope::with_token(&token);
        token.cancel();
        assert!(scope.is_cancelled());
    }
}
