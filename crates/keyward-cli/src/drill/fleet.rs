//! `keyward drill --fleet N`: how JWKS cost grows with the number of replicas.
//!
//! N independent key sources (each with its own HTTP client, as N stateless replicas would
//! have) verify traffic against one in-process idp that answers 429 above a request rate
//! (`--jwks-rate-limit`, 20 per second by default).
//! The idp rotates with `sign-before-publish` and with `overlap`, then a random-kid flood
//! arrives at every replica. For each phase it reports valid tokens rejected (in all, and
//! later than publication + 5 s), JWKS requests (total, peak per second), 429s, and when the
//! last replica first accepted the new key. After each rotation's traffic it waits (bounded)
//! until every replica holds the new key and none is held back by a 429, so one phase's
//! stragglers do not count against the next, and it reports what that took.

use std::future::Future;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use keyward::source::JwksSource;
use keyward::{Policy, Verifier};
use keyward_idp::{Provider, ProviderConfig, RotateMode, SigningAlg};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::engine::Forger;

/// The idp's JWKS rate limit when `--jwks-rate-limit` is not given (requests per second).
pub(crate) const DEFAULT_RATE_LIMIT: u32 = 20;
/// Each replica verifies one token per tick.
const TICK: Duration = Duration::from_millis(500);
/// A valid token rejected later than publication plus this counts against the fleet.
const GRACE: Duration = Duration::from_secs(5);
/// Random-kid tokens per replica in the flood.
const FLOOD_PER_REPLICA: usize = 20;
/// The longest the wait for every replica to hold the new key may take after a rotation.
const SETTLE_LIMIT: Duration = Duration::from_secs(300);

struct Replica {
    source: JwksSource,
    verifier: Verifier,
}

impl Replica {
    /// True when the replica's current key set has `kid` and no 429 holds its fetches back.
    fn settled(&self, kid: &str) -> bool {
        let has = self.source.current().is_some_and(|set| set.keys_with_kid(kid).next().is_some());
        has && self.source.health().rate_limited_for.is_none()
    }

    /// Why the replica's latest fetch got no answer at all (refused or reset connection,
    /// timeout, out of descriptors), if it did not: the simulation's own limits, not the
    /// idp's, would then be shaping the numbers.
    fn unanswered(&self) -> Option<String> {
        let health = self.source.health();
        let error = health.last_error.filter(|e| health.consecutive_failures > 0 && e.facts.is_none())?;
        Some(format!("{}: {}", error.stage.as_str(), error.detail))
    }
}

/// How many replicas' latest fetch got no answer, and why the first of them did not.
fn unanswered(replicas: &[Arc<Replica>]) -> (u64, Option<String>) {
    let mut count = 0;
    let mut first = None;
    for why in replicas.iter().filter_map(|r| r.unanswered()) {
        count += 1;
        first.get_or_insert(why);
    }
    (count, first)
}

/// What one phase measured.
#[derive(Default)]
struct Phase {
    name: &'static str,
    sent: u64,
    rejected: u64,
    rejected_late: u64,
    jwks_requests: u64,
    peak_per_second: u64,
    throttled: u64,
    all_accepted_after: Option<Duration>,
    /// JWKS requests and 429s until every replica held the new key (traffic phase included).
    settle_requests: u64,
    settle_throttled: u64,
    /// From publication until every replica held the new key and none was held back.
    settled_after: Option<Duration>,
    /// The most replicas seen at once whose latest fetch got no answer (should stay 0).
    unanswered_peak: u64,
    /// Why the first such fetch got none.
    unanswered_example: Option<String>,
}

impl Phase {
    /// Folds in what [`with_peak`] sampled: the larger peaks, the first example.
    fn absorb(&mut self, peaks: Peaks) {
        self.peak_per_second = self.peak_per_second.max(peaks.requests_per_second);
        self.unanswered_peak = self.unanswered_peak.max(peaks.unanswered);
        if self.unanswered_example.is_none() {
            self.unanswered_example = peaks.unanswered_example;
        }
    }
}

/// Descriptors the process keeps for itself beside the replicas' connections (the runtime,
/// the idp's listener, the CA store read by each HTTP client, stdio).
const SPARE_FILES: u64 = 256;

/// Open files a fleet of `n` would need if every replica fetched at the same instant: a
/// connection to the in-process idp is two descriptors, one at each end. The idp closes each
/// connection after answering, and token-driven fetches are spread over 0–500 ms, so the
/// fleet holds far fewer; a shortfall would show as unanswered fetches in the report.
fn files_needed(n: u64) -> u64 {
    n.saturating_mul(2).saturating_add(SPARE_FILES)
}

/// The soft limit on open files from `/proc/self/limits` text (`None`: unlimited or unknown).
fn soft_open_files(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// A warning when the whole fleet fetching at once would run out of descriptors: a fetch that
/// finds none fails unanswered, and the report's `unanswered` column says whether it happened.
fn open_files_warning(n: u64, limit: Option<u64>) -> Option<String> {
    match limit {
        Some(limit) if files_needed(n) > limit => Some(format!(
            "--fleet {n} would need {} open files if every replica fetched at the same instant (one \
             at each end of a connection to the in-process idp), and this process may open {limit} \
             (`ulimit -n`); fetches are spread out and connections closed after each answer, so it \
             runs, and the `unanswered` column shows whether any fetch went without a descriptor \
             ({} replicas would always fit)",
            files_needed(n),
            limit.saturating_sub(SPARE_FILES) / 2
        )),
        _ => None,
    }
}

/// Runs the simulation: each rotation phase sends traffic for three windows (18 s by default),
/// and `sign-before-publish` publishes the new key one window after it starts signing.
pub(crate) async fn run(n: u64, rate_limit: u32, window: Duration, as_json: bool) -> Result<ExitCode> {
    let limit = std::fs::read_to_string("/proc/self/limits").ok().and_then(|l| soft_open_files(&l));
    if let Some(warning) = open_files_warning(n, limit) {
        eprintln!("keyward: drill: warning: {warning}");
    }
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let phase_length = window * 3;
    let config = ProviderConfig { algs: vec![SigningAlg::ES256], ..ProviderConfig::default() };
    let idp = Arc::new(
        Provider::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), config)
            .await
            .context("cannot start the in-process idp")?,
    );
    // A fetch holds its descriptors only while it is in flight (see `files_needed`).
    idp.set_close_connections(true);
    let audience = "fleet";
    let policy = Policy::builder().issuer(idp.issuer()).audience(audience).build()?;
    if !as_json {
        outln!(
            "keyward drill --fleet {n}: {n} key sources against one idp limited to {rate_limit} JWKS requests/s"
        );
    }
    // Warm-up without the rate limit: replicas that started at different times.
    let started = Instant::now();
    let mut replicas = Vec::with_capacity(n);
    for chunk_start in (0..n).step_by(100) {
        let mut chunk = Vec::new();
        for _ in chunk_start..(chunk_start + 100).min(n) {
            let source = JwksSource::from_url(idp.jwks_uri()).build()?;
            chunk.push(source);
        }
        for source in &chunk {
            let deadline = Instant::now() + Duration::from_secs(30);
            while source.current().is_none() {
                if Instant::now() >= deadline {
                    anyhow::bail!("a replica's key source did not start within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for source in chunk {
            replicas.push(Arc::new(Replica {
                verifier: Verifier::builder().keys(source.clone()).policy(policy.clone()).build()?,
                source,
            }));
        }
    }
    let warmup = started.elapsed();
    idp.set_jwks_rate_limit(Some(rate_limit));
    let forger = Arc::new(Forger::new(idp.issuer(), audience)?);

    let mut phases = Vec::new();
    for (name, mode) in
        [("sign-before-publish", RotateMode::SignBeforePublish(window)), ("overlap", RotateMode::Overlap)]
    {
        // Let the previous phase's limiter window pass.
        tokio::time::sleep(Duration::from_secs(2)).await;
        phases.push(rotation(&idp, &replicas, name, mode, audience, phase_length).await?);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    phases.push(flood(&idp, &replicas, &forger, audience).await?);

    if as_json {
        let list: Vec<Value> = phases
            .iter()
            .map(|p| {
                json!({"phase": p.name, "sent": p.sent, "valid_rejected": p.rejected,
                       "valid_rejected_after_publication_plus_5s": p.rejected_late,
                       "jwks_requests": p.jwks_requests, "peak_jwks_requests_per_s": p.peak_per_second,
                       "throttled_429": p.throttled,
                       "all_replicas_accepted_after_s": p.all_accepted_after.map(|d| d.as_secs_f64()),
                       "all_replicas_settled_after_s": p.settled_after.map(|d| d.as_secs_f64()),
                       "jwks_requests_until_settled": p.settle_requests,
                       "throttled_429_until_settled": p.settle_throttled,
                       "unanswered_fetches_peak": p.unanswered_peak,
                       "unanswered_fetch_example": p.unanswered_example})
            })
            .collect();
        outln!(
            "{}",
            json!({"replicas": n, "rate_limit_per_s": rate_limit, "phase_s": phase_length.as_secs_f64(),
                   "warmup_s": warmup.as_secs_f64(), "phases": list})
        );
    } else {
        outln!(
            "  warm-up (no limit): {:.1} s; each rotation phase: {} s",
            warmup.as_secs_f64(),
            phase_length.as_secs()
        );
        outln!(
            "\n{:<20} {:>8} {:>9} {:>12} {:>6} {:>7} {:>6} {:>14} {:>22} {:>10}",
            "phase",
            "sent",
            "rejected",
            "late (>+5 s)",
            "jwks",
            "peak/s",
            "429s",
            "all accept at",
            "settled (jwks, 429s)",
            "unanswered"
        );
        let secs = |d: Option<Duration>, none: &str| {
            d.map_or_else(|| none.to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
        };
        for p in &phases {
            let settled = match p.name {
                "random-kid flood" => String::new(),
                _ => format!(
                    "{} ({}, {})",
                    secs(p.settled_after, "not"),
                    p.settle_requests,
                    p.settle_throttled
                ),
            };
            outln!(
                "{:<20} {:>8} {:>9} {:>12} {:>6} {:>7} {:>6} {:>14} {:>22} {:>10}",
                p.name,
                p.sent,
                p.rejected,
                p.rejected_late,
                p.jwks_requests,
                p.peak_per_second,
                p.throttled,
                secs(p.all_accepted_after, "never"),
                settled,
                p.unanswered_peak
            );
        }
        outln!(
            "\n(rejected: valid tokens refused; late: refused later than publication + 5 s; jwks: requests the"
        );
        outln!(
            " idp received during the traffic, 429s among them; all accept at: from publication until every"
        );
        outln!(
            " replica accepted the new key or held it; settled: until every replica held it and no 429 held"
        );
        outln!(
            " any back, with the requests and 429s of the whole rotation; at most {} s; unanswered: the most",
            SETTLE_LIMIT.as_secs()
        );
        outln!(" replicas seen at once whose latest fetch got no answer, which would make the numbers the");
        outln!(" simulation's rather than the idp's: 0 when the run is sound)");
        for p in &phases {
            if let Some(why) = &p.unanswered_example {
                outln!("{}: a fetch got no answer: {why}", p.name);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What [`with_peak`] sampled while the work ran.
struct Peaks {
    /// The most JWKS requests the idp received in one second.
    requests_per_second: u64,
    /// The most replicas seen at once whose latest fetch got no answer.
    unanswered: u64,
    /// Why the first such fetch got none.
    unanswered_example: Option<String>,
}

/// Samples the idp's JWKS request counter and the replicas' unanswered fetches every second
/// while `work` runs.
async fn with_peak<F: Future>(idp: &Provider, replicas: &[Arc<Replica>], work: F) -> (F::Output, Peaks) {
    let mut work = std::pin::pin!(work);
    let mut peaks = Peaks { requests_per_second: 0, unanswered: 0, unanswered_example: None };
    let mut last = idp.jwks_requests();
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    loop {
        tokio::select! {
            out = &mut work => {
                peaks.requests_per_second = peaks.requests_per_second.max(idp.jwks_requests().saturating_sub(last));
                return (out, peaks);
            }
            _ = ticker.tick() => {
                let now = idp.jwks_requests();
                peaks.requests_per_second = peaks.requests_per_second.max(now.saturating_sub(last));
                let (count, why) = unanswered(replicas);
                peaks.unanswered = peaks.unanswered.max(count);
                if peaks.unanswered_example.is_none() {
                    peaks.unanswered_example = why;
                }
                last = now;
            }
        }
    }
}

async fn rotation(
    idp: &Arc<Provider>,
    replicas: &[Arc<Replica>],
    name: &'static str,
    mode: RotateMode,
    audience: &str,
    length: Duration,
) -> Result<Phase> {
    let before = (idp.jwks_requests(), idp.jwks_throttled());
    idp.rotate(mode, None)?;
    let rotated = Instant::now();
    let published = match mode {
        RotateMode::SignBeforePublish(d) => rotated + d,
        _ => rotated,
    };
    let key = idp.signing_key();
    let token: Arc<str> = Arc::from(idp.mint_with(&key, "fleet-user", audience)?);
    let traffic = async {
        let mut phase = Phase { name, ..Phase::default() };
        let mut accepted_once = vec![false; replicas.len()];
        let end = rotated + length;
        while Instant::now() < end {
            let round = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for (i, replica) in replicas.iter().enumerate() {
                let replica = Arc::clone(replica);
                let token = Arc::clone(&token);
                tasks
                    .spawn(async move { (i, replica.verifier.verify(&token).await.is_ok(), Instant::now()) });
            }
            for (i, ok, at) in tasks.join_all().await {
                phase.sent += 1;
                if ok {
                    if let Some(slot) = accepted_once.get_mut(i) {
                        *slot = true;
                    }
                } else if at >= published {
                    // Before publication no verifier can accept the token: not counted.
                    phase.rejected += 1;
                    if at >= published + GRACE {
                        phase.rejected_late += 1;
                    }
                }
            }
            if phase.all_accepted_after.is_none() && accepted_once.iter().all(|a| *a) {
                phase.all_accepted_after = Some(Instant::now().saturating_duration_since(published));
            }
            tokio::time::sleep_until(round + TICK).await;
        }
        phase
    };
    let (mut phase, peaks) = with_peak(idp, replicas, traffic).await;
    phase.absorb(peaks);
    phase.jwks_requests = idp.jwks_requests().saturating_sub(before.0);
    phase.throttled = idp.jwks_throttled().saturating_sub(before.1);
    // Without traffic, until every replica holds the new key (through its background retries)
    // and no 429 holds any back: how long the whole fleet takes, and what it costs the idp.
    let kid = key.kid().to_owned();
    let (settled, settle_peaks) = with_peak(idp, replicas, async {
        let limit = Instant::now() + SETTLE_LIMIT;
        loop {
            let now = Instant::now();
            if replicas.iter().all(|r| r.settled(&kid)) {
                return Some(now.saturating_duration_since(published));
            }
            if now >= limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
    .await;
    phase.absorb(settle_peaks);
    phase.settled_after = settled;
    if phase.all_accepted_after.is_none() {
        phase.all_accepted_after = settled;
    }
    phase.settle_requests = idp.jwks_requests().saturating_sub(before.0);
    phase.settle_throttled = idp.jwks_throttled().saturating_sub(before.1);
    Ok(phase)
}

async fn flood(
    idp: &Arc<Provider>,
    replicas: &[Arc<Replica>],
    forger: &Arc<Forger>,
    audience: &str,
) -> Result<Phase> {
    let before = (idp.jwks_requests(), idp.jwks_throttled());
    let valid: Arc<str> = Arc::from(idp.mint_with(&idp.signing_key(), "fleet-user", audience)?);
    let work = async {
        let mut phase = Phase { name: "random-kid flood", ..Phase::default() };
        let mut tasks = tokio::task::JoinSet::new();
        for replica in replicas {
            let mut forged = Vec::with_capacity(FLOOD_PER_REPLICA);
            for _ in 0..FLOOD_PER_REPLICA {
                forged.push(forger.token()?);
            }
            let replica = Arc::clone(replica);
            let valid = Arc::clone(&valid);
            tasks.spawn(async move {
                let mut rejected_valid = 0u64;
                for token in forged {
                    let _ = replica.verifier.verify(&token).await;
                    if replica.verifier.verify(&valid).await.is_err() {
                        rejected_valid += 1;
                    }
                }
                rejected_valid
            });
        }
        for rejected in tasks.join_all().await {
            phase.sent += FLOOD_PER_REPLICA as u64;
            phase.rejected += rejected;
            phase.rejected_late += rejected;
        }
        Ok::<_, anyhow::Error>(phase)
    };
    let (phase, peaks) = with_peak(idp, replicas, work).await;
    let mut phase = phase?;
    phase.absorb(peaks);
    phase.jwks_requests = idp.jwks_requests().saturating_sub(before.0);
    phase.throttled = idp.jwks_throttled().saturating_sub(before.1);
    phase.all_accepted_after = Some(Duration::ZERO);
    Ok(phase)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: &str = "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            20000                20000                files     \n\
Max locked memory         8388608              8388608              bytes     \n";

    #[test]
    fn the_soft_open_file_limit_is_read_from_proc_limits() {
        assert_eq!(soft_open_files(LIMITS), Some(20_000));
        assert_eq!(
            soft_open_files(&LIMITS.replace("20000                20000", "unlimited  unlimited")),
            None
        );
        assert_eq!(soft_open_files("no such line"), None);
    }

    #[test]
    fn a_fleet_that_could_run_out_of_open_files_is_warned_about_before_it_starts() {
        assert_eq!(open_files_warning(1_000, Some(20_000)), None);
        assert_eq!(open_files_warning(9_872, Some(20_000)), None, "2 × 9,872 + 256 = 20,000");
        let why = open_files_warning(10_000, Some(20_000)).unwrap();
        assert!(why.contains("--fleet 10000 would need 20256 open files"), "{why}");
        assert!(why.contains("9872 replicas would always fit"), "{why}");
        // Unlimited or unknown: nothing to check against.
        assert_eq!(open_files_warning(20_000, None), None);
    }
}
