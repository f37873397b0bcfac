//! End-to-end behaviour of the public verification API.

use keyward::jwk::JwkSet;
use keyward::{Algorithm, FixedClock, Policy, Reason, Verifier};
use keyward_idp::{SigningAlg, SigningKey, jwks};
use serde_json::json;

const NOW: i64 = 1_767_225_600;
const ISS: &str = "https://idp.example.test";

fn claims() -> serde_json::Value {
    json!({"iss": ISS, "sub": "alice", "aud": "api", "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 600})
}

fn verifier(keys: &[&SigningKey]) -> Verifier {
    let set = JwkSet::from_json(jwks(keys.iter().copied()).to_string().as_bytes()).unwrap();
    let policy = Policy::builder().issuer(ISS).audience("api").build().unwrap();
    Verifier::builder().keys(set).policy(policy).clock(FixedClock::at(NOW)).build().unwrap()
}

#[tokio::test]
async fn every_algorithm_round_trips() {
    for alg in SigningAlg::ALL {
        let key = SigningKey::generate(alg, format!("k-{alg}")).unwrap();
        let v = verifier(&[&key]);
        let token = key.sign_jwt(&claims()).unwrap();
        let verified = v.verify(&token).await.unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(verified.alg().as_str(), alg.as_str());
        assert_eq!(verified.kid(), Some(key.kid()));
        assert_eq!(verified.claims()["sub"], "alice");
        assert_eq!(verified.registered().sub.as_deref(), Some("alice"));
        // The second time the header comes from the verifier's header cache: same answers.
        let again = v.verify(&token).await.unwrap();
        assert_eq!((again.alg(), again.kid(), again.typ()), (verified.alg(), verified.kid(), verified.typ()));
        assert_eq!((again.header(), again.registered()), (verified.header(), verified.registered()));

        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 5;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let err = v.verify(std::str::from_utf8(&tampered).unwrap()).await.unwrap_err();
        assert_eq!(err.reason(), Reason::InvalidSignature, "{alg}: {err}");
    }
}

#[tokio::test]
async fn claims_are_checked_after_the_signature() {
    let key = SigningKey::generate(SigningAlg::ES256, "k1").unwrap();
    let v = verifier(&[&key]);
    let cases = [
        (json!({"iss": ISS, "aud": "api", "exp": NOW - 61}), Reason::Expired),
        (json!({"iss": ISS, "aud": "api", "exp": NOW + 600, "nbf": NOW + 61}), Reason::NotYetValid),
        (json!({"iss": ISS, "aud": "api", "exp": NOW + 600, "iat": NOW + 61}), Reason::IssuedInFuture),
        (json!({"iss": "https://other", "aud": "api", "exp": NOW + 600}), Reason::IssuerMismatch),
        (json!({"iss": ISS, "aud": "other", "exp": NOW + 600}), Reason::AudienceMismatch),
        (json!({"iss": ISS, "aud": "api"}), Reason::MissingClaim),
        (json!({"iss": ISS, "aud": "api", "exp": "1767226200"}), Reason::InvalidClaim),
    ];
    for (claims, reason) in cases {
        let token = key.sign_jwt(&claims).unwrap();
        let err = v.verify(&token).await.unwrap_err();
        assert_eq!(err.reason(), reason, "{claims}: {err}");
    }
    let token = key.sign_jwt(&json!({"iss": ISS, "aud": "api", "exp": NOW - 61})).unwrap();
    let err = v.verify(&token).await.unwrap_err();
    assert!(err.to_string().contains("61 s ago, leeway 60 s"), "{err}");
    assert_eq!(err.times().unwrap().claim, NOW - 61);
    assert_eq!(err.kid(), Some("k1"));
    assert_eq!(err.alg(), Some(Algorithm::ES256));
}

/// Tower layers and gateways need a `Send` verification future and a `Send + Sync` verifier.
#[test]
fn verifier_and_its_future_are_thread_safe() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync::<Verifier>();
    assert_send_sync::<keyward::source::JwksSource>();
    let key = SigningKey::generate(SigningAlg::EdDSA, "k").unwrap();
    let v = verifier(&[&key]);
    let token = key.sign_jwt(&claims()).unwrap();
    let future = v.verify(&token);
    assert_send(&future);
    drop(future);
}
