//! What the stream benchmark and the `stream_vs_raw` example measure on: 10,000 distinct RS256
//! tokens of one key (same header, distinct payloads), the key set as a file, and the raw
//! baseline's inputs (one pre-parsed aws-lc-rs key, signatures pre-decoded).

use std::path::PathBuf;

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
use keyward::internal::base64url;
use keyward_idp::{SigningAlg, SigningKey, jwks};
use serde_json::json;

/// The verifier's clock (`--now`): every token is valid at it.
pub(crate) const NOW: i64 = 1_767_225_600;
/// Tokens per run.
pub(crate) const TOKENS: usize = 10_000;

/// The tokens, the key set file (in `dir`) and the key.
pub(crate) struct Fixture {
    pub(crate) key: SigningKey,
    pub(crate) jwks_path: PathBuf,
    pub(crate) tokens: Vec<String>,
}

impl Fixture {
    pub(crate) fn new(dir: &std::path::Path) -> Self {
        let key = SigningKey::generate(SigningAlg::RS256, "stream-bench").unwrap();
        let jwks_path = dir.join("jwks.json");
        std::fs::write(&jwks_path, jwks([&key]).to_string()).unwrap();
        let tokens = (0..TOKENS)
            .map(|i| {
                key.sign_jwt(&json!({
                    "iss": "https://idp.example.com", "sub": format!("user-{i}"), "aud": "orders-api",
                    "iat": NOW - 60, "exp": NOW + 3600, "jti": format!("jti-{i:08}"), "scope": "orders:read"
                }))
                .unwrap()
            })
            .collect();
        Self { key, jwks_path, tokens }
    }

    /// The raw baseline's key, parsed once.
    pub(crate) fn raw_key(&self) -> ParsedPublicKey {
        let jwk = self.key.public_jwk_bare();
        let field = |name: &str| base64url::decode(jwk[name].as_str().unwrap()).unwrap();
        RsaPublicKeyComponents { n: field("n"), e: field("e") }
            .to_parsed_public_key(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256)
            .unwrap()
    }

    /// Each token's signing input and decoded signature, for the raw baseline.
    pub(crate) fn raw_inputs(&self) -> Vec<(&str, Vec<u8>)> {
        self.tokens
            .iter()
            .map(|t| {
                let (signed, sig) = t.rsplit_once('.').unwrap();
                (signed, base64url::decode(sig).unwrap())
            })
            .collect()
    }
}
