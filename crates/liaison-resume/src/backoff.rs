//! [`Backoff`]: when a detached client tries to reconnect next. Exponential, capped, with
//! jitter, bounded by attempts and by elapsed time; sans-IO (time and randomness are
//! arguments).

use std::time::{Duration, Instant};

use rand::Rng;

/// How reconnection attempts are spaced and when they stop.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// Wait before the first attempt.
    pub initial: Duration,
    /// Largest wait between two attempts.
    pub max: Duration,
    /// Growth of the wait per attempt (at least 1).
    pub factor: f64,
    /// Share of each wait drawn at random, `0.0..=1.0`: a wait `w` becomes a value in
    /// `w × (1 − jitter) ..= w`, so clients cut at once do not come back at once.
    pub jitter: f64,
    /// Most attempts; `None` for no limit.
    pub max_attempts: Option<u32>,
    /// Longest time from the first wait to the last attempt; `None` for no limit.
    pub max_elapsed: Option<Duration>,
}

impl Default for BackoffConfig {
    /// 50 ms doubling up to 5 s, half of each wait jittered, up to 60 s in all.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
            factor: 2.0,
            jitter: 0.5,
            max_attempts: None,
            max_elapsed: Some(Duration::from_secs(60)),
        }
    }
}

impl BackoffConfig {
    /// Sets the first and the largest wait.
    #[must_use]
    pub fn with_delays(mut self, initial: Duration, max: Duration) -> Self {
        self.initial = initial;
        self.max = max;
        self
    }

    /// Sets the growth factor.
    #[must_use]
    pub fn with_factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Sets the jitter.
    #[must_use]
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// Sets the most attempts.
    #[must_use]
    pub fn with_max_attempts(mut self, attempts: Option<u32>) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets the longest time spent reconnecting.
    #[must_use]
    pub fn with_max_elapsed(mut self, elapsed: Option<Duration>) -> Self {
        self.max_elapsed = elapsed;
        self
    }
}

/// The schedule of one run of reconnection attempts.
///
/// ```
/// use std::time::{Duration, Instant};
/// use liaison_resume::{Backoff, BackoffConfig};
/// use rand::SeedableRng;
///
/// let config = BackoffConfig::default()
///     .with_delays(Duration::from_millis(10), Duration::from_millis(40))
///     .with_jitter(0.0)
///     .with_max_attempts(Some(4));
/// let mut backoff = Backoff::new(config);
/// let mut rng = rand::rngs::StdRng::seed_from_u64(1);
/// let now = Instant::now();
/// let waits: Vec<_> = std::iter::from_fn(|| backoff.next_delay(now, &mut rng)).collect();
/// let ms = Duration::from_millis;
/// assert_eq!(waits, [ms(10), ms(20), ms(40), ms(40)]);
/// ```
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempts: u32,
    started: Option<Instant>,
}

impl Backoff {
    /// A schedule that has made no attempt yet.
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            config,
            attempts: 0,
            started: None,
        }
    }

    /// Attempts scheduled so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts again from the first wait (after a successful reconnection).
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.started = None;
    }

    /// The wait before the next attempt, counted from `now`; `None` once the attempts or the
    /// time are used up. The last wait is cut so that the attempt falls within
    /// `max_elapsed`.
    pub fn next_delay(&mut self, now: Instant, rng: &mut dyn rand::RngCore) -> Option<Duration> {
        let config = &self.config;
        if config.max_attempts.is_some_and(|max| self.attempts >= max) {
            return None;
        }
        let started = *self.started.get_or_insert(now);
        let factor = if config.factor.is_finite() {
            config.factor.max(1.0)
        } else {
            1.0
        };
        let exponent = i32::try_from(self.attempts).unwrap_or(i32::MAX);
        let max = config.max.as_secs_f64();
        let full = (config.initial.as_secs_f64() * factor.powi(exponent)).min(max);
        let jitter = if config.jitter.is_finite() {
            config.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let share: f64 = rng.gen_range(0.0..=1.0);
        let wait = full * (1.0 - jitter * share);
        let mut wait = Duration::try_from_secs_f64(wait).unwrap_or(config.max);
        if let Some(limit) = config.max_elapsed {
            let used = now.saturating_duration_since(started);
            let left = limit.checked_sub(used)?;
            if self.attempts > 0 && left.is_zero() {
                return None;
            }
            wait = wait.min(left);
        }
        self.attempts = self.attempts.saturating_add(1);
        Some(wait)
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn jitter_stays_within_its_share_and_time_bounds_the_run() {
        let ms = Duration::from_millis;
        let config = BackoffConfig::default()
            .with_delays(ms(100), ms(1000))
            .with_jitter(0.5)
            .with_max_attempts(None)
            .with_max_elapsed(Some(ms(2500)));
        let mut backoff = Backoff::new(config);
        let mut rng = StdRng::seed_from_u64(3);
        let mut now = Instant::now();
        let mut total = Duration::ZERO;
        let mut expected_full = ms(100);
        while let Some(wait) = backoff.next_delay(now, &mut rng) {
            assert!(wait <= expected_full, "{wait:?} above {expected_full:?}");
            if total + expected_full <= ms(2500) {
                assert!(wait >= expected_full / 2, "{wait:?} below half");
            }
            now += wait;
            total += wait;
            expected_full = (expected_full * 2).min(ms(1000));
            assert!(backoff.attempts() < 100, "the run ends");
        }
        assert!(total <= ms(2500));
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        assert!(backoff.next_delay(now, &mut rng).is_some());
    }
}
