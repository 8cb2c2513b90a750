//! The core's timers: one deadline slot per [`Timer`]; the next deadline is the earliest.

use std::time::Instant;

/// What a deadline is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The whole handshake must be done by then.
    Handshake,
    /// Nothing was sent for a keepalive interval: send a `Ping`.
    Keepalive,
    /// Nothing was received for the idle timeout: the peer is gone.
    Idle,
    /// Client over a lossy transport: no answer to the last handshake flight yet.
    Flight,
    /// After termination over a lossy transport: repeat the last `Bye` or `Reject`.
    Farewell,
    /// A resumable session lost its transport: it ends unless resumed by then.
    Detached,
}

impl Timer {
    /// Every timer, in the order expired ones are handled: a handshake that ran out of
    /// time fails before anything else happens.
    pub(crate) const ALL: [Self; 6] = [
        Self::Handshake,
        Self::Detached,
        Self::Idle,
        Self::Keepalive,
        Self::Flight,
        Self::Farewell,
    ];

    fn index(self) -> usize {
        match self {
            Self::Handshake => 0,
            Self::Keepalive => 1,
            Self::Idle => 2,
            Self::Flight => 3,
            Self::Farewell => 4,
            Self::Detached => 5,
        }
    }
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Default, Clone)]
pub(crate) struct TimerTable {
    slots: [Option<Instant>; 6],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        self.slots[timer.index()] = Some(at);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.slots[timer.index()] = None;
    }

    pub(crate) fn stop_all(&mut self) {
        self.slots = [None; 6];
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.slots[timer.index()]
    }

    /// Whether `timer` is armed and its deadline is at or before `now`.
    pub(crate) fn is_expired(&self, timer: Timer, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn next_is_the_earliest_armed_deadline() {
        let t0 = Instant::now();
        let mut timers = TimerTable::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::Idle, t0 + Duration::from_secs(5));
        timers.set(Timer::Keepalive, t0 + Duration::from_secs(2));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(2)));
        assert!(timers.is_expired(Timer::Keepalive, t0 + Duration::from_secs(2)));
        assert!(!timers.is_expired(Timer::Idle, t0 + Duration::from_secs(2)));
        timers.stop(Timer::Keepalive);
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(5)));
        timers.stop_all();
        assert_eq!(timers.next(), None);
    }
}
