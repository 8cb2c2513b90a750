//! `RttEstimate`: the round-trip estimate (RFC 6298 / RFC 9002 smoothing) and the timeouts
//! derived from it: the retransmission timeout and the `Need-Seq` repeat interval.
//!
//! Samples come from two places (the sequencer owns one estimator for both directions):
//!
//! - **acks**: a cumulative ack that newly covers frames, the newest of which was sent at
//!   time `t`, gives `now - t` if that frame was sent exactly once (Karn's rule), and after
//!   the last retransmission of any other frame the ack newly covers: a frame held past a
//!   gap that a retransmission closed is acknowledged late, and would look as old as the
//!   gap. No ack delay is subtracted: the wire does not say how long the peer held its ack,
//!   so a delayed ack's sample includes the delay, and the retransmission timeout allows for
//!   `max_ack_delay` on top; `min_rtt` keeps the least;
//! - **`Need-Seq` answers**: a side that only receives learns the round trip from the time
//!   between sending a first `Need-Seq` and receiving the first frame it asked for (the
//!   sender retransmits at once). Never from a repeated request (Karn again: which request
//!   did the frame answer?); and since the sender answers in order, an answer ends the
//!   timing of older requests still unanswered (lost, or their answers were).

use std::time::Duration;

use crate::config::Config;
use crate::timer::backoff;

/// The sequencer's round-trip estimate, from
/// [`Sequencer::rtt`](crate::Sequencer::rtt): RFC 6298's `SRTT` and `RTTVAR`, and RFC
/// 9002's `min_rtt` and `latest_rtt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RttEstimate {
    /// The last sample.
    pub latest_rtt: Duration,
    /// The smoothed round-trip time: `7/8 · smoothed + 1/8 · sample`.
    pub smoothed_rtt: Duration,
    /// The mean deviation: `3/4 · rttvar + 1/4 · |smoothed − sample|`.
    pub rttvar: Duration,
    /// The least sample seen.
    pub min_rtt: Duration,
}

impl RttEstimate {
    fn first(sample: Duration) -> Self {
        Self {
            latest_rtt: sample,
            smoothed_rtt: sample,
            rttvar: sample / 2,
            min_rtt: sample,
        }
    }

    fn update(&mut self, sample: Duration) {
        self.latest_rtt = sample;
        self.min_rtt = self.min_rtt.min(sample);
        let deviation = self.smoothed_rtt.abs_diff(sample);
        self.rttvar = self.rttvar.saturating_mul(3).saturating_add(deviation) / 4;
        self.smoothed_rtt = self.smoothed_rtt.saturating_mul(7).saturating_add(sample) / 8;
    }

    /// `smoothed_rtt + max(4 · rttvar, granularity)`: how long an answer sent at once may
    /// take.
    fn answer_time(&self, granularity: Duration) -> Duration {
        self.smoothed_rtt
            .saturating_add(self.rttvar.saturating_mul(4).max(granularity))
    }
}

/// The estimate, empty until the first sample.
#[derive(Debug, Clone, Default)]
pub(crate) struct RttEstimator {
    estimate: Option<RttEstimate>,
}

impl RttEstimator {
    pub(crate) fn estimate(&self) -> Option<RttEstimate> {
        self.estimate
    }

    /// Takes a sample; `source` says where it came from (for the log).
    pub(crate) fn on_sample(&mut self, sample: Duration, source: &'static str) {
        match &mut self.estimate {
            Some(estimate) => estimate.update(sample),
            None => self.estimate = Some(RttEstimate::first(sample)),
        }
        tracing::trace!(?sample, source, estimate = ?self.estimate, "round-trip sample");
    }

    /// The wait before an answer sent at once counts as lost, plus `allowance` (the peer's
    /// ack delay, when the answer is an ack it may delay), at least `min_rto`, doubled
    /// `exponent` times and capped at `max_rto`; `initial_rto` (doubled likewise) before the
    /// first sample.
    fn timeout(&self, config: &Config, allowance: Duration, exponent: u32) -> Duration {
        let base = match &self.estimate {
            None => config.initial_rto,
            Some(estimate) => estimate
                .answer_time(config.granularity)
                .saturating_add(allowance)
                .max(config.min_rto),
        };
        backoff(base, config.max_rto, exponent)
    }

    /// The retransmission timeout. `prompt_ack`: the ack awaited is one the peer sends at
    /// once (new frames are held back for a `Need-Seq`: its answer closes a gap or is a
    /// duplicate), so the peer's ack delay is not allowed for.
    pub(crate) fn rto(&self, config: &Config, prompt_ack: bool, exponent: u32) -> Duration {
        let allowance = if prompt_ack {
            Duration::ZERO
        } else {
            config.max_ack_delay()
        };
        self.timeout(config, allowance, exponent)
    }

    /// The wait before a `Need-Seq` is repeated: the peer retransmits at once, so no ack
    /// delay is allowed for.
    pub(crate) fn nack_interval(&self, config: &Config, exponent: u32) -> Duration {
        self.timeout(config, Duration::ZERO, exponent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_sample_seeds_the_estimate_and_later_ones_smooth_it() {
        let mut rtt = RttEstimator::default();
        assert_eq!(rtt.estimate(), None);
        rtt.on_sample(ms(80), "test");
        let e = rtt.estimate().expect("a sample");
        assert_eq!(
            (e.latest_rtt, e.smoothed_rtt, e.rttvar, e.min_rtt),
            (ms(80), ms(80), ms(40), ms(80))
        );
        rtt.on_sample(ms(40), "test");
        let e = rtt.estimate().expect("a sample");
        // rttvar = (3 · 40 + |80 − 40|) / 4; smoothed = (7 · 80 + 40) / 8.
        assert_eq!(
            (e.latest_rtt, e.smoothed_rtt, e.rttvar, e.min_rtt),
            (ms(40), ms(75), ms(40), ms(40))
        );
        for _ in 0..200 {
            rtt.on_sample(ms(10), "test");
        }
        let e = rtt.estimate().expect("samples");
        assert!(
            e.smoothed_rtt.abs_diff(ms(10)) < Duration::from_micros(10),
            "{e:?}"
        );
        assert!(e.rttvar < Duration::from_micros(10), "{e:?}");
        assert_eq!(e.min_rtt, ms(10));
    }

    #[test]
    fn huge_samples_saturate_instead_of_overflowing() {
        let config = Config::default().with_rto(ms(200), ms(1000));
        let mut rtt = RttEstimator::default();
        rtt.on_sample(Duration::MAX, "test");
        rtt.on_sample(Duration::MAX, "test");
        rtt.on_sample(Duration::ZERO, "test");
        assert_eq!(rtt.rto(&config, false, u32::MAX), ms(1000), "capped");
        assert_eq!(rtt.estimate().map(|e| e.min_rtt), Some(Duration::ZERO));
    }

    #[test]
    fn timeouts_follow_the_formula_with_floor_backoff_and_cap() {
        let config = Config::default()
            .with_ack_delay(ms(25))
            .with_rto(ms(200), ms(1000))
            .with_min_rto(ms(2));
        let mut rtt = RttEstimator::default();
        assert_eq!(
            rtt.rto(&config, false, 0),
            ms(200),
            "initial before a sample"
        );
        assert_eq!(rtt.rto(&config, false, 2), ms(800));
        assert_eq!(rtt.nack_interval(&config, 3), ms(1000), "capped");

        rtt.on_sample(ms(40), "test"); // smoothed 40, rttvar 20
        assert_eq!(rtt.rto(&config, false, 0), ms(40 + 80 + 25));
        assert_eq!(rtt.rto(&config, true, 0), ms(40 + 80));
        assert_eq!(rtt.nack_interval(&config, 0), ms(120));
        assert_eq!(rtt.rto(&config, false, 1), ms(290));
        assert_eq!(rtt.rto(&config, false, 3), ms(1000), "capped");

        // A steady tiny round trip: granularity, then the floor.
        let mut rtt = RttEstimator::default();
        for _ in 0..100 {
            rtt.on_sample(Duration::from_micros(50), "test");
        }
        let fine = Duration::from_micros(50) + ms(1);
        assert!(rtt.rto(&config, true, 0).abs_diff(ms(2)) < Duration::from_micros(1));
        let coarse = config.clone().with_min_rto(Duration::from_micros(100));
        assert!(rtt.nack_interval(&coarse, 0).abs_diff(fine) < Duration::from_micros(5));
        assert!(rtt.rto(&coarse, false, 0).abs_diff(fine + ms(25)) < Duration::from_micros(5));
    }
}
