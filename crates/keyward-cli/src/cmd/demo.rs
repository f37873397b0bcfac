//! `keyward demo`: a key rotation rehearsed end to end against an embedded mock IdP.
//!
//! Two verifiers watch the same IdP: a naive one holding the key set fetched once at start (what
//! a long-TTL cache holds), and keyward's rotation-aware key source. The demo runs on `drill`'s
//! engine: the in-process `keyward idp` driven through its admin API (overlap rotation, retire,
//! sign-before-publish, a 500 fault, kid reuse), the drill's forger and flood, and the drill
//! scenarios' expectations. It checks keyward's verdicts and exits non-zero if any is wrong,
//! then says what to run against the reader's own IdP or service.
#![allow(clippy::disallowed_methods)] // the demo measures a real server in real time

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use keyward::source::{JwksSource, SourceSettings};
use keyward::{Error, Policy, Reason, Verified, Verifier};
use keyward_idp::{Provider, ProviderConfig, SigningAlg, SigningKey};

use crate::drill::engine::{DrillIdp, Forger, Target, Verdict, flood};
use crate::drill::scenarios::SCENARIOS;

const AUDIENCE: &str = "orders-api";
/// Shortened from 30 s so the same-kid step needs no long wait; everything else is default.
const DEMO_COOLDOWN: Duration = Duration::from_secs(2);
/// How long after a key leaves the set the demo's second fetch may confirm the removal.
const REMOVAL_CONFIRM: Duration = Duration::from_secs(1);
const FLOOD: usize = 1_000;
/// How long after the sign-before-publish rotation the idp publishes the new key.
const SIGN_BEFORE_PUBLISH: Duration = Duration::from_millis(500);

pub(crate) fn run() -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let ok = runtime.block_on(demo())?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The verdict keyward must give: valid, or rejected with exactly this reason code.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Valid,
    Rejected(Reason),
}

impl Expect {
    fn holds(self, result: &Result<Verified, Error>) -> bool {
        match (self, result) {
            (Self::Valid, Ok(_)) => true,
            (Self::Rejected(reason), Err(e)) => e.reason() == reason,
            _ => false,
        }
    }

    fn describe(self) -> String {
        match self {
            Self::Valid => "valid".to_owned(),
            Self::Rejected(reason) => format!("rejected: {reason}"),
        }
    }
}

struct Tally {
    checks: usize,
    wrong: usize,
    naive_rejected_valid: usize,
    /// Tokens the naive cache accepted that must be rejected (a revoked key, a forgery).
    naive_accepted_invalid: usize,
}

impl Tally {
    /// Prints both verdicts and grades keyward's by its reason code against the expectation.
    fn show(&mut self, naive: &Result<Verified, Error>, keyward: &Result<Verified, Error>, expect: Expect) {
        let verdict = |r: &Result<Verified, Error>| match r {
            Ok(_) => "valid".to_owned(),
            Err(e) => format!("rejected: {} ({})", e.reason(), e.detail()),
        };
        outln!("   naive    {}", verdict(naive));
        let right = expect.holds(keyward);
        outln!("   keyward  {}", verdict(keyward));
        self.grade(right, &expect.describe());
        if expect == Expect::Valid && naive.is_err() {
            self.naive_rejected_valid += 1;
        }
        if expect != Expect::Valid && naive.is_ok() {
            self.naive_accepted_invalid += 1;
        }
    }

    /// Counts one check; a wrong one is marked with what was expected.
    fn grade(&mut self, right: bool, expected: &str) {
        self.checks += 1;
        if !right {
            self.wrong += 1;
            outln!("   <-- WRONG: expected {expected}");
        }
    }
}

/// Limited fetches the key source may make in `elapsed`: `per_window` in every limiter window
/// the interval touches (the limiter is a sliding window, so an interval cut into windows of
/// its length has at most `per_window` fetches in each piece).
fn fetch_budget(elapsed: Duration, window: Duration, per_window: usize) -> usize {
    let windows = elapsed.as_nanos().div_ceil(window.as_nanos().max(1)).max(1);
    per_window.saturating_mul(usize::try_from(windows).unwrap_or(usize::MAX))
}

/// The drill scenario a demo step rehearses, as the drill states its expectation.
fn scenario(name: &str) -> &'static str {
    SCENARIOS.iter().find(|s| s.name == name).map_or("", |s| s.expect)
}

/// The in-process idp underneath the drill's driver (the demo always starts its own).
fn local(idp: &DrillIdp) -> Result<&Provider> {
    match idp {
        DrillIdp::Local(p) => Ok(p),
        DrillIdp::Remote { .. } => anyhow::bail!("the demo drives an in-process idp"),
    }
}

async fn demo() -> Result<bool> {
    let config = ProviderConfig { algs: vec![SigningAlg::RS256], ..ProviderConfig::default() };
    let provider = Provider::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), config)
        .await
        .context("cannot start the mock IdP on 127.0.0.1")?;
    provider.set_cache_control("public, max-age=900");
    let idp = DrillIdp::Local(provider);
    let p = local(&idp)?;
    let mint = |k: &SigningKey, sub: &str| -> Result<String> { Ok(p.mint_with(k, sub, AUDIENCE)?) };
    let policy = Policy::builder().issuer(idp.issuer()).audience(AUDIENCE).build()?;

    outln!("keyward demo: an identity provider rotates its signing key while two verifiers watch");
    outln!(
        "  mock IdP  {} (`keyward idp` in process: OIDC discovery + JWKS, Cache-Control: max-age=900)",
        idp.issuer()
    );
    outln!("  naive     the key set fetched once at start: what a 15-minute cache holds");
    outln!("  keyward   JwksSource by discovery: refresh on unknown kid, single-flight, a spaced fetch");
    outln!("            budget, late-key follow-ups, confirmed removal, last-known-good keys");
    outln!("            (windows shortened for the demo: 8 fetches per 2 s, removal confirmed after 1 s)");
    outln!("  each step is one of `keyward drill`'s scenarios, run on the same engine");

    let k1 = p.signing_key();
    let settings = {
        let mut s = SourceSettings::default();
        s.refresh_cooldown = DEMO_COOLDOWN;
        s.negative_cache_ttl = DEMO_COOLDOWN;
        s.removal_confirm_after = REMOVAL_CONFIRM;
        // One verifier, no fleet to spread out: its token-driven fetches go out at once, so
        // step 5's first token is looked up before the late key is published, every run.
        s.token_fetch_jitter = Duration::ZERO;
        s
    };
    let per_window = settings.unknown_kid_fetches;
    let source = JwksSource::from_issuer(idp.issuer()).settings(settings).build()?;
    source.refresh().await.context("the first fetch from the mock IdP failed")?;
    let keyward = Verifier::builder().keys(source.clone()).policy(policy.clone()).build()?;
    let frozen = source.current().context("no key set after the first fetch")?;
    let naive = Verifier::builder().keys(frozen).policy(policy).build()?;
    let mut tally = Tally { checks: 0, wrong: 0, naive_rejected_valid: 0, naive_accepted_invalid: 0 };

    outln!("\n1. steady state: the IdP signs with k1 ({})", k1.kid());
    outln!("   (drill scenario steady: {})", scenario("steady"));
    let t1 = mint(&k1, "alice")?;
    tally.show(&naive.verify(&t1).await, &keyward.verify(&t1).await, Expect::Valid);

    let before = idp.jwks_requests().await?;
    idp.admin("/admin/rotate", &[("mode", "overlap")]).await?;
    let k2 = p.signing_key();
    outln!("\n2. overlap rotation: the IdP publishes k2 ({}) beside k1 and signs with k2", k2.kid());
    outln!("   (drill scenario overlap: {})", scenario("overlap"));
    let t2 = mint(&k2, "bob")?;
    tally.show(&naive.verify(&t2).await, &keyward.verify(&t2).await, Expect::Valid);
    outln!("   (keyward fetched the JWKS {} time for the new kid)", idp.jwks_requests().await? - before);

    outln!("\n3. kid flood: {FLOOD} forged tokens with random kids arrive at once");
    outln!("   (drill scenario kid-flood: {})", scenario("kid-flood"));
    // The drill's forger: one attacker key, a fresh kid per token (an attacker needs no key of
    // the IdP's to make a verifier look a kid up).
    let forger = Forger::new(idp.issuer(), AUDIENCE)?;
    let target = Target::Local(keyward.clone());
    let before = idp.jwks_requests().await?;
    let started = std::time::Instant::now();
    let flooded = flood(&target, &forger, FLOOD, FLOOD).await?;
    // Measured by the demo itself: on a busy machine the flood may span more than one window,
    // and then more fetches are the limiter working as documented.
    let elapsed = started.elapsed();
    let fetches = usize::try_from(idp.jwks_requests().await? - before).unwrap_or(usize::MAX);
    let budget = fetch_budget(elapsed, DEMO_COOLDOWN, per_window);
    let mut reasons: BTreeMap<String, u64> = flooded.rejected.clone();
    for (what, n) in &flooded.errors {
        *reasons.entry(format!("error {what}")).or_default() += n;
    }
    if flooded.accepted > 0 {
        reasons.insert("valid".to_owned(), flooded.accepted);
    }
    let rejected = flooded.refused();
    let breakdown: Vec<String> = reasons.iter().map(|(code, n)| format!("{n} {code}")).collect();
    outln!("   keyward  rejected {rejected} of {FLOOD}: {}", breakdown.join(", "));
    outln!(
        "   JWKS fetches caused: {fetches} in {:.2} s, {} cooldown window(s) of {} s at {per_window} per window: at most {budget} allowed",
        elapsed.as_secs_f64(),
        budget / per_window.max(1),
        DEMO_COOLDOWN.as_secs()
    );
    let unknown = flooded.rejected.get(Reason::UnknownKid.as_str()).copied().unwrap_or(0);
    tally.grade(unknown == FLOOD as u64, &format!("{FLOOD} unknown_kid"));
    tally.grade(fetches <= budget, &format!("at most {budget} fetches"));
    outln!("   a k2 token during the flood:");
    let t2b = mint(&k2, "bob")?;
    tally.show(&naive.verify(&t2b).await, &keyward.verify(&t2b).await, Expect::Valid);

    outln!("\n4. the IdP drops k1 (retired, or compromised) while k1 tokens are still in flight");
    outln!("   (as in drill scenario replace: {})", scenario("replace"));
    idp.admin("/admin/retire", &[("kid", k1.kid())]).await?;
    source.refresh().await.context("refresh after dropping k1")?;
    let t1b = mint(&k1, "carol")?;
    let (naive_k1, keyward_k1) = (naive.verify(&t1b).await, keyward.verify(&t1b).await);
    let awaiting = matches!(
        keyward_k1.as_ref().ok().and_then(|v| v.keys()).and_then(|k| k.grace),
        Some(keyward::source::GraceKind::AwaitingConfirmation { .. })
    );
    outln!("   (one fetch lacks k1: until a second fetch confirms the removal, k1 still verifies)");
    tally.show(&naive_k1, &keyward_k1, Expect::Valid);
    tally.grade(awaiting, "the verdict says k1 awaits removal confirmation");
    tokio::time::sleep(REMOVAL_CONFIRM + Duration::from_millis(100)).await;
    source.refresh().await.context("the confirming fetch")?;
    outln!("   (a second fetch {} s later also lacks k1: removal is revocation)", REMOVAL_CONFIRM.as_secs());
    tally.show(&naive.verify(&t1b).await, &keyward.verify(&t1b).await, Expect::Rejected(Reason::UnknownKid));

    let delay = SIGN_BEFORE_PUBLISH;
    let rotated = tokio::time::Instant::now();
    idp.admin(
        "/admin/rotate",
        &[("mode", "sign-before-publish"), ("delay", &delay.as_secs_f64().to_string())],
    )
    .await?;
    let k3 = p.signing_key();
    outln!(
        "\n5. the IdP signs with k3 before its JWKS shows it ({}, published {:.1} s later, as a CDN serving an older copy would)",
        k3.kid(),
        delay.as_secs_f64()
    );
    outln!("   (drill scenario sign-before-publish: {})", scenario("sign-before-publish"));
    let t3a = mint(&k3, "frank")?;
    tally.show(&naive.verify(&t3a).await, &keyward.verify(&t3a).await, Expect::Rejected(Reason::UnknownKid));
    let published = rotated + delay;
    let spacing = DEMO_COOLDOWN / u32::try_from(per_window.max(1)).unwrap_or(u32::MAX);
    // Followed for ten fetch spacings past the publication: keyward's late-key follow-up.
    let give_up = published + spacing * 10;
    let mut accepted = None;
    let mut early = false;
    while tokio::time::Instant::now() < give_up {
        if let Verdict::Accepted = target.check(&t3a).await {
            let now = tokio::time::Instant::now();
            early = now < published;
            accepted = Some(now.saturating_duration_since(published));
            break;
        }
        tokio::time::sleep(spacing / 4).await;
    }
    match accepted {
        Some(_) if early => outln!("   keyward  valid BEFORE k3 was published"),
        Some(after) => outln!(
            "   keyward  valid {:.2} s after k3 was published (a kid a fetch lacked is followed up)",
            after.as_secs_f64()
        ),
        None => outln!("   keyward  still rejected 10 fetch spacings after k3 was published"),
    }
    tally.grade(accepted.is_some() && !early, "k3 accepted soon after its publication");

    outln!("\n6. IdP outage: the JWKS endpoint answers 500");
    outln!("   (as in drill scenario outage-short: {})", scenario("outage-short"));
    idp.admin("/admin/fault", &[("mode", "500"), ("seconds", "60")]).await?;
    match source.refresh().await {
        Ok(()) => outln!("   (refresh unexpectedly succeeded)"),
        Err(e) => outln!("   (refresh failed at stage {}: keyward keeps its last good keys)", e.stage),
    }
    let t2c = mint(&k2, "dave")?;
    tally.show(&naive.verify(&t2c).await, &keyward.verify(&t2c).await, Expect::Valid);
    let health = source.health();
    outln!(
        "   health: {}, {} usable key{}, {} failure(s) since the last success",
        health.state.as_str(),
        health.keys,
        if health.keys == 1 { "" } else { "s" },
        health.consecutive_failures
    );

    idp.clear_faults(Duration::from_secs(5)).await?;
    tokio::time::sleep(DEMO_COOLDOWN + Duration::from_millis(100)).await;
    idp.admin("/admin/rotate", &[("mode", "reuse-kid")]).await?;
    let k3_new = p.signing_key();
    outln!("\n7. recovery, then the IdP reuses kid {} for new key material", k3_new.kid());
    outln!("   (drill scenario kid-reuse: {})", scenario("kid-reuse"));
    let t3 = mint(&k3_new, "erin")?;
    tally.show(&naive.verify(&t3).await, &keyward.verify(&t3).await, Expect::Valid);
    outln!("   a token forged under the same kid:");
    let forged = SigningKey::generate(SigningAlg::RS256, k3_new.kid())?;
    let tf = mint(&forged, "mallory")?;
    tally.show(
        &naive.verify(&tf).await,
        &keyward.verify(&tf).await,
        Expect::Rejected(Reason::InvalidSignature),
    );

    outln!(
        "\nsummary: keyward gave {} right verdicts out of {}; the naive cache rejected {} valid tokens and accepted {} it should not have; the IdP served {} JWKS requests in all",
        tally.checks - tally.wrong,
        tally.checks,
        tally.naive_rejected_valid,
        tally.naive_accepted_invalid,
        idp.jwks_requests().await?
    );
    outln!("\nnext, against your own IdP or service:");
    outln!("  keyward doctor --issuer https://YOUR-IDP --audit        # your IdP's rotation hygiene");
    outln!("  keyward idp --listen 127.0.0.1:8600                     # this mock IdP, standalone");
    outln!(
        "  keyward drill --idp http://127.0.0.1:8600 --target-url http://YOUR-STAGING-SERVICE/ --audience AUD"
    );
    outln!("                # the 13 drill scenarios against your service (configured to trust that idp)");
    Ok(tally.wrong == 0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::fetch_budget;

    #[test]
    fn the_fetch_budget_grows_with_every_window_the_flood_touches() {
        let window = Duration::from_secs(2);
        assert_eq!(fetch_budget(Duration::ZERO, window, 2), 2);
        assert_eq!(fetch_budget(Duration::from_millis(30), window, 2), 2);
        assert_eq!(fetch_budget(window, window, 2), 2);
        assert_eq!(fetch_budget(Duration::from_millis(2001), window, 2), 4);
        assert_eq!(fetch_budget(Duration::from_secs(5), window, 3), 9);
    }
}
