//! What a decision costs: a token served from the verified-token cache against an uncached
//! RS256 verification (the library alone, and the gateway with its cache off), over many
//! distinct tokens. Prints nanoseconds per decision and the ratio; the target is a hit at
//! least 20× cheaper than an uncached RS256 verification.
//!
//! `cargo bench -p keyward-serve --bench decision` (a `harness = false` bench: no criterion,
//! plain timing over several rounds, best round reported).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method, Uri};
use keyward::source::{JwksSource, SourceSettings};
use keyward::{Clock, Policy, SystemClock, Verifier};
use keyward_idp::{MockIdp, SigningAlg, SigningKey};
use keyward_serve::Gateway;
use keyward_serve::config::{Config, QuickStart};
use serde_json::json;

const AUD: &str = "orders-api";
/// Distinct tokens (`DECISION_TOKENS` overrides): many, so the cache is not all in L1.
const TOKENS: usize = 2_000;
const ROUNDS: usize = 5;

/// Wall-clock time for a benchmark (the only place it is read here).
#[allow(clippy::disallowed_methods)] // a benchmark measures real elapsed time
fn stopwatch() -> std::time::Instant {
    std::time::Instant::now()
}

/// Best-of-`ROUNDS` nanoseconds per call of `each` over `items`.
fn per_call<T>(items: &[T], mut each: impl FnMut(&T)) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let started = stopwatch();
        for item in items {
            each(item);
        }
        let ns = started.elapsed().as_nanos() as f64 / items.len() as f64;
        best = best.min(ns);
    }
    best
}

fn config(issuer: &str, cache: bool) -> Config {
    let mut config = Config::quick_start(QuickStart {
        issuer: issuer.to_owned(),
        audiences: vec![AUD.to_owned()],
        source: SourceSettings::default(),
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
    })
    .unwrap_or_else(|e| panic!("{e}"));
    config.token_cache.enabled = cache;
    config.token_cache.max_entries = 100_000;
    config
}

async fn ready(gateway: &Gateway) {
    for _ in 0..400 {
        if gateway.readiness().ready {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the gateway never fetched its keys");
}

fn main() {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(async {
        let idp = MockIdp::start().await.unwrap_or_else(|e| panic!("{e}"));
        let key = Arc::new(SigningKey::generate(SigningAlg::RS256, "rs1").unwrap_or_else(|e| panic!("{e}")));
        idp.publish(&[&key]);
        let now = SystemClock.now_unix();
        let count = std::env::var("DECISION_TOKENS").ok().and_then(|n| n.parse().ok()).unwrap_or(TOKENS);
        let tokens: Vec<String> = (0..count)
            .map(|i| {
                let mut claims = idp.claims(&format!("user-{i}"), AUD, now, 3600);
                claims["jti"] = json!(format!("jti-{i}"));
                claims["scope"] = json!("openid orders:read");
                key.sign_jwt(&claims).unwrap_or_else(|e| panic!("{e}"))
            })
            .collect();
        let requests: Vec<HeaderMap> = tokens
            .iter()
            .map(|t| {
                let mut headers = HeaderMap::new();
                let value = HeaderValue::from_str(&format!("Bearer {t}")).unwrap_or_else(|e| panic!("{e}"));
                headers.insert(AUTHORIZATION, value);
                headers
            })
            .collect();
        let (peer, uri) = (IpAddr::V4(Ipv4Addr::LOCALHOST), Uri::from_static("/auth"));

        // The library alone: an uncached RS256 verification (keys already fetched).
        let source = JwksSource::from_url(idp.jwks_uri()).build().unwrap_or_else(|e| panic!("{e}"));
        let policy =
            Policy::builder().issuer(idp.issuer()).audience(AUD).build().unwrap_or_else(|e| panic!("{e}"));
        let verifier =
            Verifier::builder().keys(source).policy(policy).build().unwrap_or_else(|e| panic!("{e}"));
        let _ = verifier.verify(&tokens[0]).await;
        let library = per_call(&tokens, |t| {
            let outcome = verifier.verify_now(t).unwrap_or_else(|_| panic!("a fetch was needed"));
            assert!(outcome.is_ok());
            black_box(outcome.ok());
        });

        // The gateway with its cache off: every decision verifies.
        let uncached = Gateway::new(config(idp.issuer(), false)).unwrap_or_else(|e| panic!("{e}"));
        ready(&uncached).await;
        let mut gateway_uncached = f64::MAX;
        for _ in 0..ROUNDS {
            let started = stopwatch();
            for headers in &requests {
                let response = uncached.check(peer, &Method::GET, &uri, headers).await;
                assert_eq!(response.status(), 200);
                black_box(response);
            }
            gateway_uncached = gateway_uncached.min(started.elapsed().as_nanos() as f64 / count as f64);
        }

        // The gateway with its cache on, warmed: every decision is a hit.
        let cached = Gateway::new(config(idp.issuer(), true)).unwrap_or_else(|e| panic!("{e}"));
        ready(&cached).await;
        for headers in &requests {
            assert_eq!(cached.check(peer, &Method::GET, &uri, headers).await.status(), 200);
        }
        let mut gateway_cached = f64::MAX;
        // `DECISION_HIT_ROUNDS=2000` makes the hit loop long enough to profile on its own.
        let hit_rounds =
            std::env::var("DECISION_HIT_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(ROUNDS * 4);
        for _ in 0..hit_rounds {
            let started = stopwatch();
            for headers in &requests {
                let response = cached.check(peer, &Method::GET, &uri, headers).await;
                black_box(response);
            }
            gateway_cached = gateway_cached.min(started.elapsed().as_nanos() as f64 / count as f64);
        }
        let sha256 = per_call(&tokens, |t| {
            black_box(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, t.as_bytes()));
        });
        let stats = cached.cache_stats();
        assert_eq!(stats.misses, count as u64, "every measured decision was a hit");

        println!("decision cost, {count} distinct RS256 (2048-bit) tokens, best of {ROUNDS}+ rounds:");
        println!("  library verify_now (uncached RS256)     {library:>10.0} ns");
        println!("  gateway decision, cache off             {gateway_uncached:>10.0} ns");
        println!("  gateway decision, cache hit             {gateway_cached:>10.0} ns");
        println!("    of which SHA-256 of the token ({} B) {sha256:>10.0} ns", tokens[0].len());
        println!(
            "  ratio: uncached verification / hit     {:>10.1}x (target >= 20x)",
            library / gateway_cached
        );
        println!("  ratio: gateway cache off / cache hit   {:>10.1}x", gateway_uncached / gateway_cached);
    });
}
