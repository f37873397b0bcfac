//! `cargo bench -p keyward-cli --bench stream`
//!
//! `keyward verify --stream --json` over 10,000 distinct RS256 tokens, against raw `aws-lc-rs`
//! verification of the same tokens (pre-parsed key, signatures pre-decoded, one thread), in
//! one run. The CLI verifies lines that are already buffered on every core, in order. Two modes:
//! - batch: all tokens piped at once (the audit-a-log case);
//! - lockstep: write one token, wait for its answer, then the next (proves per-line answers,
//!   and measures the round trip).
//!
//! The CLI times include process start-up and loading the key set.
#![allow(clippy::disallowed_methods)] // measures real elapsed time, which is the point here

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
use keyward::internal::base64url;
use keyward_idp::{SigningAlg, SigningKey, jwks};
use serde_json::json;

const NOW: i64 = 1_767_225_600;
const TOKENS: usize = 10_000;
const LOCKSTEP_TOKENS: usize = 2_000;

fn main() {
    let bin = env!("CARGO_BIN_EXE_keyward");
    let key = SigningKey::generate(SigningAlg::RS256, "stream-bench").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks([&key]).to_string()).unwrap();
    let tokens: Vec<String> = (0..TOKENS)
        .map(|i| {
            key.sign_jwt(&json!({
                "iss": "https://idp.example.com", "sub": format!("user-{i}"), "aud": "orders-api",
                "iat": NOW - 60, "exp": NOW + 3600, "jti": format!("jti-{i:08}"), "scope": "orders:read"
            }))
            .unwrap()
        })
        .collect();

    let jwk = key.public_jwk_bare();
    let field = |name: &str| base64url::decode(jwk[name].as_str().unwrap()).unwrap();
    let raw_key = RsaPublicKeyComponents { n: field("n"), e: field("e") }
        .to_parsed_public_key(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256)
        .unwrap();
    let prepared: Vec<(&str, Vec<u8>)> = tokens
        .iter()
        .map(|t| {
            let (input, sig) = t.rsplit_once('.').unwrap();
            (input, base64url::decode(sig).unwrap())
        })
        .collect();
    let raw_rate = raw(&raw_key, &prepared);
    let batch_rate = batch(bin, &jwks_path, &tokens);
    let lockstep_rate = lockstep(bin, &jwks_path, &tokens[..LOCKSTEP_TOKENS]);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{TOKENS} distinct RS256-2048 tokens; {cores} cores (the CLI verifies buffered lines on all of them)"
    );
    println!("raw aws-lc-rs verify_sig (pre-parsed key, one thread) {raw_rate:>9.0} tokens/s");
    println!(
        "keyward verify --stream --json, batch          {batch_rate:>9.0} tokens/s   {:.3}x raw",
        batch_rate / raw_rate
    );
    println!(
        "keyward verify --stream --json, lockstep ({LOCKSTEP_TOKENS}) {lockstep_rate:>9.0} tokens/s   {:.3}x raw   {:.1} us per round trip",
        lockstep_rate / raw_rate,
        1e6 / lockstep_rate
    );
}

fn raw(key: &ParsedPublicKey, prepared: &[(&str, Vec<u8>)]) -> f64 {
    // Best of three passes, like the CLI runs below get a warm page cache.
    (0..3)
        .map(|_| {
            let start = Instant::now();
            for (input, sig) in prepared {
                std::hint::black_box(key.verify_sig(input.as_bytes(), sig)).unwrap();
            }
            prepared.len() as f64 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn spawn(bin: &str, jwks: &std::path::Path) -> std::process::Child {
    Command::new(bin)
        .args(["verify", "--jwks"])
        .arg(jwks)
        .args(["--now", &NOW.to_string(), "--stream", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

fn batch(bin: &str, jwks: &std::path::Path, tokens: &[String]) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            let mut child = spawn(bin, jwks);
            let mut stdin = child.stdin.take().unwrap();
            let input: String = tokens.iter().map(|t| format!("{t}\n")).collect();
            let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
            let reader = BufReader::new(child.stdout.take().unwrap());
            let mut valid = 0;
            for line in reader.lines() {
                if line.unwrap().starts_with(r#"{"valid":true"#) {
                    valid += 1;
                }
            }
            writer.join().unwrap();
            child.wait().unwrap();
            assert_eq!(valid, tokens.len(), "every token must verify");
            tokens.len() as f64 / start.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

fn lockstep(bin: &str, jwks: &std::path::Path, tokens: &[String]) -> f64 {
    let start = Instant::now();
    let mut child = spawn(bin, jwks);
    let mut stdin = child.stdin.take().unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    for token in tokens {
        writeln!(stdin, "{token}").unwrap();
        stdin.flush().unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(r#"{"valid":true"#), "{line}");
    }
    drop(stdin);
    child.wait().unwrap();
    tokens.len() as f64 / start.elapsed().as_secs_f64()
}
