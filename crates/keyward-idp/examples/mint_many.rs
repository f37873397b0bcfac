//! Writes a JWKS and N distinct RS256 tokens (one per line), for profiling `verify --stream`.
//!
//! `cargo run --release -p keyward-idp --example mint_many -- DIR N`

use std::io::Write;
use std::path::PathBuf;

use keyward_idp::{SigningAlg, SigningKey, jwks};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| ".".to_owned()));
    let n: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let key = SigningKey::generate(SigningAlg::RS256, "many")?;
    std::fs::write(dir.join("jwks.json"), jwks([&key]).to_string())?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join("tokens.txt"))?);
    for i in 0..n {
        let claims = json!({"iss": "https://idp.example.com", "sub": format!("user-{i}"), "aud": "orders-api",
            "iat": 1_767_225_540, "exp": 1_767_229_200, "jti": format!("jti-{i:08}")});
        writeln!(out, "{}", key.sign_jwt(&claims)?)?;
    }
    Ok(())
}
