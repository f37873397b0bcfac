//! Failure-spike detection per issuer: a sliding window of token outcomes; when the share of
//! rejections passes the configured ratio (with a minimum volume) the issuer is `degraded`:
//! one WARN names the dominant reason, `/readyz` shows it, and one INFO marks the end.
//!
//! A spike is a symptom worth a page (a rotation that outran a cache, a client fleet with a
//! wrong audience), not a reason to stop serving: a degraded issuer stays ready.
//!
//! The hot path takes no lock: each outcome is one to three relaxed atomic adds in the current
//! bucket; the window's totals are read only when the state may change (a failure, a valid
//! token while degraded, a new bucket). A bucket is reset under a short per-issuer mutex
//! once per bucket period. Counts are approximate under races (an outcome recorded while its
//! bucket is being reset may be lost), which a ratio over a minute does not notice.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use keyward::Reason;
use tokio::time::Instant;

use crate::config::SpikeConfig;

/// Buckets in a window: the window slides by a twelfth of its length.
pub const BUCKETS: usize = 12;

/// What an outcome (or a look at the window) changed.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Transition {
    /// The issuer became degraded: failures over the window passed the ratio.
    Started {
        /// The most frequent rejection reason in the window.
        dominant: Reason,
        /// Rejected share of the window's outcomes.
        ratio: f64,
        /// Outcomes in the window.
        total: u64,
    },
    /// The issuer is no longer degraded.
    Ended {
        /// Rejected share of the window's outcomes now.
        ratio: f64,
        /// Outcomes in the window.
        total: u64,
    },
}

/// An issuer's index in a [`SpikeDetector`], looked up once per configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IssuerId(usize);

/// One slice of the window.
#[derive(Debug, Default)]
struct Bucket {
    /// The bucket number (time since origin / bucket length) plus one; 0 = never used.
    epoch: AtomicU64,
    total: AtomicU64,
    failures: AtomicU64,
    reasons: [AtomicU64; Reason::ALL.len()],
}

#[derive(Debug)]
struct Window {
    name: String,
    buckets: [Bucket; BUCKETS],
    /// Serializes bucket resets only.
    rotate: Mutex<()>,
    degraded: AtomicBool,
}

/// Sums over the buckets still inside the window.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    total: u64,
    failures: u64,
}

/// Per-issuer sliding-window failure-spike detector, built once per configuration.
#[derive(Debug)]
pub struct SpikeDetector {
    enabled: bool,
    ratio: f64,
    min_requests: u64,
    bucket_nanos: u64,
    origin: Instant,
    issuers: Vec<Window>,
}

impl SpikeDetector {
    /// A detector for the configured `issuers` (names), with time counted from now.
    pub fn new<'a>(config: &SpikeConfig, issuers: impl IntoIterator<Item = &'a str>) -> Self {
        Self::starting_at(config, issuers, Instant::now())
    }

    /// A detector with time counted from `origin` (tests pass explicit instants).
    pub fn starting_at<'a>(
        config: &SpikeConfig,
        issuers: impl IntoIterator<Item = &'a str>,
        origin: Instant,
    ) -> Self {
        let bucket = (config.window / BUCKETS as u32).max(Duration::from_millis(1));
        Self {
            enabled: config.enabled,
            ratio: config.ratio,
            min_requests: config.min_requests.max(1),
            bucket_nanos: u64::try_from(bucket.as_nanos()).unwrap_or(u64::MAX).max(1),
            origin,
            issuers: issuers
                .into_iter()
                .map(|name| Window {
                    name: name.to_owned(),
                    buckets: Default::default(),
                    rotate: Mutex::new(()),
                    degraded: AtomicBool::new(false),
                })
                .collect(),
        }
    }

    /// The id of a configured issuer; `None` when it is not one.
    pub fn issuer(&self, name: &str) -> Option<IssuerId> {
        self.issuers.iter().position(|w| w.name == name).map(IssuerId)
    }

    /// Records one token outcome of `issuer` at `now`: `Ok(())` for a valid token, `Err(reason)`
    /// for a rejected one (requests without a token are not outcomes). Logs and returns the
    /// transition when this outcome starts or ends a spike.
    pub fn record(&self, issuer: IssuerId, outcome: Result<(), Reason>, now: Instant) -> Option<Transition> {
        if !self.enabled {
            return None;
        }
        let window = self.issuers.get(issuer.0)?;
        let epoch = self.epoch(now);
        let bucket = &window.buckets[(epoch % BUCKETS as u64) as usize];
        let current = bucket.epoch.load(Ordering::Acquire);
        let rotated = current != epoch;
        if rotated {
            if current > epoch {
                // Older than the bucket now in its slot: out of the window already.
                return None;
            }
            Self::reset(window, bucket, epoch);
        }
        bucket.total.fetch_add(1, Ordering::Relaxed);
        if let Err(reason) = outcome {
            bucket.failures.fetch_add(1, Ordering::Relaxed);
            if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
                bucket.reasons[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        // The window is summed only when the state may change: a failure can start a spike, a
        // valid token end one, a slide do either. A healthy issuer's valid token costs one
        // atomic add. (A valid token that lifts a failing window over `min_requests` is seen at
        // the next failure or look.)
        if outcome.is_err() || rotated || window.degraded.load(Ordering::Relaxed) {
            self.evaluate(window, epoch)
        } else {
            None
        }
    }

    /// [`SpikeDetector::record`] by configured issuer name (a few string comparisons; keep the
    /// [`IssuerId`] where the request path allows). Unknown names are ignored.
    pub fn record_by_name(
        &self,
        name: &str,
        outcome: Result<(), Reason>,
        now: Instant,
    ) -> Option<Transition> {
        self.issuer(name).and_then(|id| self.record(id, outcome, now))
    }

    /// The dominant rejection reason while `issuer` is degraded at `now`, else `None`. Looks
    /// at the window as of `now`, so a spike ends once its failures slide out even if no token
    /// comes (logging the end).
    pub fn degraded(&self, issuer: IssuerId, now: Instant) -> Option<Reason> {
        if !self.enabled {
            return None;
        }
        let window = self.issuers.get(issuer.0)?;
        let epoch = self.epoch(now);
        self.evaluate(window, epoch);
        if window.degraded.load(Ordering::Acquire) { Some(Self::dominant(window, epoch)) } else { None }
    }

    /// [`SpikeDetector::degraded`] by issuer name.
    pub fn degraded_by_name(&self, name: &str, now: Instant) -> Option<Reason> {
        self.issuer(name).and_then(|id| self.degraded(id, now))
    }

    /// The bucket number of `now`, plus one (0 marks an unused bucket).
    fn epoch(&self, now: Instant) -> u64 {
        // In u64: every cached decision comes here, and a u128 division costs several times more.
        let since = u64::try_from(now.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX);
        (since / self.bucket_nanos).min(u64::MAX - 1).saturating_add(1)
    }

    fn reset(window: &Window, bucket: &Bucket, epoch: u64) {
        // A poisoned lock only means another recorder panicked mid-reset; the counters are
        // plain numbers, so carry on.
        let _guard = window.rotate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if bucket.epoch.load(Ordering::Acquire) >= epoch {
            return;
        }
        bucket.total.store(0, Ordering::Relaxed);
        bucket.failures.store(0, Ordering::Relaxed);
        for r in &bucket.reasons {
            r.store(0, Ordering::Relaxed);
        }
        bucket.epoch.store(epoch, Ordering::Release);
    }

    fn in_window(bucket: &Bucket, epoch: u64) -> bool {
        let b = bucket.epoch.load(Ordering::Acquire);
        b != 0 && b <= epoch && epoch - b < BUCKETS as u64
    }

    fn totals(window: &Window, epoch: u64) -> Totals {
        window.buckets.iter().filter(|b| Self::in_window(b, epoch)).fold(Totals::default(), |t, b| Totals {
            total: t.total.saturating_add(b.total.load(Ordering::Relaxed)),
            failures: t.failures.saturating_add(b.failures.load(Ordering::Relaxed)),
        })
    }

    /// The most frequent reason in the window (the first in the README's order on a tie).
    fn dominant(window: &Window, epoch: u64) -> Reason {
        let mut counts = [0u64; Reason::ALL.len()];
        for bucket in window.buckets.iter().filter(|b| Self::in_window(b, epoch)) {
            for (count, r) in counts.iter_mut().zip(&bucket.reasons) {
                *count = count.saturating_add(r.load(Ordering::Relaxed));
            }
        }
        let mut best = 0;
        for (i, count) in counts.iter().enumerate() {
            if *count > counts[best] {
                best = i;
            }
        }
        Reason::ALL[best]
    }

    /// Moves the issuer in or out of `degraded` when the window says so; exactly one caller
    /// wins each move and logs it.
    fn evaluate(&self, window: &Window, epoch: u64) -> Option<Transition> {
        let Totals { total, failures } = Self::totals(window, epoch);
        let ratio = if total == 0 { 0.0 } else { failures as f64 / total as f64 };
        let spiking = total >= self.min_requests && ratio > self.ratio;
        let was = window.degraded.load(Ordering::Relaxed);
        if spiking == was {
            return None;
        }
        if window.degraded.compare_exchange(was, spiking, Ordering::AcqRel, Ordering::Relaxed).is_err() {
            return None;
        }
        if spiking {
            let dominant = Self::dominant(window, epoch);
            tracing::warn!(
                issuer = %window.name,
                ratio = format_args!("{ratio:.3}"),
                failures,
                total,
                threshold = self.ratio,
                dominant_reason = dominant.as_str(),
                "failure spike: {:.1} % of {total} tokens for issuer {} rejected, mostly {dominant}; marked degraded",
                ratio * 100.0,
                window.name,
            );
            Some(Transition::Started { dominant, ratio, total })
        } else {
            tracing::info!(
                issuer = %window.name,
                ratio = format_args!("{ratio:.3}"),
                failures,
                total,
                "failure spike over for issuer {}: {:.1} % of {total} tokens rejected",
                window.name,
                ratio * 100.0,
            );
            Some(Transition::Ended { ratio, total })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(window_secs: u64, ratio: f64, min_requests: u64) -> SpikeConfig {
        SpikeConfig { enabled: true, window: Duration::from_secs(window_secs), ratio, min_requests }
    }

    /// Records `n` outcomes at `at`, returning every transition.
    fn feed(
        d: &SpikeDetector,
        id: IssuerId,
        n: usize,
        outcome: Result<(), Reason>,
        at: Instant,
    ) -> Vec<Transition> {
        (0..n).filter_map(|_| d.record(id, outcome, at)).collect()
    }

    fn starts(ts: &[Transition]) -> usize {
        ts.iter().filter(|t| matches!(t, Transition::Started { .. })).count()
    }

    #[test]
    fn one_episode_starts_once_names_the_dominant_reason_and_ends_once() {
        let t0 = Instant::now();
        let d = SpikeDetector::starting_at(&config(60, 0.2, 20), ["idp", "other"], t0);
        let idp = d.issuer("idp").unwrap();
        let other = d.issuer("other").unwrap();

        assert!(feed(&d, idp, 80, Ok(()), t0).is_empty());
        // 20 failures of 100: exactly at the ratio, not above it.
        assert!(feed(&d, idp, 15, Err(Reason::UnknownKid), t0).is_empty());
        assert!(feed(&d, idp, 5, Err(Reason::Expired), t0).is_empty());
        assert_eq!(d.degraded(idp, t0), None);

        // The 21st failure of 101 passes 20 %: one start, naming unknown_kid.
        let ts = feed(&d, idp, 1, Err(Reason::UnknownKid), t0);
        assert!(
            matches!(ts[..], [Transition::Started { dominant: Reason::UnknownKid, total: 101, .. }]),
            "{ts:?}"
        );
        // More failures within the episode: no second WARN.
        let ts = feed(&d, idp, 50, Err(Reason::Expired), t0 + Duration::from_secs(10));
        assert_eq!(starts(&ts), 0, "{ts:?}");
        assert_eq!(
            d.degraded(idp, t0 + Duration::from_secs(10)),
            Some(Reason::Expired),
            "now mostly expired"
        );
        // Other issuers are untouched.
        assert_eq!(d.degraded(other, t0), None);

        // Valid tokens bring the ratio back below 20 %: one end.
        let ts = feed(&d, idp, 400, Ok(()), t0 + Duration::from_secs(20));
        assert_eq!(ts.len(), 1, "{ts:?}");
        assert!(matches!(ts[0], Transition::Ended { .. }));
        assert_eq!(d.degraded(idp, t0 + Duration::from_secs(20)), None);

        // A second spike is a second episode.
        let ts = feed(&d, idp, 300, Err(Reason::InvalidSignature), t0 + Duration::from_secs(30));
        assert_eq!(starts(&ts), 1, "{ts:?}");
    }

    #[test]
    fn below_the_minimum_volume_nothing_is_a_spike() {
        let t0 = Instant::now();
        let d = SpikeDetector::starting_at(&config(60, 0.2, 20), ["idp"], t0);
        let idp = d.issuer("idp").unwrap();
        assert!(feed(&d, idp, 19, Err(Reason::Expired), t0).is_empty());
        assert_eq!(d.degraded(idp, t0), None);
        let ts = feed(&d, idp, 1, Err(Reason::Expired), t0);
        assert_eq!(starts(&ts), 1);
    }

    #[test]
    fn failures_slide_out_of_the_window_and_the_episode_ends_without_traffic() {
        let t0 = Instant::now();
        let d = SpikeDetector::starting_at(&config(60, 0.2, 20), ["idp"], t0);
        let idp = d.issuer("idp").unwrap();
        assert_eq!(starts(&feed(&d, idp, 30, Err(Reason::UnknownKid), t0)), 1);
        // 55 s later the failures are still inside the 60 s window (buckets of 5 s).
        assert_eq!(d.degraded(idp, t0 + Duration::from_secs(55)), Some(Reason::UnknownKid));
        // 60 s later their bucket has slid out.
        assert_eq!(d.degraded(idp, t0 + Duration::from_secs(60)), None);
        // Valid traffic after the window counts on its own.
        assert!(feed(&d, idp, 30, Ok(()), t0 + Duration::from_secs(61)).is_empty());
    }

    #[test]
    fn a_reused_bucket_forgets_its_old_counts() {
        let t0 = Instant::now();
        let d = SpikeDetector::starting_at(&config(60, 0.2, 20), ["idp"], t0);
        let idp = d.issuer("idp").unwrap();
        feed(&d, idp, 30, Err(Reason::UnknownKid), t0);
        // Exactly one window later the same slot is reused: the old failures are gone.
        let ts = feed(&d, idp, 30, Ok(()), t0 + Duration::from_secs(60));
        assert_eq!(ts.len(), 1, "the first valid outcome ends the episode: {ts:?}");
        assert!(matches!(ts[0], Transition::Ended { total: 1, .. }), "{ts:?}");
        // An outcome from before the slot's current bucket is ignored.
        assert_eq!(d.record(idp, Err(Reason::Expired), t0), None);
        assert_eq!(d.degraded(idp, t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn disabled_detection_records_nothing() {
        let t0 = Instant::now();
        let mut cfg = config(60, 0.2, 20);
        cfg.enabled = false;
        let d = SpikeDetector::starting_at(&cfg, ["idp"], t0);
        let idp = d.issuer("idp").unwrap();
        assert!(feed(&d, idp, 100, Err(Reason::Expired), t0).is_empty());
        assert_eq!(d.degraded(idp, t0), None);
        assert_eq!(d.issuer("nope"), None);
    }

    #[test]
    fn concurrent_recorders_start_an_episode_exactly_once() {
        let t0 = Instant::now();
        let d = SpikeDetector::starting_at(&config(60, 0.2, 20), ["idp"], t0);
        let idp = d.issuer("idp").unwrap();
        let transitions: Vec<Transition> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| feed(&d, idp, 2_000, Err(Reason::UnknownKid), t0 + Duration::from_secs(1)))
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
        });
        assert_eq!(transitions.len(), 1, "{transitions:?}");
        assert!(matches!(transitions[0], Transition::Started { dominant: Reason::UnknownKid, .. }));
        assert_eq!(d.degraded(idp, t0 + Duration::from_secs(1)), Some(Reason::UnknownKid));
    }
}
