//! JWKS parsing: `JwkSet::from_json`, then every accessor of every parsed key.
#![no_main]

use keyward::Algorithm;
use keyward::jwk::JwkSet;
use libfuzzer_sys::fuzz_target;

const ALGS: [Algorithm; 11] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::ES512,
    Algorithm::EdDSA,
    Algorithm::Ed25519,
];

fuzz_target!(|data: &[u8]| {
    let Ok(set) = JwkSet::from_json(data) else { return };
    assert_eq!(set.len(), set.keys().len());
    assert_eq!(set.is_empty(), set.keys().is_empty());
    for warning in set.warnings() {
        let _ = warning.as_str();
    }
    for aside in set.set_aside() {
        let _ = aside.problem.reason();
        let _ = aside.problem.as_str();
    }
    for key in set.keys() {
        let _ = key.describe();
        let _ = key.thumbprint_b64();
        let _ = key.public_jwk();
        if let Some(kid) = key.kid() {
            assert!(set.contains_kid(kid), "a usable key's kid must be indexed");
            assert!(set.keys_with_kid(kid).count() >= 1);
        }
        for alg in ALGS {
            let fits = key.supports(alg);
            let _ = set.candidates(key.kid(), alg);
            // No fuzzer-made key may verify an all-zero signature over a fixed message.
            let result = key.verify_signature(alg, b"keyward.fuzz", &[0u8; 64]);
            assert!(result.is_err(), "a zero signature verified under {}", key.describe());
            if !fits {
                assert_eq!(result.unwrap_err().reason(), keyward::Reason::KeyAlgorithmMismatch);
            }
        }
    }
});
