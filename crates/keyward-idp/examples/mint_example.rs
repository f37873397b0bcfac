//! Regenerates `examples/`: a JWKS with two keys and tokens signed by each.
//!
//! `cargo run -p keyward-idp --example mint_example -- examples/`

use std::path::PathBuf;

use keyward_idp::{SigningAlg, SigningKey, jwks};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "examples".to_owned()));
    let rsa = SigningKey::generate(SigningAlg::RS256, "example-rsa-2026")?;
    let ec = SigningKey::generate(SigningAlg::ES256, "example-ec-2026")?;
    // Issued 2026-01-01T00:00:00Z, valid for ten years, so the example keeps verifying.
    let iat = 1_767_225_600_i64;
    let claims = |sub: &str| {
        json!({"iss": "https://idp.example.com", "sub": sub, "aud": "orders-api", "iat": iat, "nbf": iat,
               "exp": iat + 10 * 365 * 86_400, "scope": "orders:read", "tid": "example"})
    };
    std::fs::write(dir.join("jwks.json"), serde_json::to_string_pretty(&jwks([&rsa, &ec]))? + "\n")?;
    std::fs::write(dir.join("token-rs256.jwt"), rsa.sign_jwt(&claims("alice"))? + "\n")?;
    std::fs::write(dir.join("token-es256.jwt"), ec.sign_jwt(&claims("bob"))? + "\n")?;
    let expired = json!({"iss": "https://idp.example.com", "sub": "carol", "aud": "orders-api",
                         "iat": iat, "exp": iat + 3600});
    std::fs::write(dir.join("token-expired.jwt"), rsa.sign_jwt(&expired)? + "\n")?;
    Ok(())
}
