//! Full verification (`verify_with_keys`) against a fixed key set.
//!
//! The key set is a JWKS generated once with keyward-idp (`examples/gen_seeds.rs`) and embedded
//! here; its private halves were discarded, so the fuzzer cannot forge signatures. The oracle:
//! every accepted token's signing input (`header.payload`) must be one of those the generator
//! signed, and verification must be deterministic.
#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use keyward::jwk::JwkSet;
use keyward::{Policy, verify_with_keys};
use libfuzzer_sys::fuzz_target;

/// The public JWKS (RS256, PS256, ES256, ES384, ES512, EdDSA keys and one key without alg).
const JWKS: &str = include_str!("fixture_jwks.json");
/// The signing inputs the generator signed, one per line.
const SIGNED: &str = include_str!("fixture_signed_inputs.txt");
/// 2026-01-01T00:00:00Z: the seed tokens are valid at this instant.
const NOW: i64 = 1_767_225_600;

struct Fixture {
    keys: JwkSet,
    policy: Policy,
    signed: HashSet<&'static str>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let keys = JwkSet::from_json(JWKS.as_bytes()).expect("embedded JWKS parses");
        assert!(keys.set_aside().is_empty(), "every embedded key is usable");
        let policy = Policy::builder().any_audience().build().expect("policy builds");
        Fixture { keys, policy, signed: SIGNED.lines().filter(|l| !l.is_empty()).collect() }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else { return };
    let f = fixture();
    let first = verify_with_keys(&f.keys, &f.policy, token, NOW);
    let second = verify_with_keys(&f.keys, &f.policy, token, NOW);
    match (&first, &second) {
        (Ok(v), Ok(_)) => {
            let signing_input = token.rsplit_once('.').map(|(s, _)| s).unwrap_or_default();
            assert!(f.signed.contains(signing_input), "accepted a token nobody signed: {token}");
            let _ = v.header();
            let _ = v.claims();
            let _ = v.registered();
            if let Some(kid) = v.kid() {
                assert_eq!(v.key().kid(), Some(kid));
            }
        }
        (Err(a), Err(b)) => assert_eq!(a.reason(), b.reason()),
        _ => panic!("verification is not deterministic for {token:?}"),
    }
});
