//! The drill's scenarios: what each does to the idp, what it sends, and what a rotation-safe
//! verifier must do. Every scenario is bounded by a few multiples of the window.

use std::time::Duration;

use anyhow::Result;
use tokio::time::Instant;

use super::engine::{Class, ClassTally, DrillIdp, Forger, Probe, Target, flood, probe};

/// A scenario's name and the expectation it checks, as printed.
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) expect: &'static str,
}

/// Every scenario, in the order they run.
pub(crate) const SCENARIOS: [Scenario; 13] = [
    Scenario { name: "steady", expect: "tokens of the signing key are accepted" },
    Scenario {
        name: "overlap",
        expect: "new key published beside the old: old-key tokens stay accepted, new-key tokens are accepted within the window",
    },
    Scenario {
        name: "pre-publish",
        expect: "new key published first: old-key tokens stay accepted; once it signs, new-key tokens are accepted within the window",
    },
    Scenario {
        name: "replace",
        expect: "old key dropped at once: new-key tokens accepted within the window; the dropped key's tokens rejected once the removal is confirmed (7 s)",
    },
    Scenario {
        name: "kid-reuse",
        expect: "new material under the same kid: its tokens are accepted within the window, and the old material is no longer trusted once they are",
    },
    Scenario {
        name: "sign-before-publish",
        expect: "tokens of a key published late: rejected until it is published, accepted within the window after publication",
    },
    Scenario {
        name: "outage-short",
        expect: "the IdP refuses connections for half the window: tokens of known keys keep verifying",
    },
    Scenario {
        name: "outage-long",
        expect: "an outage longer than the stale limit: keys_unavailable after the limit, not a verdict from keys too old to trust; accepted again after recovery",
    },
    Scenario {
        name: "slow-jwks",
        expect: "the JWKS answers slowly: known-key tokens are not held up, and a new key is accepted once the slow fetch completes",
    },
    Scenario {
        name: "429-storm",
        expect: "the JWKS answers 429 while unknown kids arrive: known-key tokens keep verifying and the verifier does not hammer the IdP",
    },
    Scenario {
        name: "kid-flood",
        expect: "forged tokens with random kids: all rejected, causing only a handful of JWKS fetches; valid tokens still accepted",
    },
    Scenario {
        name: "wrong-key-set",
        expect: "a few seconds of another issuer's key set: tokens of the keys in use stay accepted",
    },
    Scenario {
        name: "flapping",
        expect: "the newest key is absent from every other JWKS response: its tokens, once accepted, stay accepted",
    },
];

/// How a scenario ended.
#[derive(Clone, Debug)]
pub(crate) enum Verdict {
    Pass,
    /// The runbook cause the target's behaviour reproduces, and what it did.
    Fail {
        cause: &'static str,
        detail: String,
    },
    /// Not run against this target, and why.
    Skipped(String),
}

/// How long after `replace` drops a key its tokens may still be accepted: a removal confirmed by a
/// second fetch 5 s after the first that lacked the key, plus that fetch and some slack.
const REPLACE_DROP_ALLOWANCE: Duration = Duration::from_secs(7);

/// What one scenario saw.
pub(crate) struct Outcome {
    pub(crate) name: &'static str,
    pub(crate) expect: &'static str,
    pub(crate) verdict: Verdict,
    pub(crate) probe: Probe,
    pub(crate) jwks_requests: u64,
    /// From the rotation (or the publication) to the first accepted new-key token.
    pub(crate) new_key_after: Option<Duration>,
}

/// What the scenarios share.
pub(crate) struct Ctx {
    pub(crate) idp: DrillIdp,
    pub(crate) target: Target,
    pub(crate) audience: String,
    pub(crate) window: Duration,
    pub(crate) forger: Forger,
    /// A builder of a short-lived keyward verifier for `outage-long` (in-process targets only).
    pub(crate) short_stale: Option<Box<dyn Fn() -> Result<Target> + Send + Sync>>,
    /// Whether the target accepted a token of the current signing key when the scenario began;
    /// after a failed rotation it may not, and "old keys keep verifying" cannot be judged.
    pub(crate) trusted: std::sync::atomic::AtomicBool,
}

/// The most JWKS requests a scenario provoking fetches may cause: the budget of a verifier
/// that refreshes on unknown kids within limits (keyward: 8 per window) plus retries.
fn fetch_limit(window: Duration) -> u64 {
    12 + window.as_secs()
}

fn fail(cause: &'static str, detail: impl Into<String>) -> Verdict {
    Verdict::Fail { cause, detail: detail.into() }
}

fn describe(tally: &ClassTally) -> String {
    let mut parts: Vec<String> = tally.rejected.iter().map(|(k, v)| format!("{v}× {k}")).collect();
    parts.extend(tally.errors.iter().map(|(k, v)| format!("{v}× error {k}")));
    if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
}

impl Ctx {
    async fn rotate(&self, mode: &str, delay: Option<Duration>) -> Result<()> {
        let delay = delay.map(|d| format!("{}", d.as_secs_f64()));
        let mut fields = vec![("mode", mode)];
        if let Some(d) = &delay {
            fields.push(("delay", d.as_str()));
        }
        self.idp.admin("/admin/rotate", &fields).await?;
        Ok(())
    }

    /// Rotates with `mode` (no publication delay) and mints a token of the key now signing;
    /// returns when the rotation took effect and that token.
    async fn rotate_and_mint(&self, mode: &str) -> Result<(Instant, String)> {
        self.rotate(mode, None).await?;
        let since = Instant::now();
        Ok((since, self.token().await?))
    }

    async fn fault(&self, mode: &str, seconds: Duration, extra: &[(&str, &str)]) -> Result<()> {
        let seconds = format!("{}", seconds.as_secs_f64());
        let mut fields = vec![("mode", mode), ("seconds", seconds.as_str())];
        fields.extend_from_slice(extra);
        self.idp.admin("/admin/fault", &fields).await?;
        Ok(())
    }

    fn half(&self) -> Duration {
        (self.window / 2).max(Duration::from_secs(1))
    }

    /// Whether the target accepts a token of the current signing key (tried for a window).
    async fn baseline(&self) -> Result<bool> {
        let token = self.token().await?;
        let end = Instant::now() + self.window;
        loop {
            if self.target.check(&token).await == super::engine::Verdict::Accepted {
                return Ok(true);
            }
            if Instant::now() >= end {
                return Ok(false);
            }
            tokio::time::sleep(super::engine::TICK).await;
        }
    }

    fn trusted(&self) -> bool {
        self.trusted.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn untrusted() -> Verdict {
        Verdict::Skipped(
            "the target does not accept tokens of the current signing key (an earlier scenario failed), so this cannot be judged"
                .to_owned(),
        )
    }

    /// Runs one scenario by name.
    pub(crate) async fn run(&self, scenario: &Scenario) -> Result<Outcome> {
        let trusted = scenario.name == "steady" || self.baseline().await?;
        self.trusted.store(trusted, std::sync::atomic::Ordering::Relaxed);
        let before = self.idp.jwks_requests().await?;
        let (verdict, probe, new_key_after) = match scenario.name {
            "steady" => self.steady().await?,
            "overlap" => self.overlap().await?,
            "pre-publish" => self.pre_publish().await?,
            "replace" => self.replace().await?,
            "kid-reuse" => self.kid_reuse().await?,
            "sign-before-publish" => self.sign_before_publish().await?,
            "outage-short" => self.outage_short().await?,
            "outage-long" => self.outage_long().await?,
            "slow-jwks" => self.slow_jwks().await?,
            "429-storm" => self.storm().await?,
            "kid-flood" => self.kid_flood().await?,
            "wrong-key-set" => self.wrong_key_set().await?,
            _ => self.flapping().await?,
        };
        self.idp.clear_faults(self.window * 2 + Duration::from_secs(10)).await?;
        // Whatever else a scenario judges, a forged token (random kid, never published) let in
        // is the worst a verifier can do: it decides the verdict.
        let forged = probe.of(Class::Forged);
        let verdict =
            if forged.accepted > 0 && !matches!(verdict, Verdict::Fail { cause: "token_tampered", .. }) {
                fail(
                    "token_tampered",
                    format!(
                        "{} of {} forged tokens (random kids, never published) were ACCEPTED",
                        forged.accepted, forged.sent
                    ),
                )
            } else {
                verdict
            };
        let jwks_requests = self.idp.jwks_requests().await?.saturating_sub(before);
        Ok(Outcome {
            name: scenario.name,
            expect: scenario.expect,
            verdict,
            probe,
            jwks_requests,
            new_key_after,
        })
    }

    async fn token(&self) -> Result<String> {
        self.idp.token(&self.audience).await
    }

    /// Old-key tokens all accepted, or the failure (judged only when the target trusted the
    /// old key when the scenario began).
    fn old_kept(&self, probe: &Probe, cause: &'static str, what: &str) -> Option<Verdict> {
        if !self.trusted() {
            return None;
        }
        let old = probe.of(Class::Old);
        (old.refused() > 0).then(|| {
            fail(
                cause,
                format!(
                    "{} of {} old-key tokens refused {what} ({})",
                    old.refused(),
                    old.sent,
                    describe(&old)
                ),
            )
        })
    }

    /// New-key tokens accepted at some point, or `cause`.
    fn new_accepted(
        &self,
        probe: &Probe,
        cause: &'static str,
        since: Instant,
    ) -> (Option<Verdict>, Option<Duration>) {
        let new = probe.of(Class::New);
        match new.first_accepted {
            Some(at) => (None, Some(at.saturating_duration_since(since))),
            None => (
                Some(fail(
                    cause,
                    format!(
                        "none of {} new-key tokens accepted in {} s ({})",
                        new.sent,
                        self.window.as_secs(),
                        describe(&new)
                    ),
                )),
                None,
            ),
        }
    }

    async fn steady(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        let token = self.token().await?;
        let probe = probe(&self.target, &[(Class::Old, token)], &self.forger, 0, self.half()).await?;
        let verdict = self
            .old_kept(
                &probe,
                "wrong_key_set",
                "in steady state: does the target trust this issuer and audience?",
            )
            .unwrap_or(Verdict::Pass);
        Ok((verdict, probe, None))
    }

    async fn overlap(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        let old = self.token().await?;
        let (since, new) = self.rotate_and_mint("overlap").await?;
        let probe =
            probe(&self.target, &[(Class::Old, old), (Class::New, new)], &self.forger, 0, self.window)
                .await?;
        let (missing, after) = self.new_accepted(&probe, "stale_cache", since);
        let verdict = self
            .old_kept(&probe, "key_dropped_early", "while still published")
            .or(missing)
            .unwrap_or(Verdict::Pass);
        Ok((verdict, probe, after))
    }

    async fn pre_publish(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        let old = self.token().await?;
        self.rotate("pre-publish", None).await?;
        let mut total =
            probe(&self.target, &[(Class::Old, old.clone())], &self.forger, 0, self.half()).await?;
        let (since, new) = self.rotate_and_mint("activate").await?;
        let second =
            probe(&self.target, &[(Class::Old, old), (Class::New, new)], &self.forger, 0, self.window)
                .await?;
        total.absorb(second);
        let (missing, after) = self.new_accepted(&total, "stale_cache", since);
        let verdict = self
            .old_kept(&total, "key_dropped_early", "while still published")
            .or(missing)
            .unwrap_or(Verdict::Pass);
        Ok((verdict, total, after))
    }

    async fn replace(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        let old = self.token().await?;
        let (since, new) = self.rotate_and_mint("replace").await?;
        // Long enough to see the dropped key go: a verifier may confirm a removal with a second
        // fetch (keyward: 5 s after the first that lacked it) before it refuses the key's tokens.
        let length = self.window.max(REPLACE_DROP_ALLOWANCE + Duration::from_secs(2));
        let probe =
            probe(&self.target, &[(Class::Old, old), (Class::New, new)], &self.forger, 0, length).await?;
        let (missing, after) = self.new_accepted(&probe, "stale_cache", since);
        let old = probe.of(Class::Old);
        let kept = old
            .last_accepted
            .map(|at| at.saturating_duration_since(since))
            .filter(|late| *late > REPLACE_DROP_ALLOWANCE)
            .map(|late| {
                fail(
                    "stale_cache",
                    format!(
                        "tokens of the dropped key still accepted {:.1} s after the IdP removed it (allowed: {} s to \
                         confirm the removal; {} of {} accepted in all)",
                        late.as_secs_f64(),
                        REPLACE_DROP_ALLOWANCE.as_secs(),
                        old.accepted,
                        old.sent
                    ),
                )
            });
        Ok((missing.or(kept).unwrap_or(Verdict::Pass), probe, after))
    }

    async fn kid_reuse(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        let old = self.token().await?;
        let (since, new) = self.rotate_and_mint("reuse-kid").await?;
        // The old material is sent after the new one each round: once the new material is
        // accepted, the old must not be.
        let probe =
            probe(&self.target, &[(Class::New, new), (Class::Old, old)], &self.forger, 0, self.window)
                .await?;
        let (missing, after) = self.new_accepted(&probe, "kid_reused", since);
        let new_tally = probe.of(Class::New);
        let old_tally = probe.of(Class::Old);
        let kept_old = match (new_tally.first_accepted, old_tally.last_accepted) {
            (Some(new_at), Some(old_at)) if old_at > new_at => Some(fail(
                "kid_reused",
                "the old material under the reused kid was still accepted after the new material was",
            )),
            _ => None,
        };
        Ok((missing.or(kept_old).unwrap_or(Verdict::Pass), probe, after))
    }

    async fn sign_before_publish(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        let old = self.token().await?;
        let delay = self.half();
        self.rotate("sign-before-publish", Some(delay)).await?;
        let published = Instant::now() + delay;
        let new = self.token().await?;
        let probe = probe(
            &self.target,
            &[(Class::Old, old), (Class::New, new)],
            &self.forger,
            0,
            delay + self.window,
        )
        .await?;
        let new_tally = probe.of(Class::New);
        let (missing, after) = self.new_accepted(&probe, "stale_cache", published);
        let early = new_tally.first_accepted.is_some_and(|at| at < published).then(|| {
            fail("token_tampered", "a token of an unpublished key was accepted before its key was published")
        });
        let verdict = early
            .or_else(|| self.old_kept(&probe, "key_dropped_early", "while still published"))
            .or(missing)
            .unwrap_or(Verdict::Pass);
        Ok((verdict, probe, after))
    }

    async fn outage_short(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        if !self.trusted() {
            return Ok((Self::untrusted(), Probe::default(), None));
        }
        let token = self.token().await?;
        self.fault("down", self.half(), &[]).await?;
        let probe = probe(&self.target, &[(Class::Old, token)], &self.forger, 0, self.window).await?;
        let verdict =
            self.old_kept(&probe, "jwks_unreachable", "during a short IdP outage").unwrap_or(Verdict::Pass);
        Ok((verdict, probe, None))
    }

    async fn outage_long(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        let Some(build) = &self.short_stale else {
            return Ok((
                Verdict::Skipped(
                    "the target's stale limit is not known from outside (keyward's default is 6 h); run it with --target self"
                        .to_owned(),
                ),
                Probe::default(),
                None,
            ));
        };
        // A keyward verifier whose keys expire after 1 s and serve stale 1 s more.
        let target = build()?;
        let token = self.token().await?;
        let warm =
            probe(&target, &[(Class::Old, token.clone())], &self.forger, 0, Duration::from_millis(300))
                .await?;
        let outage = Duration::from_secs(3).max(self.window);
        self.fault("down", outage, &[]).await?;
        let during = probe(&target, &[(Class::Old, token.clone())], &self.forger, 0, outage).await?;
        self.idp.clear_faults(Duration::from_secs(10)).await?;
        let after = probe(&target, &[(Class::New, token)], &self.forger, 0, self.window).await?;
        let mut total = warm;
        let refused = during.of(Class::Old);
        let stopped = refused.rejected.get("keys_unavailable").copied().unwrap_or(0) > 0;
        total.absorb(during);
        total.absorb(after);
        let recovered = total.of(Class::New).first_accepted.is_some();
        let verdict = if !stopped {
            fail("jwks_unreachable", "keys past the stale limit kept verifying through the whole outage")
        } else if !recovered {
            fail("jwks_unreachable", "no token was accepted again within the window after the IdP recovered")
        } else {
            Verdict::Pass
        };
        Ok((verdict, total, None))
    }

    async fn slow_jwks(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        let old = self.token().await?;
        let delay = self.half();
        let delay_text = format!("{}", delay.as_secs_f64());
        self.fault("slow", delay + self.window, &[("delay", delay_text.as_str())]).await?;
        let (since, new) = self.rotate_and_mint("overlap").await?;
        let probe = probe(
            &self.target,
            &[(Class::Old, old), (Class::New, new)],
            &self.forger,
            0,
            delay + self.window,
        )
        .await?;
        let (missing, after) = self.new_accepted(&probe, "jwks_unreachable", since);
        let verdict = self
            .old_kept(&probe, "jwks_unreachable", "while the JWKS was slow")
            .or(missing)
            .unwrap_or(Verdict::Pass);
        Ok((verdict, probe, after))
    }

    async fn storm(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        let token = self.token().await?;
        let before = self.idp.jwks_requests().await?;
        let retry = format!("{}", self.window.as_secs());
        self.fault("429", self.window, &[("retry_after", retry.as_str())]).await?;
        let probe = probe(&self.target, &[(Class::Old, token)], &self.forger, 2, self.window).await?;
        let requests = self.idp.jwks_requests().await?.saturating_sub(before);
        let limit = fetch_limit(self.window);
        let storm = (requests > limit).then(|| {
            fail(
                "refetch_storm",
                format!(
                    "{requests} JWKS requests in {} s against an IdP answering 429 (limit {limit})",
                    self.window.as_secs()
                ),
            )
        });
        let verdict = self
            .old_kept(&probe, "jwks_unreachable", "while the JWKS answered 429")
            .or(storm)
            .unwrap_or(Verdict::Pass);
        Ok((verdict, probe, None))
    }

    async fn kid_flood(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        let token = self.token().await?;
        let before = self.idp.jwks_requests().await?;
        let started = Instant::now();
        let forged = flood(&self.target, &self.forger, 500, 32).await?;
        let left = self.half().saturating_sub(started.elapsed()).max(Duration::from_millis(500));
        let mut probe = probe(&self.target, &[(Class::Old, token)], &self.forger, 0, left).await?;
        let requests = self.idp.jwks_requests().await?.saturating_sub(before);
        let mut flood_probe = Probe::default();
        flood_probe.classes.insert(Class::Forged, forged.clone());
        probe.absorb(flood_probe);
        let limit = fetch_limit(self.window);
        let verdict = if forged.accepted > 0 {
            fail(
                "token_tampered",
                format!("{} forged tokens with random kids were ACCEPTED", forged.accepted),
            )
        } else if requests > limit {
            fail(
                "refetch_storm",
                format!("{} forged tokens caused {requests} JWKS requests (limit {limit})", forged.sent),
            )
        } else {
            self.old_kept(&probe, "jwks_unreachable", "during a kid flood").unwrap_or(Verdict::Pass)
        };
        Ok((verdict, probe, None))
    }

    async fn flapping(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        let (since, new) = self.rotate_and_mint("overlap").await?;
        self.fault("flap", self.window, &[]).await?;
        let probe = probe(&self.target, &[(Class::New, new)], &self.forger, 1, self.window).await?;
        let (missing, after) = self.new_accepted(&probe, "stale_cache", since);
        let tally = probe.of(Class::New);
        let lost = tally.lost_after_accept.then(|| {
            fail(
                "key_dropped_early",
                format!(
                    "{} tokens of the flapping key refused after it was accepted ({})",
                    tally.rejected_after_accept,
                    describe(&tally)
                ),
            )
        });
        Ok((missing.or(lost).unwrap_or(Verdict::Pass), probe, after))
    }

    async fn wrong_key_set(&self) -> Result<(Verdict, Probe, Option<Duration>)> {
        if !self.trusted() {
            return Ok((Self::untrusted(), Probe::default(), None));
        }
        let token = self.token().await?;
        let seconds = self.window.min(Duration::from_secs(4));
        self.fault("wrong-keys", seconds, &[]).await?;
        let probe = probe(&self.target, &[(Class::Old, token)], &self.forger, 1, self.window).await?;
        let verdict = self
            .old_kept(&probe, "wrong_key_set", "after a few seconds of another issuer's key set")
            .unwrap_or(Verdict::Pass);
        Ok((verdict, probe, None))
    }
}
