//! `keyward demo`: a key rotation rehearsed end to end against an embedded mock IdP.
//!
//! Two verifiers watch the same IdP: a naive one holding the key set fetched once at start (what
//! a long-TTL cache holds), and keyward's rotation-aware key source. The IdP rotates with
//! overlap, drops its old key, suffers a kid flood and an outage, and reuses a kid for new key
//! material. The demo checks keyward's verdicts and exits non-zero if any is wrong.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use keyward::source::{JwksSource, SourceSettings};
use keyward::{Error, Policy, SystemClock, Verified, Verifier};
use keyward_idp::{Fault, MockIdp, SigningAlg, SigningKey};

const AUDIENCE: &str = "orders-api";
/// Shortened from 30 s so the same-kid step needs no long wait; everything else is default.
const DEMO_COOLDOWN: Duration = Duration::from_secs(2);
const FLOOD: usize = 1_000;

pub(crate) fn run() -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let ok = runtime.block_on(demo())?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

struct Tally {
    checks: usize,
    wrong: usize,
    naive_rejected_valid: usize,
}

impl Tally {
    /// Prints both verdicts and checks keyward's against the expectation.
    fn show(
        &mut self,
        naive: &Result<Verified, Error>,
        keyward: &Result<Verified, Error>,
        expect_valid: bool,
    ) {
        let verdict = |r: &Result<Verified, Error>| match r {
            Ok(_) => "valid".to_owned(),
            Err(e) => format!("rejected: {} ({})", e.reason(), e.detail()),
        };
        outln!("   naive    {}", verdict(naive));
        let right = keyward.is_ok() == expect_valid;
        outln!("   keyward  {}{}", verdict(keyward), if right { "" } else { "   <-- WRONG" });
        self.checks += 1;
        if !right {
            self.wrong += 1;
        }
        if expect_valid && naive.is_err() {
            self.naive_rejected_valid += 1;
        }
    }
}

fn now() -> i64 {
    keyward::Clock::now_unix(&SystemClock)
}

async fn demo() -> Result<bool> {
    let idp = MockIdp::start().await.context("cannot start the mock IdP on 127.0.0.1")?;
    idp.set_max_age(900);
    let key = |kid: &str| -> Result<Arc<SigningKey>> {
        Ok(Arc::new(SigningKey::generate(SigningAlg::RS256, kid)?))
    };
    let mint = |k: &SigningKey, sub: &str| -> Result<String> {
        Ok(k.sign_jwt(&idp.claims(sub, AUDIENCE, now(), 3600))?)
    };
    let policy = Policy::builder().issuer(idp.issuer()).audience(AUDIENCE).build()?;

    outln!("keyward demo: an identity provider rotates its signing key while two verifiers watch");
    outln!("  mock IdP  {} (OIDC discovery + JWKS, Cache-Control: max-age=900)", idp.issuer());
    outln!("  naive     the key set fetched once at start: what a 15-minute cache holds");
    outln!("  keyward   JwksSource by discovery: refresh on unknown kid, single-flight, limiter,");
    outln!("            removal grace, last-known-good keys (refresh cooldown shortened to 2 s)");

    let k1 = key("2026-11-k1")?;
    idp.publish(&[&k1]);
    let settings = {
        let mut s = SourceSettings::default();
        s.refresh_cooldown = DEMO_COOLDOWN;
        s.negative_cache_ttl = DEMO_COOLDOWN;
        s
    };
    let source = JwksSource::from_issuer(idp.issuer()).settings(settings).build()?;
    source.refresh().await.context("the first fetch from the mock IdP failed")?;
    let keyward = Verifier::builder().keys(source.clone()).policy(policy.clone()).build()?;
    let frozen = source.current().context("no key set after the first fetch")?;
    let naive = Verifier::builder().keys(frozen).policy(policy).build()?;
    let mut tally = Tally { checks: 0, wrong: 0, naive_rejected_valid: 0 };

    outln!("\n1. steady state: the IdP signs with k1");
    let t1 = mint(&k1, "alice")?;
    tally.show(&naive.verify(&t1).await, &keyward.verify(&t1).await, true);

    outln!("\n2. overlap rotation: the IdP publishes k2 beside k1 and signs with k2");
    let k2 = key("2026-11-k2")?;
    idp.publish(&[&k1, &k2]);
    let before = idp.jwks_hits();
    let t2 = mint(&k2, "bob")?;
    tally.show(&naive.verify(&t2).await, &keyward.verify(&t2).await, true);
    outln!("   (keyward fetched the JWKS {} time for the new kid)", idp.jwks_hits() - before);

    outln!("\n3. kid flood: {FLOOD} forged tokens with random kids arrive at once");
    let attacker = SigningKey::generate(SigningAlg::RS256, "x")?;
    let before = idp.jwks_hits();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..FLOOD {
        let token = attacker.sign_with_header(
            &serde_json::json!({"alg": "RS256", "kid": format!("random-{i}-{}", now())}),
            &idp.claims("mallory", AUDIENCE, now(), 3600),
        )?;
        let verifier = keyward.clone();
        tasks.spawn(async move { verifier.verify(&token).await.is_err() });
    }
    let rejected = tasks.join_all().await.into_iter().filter(|r| *r).count();
    let fetches = idp.jwks_hits() - before;
    outln!(
        "   keyward  rejected {rejected} of {FLOOD} (unknown_kid); JWKS fetches caused: {fetches} (limit: 2 per cooldown window)"
    );
    tally.checks += 1;
    if rejected != FLOOD || fetches > 2 {
        tally.wrong += 1;
        outln!("   <-- WRONG");
    }
    outln!("   a k2 token during the flood:");
    let t2b = mint(&k2, "bob")?;
    tally.show(&naive.verify(&t2b).await, &keyward.verify(&t2b).await, true);

    outln!("\n4. the IdP drops k1 while k1 tokens are still in flight");
    idp.publish(&[&k2]);
    source.refresh().await.context("refresh after dropping k1")?;
    outln!(
        "   (keyward refetched: k1 is gone from the published set; it keeps verifying for the 15-minute removal grace)"
    );
    let t1b = mint(&k1, "carol")?;
    tally.show(&naive.verify(&t1b).await, &keyward.verify(&t1b).await, true);

    outln!("\n5. IdP outage: the JWKS endpoint answers 503");
    idp.set_fault(Fault::Status(503));
    match source.refresh().await {
        Ok(()) => outln!("   (refresh unexpectedly succeeded)"),
        Err(e) => outln!("   (refresh failed at stage {}: keyward keeps its last good keys)", e.stage),
    }
    let t2c = mint(&k2, "dave")?;
    tally.show(&naive.verify(&t2c).await, &keyward.verify(&t2c).await, true);
    let health = source.health();
    outln!(
        "   health: {}, {} keys, {} failure(s) since the last success",
        health.state.as_str(),
        health.keys,
        health.consecutive_failures
    );

    outln!("\n6. recovery, then the IdP reuses kid 2026-11-k2 for new key material");
    idp.set_fault(Fault::None);
    tokio::time::sleep(DEMO_COOLDOWN + Duration::from_millis(100)).await;
    let k2_new = Arc::new(SigningKey::generate(SigningAlg::RS256, "2026-11-k2")?);
    idp.publish(&[&k2_new]);
    let t3 = mint(&k2_new, "erin")?;
    tally.show(&naive.verify(&t3).await, &keyward.verify(&t3).await, true);
    outln!("   a token forged under the same kid:");
    let forged = SigningKey::generate(SigningAlg::RS256, "2026-11-k2")?;
    let tf = mint(&forged, "mallory")?;
    tally.show(&naive.verify(&tf).await, &keyward.verify(&tf).await, false);

    outln!(
        "\nsummary: keyward gave {} right verdicts out of {}; the naive cache rejected {} valid tokens; the IdP served {} JWKS requests in all",
        tally.checks - tally.wrong,
        tally.checks,
        tally.naive_rejected_valid,
        idp.jwks_hits()
    );
    Ok(tally.wrong == 0)
}
