//! Real identity-provider JWKS documents (`tests/data/real-jwks/`; where each was copied from is
//! in that folder's README): each parses with the expected usable and set-aside keys, and
//! selection behaves on their quirks. The files are part of the repository: a missing or
//! unreadable one fails the test, nothing is skipped.
//!
//! The files are public-key snapshots; nothing here can sign for them, so tokens in these tests
//! are signed by fresh keys and assert how keyward selects (or refuses) the real key by `kid`.

use std::path::PathBuf;
use std::sync::OnceLock;

use keyward::jwk::{JwkSet, KeyProblem};
use keyward::{Algorithm, Policy, Reason, verify_with_keys};
use keyward_idp::{SigningAlg, SigningKey};
use serde_json::{Value, json};

const NOW: i64 = 1_767_225_600;

/// The corpus directory, committed with the tests.
fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/real-jwks")
}

fn read(dir: &std::path::Path, file: &str) -> Vec<u8> {
    let path = dir.join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!("cannot read real-JWKS file {}: {e} (it is committed in the repository)", path.display())
    })
}

fn load(dir: &std::path::Path, file: &str) -> JwkSet {
    JwkSet::from_json(&read(dir, file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// What each file must parse into: usable kids in document order, and set-aside (kid, problem).
struct Expected {
    file: &'static str,
    usable: &'static [&'static str],
    set_aside: &'static [(&'static str, KeyProblem)],
}

const EXPECTED: [Expected; 8] = [
    Expected {
        file: "auth0.json",
        usable: &["QjYxQ0U1QTVCMzk4RTJFNEIxMERGN0NBOUVBQTk1NDEzRTcwNTVBMg", "Lk-5NnjByFf99cg0nxMdi"],
        set_aside: &[],
    },
    Expected {
        file: "cognito.json",
        usable: &[
            "vyVQH7UMjwYboVvyFf+zd4KHZfgc+RtmU/A2vHhgITI=",
            "fUyIG0h6R5HFGfHDV8uebcRXldQ09dCZXbFKf6zy1rs=",
        ],
        set_aside: &[],
    },
    Expected {
        file: "entra-common.json",
        usable: &[
            "PoVKeirIOvmTyLQ9G9BenBwos7k",
            "JYhAcTPMZ_LX6DBlOWQ7Hn0NeXE",
            "wf9rj3EkQvzKpxDG-mJn1gALi6U",
            "dwd9Kc_5AQRdu0kNDRn5H5_ejaM",
            "4pxhphrFjooBXV6t0JO_kpTQNl8",
            "dd55f7QP3HZky-ekQBDWKe7ADN0",
        ],
        set_aside: &[],
    },
    Expected {
        file: "github-actions.json",
        usable: &[
            "cc413527-173f-5a05-976e-9c52b1d7b431",
            "38826b17-6a30-5f9b-b169-8beb8202f723",
            "38E9B30B3A023A1B72309921A69A42FCC496C42C",
            "4F3E9AD8C9A6F5EB3173006F4FA630E28F43DCE9",
        ],
        set_aside: &[],
    },
    Expected {
        file: "google.json",
        usable: &["f451345fad08101bfb345cf642a2da9267b9ebeb", "713fd68c966e29380981edc0164a2f6c06c5702a"],
        set_aside: &[],
    },
    Expected {
        file: "keycloak.json",
        usable: &["nB0vgzwAcgJmjXwQZSzBMNkhoCaH4fvSwx5GC8Jq93c"],
        set_aside: &[("Q2O_f0Z7hVL1WUxKQbChyWK_FzQK-qRZh4Kg9mxxt_I", KeyProblem::NotForSigning)],
    },
    Expected {
        file: "kubernetes.json",
        usable: &[],
        set_aside: &[
            ("3mNcULfgtWECYyZWY5ow1rOHjiRwEZHx28HQcRec3Ew", KeyProblem::Weak),
            ("G-cZ10iKJqrXhR15ivI7Lg2q_cuL0zN9ouL0vF67FLc", KeyProblem::Weak),
        ],
    },
    Expected {
        file: "okta.json",
        usable: &[
            "sljES1Bh0VMGwUpPfFunCVAzvLRdea7WluQfeV6zWTQ",
            "TgT2Cxt-D-sVMlgTm3On7DLee8ljXgYhdzkrPkTc4sY",
        ],
        set_aside: &[],
    },
];

/// One RSA key, generated once per test binary, standing in for a foreign signer.
fn signer() -> &'static SigningKey {
    static SIGNER: OnceLock<SigningKey> = OnceLock::new();
    SIGNER.get_or_init(|| SigningKey::generate(SigningAlg::RS256, "foreign").unwrap())
}

/// A token signed by the foreign key whose header names `kid`.
fn token_naming(kid: &str) -> String {
    let signer = signer();
    let claims = json!({"iss": "https://idp.example.test", "aud": "api", "exp": NOW + 600});
    signer.sign_with_header(&json!({"alg": "RS256", "kid": kid}), &claims).unwrap()
}

fn open_policy() -> Policy {
    Policy::builder().any_audience().build().unwrap()
}

#[test]
fn every_file_parses_with_the_expected_usable_and_set_aside_keys() {
    let dir = corpus_dir();
    // Every JSON file in the corpus has an expectation, and every expectation a file.
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut expected_files: Vec<&str> = EXPECTED.iter().map(|e| e.file).collect();
    expected_files.sort_unstable();
    assert_eq!(files, expected_files, "the corpus and this test's table disagree");

    let mut totals = (0, 0);
    for expected in &EXPECTED {
        let file = expected.file;
        let bytes = read(&dir, file);
        let document: Value = serde_json::from_slice(&bytes).unwrap();
        let entries = document["keys"].as_array().unwrap().len();
        let set = JwkSet::from_json(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));

        let usable: Vec<&str> = set.keys().iter().map(|k| k.kid().unwrap()).collect();
        assert_eq!(usable, expected.usable, "{file}: usable keys");
        let aside: Vec<(&str, KeyProblem)> =
            set.set_aside().iter().map(|k| (k.kid.as_deref().unwrap(), k.problem)).collect();
        assert_eq!(aside, expected.set_aside, "{file}: set-aside keys");
        assert_eq!(usable.len() + aside.len(), entries, "{file}: every entry is accounted for");
        // No private members, no duplicate kids, no kid-less keys in any of them.
        assert!(set.warnings().is_empty(), "{file}: {:?}", set.warnings());
        for key in set.keys() {
            assert_eq!(key.bits(), 2048, "{file}: {}", key.describe());
            assert!(set.contains_kid(key.kid().unwrap()));
        }
        totals.0 += usable.len();
        totals.1 += aside.len();
    }
    assert_eq!(totals, (19, 3));
}

#[test]
fn entra_keys_without_alg_are_usable_by_family_and_carry_their_issuer() {
    let dir = corpus_dir();
    let set = load(&dir, "entra-common.json");
    let templated = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let msa = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0";
    let issuers: Vec<Option<&str>> = set.keys().iter().map(|k| k.issuer()).collect();
    assert_eq!(
        issuers,
        [Some(templated), Some(templated), Some(templated), Some(templated), Some(msa), Some(msa)]
    );
    for key in set.keys() {
        assert_eq!(key.alg(), None, "{}", key.describe());
        for alg in [Algorithm::RS256, Algorithm::RS384, Algorithm::RS512, Algorithm::PS256, Algorithm::PS512]
        {
            assert!(key.supports(alg), "{} must support {alg} by family", key.describe());
        }
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            assert!(!key.supports(alg), "{} must not support {alg}", key.describe());
        }
        // Non-standard members are kept, not refused.
        let jwk = key.public_jwk();
        assert!(
            jwk.contains_key("cloud_instance_name") && jwk.contains_key("x5c") && jwk.contains_key("x5t")
        );
    }
    let clouds: Vec<&str> =
        set.keys().iter().map(|k| k.public_jwk()["cloud_instance_name"].as_str().unwrap()).collect();
    assert_eq!(clouds.iter().filter(|c| **c == "microsoftonline.us").count(), 2);

    // Selection by kid works for every alg-less key; the foreign signature then fails.
    for kid in ["PoVKeirIOvmTyLQ9G9BenBwos7k", "dd55f7QP3HZky-ekQBDWKe7ADN0"] {
        let err = verify_with_keys(&set, &open_policy(), &token_naming(kid), NOW).unwrap_err();
        assert_eq!(err.reason(), Reason::InvalidSignature, "{kid}: {err}");
    }
}

#[test]
fn keycloak_enc_key_is_set_aside_and_the_sig_key_is_usable() {
    let dir = corpus_dir();
    let set = load(&dir, "keycloak.json");
    let sig = &set.keys()[0];
    assert_eq!(sig.alg(), Some(Algorithm::RS256));
    assert!(sig.public_jwk().contains_key("x5t#S256"), "unknown members are kept");
    let enc = &set.set_aside()[0];
    assert_eq!(enc.kty.as_deref(), Some("RSA"));
    assert!(enc.detail.contains("enc"), "{}", enc.detail);

    let err =
        verify_with_keys(&set, &open_policy(), &token_naming(enc.kid.as_deref().unwrap()), NOW).unwrap_err();
    assert_eq!(err.reason(), Reason::KeyNotForSigning, "{err}");
    let err = verify_with_keys(&set, &open_policy(), &token_naming(sig.kid().unwrap()), NOW).unwrap_err();
    assert_eq!(err.reason(), Reason::InvalidSignature, "{err}");
    // Without a kid, only the sig key is a candidate.
    let token = signer().sign_with_header(&json!({"alg": "RS256"}), &json!({"exp": NOW + 600})).unwrap();
    let err = verify_with_keys(&set, &open_policy(), &token, NOW).unwrap_err();
    assert_eq!(err.reason(), Reason::InvalidSignature, "{err}");
}

#[test]
fn kubernetes_512_bit_keys_are_set_aside_as_weak() {
    let dir = corpus_dir();
    let set = load(&dir, "kubernetes.json");
    assert!(set.is_empty());
    for aside in set.set_aside() {
        assert!(aside.detail.contains("512 bits"), "{}", aside.detail);
        let err = verify_with_keys(&set, &open_policy(), &token_naming(aside.kid.as_deref().unwrap()), NOW)
            .unwrap_err();
        assert_eq!(err.reason(), Reason::WeakKey, "{err}");
    }
    let err = verify_with_keys(&set, &open_policy(), &token_naming("not-in-the-set"), NOW).unwrap_err();
    assert_eq!(err.reason(), Reason::UnknownKid, "{err}");
}

#[test]
fn cognito_kids_with_base64_punctuation_are_kept_verbatim() {
    let dir = corpus_dir();
    let set = load(&dir, "cognito.json");
    let kid = "vyVQH7UMjwYboVvyFf+zd4KHZfgc+RtmU/A2vHhgITI=";
    assert!(set.contains_kid(kid));
    assert!(set.contains_kid("fUyIG0h6R5HFGfHDV8uebcRXldQ09dCZXbFKf6zy1rs="));
    // No normalisation: URL-safe, unpadded, percent-encoded or case-folded spellings are other kids.
    let variants = [
        "vyVQH7UMjwYboVvyFf-zd4KHZfgc-RtmU_A2vHhgITI=",
        "vyVQH7UMjwYboVvyFf+zd4KHZfgc+RtmU/A2vHhgITI",
        "vyVQH7UMjwYboVvyFf%2Bzd4KHZfgc%2BRtmU%2FA2vHhgITI%3D",
        "vyVQH7UMjwYboVvyFf zd4KHZfgc RtmU/A2vHhgITI=",
        "VYVQH7UMJWYBOVVYFF+ZD4KHZFGC+RTMU/A2VHHGITI=",
    ];
    for variant in variants {
        assert!(!set.contains_kid(variant), "{variant}");
        let err = verify_with_keys(&set, &open_policy(), &token_naming(variant), NOW).unwrap_err();
        assert_eq!(err.reason(), Reason::UnknownKid, "{variant}: {err}");
    }
    // The exact kid selects the real key (whose signature a foreign token then fails).
    let err = verify_with_keys(&set, &open_policy(), &token_naming(kid), NOW).unwrap_err();
    assert_eq!(err.reason(), Reason::InvalidSignature, "{err}");
    assert_eq!(set.keys_with_kid(kid).count(), 1);
}

#[test]
fn alg_bound_keys_verify_only_their_algorithm() {
    let dir = corpus_dir();
    let ps_signer = SigningKey::generate(SigningAlg::PS256, "x").unwrap();
    for file in ["auth0.json", "cognito.json", "github-actions.json", "google.json", "okta.json"] {
        let set = load(&dir, file);
        for key in set.keys() {
            assert_eq!(key.alg(), Some(Algorithm::RS256), "{file}: {}", key.describe());
            assert!(key.supports(Algorithm::RS256));
            assert!(!key.supports(Algorithm::PS256), "{file}: an RS256-bound key must not verify PS256");
            // A PS256 token naming the key is refused before any cryptography.
            let header = json!({"alg": "PS256", "kid": key.kid().unwrap()});
            let token = ps_signer.sign_with_header(&header, &json!({"exp": NOW + 600})).unwrap();
            let err = verify_with_keys(&set, &open_policy(), &token, NOW).unwrap_err();
            assert_eq!(err.reason(), Reason::KeyAlgorithmMismatch, "{file}: {err}");
        }
    }
}
