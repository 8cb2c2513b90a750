//! The sequencer's timers: one deadline slot per kind, the next deadline is the earliest.

use std::time::{Duration, Instant};

/// A kind of timer; each has one deadline slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Send a standalone acknowledgement: received frames have waited the ack delay.
    AckDelay,
    /// Ask again for missing frames (`Need-Seq`) if the gap persists.
    Nack,
    /// Retransmission timeout: no acknowledgement for the oldest unacknowledged frame.
    Rto,
}

impl Timer {
    const ALL: [Self; 3] = [Self::AckDelay, Self::Nack, Self::Rto];

    fn slot(self) -> usize {
        match self {
            Self::AckDelay => 0,
            Self::Nack => 1,
            Self::Rto => 2,
        }
    }
}

/// Deadlines for every [`Timer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    deadlines: [Option<Instant>; 3],
}

impl Timers {
    /// Arms `timer` for `after` past `now`; a deadline beyond what `Instant` can hold
    /// means never.
    pub(crate) fn set_after(&mut self, timer: Timer, now: Instant, after: Duration) {
        self.deadlines[timer.slot()] = now.checked_add(after);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.slot()] = None;
    }

    pub(crate) fn is_armed(&self, timer: Timer) -> bool {
        self.deadlines[timer.slot()].is_some()
    }

    /// Brings an armed `timer` forward to `after` past `now` if that is sooner.
    pub(crate) fn advance_to(&mut self, timer: Timer, now: Instant, after: Duration) {
        let slot = &mut self.deadlines[timer.slot()];
        if let (Some(at), Some(sooner)) = (*slot, now.checked_add(after)) {
            *slot = Some(at.min(sooner));
        }
    }

    /// The earliest deadline of any armed timer.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Stops and returns one timer whose deadline is at or before `now`.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = Timer::ALL
            .into_iter()
            .find(|t| self.deadlines[t.slot()].is_some_and(|at| at <= now))?;
        self.stop(timer);
        Some(timer)
    }
}

/// `initial * 2^exponent`, capped at `max`.
pub(crate) fn backoff(initial: Duration, max: Duration, exponent: u32) -> Duration {
    let factor = 1u32.checked_shl(exponent.min(31)).unwrap_or(u32::MAX);
    initial.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_earliest_and_expired_timers_are_taken_once() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.set_after(Timer::Rto, t0, Duration::from_millis(30));
        timers.set_after(Timer::AckDelay, t0, Duration::from_millis(10));
        assert_eq!(timers.next(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(timers.take_expired(t0), None);
        let later = t0 + Duration::from_millis(30);
        assert_eq!(timers.take_expired(later), Some(Timer::AckDelay));
        assert_eq!(timers.take_expired(later), Some(Timer::Rto));
        assert_eq!(timers.take_expired(later), None);
        assert!(!timers.is_armed(Timer::Rto));
        timers.set_after(Timer::Nack, t0, Duration::MAX);
        assert_eq!(timers.next(), None, "an unrepresentable deadline is never");
    }

    #[test]
    fn advance_to_only_brings_an_armed_timer_forward() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut timers = Timers::default();
        timers.advance_to(Timer::Nack, t0, ms(5));
        assert!(!timers.is_armed(Timer::Nack), "an idle timer stays idle");
        timers.set_after(Timer::Nack, t0, ms(200));
        timers.advance_to(Timer::Nack, t0, ms(300));
        assert_eq!(timers.next(), Some(t0 + ms(200)));
        timers.advance_to(Timer::Nack, t0, ms(5));
        assert_eq!(timers.next(), Some(t0 + ms(5)));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let ms = Duration::from_millis;
        assert_eq!(backoff(ms(100), ms(1000), 0), ms(100));
        assert_eq!(backoff(ms(100), ms(1000), 3), ms(800));
        assert_eq!(backoff(ms(100), ms(1000), 4), ms(1000));
        assert_eq!(backoff(ms(100), ms(1000), u32::MAX), ms(1000));
    }
}
