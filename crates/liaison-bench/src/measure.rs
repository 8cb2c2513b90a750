//! Timing primitives: run a workload for a fixed time and report a rate.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use crate::report::Figure;

/// How long each figure is measured for, after a warm-up, in how many rounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    pub(crate) warmup: Duration,
    pub(crate) measure: Duration,
    /// Rounds each figure of a row is measured in, the row's figures taking turns; a figure
    /// is the median of its rounds, so a burst of other work on the machine moves one round
    /// of one figure, not the row's ratio.
    pub(crate) rounds: u32,
}

impl Budget {
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Self {
                warmup: Duration::from_millis(100),
                measure: Duration::from_millis(400),
                rounds: 1,
            }
        } else {
            Self {
                warmup: Duration::from_millis(200),
                measure: Duration::from_millis(400),
                rounds: 5,
            }
        }
    }
}

/// One measurement of a figure.
type Measurement = Pin<Box<dyn Future<Output = f64>>>;

/// One figure of a row: its name, and how to measure it once.
pub(crate) struct Contender {
    name: String,
    run: Box<dyn Fn(Budget) -> Measurement>,
}

impl Contender {
    pub(crate) fn new<F, Fut>(name: impl Into<String>, run: F) -> Self
    where
        F: Fn(Budget) -> Fut + 'static,
        Fut: Future<Output = f64> + 'static,
    {
        Self {
            name: name.into(),
            run: Box::new(move |budget| Box::pin(run(budget))),
        }
    }
}

/// Measures `contenders` in [`Budget::rounds`] rounds, each taking its turn in every round,
/// and returns their figures (the median of each one's rounds) in the order given.
pub(crate) async fn compare(budget: Budget, contenders: Vec<Contender>) -> Vec<Figure> {
    let mut rounds: Vec<Vec<(f64, Option<f64>)>> = contenders.iter().map(|_| Vec::new()).collect();
    for _ in 0..budget.rounds.max(1) {
        for (contender, values) in contenders.iter().zip(&mut rounds) {
            let value = (contender.run)(budget).await;
            values.push((value, last_cpu_share()));
        }
    }
    contenders
        .into_iter()
        .zip(rounds)
        .map(|(contender, values)| {
            let value = median(values.iter().map(|(value, _)| *value).collect());
            let shares: Vec<f64> = values.iter().filter_map(|(_, share)| *share).collect();
            if shares.is_empty() {
                eprintln!("  {:<44} {value:>14.1}", contender.name);
            } else {
                let share = shares.iter().sum::<f64>() / shares.len() as f64;
                eprintln!(
                    "  {:<44} {value:>14.1}   (cpu {share:.2}, per cpu-second {:>12.1})",
                    contender.name,
                    value / share
                );
            }
            Figure {
                name: contender.name,
                value,
            }
        })
        .collect()
}

/// The middle value (the mean of the two middle ones for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[mid],
        _ => (values[mid - 1] + values[mid]) / 2.0,
    }
}

/// A shared operation counter that workers bump and the harness samples.
#[derive(Clone, Default)]
pub(crate) struct Counter {
    ops: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.ops.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn running(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
    }

    fn get(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }
}

/// Runs `workers` copies of `work` (each loops while `counter.running()`, bumping the counter
/// per operation) and returns operations per second over the measured window.
pub(crate) async fn rate<F, Fut>(budget: Budget, workers: usize, work: F) -> f64
where
    F: Fn(Counter) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let counter = Counter::default();
    let handles = (0..workers)
        .map(|_| tokio::spawn(work(counter.clone())))
        .collect();
    sample(budget, counter, handles).await
}

/// [`rate`] for a single worker that owns what it works on.
pub(crate) async fn rate_one<F, Fut>(budget: Budget, work: F) -> f64
where
    F: FnOnce(Counter) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let counter = Counter::default();
    let handle = tokio::spawn(work(counter.clone()));
    sample(budget, counter, vec![handle]).await
}

/// CPU seconds the whole process used (every thread, user and system), from `/proc/self/stat`;
/// `None` where that file is not there.
fn process_cpu() -> Option<f64> {
    /// Clock ticks per second of `/proc` figures (`USER_HZ`, 100 on every Linux target).
    const TICKS: f64 = 100.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_ascii_whitespace().skip(11);
    let user: f64 = fields.next()?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    Some((user + system) / TICKS)
}

/// CPU seconds per wall-clock second of the last measured window, when known.
static LAST_CPU_SHARE: Mutex<Option<f64>> = Mutex::new(None);

/// The CPU the process used during the last measured window, in CPU seconds per second (2.0
/// means both of two cores were busy). On a machine shared with other work, a figure divided
/// by it (work per CPU second) moves less than the figure itself.
pub(crate) fn last_cpu_share() -> Option<f64> {
    *LAST_CPU_SHARE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn sample(budget: Budget, counter: Counter, handles: Vec<JoinHandle<()>>) -> f64 {
    tokio::time::sleep(budget.warmup).await;
    let (start_ops, start, start_cpu) = (counter.get(), Instant::now(), process_cpu());
    tokio::time::sleep(budget.measure).await;
    let (end_ops, elapsed, end_cpu) = (counter.get(), start.elapsed(), process_cpu());
    let share = start_cpu
        .zip(end_cpu)
        .map(|(a, b)| (b - a) / elapsed.as_secs_f64())
        .filter(|share| *share > 0.0);
    *LAST_CPU_SHARE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = share;
    counter.stop.store(true, Ordering::Relaxed);
    for handle in handles {
        // A worker blocked on a peer that stopped is aborted rather than awaited.
        handle.abort();
    }
    (end_ops - start_ops) as f64 / elapsed.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_is_the_middle_value() {
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![3.0]), 3.0);
        assert_eq!(median(vec![9.0, 1.0, 5.0]), 5.0);
        assert_eq!(median(vec![4.0, 1.0, 100.0, 2.0]), 3.0);
    }
}
