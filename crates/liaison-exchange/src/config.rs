//! How an endpoint runs its exchanges: [`ExchangeConfig`] and [`LimitPolicy`].

/// What [`Remote::begin`](crate::Remote::begin) and [`Remote::call`](crate::Remote::call) do
/// when this side already has as many exchanges open as the limit allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum LimitPolicy {
    /// Wait until an exchange closes (fair: first come, first served).
    #[default]
    Wait,
    /// Fail at once with [`ExchangeError::TooManyExchanges`](crate::ExchangeError::TooManyExchanges).
    Fail,
}

/// Settings of an [`Endpoint`](crate::Endpoint). Build one with [`Default`] and change the
/// fields you need.
///
/// ```
/// use liaison_exchange::{ExchangeConfig, LimitPolicy};
///
/// let mut config = ExchangeConfig::default();
/// config.max_exchanges = 256;
/// config.on_limit = LimitPolicy::Fail;
/// assert_eq!(config.window, 64);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ExchangeConfig {
    /// Most exchanges open at once in each direction: this side opens at most this many,
    /// and refuses the peer's past it (`ExchangeCancel`, `TooManyExchanges`). The limit in
    /// force is the minimum of this and the session's negotiated `max_exchanges`
    /// (PROTOCOL.md §9.7). At least 1.
    pub max_exchanges: u32,
    /// What opening an exchange does at the limit.
    pub on_limit: LimitPolicy,
    /// Flow-control window, in messages: how many messages the peer may send on one
    /// exchange before this side's reader takes them (PROTOCOL.md §9.5). Credit goes back
    /// in batches of half the window. At least 1.
    ///
    /// Memory held for received messages is at most `max_exchanges × window ×
    /// max_frame_payload` bytes per session.
    pub window: u32,
}

impl Default for ExchangeConfig {
    /// 1024 exchanges (further bounded by the session's negotiated limit), waiting at the
    /// limit, a window of 64 messages.
    fn default() -> Self {
        Self {
            max_exchanges: 1024,
            on_limit: LimitPolicy::Wait,
            window: 64,
        }
    }
}
