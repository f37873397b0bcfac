//! `cargo bench -p keyward-cli --bench stream`
//!
//! `keyward verify --stream --json` over 10,000 distinct RS256 tokens, against raw `aws-lc-rs`
//! verification of the same tokens (pre-parsed key, signatures pre-decoded) on as many threads
//! as the CLI uses (every core: it verifies lines that are already buffered on all of them, in
//! order), and on one thread for reference. Two CLI modes:
//! - batch: all tokens piped at once (the audit-a-log case);
//! - lockstep: write one token, wait for its answer, then the next (proves per-line answers,
//!   and measures the round trip; 2,000 tokens).
//!
//! The variants are interleaved as in the verify bench: `KEYWARD_BENCH_ROUNDS` rounds (default
//! 7), each running every variant once in a fresh random order; each ratio is the median of the
//! per-round ratios, so the VM's drift hits both sides of a ratio alike. The CLI times include
//! process start-up and loading the key set.
#![allow(clippy::disallowed_methods)] // measures real elapsed time, which is the point here

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use aws_lc_rs::signature::ParsedPublicKey;

#[path = "support/stream_fixture.rs"]
mod stream_fixture;
use stream_fixture::{Fixture, NOW, TOKENS};

const LOCKSTEP_TOKENS: usize = 2_000;

fn main() {
    let bin = env!("CARGO_BIN_EXE_keyward");
    let dir = tempfile::tempdir().unwrap();
    let fixture = Fixture::new(dir.path());
    let (jwks_path, tokens) = (&fixture.jwks_path, &fixture.tokens);
    let raw_key = fixture.raw_key();
    let prepared = fixture.raw_inputs();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rounds: usize = std::env::var("KEYWARD_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    // Rates per round: raw on every core, raw on one thread, batch, lockstep.
    let mut samples: [Vec<f64>; 4] = Default::default();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64
        ^ u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos()),
        );
    for _ in 0..rounds {
        let mut order = [0usize, 1, 2, 3];
        for k in (1..order.len()).rev() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            order.swap(k, (seed % (k as u64 + 1)) as usize);
        }
        for variant in order {
            let rate = match variant {
                0 => raw(&raw_key, &prepared, cores),
                1 => raw(&raw_key, &prepared, 1),
                2 => batch(bin, jwks_path, tokens),
                _ => lockstep(bin, jwks_path, &tokens[..LOCKSTEP_TOKENS]),
            };
            samples[variant].push(rate);
        }
    }
    let ratio = |a: usize, b: usize| median(samples[a].iter().zip(&samples[b]).map(|(x, y)| x / y).collect());
    let [raw_all, raw_one, batch_rate, lockstep_rate] = samples.clone().map(median);
    println!(
        "{TOKENS} distinct RS256-2048 tokens; {cores} cores (the CLI verifies buffered lines on all of them); {rounds} rounds, variants interleaved; medians"
    );
    println!("raw aws-lc-rs verify_sig, {cores} threads                 {raw_all:>9.0} tokens/s");
    println!("raw aws-lc-rs verify_sig, one thread                {raw_one:>9.0} tokens/s");
    println!(
        "keyward verify --stream --json, batch          {batch_rate:>9.0} tokens/s   {:.3}x raw on {cores} threads   {:.3}x raw on one",
        ratio(2, 0),
        ratio(2, 1)
    );
    println!(
        "keyward verify --stream --json, lockstep ({LOCKSTEP_TOKENS}) {lockstep_rate:>9.0} tokens/s   {:.3}x raw on one thread   {:.1} us per round trip",
        ratio(3, 1),
        1e6 / lockstep_rate
    );
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Verifies every token once, split in contiguous chunks over `threads` threads (as the CLI
/// splits a buffered batch); tokens per second of wall time.
fn raw(key: &ParsedPublicKey, prepared: &[(&str, Vec<u8>)], threads: usize) -> f64 {
    let chunk = prepared.len().div_ceil(threads.max(1));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for part in prepared.chunks(chunk) {
            scope.spawn(move || {
                for (input, sig) in part {
                    std::hint::black_box(key.verify_sig(input.as_bytes(), sig)).unwrap();
                }
            });
        }
    });
    prepared.len() as f64 / start.elapsed().as_secs_f64()
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
    let input: String = tokens.iter().map(|t| format!("{t}\n")).collect();
    let start = Instant::now();
    let mut child = spawn(bin, jwks);
    let mut stdin = child.stdin.take().unwrap();
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
