//! `cargo bench -p keyward-tower --bench layer`
//!
//! The layer's overhead on the hot path: RS256-2048 tokens (distinct: each has its own `jti`,
//! so its own signature), a ~300-byte claims set, a trivial inner service. Variants, each
//! building the same `http::Request` with an `Authorization: Bearer` header:
//! - `direct`: read the header and call `verify_with_keys` (the floor the issue names);
//! - `layer`: `KeywardLayer` over static keys (bearer parsing, `verify_now`, SHA-256 of the
//!   token, claims into extensions, the named response future);
//! - `remote`: `KeywardLayer` over a warm remote `JwksSource`.
//!
//! As `crates/keyward/benches/verify.rs`: variants take turns in ~1 ms blocks in a fresh random
//! order, and each ratio is the median of per-round ratios, so machine drift hits both sides.
//! `KEYWARD_BENCH_MS` (default 40) and `KEYWARD_BENCH_ROUNDS` (default 40) tune it.
#![allow(clippy::disallowed_methods, missing_docs)] // measures real elapsed time, which is the point

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use http::{Request, Response};
use keyward::jwk::JwkSet;
use keyward::source::JwksSource;
use keyward::{FixedClock, Policy, Verifier, verify_with_keys};
use keyward_idp::{SigningAlg, SigningKey, jwks};
use keyward_tower::{AuthOutcome, KeywardLayer};
use serde_json::{Value, json};
use tower::{Layer, Service, service_fn};

const NOW: i64 = 1_767_225_600;
const ISS: &str = "https://login.example.com/tenant-7f3a/v2.0";
const AUD: &str = "api://orders-service";
const TOKENS: usize = 64;

fn claims(i: usize) -> Value {
    json!({
        "iss": ISS, "sub": "8c1f4e0a-2b7d-4e39-9a51-0d6c3f2e7b14", "aud": AUD,
        "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 3540,
        "jti": format!("b7e2c9d4-51f0-4a8e-9c3b-6d2f1e0a{i:04x}"), "azp": "orders-web",
        "scope": "orders:read orders:write", "roles": ["admin", "auditor"],
        "email": "alice@example.com", "tid": "7f3a"
    })
}

/// Polls a future that never waits to completion without a runtime.
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

fn start_nanos() -> u32 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos())
}

fn block_len(f: &mut dyn FnMut()) -> u64 {
    let start = Instant::now();
    for _ in 0..8 {
        f();
    }
    let per_call = start.elapsed().as_secs_f64() / 8.0;
    ((1e-3 / per_call) as u64).max(1)
}

fn round(ms: u64, blocks: &[u64], variants: &mut [&mut dyn FnMut()]) -> Vec<f64> {
    let budget = Duration::from_millis(ms);
    let mut time = vec![0f64; variants.len()];
    let mut calls = vec![0u64; variants.len()];
    let mut order: Vec<usize> = (0..variants.len()).collect();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(start_nanos());
    let start = Instant::now();
    while start.elapsed() < budget {
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

fn request(token: &str) -> Request<()> {
    Request::get("/orders").header(http::header::AUTHORIZATION, format!("Bearer {token}")).body(()).unwrap()
}

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
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();

    let key = SigningKey::generate(SigningAlg::RS256, "bench-rs256").unwrap();
    let tokens: Vec<String> = (0..TOKENS).map(|i| key.sign_jwt(&claims(i)).unwrap()).collect();
    let jwks_doc = jwks([&key]).to_string();
    let set = Arc::new(JwkSet::from_json(jwks_doc.as_bytes()).unwrap());
    let policy =
        Policy::builder().issuer(ISS).audience(AUD).algorithms([keyward::Algorithm::RS256]).build().unwrap();
    let verifier = Verifier::builder()
        .keys(Arc::clone(&set))
        .policy(policy.clone())
        .clock(FixedClock::at(NOW))
        .build()
        .unwrap();
    let url = serve(&runtime, jwks_doc);
    let remote = runtime.block_on(async {
        let source = JwksSource::from_url(url).configure(|s| s.background_refresh = false).build().unwrap();
        source.refresh().await.unwrap();
        Verifier::builder().keys(source).policy(policy.clone()).clock(FixedClock::at(NOW)).build().unwrap()
    });
    // The inner service checks that the claims arrived, as a handler would.
    let inner = service_fn(|request: Request<()>| {
        let verified = matches!(request.extensions().get::<AuthOutcome>(), Some(AuthOutcome::Verified(_)));
        std::future::ready(Ok::<_, Infallible>(Response::new(if verified {
            String::new()
        } else {
            "no".to_owned()
        })))
    });
    let mut layered = KeywardLayer::new(verifier).layer(inner);
    let mut remote_layered = KeywardLayer::new(remote).layer(inner);
    let _guard = runtime.enter();

    // Sanity: every variant accepts every token.
    for token in &tokens {
        verify_with_keys(&set, &policy, token, NOW).unwrap();
        assert!(ready(layered.call(request(token))).unwrap().body().is_empty());
        assert!(ready(remote_layered.call(request(token))).unwrap().body().is_empty());
    }

    let (mut a, mut b, mut c, mut d) = (0usize, 0usize, 0usize, 0usize);
    let mut bare_op = || {
        a = (a + 1) % TOKENS;
        black_box(verify_with_keys(&set, &policy, black_box(&tokens[a]), NOW)).unwrap();
    };
    let mut direct_op = || {
        b = (b + 1) % TOKENS;
        let request = black_box(request(&tokens[b]));
        let header = request.headers().get(http::header::AUTHORIZATION).unwrap().to_str().unwrap();
        let token = header.strip_prefix("Bearer ").unwrap();
        black_box(verify_with_keys(&set, &policy, token, NOW)).unwrap();
    };
    let mut layer_op = || {
        c = (c + 1) % TOKENS;
        black_box(ready(layered.call(black_box(request(&tokens[c]))))).unwrap();
    };
    let mut remote_op = || {
        d = (d + 1) % TOKENS;
        black_box(ready(remote_layered.call(black_box(request(&tokens[d]))))).unwrap();
    };
    let mut variants: [&mut dyn FnMut(); 4] = [&mut bare_op, &mut direct_op, &mut layer_op, &mut remote_op];
    let blocks = variants.each_mut().map(|f| block_len(&mut **f));
    let mut samples: [Vec<f64>; 4] = Default::default();
    for _ in 0..rounds {
        for (sample, rate) in samples.iter_mut().zip(round(ms * 4, &blocks, &mut variants)) {
            sample.push(rate);
        }
    }
    let ratio = |x: usize, y: usize| median(samples[x].iter().zip(&samples[y]).map(|(p, q)| p / q).collect());
    let (layer_direct, remote_direct, layer_bare) = (ratio(2, 1), ratio(3, 1), ratio(2, 0));
    let [bare_r, direct_r, layer_r, remote_r] = samples.map(median);
    println!(
        "RS256-2048, {TOKENS} distinct tokens, {rounds} rounds, {ms} ms per variant each, interleaved ~1 ms blocks; median ops/s, median per-round ratios (one thread)"
    );
    println!(
        "{:>10} {:>10} {:>10} {:>10} | {:>13} {:>14} {:>11}",
        "bare", "direct", "layer", "remote", "layer/direct", "remote/direct", "layer/bare"
    );
    println!(
        "{bare_r:>10.0} {direct_r:>10.0} {layer_r:>10.0} {remote_r:>10.0} | {layer_direct:>13.3} {remote_direct:>14.3} {layer_bare:>11.3}"
    );
}
