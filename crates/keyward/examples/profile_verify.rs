//! A fixed workload for instruction-count profiling of the verification path:
//! `valgrind --tool=callgrind target/release/examples/profile_verify [raw|core|api|parse] [N] [ES256|RS256|EdDSA]`
//! runs N (2,000) times: the bare signature check (`raw`), `verify_with_keys` (`core`),
//! `Verifier::verify` with static keys (`api`) or token parsing alone (`parse`); `core` minus
//! `raw` per token is keyward's own cost.

use std::future::Future;

use keyward::jwk::JwkSet;
use keyward::{Algorithm, Policy, verify_with_keys};
use keyward_idp::{SigningAlg, SigningKey, jwks};
use serde_json::json;
fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let alg = match std::env::args().nth(3).as_deref() {
        Some("RS256") => (SigningAlg::RS256, Algorithm::RS256),
        Some("EdDSA") => (SigningAlg::EdDSA, Algorithm::EdDSA),
        _ => (SigningAlg::ES256, Algorithm::ES256),
    };
    let key = SigningKey::generate(alg.0, "k").unwrap();
    let now = 1_767_225_600i64;
    let token = key.sign_jwt(&json!({"iss":"https://login.example.com/tenant-7f3a/v2.0","sub":"8c1f4e0a-2b7d-4e39-9a51-0d6c3f2e7b14","aud":"api://orders-service","iat":now-60,"nbf":now-60,"exp":now+3540,"jti":"b7e2c9d4-51f0-4a8e-9c3b-6d2f1e0a7c58","azp":"orders-web","scope":"orders:read orders:write","roles":["admin","auditor"],"email":"alice@example.com","tid":"7f3a"})).unwrap();
    let set = std::sync::Arc::new(JwkSet::from_json(jwks([&key]).to_string().as_bytes()).unwrap());
    let policy = Policy::builder()
        .issuer("https://login.example.com/tenant-7f3a/v2.0")
        .audience("api://orders-service")
        .algorithms([alg.1])
        .build()
        .unwrap();
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig = keyward::internal::base64url::decode(sig).unwrap();
    let k = set.keys()[0].clone();
    let verifier = keyward::Verifier::builder()
        .keys(std::sync::Arc::clone(&set))
        .policy(policy.clone())
        .clock(keyward::FixedClock::at(now))
        .build()
        .unwrap();
    let n: usize = std::env::args().nth(2).and_then(|n| n.parse().ok()).unwrap_or(2000);
    for _ in 0..n {
        if mode == "raw" {
            k.verify_signature(alg.1, input.as_bytes(), &sig).unwrap();
        } else if mode == "parse" {
            std::hint::black_box(keyward::internal::UnverifiedToken::parse(&token, 16384).unwrap());
        } else if mode == "api" {
            let mut fut = std::pin::pin!(verifier.verify(&token));
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            match fut.as_mut().poll(&mut cx) {
                std::task::Poll::Ready(result) => drop(std::hint::black_box(result.unwrap())),
                std::task::Poll::Pending => panic!("static keys never wait"),
            }
        } else {
            std::hint::black_box(verify_with_keys(&set, &policy, &token, now).unwrap());
        }
    }
}
