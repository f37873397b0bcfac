//! `cargo bench -p keyward --bench verify`
//!
//! For a realistic ~350-byte claims set and each algorithm, measures in one run:
//! - raw `aws-lc-rs`: `ParsedPublicKey::verify_sig` over the same signing inputs (the floor);
//! - keyward `verify_with_keys` (sync core) and `Verifier::verify` (async API, static keys);
//! - keyward `Verifier::verify` through a warm remote `JwksSource` (issue 3's 5 % budget);
//! - `jsonwebtoken::decode` of the same tokens (aws_lc_rs backend), validating what keyward
//!   validates (`exp` and `nbf` with 60 s leeway, `iss`, `aud`, and `exp`/`iss`/`aud` required;
//!   jsonwebtoken has no `iat` check, keyward does);
//! - the raw variant a second time (A/A): its ratio to the first is the noise floor of the run.
//!
//! Every variant cycles through the same 256 distinct tokens (one key, one header, different
//! `sub`/`jti`), as a service sees them: the header is the same text each time, so keyward's
//! per-thread header cache hits as in production, while payloads and signatures all differ.
//! The claims are valid at the wall-clock time of the run, since jsonwebtoken reads the clock.
//!
//! Within each round the variants take turns in blocks of about a millisecond, and each ratio
//! is the median of its per-round ratios, so drift on a shared machine hits both sides of a
//! ratio alike. `KEYWARD_BENCH_MS` sets each variant's share of a round (default 40 ms),
//! `KEYWARD_BENCH_ROUNDS` the rounds (default 40).
#![allow(clippy::disallowed_methods)] // measures real elapsed time, which is the point here

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
use keyward::internal::base64url;
use keyward::jwk::JwkSet;
use keyward::source::JwksSource;
use keyward::{Algorithm, FixedClock, Policy, Verifier, verify_with_keys};
use keyward_idp::{SigningAlg, SigningKey, jwks};
use serde_json::{Value, json};

const ISS: &str = "https://login.example.com/tenant-7f3a/v2.0";
const AUD: &str = "api://orders-service";
/// Distinct tokens per algorithm; every variant cycles through them.
const TOKENS: usize = 256;

/// The claims of token `i`, valid for an hour around `now`.
fn claims(now: i64, i: usize) -> Value {
    json!({
        "iss": ISS, "sub": format!("8c1f4e0a-2b7d-4e39-9a51-{i:012x}"), "aud": AUD,
        "iat": now - 60, "nbf": now - 60, "exp": now + 3540,
        "jti": format!("b7e2c9d4-51f0-4a8e-9c3b-{:012x}", i * 7919), "azp": "orders-web",
        "scope": "orders:read orders:write", "roles": ["admin", "auditor"],
        "email": "alice@example.com", "tid": "7f3a"
    })
}

/// Cycles through `0..TOKENS`, one step per call.
struct Cycle(usize);

impl Cycle {
    fn next(&mut self) -> usize {
        self.0 = (self.0 + 1) % TOKENS;
        self.0
    }
}

/// Polls a future that never waits (static or warm keys) to completion without a runtime.
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// Some bits that differ from run to run, to seed the order of turns.
fn start_nanos() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}

/// How many calls of `f` take about a millisecond: one turn in a [`round`].
fn block_len(f: &mut dyn FnMut()) -> u64 {
    let start = Instant::now();
    for _ in 0..8 {
        f();
    }
    let per_call = start.elapsed().as_secs_f64() / 8.0;
    ((1e-3 / per_call) as u64).max(1)
}

/// One round of about `ms` milliseconds in which the variants take turns, a block of calls
/// each and in a fresh random order every cycle, so that drift in the machine's speed (large on a shared VM) and
/// the place in the sequence hit all of them alike; returns each variant's calls per second
/// within the round.
fn round(ms: u64, blocks: &[u64], variants: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let budget = Duration::from_millis(ms);
    let mut time = vec![0f64; variants.len()];
    let mut calls = vec![0u64; variants.len()];
    let mut order: Vec<usize> = (0..variants.len()).collect();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(start_nanos());
    let start = Instant::now();
    while start.elapsed() < budget {
        // A fresh order every cycle, so that no variant always runs first, or always right
        // after the same other one: with a fixed order, two identical variants measured up to
        // 8 % apart, depending on which variant ran before each.
        for k in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(k, (seed % (k as u64 + 1)) as usize);
        }
        for &i in &order {
            let t = Instant::now();
            for _ in 0..blocks[i] {
                variants[i]();
            }
            time[i] += t.elapsed().as_secs_f64();
            calls[i] += blocks[i];
        }
    }
    calls.iter().zip(&time).map(|(&c, &t)| c as f64 / t).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn raw_key(key: &SigningKey, alg: Algorithm) -> ParsedPublicKey {
    let jwk = key.public_jwk_bare();
    let field = |name: &str| base64url::decode(jwk[name].as_str().unwrap()).unwrap();
    use aws_lc_rs::signature as sig;
    match alg {
        Algorithm::RS256 | Algorithm::PS256 => {
            let params = if alg == Algorithm::RS256 {
                &sig::RSA_PKCS1_2048_8192_SHA256
            } else {
                &sig::RSA_PSS_2048_8192_SHA256
            };
            RsaPublicKeyComponents { n: field("n"), e: field("e") }.to_parsed_public_key(params).unwrap()
        }
        Algorithm::ES256 | Algorithm::ES384 => {
            let mut point = vec![4u8];
            point.extend(field("x"));
            point.extend(field("y"));
            let a = if alg == Algorithm::ES256 {
                &sig::ECDSA_P256_SHA256_FIXED
            } else {
                &sig::ECDSA_P384_SHA384_FIXED
            };
            ParsedPublicKey::new(a, point).unwrap()
        }
        _ => ParsedPublicKey::new(&sig::ED25519, field("x")).unwrap(),
    }
}

fn jsonwebtoken_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        Algorithm::PS256 => jsonwebtoken::Algorithm::PS256,
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::ES384 => jsonwebtoken::Algorithm::ES384,
        _ => jsonwebtoken::Algorithm::EdDSA,
    }
}

/// A loopback JWKS server for the warm remote-source column.
fn serve(runtime: &tokio::runtime::Runtime, body: String) -> String {
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let body = body.clone();
                async move { ([("cache-control", "max-age=900")], body) }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/jwks")
    })
}

fn main() {
    let ms: u64 = std::env::var("KEYWARD_BENCH_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let rounds: usize = std::env::var("KEYWARD_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let cases = [
        (SigningAlg::RS256, Algorithm::RS256, "RS256-2048"),
        (SigningAlg::PS256, Algorithm::PS256, "PS256-2048"),
        (SigningAlg::ES256, Algorithm::ES256, "ES256"),
        (SigningAlg::ES384, Algorithm::ES384, "ES384"),
        (SigningAlg::EdDSA, Algorithm::EdDSA, "EdDSA"),
    ];
    println!(
        "claims: {} bytes; {TOKENS} distinct tokens per algorithm; {rounds} rounds, {ms} ms per variant each, variants interleaved in ~1 ms blocks; median ops/s and median per-round ratios (one thread)",
        claims(now, 0).to_string().len()
    );
    println!(
        "{:<11} {:>9} {:>9} {:>9} {:>9} {:>9} | {:>8} {:>8} {:>8} {:>8} {:>8}",
        "alg",
        "raw",
        "core",
        "verifier",
        "remote",
        "jsonwebt",
        "core/raw",
        "api/raw",
        "rem/api",
        "api/jwt",
        "A/A"
    );
    for (signing, alg, name) in cases {
        let key = SigningKey::generate(signing, format!("bench-{name}")).unwrap();
        let tokens: Vec<String> = (0..TOKENS).map(|i| key.sign_jwt(&claims(now, i)).unwrap()).collect();
        let headers: std::collections::HashSet<&str> =
            tokens.iter().map(|t| t.split('.').next().unwrap()).collect();
        assert_eq!(headers.len(), 1, "one header text, as one key's tokens have");
        let jwks_doc = jwks([&key]).to_string();
        let set = Arc::new(JwkSet::from_json(jwks_doc.as_bytes()).unwrap());
        let policy = Policy::builder().issuer(ISS).audience(AUD).algorithms([alg]).build().unwrap();

        let prepared: Vec<(&str, Vec<u8>)> = tokens
            .iter()
            .map(|t| {
                let (signing_input, sig_b64) = t.rsplit_once('.').unwrap();
                (signing_input, base64url::decode(sig_b64).unwrap())
            })
            .collect();
        let raw = raw_key(&key, alg);

        let verifier = Verifier::builder()
            .keys(Arc::clone(&set))
            .policy(policy.clone())
            .clock(FixedClock::at(now))
            .build()
            .unwrap();
        let url = serve(&runtime, jwks_doc.clone());
        let remote = runtime.block_on(async {
            let source =
                JwksSource::from_url(url).configure(|s| s.background_refresh = false).build().unwrap();
            source.refresh().await.unwrap();
            Verifier::builder()
                .keys(source)
                .policy(policy.clone())
                .clock(FixedClock::at(now))
                .build()
                .unwrap()
        });

        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.public_jwk()).unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        // keyward's policy, as far as jsonwebtoken has it: exp required and checked, nbf
        // checked, both with keyward's default 60 s leeway; iss and aud required and checked.
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken_alg(alg));
        validation.set_issuer(&[ISS]);
        validation.set_audience(&[AUD]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = 60;

        // Sanity: every variant accepts every token, and jsonwebtoken does check exp.
        for (token, (signing_input, signature)) in tokens.iter().zip(&prepared) {
            raw.verify_sig(signing_input.as_bytes(), signature).unwrap();
            verify_with_keys(&set, &policy, token, now).unwrap();
            ready(verifier.verify(token)).unwrap();
            ready(remote.verify(token)).unwrap();
            jsonwebtoken::decode::<Value>(token, &decoding, &validation).unwrap();
        }
        let mut expired_claims = claims(now, 0);
        expired_claims["exp"] = json!(now - 3600);
        let expired = key.sign_jwt(&expired_claims).unwrap();
        assert!(jsonwebtoken::decode::<Value>(&expired, &decoding, &validation).is_err());

        let (mut c_raw, mut c_twin, mut c_core, mut c_api, mut c_remote, mut c_jwt) =
            (Cycle(0), Cycle(0), Cycle(0), Cycle(0), Cycle(0), Cycle(0));
        let mut raw_op = || {
            let (input, sig) = &prepared[c_raw.next()];
            black_box(raw.verify_sig(black_box(input.as_bytes()), black_box(sig))).unwrap();
        };
        let mut twin_op = || {
            let (input, sig) = &prepared[c_twin.next()];
            black_box(raw.verify_sig(black_box(input.as_bytes()), black_box(sig))).unwrap();
        };
        let mut core_op = || {
            black_box(verify_with_keys(&set, &policy, black_box(&tokens[c_core.next()]), now)).unwrap();
        };
        let mut api_op = || {
            black_box(ready(verifier.verify(black_box(&tokens[c_api.next()])))).unwrap();
        };
        let mut remote_op = || {
            black_box(ready(remote.verify(black_box(&tokens[c_remote.next()])))).unwrap();
        };
        let mut jwt_op = || {
            black_box(jsonwebtoken::decode::<Value>(
                black_box(&tokens[c_jwt.next()]),
                &decoding,
                &validation,
            ))
            .unwrap();
        };
        let mut variants: [&mut dyn FnMut(); 6] =
            [&mut raw_op, &mut core_op, &mut api_op, &mut remote_op, &mut jwt_op, &mut twin_op];
        let blocks = variants.each_mut().map(|f| block_len(&mut **f));
        let mut samples: [Vec<f64>; 6] = Default::default();
        for _ in 0..rounds {
            for (sample, rate) in samples.iter_mut().zip(round(ms * 6, &blocks, &mut variants)) {
                sample.push(rate);
            }
        }
        let ratio =
            |a: usize, b: usize| median(samples[a].iter().zip(&samples[b]).map(|(x, y)| x / y).collect());
        let (core_raw, api_raw, rem_api, api_jwt, a_a) =
            (ratio(1, 0), ratio(2, 0), ratio(3, 2), ratio(2, 4), ratio(5, 0));
        let [raw_r, core_r, api_r, remote_r, jwt_r, _] = samples.map(median);
        println!(
            "{name:<11} {raw_r:>9.0} {core_r:>9.0} {api_r:>9.0} {remote_r:>9.0} {jwt_r:>9.0} | {core_raw:>8.3} {api_raw:>8.3} {rem_api:>8.3} {api_jwt:>8.3} {a_a:>8.3}"
        );
    }
}
