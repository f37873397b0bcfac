//! Interop: JWTs signed, and public JWKs exported, by independent JOSE
//! implementations (PyJWT, jwcrypto, node `jose`; see `interop/`) must verify
//! with keyward, and yield exactly the claims the generator signed.
//!
//! The token file is `$KEYWARD_INTEROP_FILE` when set, else the committed
//! `tests/data/interop/tokens.json`. Under `CI=true` the variable is required,
//! so CI always checks freshly generated keys and tokens.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keyward::jwk::JwkSet;
use keyward::{FixedClock, Policy, Reason, Verifier};
use serde_json::Value;

const ISSUER: &str = "https://idp.example.test";
const AUDIENCE: &str = "keyward-interop";
const ALGORITHMS: [&str; 10] =
    ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
const MIN_LIBRARIES: usize = 2;

fn interop_file() -> PathBuf {
    match std::env::var_os("KEYWARD_INTEROP_FILE") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but KEYWARD_INTEROP_FILE is not set: CI must regenerate the interop \
                 tokens (python3 interop/gen.py --out \"$tmp/interop.json\") and export \
                 KEYWARD_INTEROP_FILE; see interop/README.md"
            );
            println!(
                "interop: KEYWARD_INTEROP_FILE is not set (no PyJWT/jwcrypto/node run here): using the \
                 committed tokens; .ci/run regenerates them"
            );
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/interop/tokens.json")
        }
    }
}

fn str_field<'a>(entry: &'a Value, name: &str) -> &'a str {
    entry[name].as_str().unwrap_or_else(|| panic!("token entry without string field {name:?}: {entry}"))
}

/// Copies of the token with one byte of its decoded signature flipped: the first, a middle and
/// the last byte.
fn flipped_signatures(token: &str) -> Vec<(&'static str, String)> {
    let (signing_input, sig_b64) = token.rsplit_once('.').expect("compact JWS");
    let sig = URL_SAFE_NO_PAD.decode(sig_b64).expect("base64url signature");
    assert!(!sig.is_empty(), "empty signature in {token}");
    [("first", 0), ("middle", sig.len() / 2), ("last", sig.len() - 1)]
        .into_iter()
        .map(|(which, i)| {
            let mut flipped = sig.clone();
            flipped[i] ^= 0x01;
            (which, format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&flipped)))
        })
        .collect()
}

#[tokio::test]
async fn tokens_from_other_jose_libraries_verify() {
    let path = interop_file();
    let bytes =
        std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read interop file {}: {e}", path.display()));
    let doc: Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));

    let now = doc["now"].as_i64().expect("`now` (unix seconds) in interop file");
    let jwks = serde_json::to_vec(&doc["jwks"]).expect("re-serialise jwks");
    let set = JwkSet::from_json(&jwks).expect("JWKS exported by the generators loads");

    let policy = Policy::builder().issuer(ISSUER).audience(AUDIENCE).build().expect("policy");
    let verifier =
        Verifier::builder().policy(policy).keys(set).clock(FixedClock::at(now)).build().expect("verifier");

    let tokens = doc["tokens"].as_array().expect("`tokens` array");
    let mut per_library: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut rejected = 0usize;

    for entry in tokens {
        let library = str_field(entry, "library");
        let alg = str_field(entry, "alg");
        let kid = str_field(entry, "kid");
        let token = str_field(entry, "token");
        let tag = format!("{library}/{alg} (kid {kid})");
        assert!(
            per_library.entry(library).or_default().insert(alg),
            "{tag}: more than one token for this library and algorithm"
        );

        match verifier.verify(token).await {
            Ok(verified) => {
                let claims = Value::Object(verified.claims().clone());
                if claims != entry["claims"] {
                    failures.push(format!(
                        "{tag}: claims differ\n  keyward:   {claims}\n  generator: {}",
                        entry["claims"]
                    ));
                }
                if verified.alg().as_str() != alg {
                    failures.push(format!("{tag}: verified alg is {:?}", verified.alg()));
                }
                if verified.kid() != Some(kid) {
                    failures.push(format!("{tag}: verified kid is {:?}", verified.kid()));
                }
            }
            Err(err) => failures.push(format!("{tag}: rejected ({}): {err}", err.reason().as_str())),
        }

        // One flipped byte at the start, the middle and the end of the signature.
        for (which, tampered) in flipped_signatures(token) {
            match verifier.verify(&tampered).await {
                Ok(_) => failures.push(format!("{tag}: accepted with {which} signature byte flipped")),
                Err(err) if err.reason() == Reason::InvalidSignature => {
                    assert_eq!(err.reason().as_str(), "invalid_signature");
                    rejected += 1;
                }
                Err(err) => failures.push(format!(
                    "{tag}: {which} signature byte flipped: reason {} instead of invalid_signature ({err})",
                    err.reason().as_str()
                )),
            }
        }
    }

    assert!(
        failures.is_empty(),
        "{} interop failure(s) with {}:\n{}",
        failures.len(),
        path.display(),
        failures.join("\n")
    );

    let complete: Vec<&str> = per_library
        .iter()
        .filter(|(_, algs)| ALGORITHMS.iter().all(|a| algs.contains(a)))
        .map(|(lib, _)| *lib)
        .collect();
    for (lib, algs) in &per_library {
        let missing: Vec<&str> = ALGORITHMS.iter().copied().filter(|a| !algs.contains(a)).collect();
        if !missing.is_empty() {
            eprintln!("interop: note: {lib} lacks {missing:?}");
        }
    }
    assert!(
        complete.len() >= MIN_LIBRARIES,
        "interop file {} covers all {} algorithms from only {:?}; need at least {MIN_LIBRARIES} libraries",
        path.display(),
        ALGORITHMS.len(),
        complete
    );

    let counts: Vec<String> = per_library.iter().map(|(lib, algs)| format!("{lib}={}", algs.len())).collect();
    println!(
        "interop: {} tokens verified ({}), {rejected} tampered rejected, now={now}, file={}",
        tokens.len(),
        counts.join(" "),
        path.display()
    );
}
