//! `keyward verify --stream --json` against raw aws-lc-rs on every core, measured in one run.
//!
//! ```text
//! cargo build --release -p keyward-cli
//! cargo run --release -p keyward-cli --example stream_vs_raw [-- ROUNDS [PATH/TO/keyward]]
//! cargo run --release -p keyward-cli --example stream_vs_raw -- --write-input DIR
//! ```
//!
//! `--write-input DIR` writes `DIR/jwks.json` and `DIR/tokens.txt` and stops, for profiling
//! the binary by hand.
//!
//! 10,000 distinct RS256-2048 tokens (same header, distinct payloads). Each round measures
//! the raw baseline first: N threads (N = available cores) each verifying its share of the
//! pre-decoded tokens with one pre-parsed key (`ParsedPublicKey::verify_sig`); then the real
//! binary, `keyward verify --jwks FILE --now T --stream --json < tokens > /dev/null` (start-up
//! and key loading included). One run through pipes first checks every answer and its order. Rounds alternate so both see the same machine load; the machine may be
//! shared and noisy, so medians are printed, and the ratio is the median of per-round ratios.
//!
//! On a loaded machine the scheduler shares cores per thread, which favours whichever side
//! runs more threads; so the CPU time each side spent per token is printed too (Linux only:
//! the raw threads' own `schedstat`, the binary's `utime + stime` in 10 ms ticks, from this
//! process's `cutime + cstime` around the wait for it). Their ratio is what the wall-clock
//! ratio would be on cores nobody else uses, if both kept every core busy.
//!
//! Last, the round trip of a caller that writes one token and waits for its answer.
#![allow(clippy::disallowed_methods)] // measures real elapsed time, which is the point here
#![allow(missing_docs)]

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use aws_lc_rs::signature::ParsedPublicKey;

#[path = "../benches/support/stream_fixture.rs"]
mod stream_fixture;
use stream_fixture::{Fixture, NOW, TOKENS};

const LOCKSTEP_TOKENS: usize = 1_000;

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    let write_to = if args.peek().map(String::as_str) == Some("--write-input") {
        Some(std::path::PathBuf::from(args.nth(1).expect("--write-input DIR")))
    } else {
        None
    };
    let rounds: usize = args.next().map_or(7, |r| r.parse().expect("ROUNDS is a number"));
    let bin =
        args.next().unwrap_or_else(|| format!("{}/../../target/release/keyward", env!("CARGO_MANIFEST_DIR")));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let dir = tempfile::tempdir().unwrap();
    let fixture = Fixture::new(dir.path());
    let (jwks_path, tokens) = (&fixture.jwks_path, &fixture.tokens);
    let input: Vec<u8> = tokens.iter().flat_map(|t| format!("{t}\n").into_bytes()).collect();
    if let Some(dir) = write_to {
        std::fs::copy(jwks_path, dir.join("jwks.json")).unwrap();
        std::fs::write(dir.join("tokens.txt"), &input).unwrap();
        return;
    }
    let tokens_path = dir.path().join("tokens.txt");
    std::fs::write(&tokens_path, &input).unwrap();
    check(&bin, jwks_path, &input);

    let raw_key = fixture.raw_key();
    let prepared = fixture.raw_inputs();

    println!("{TOKENS} distinct RS256-2048 tokens, {cores} cores, {rounds} rounds; binary {bin}");
    raw(&raw_key, &prepared, cores); // warm-up
    let (mut raws, mut clis, mut ratios, mut cpu_ratios) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (raw_rate, raw_cpu) = raw(&raw_key, &prepared, cores);
        let (cli_rate, cli_cpu) = cli(&bin, jwks_path, &tokens_path);
        let (raw_us, cli_us) = (raw_cpu * 1e6 / TOKENS as f64, cli_cpu * 1e6 / TOKENS as f64);
        println!(
            "round {round}: raw {raw_rate:>7.0} tokens/s ({raw_us:.1} us CPU each)   keyward {cli_rate:>7.0} tokens/s ({cli_us:.1} us CPU each)   wall {:.3}x   CPU {:.3}x",
            cli_rate / raw_rate,
            raw_cpu / cli_cpu
        );
        raws.push(raw_rate);
        clis.push(cli_rate);
        ratios.push(cli_rate / raw_rate);
        cpu_ratios.push(raw_cpu / cli_cpu);
    }
    println!(
        "median: raw aws-lc-rs on {cores} threads {:.0} tokens/s; keyward verify --stream --json {:.0} tokens/s; wall ratio {:.3}x (min {:.3}, max {:.3}); CPU-time ratio {:.3}x",
        median(&mut raws),
        median(&mut clis),
        median(&mut ratios),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
        median(&mut cpu_ratios),
    );
    let mut trips: Vec<f64> =
        (0..rounds).map(|_| lockstep(&bin, jwks_path, &tokens[..LOCKSTEP_TOKENS])).collect();
    println!(
        "lockstep (one line written, its answer read, {LOCKSTEP_TOKENS} times): median {:.1} us per round trip",
        median(&mut trips)
    );
}

/// Microseconds per round trip of a caller that writes one token and waits for its answer.
fn lockstep(bin: &str, jwks: &std::path::Path, tokens: &[String]) -> f64 {
    use std::io::BufRead;
    let mut child = spawn(bin, jwks);
    let mut stdin = child.stdin.take().unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // The first answer also waits for start-up and key loading: not counted.
    writeln!(stdin, "{}", tokens[0]).unwrap();
    reader.read_line(&mut line).unwrap();
    let start = Instant::now();
    for token in tokens {
        writeln!(stdin, "{token}").unwrap();
        stdin.flush().unwrap();
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(line.starts_with(r#"{"valid":true"#), "{line}");
    }
    let elapsed = start.elapsed().as_secs_f64();
    drop(stdin);
    assert!(child.wait().unwrap().success());
    elapsed * 1e6 / tokens.len() as f64
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

/// Nanoseconds the calling thread has spent on a CPU (Linux `schedstat`; 0 elsewhere).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Seconds of CPU this process's reaped children have spent (`cutime + cstime` of
/// `/proc/self/stat`, in 10 ms ticks; 0 where `/proc` cannot say). Read before and after
/// waiting for a child: waiting blocks, so measuring takes no CPU from the child, which a
/// loop polling its `/proc/PID/stat` for the zombie state did (on 2 cores, a fifth of one).
fn children_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // cutime and cstime are fields 16 and 17 of stat, 13 and 14 after the state.
    (ticks(13) + ticks(14)) as f64 / 100.0
}

/// Tokens per second of `threads` threads, each verifying a contiguous share, and the CPU
/// seconds they spent.
fn raw(key: &ParsedPublicKey, prepared: &[(&str, Vec<u8>)], threads: usize) -> (f64, f64) {
    let share = prepared.len().div_ceil(threads);
    let start = Instant::now();
    let cpu_ns: u64 = std::thread::scope(|scope| {
        let handles: Vec<_> = prepared
            .chunks(share)
            .map(|chunk| {
                scope.spawn(move || {
                    let before = thread_cpu_ns();
                    for (signed, sig) in chunk {
                        std::hint::black_box(key.verify_sig(signed.as_bytes(), sig)).unwrap();
                    }
                    thread_cpu_ns() - before
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (prepared.len() as f64 / start.elapsed().as_secs_f64(), cpu_ns as f64 / 1e9)
}

/// Tokens per second of the binary over all of `input`, output read into memory, and the CPU
/// seconds it spent.
fn cli(bin: &str, jwks: &std::path::Path, tokens: &std::path::Path) -> (f64, f64) {
    let cpu_before = children_cpu_secs();
    let start = Instant::now();
    let status = Command::new(bin)
        .args(["verify", "--jwks"])
        .arg(jwks)
        .args(["--now", &NOW.to_string(), "--stream", "--json"])
        .stdin(std::fs::File::open(tokens).unwrap())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    let elapsed = start.elapsed().as_secs_f64();
    assert!(status.success(), "{status}");
    (TOKENS as f64 / elapsed, children_cpu_secs() - cpu_before)
}

/// Checks, through pipes, that every token is answered valid, once, in input order.
fn check(bin: &str, jwks: &std::path::Path, input: &[u8]) {
    let mut child = spawn(bin, jwks);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut out = Vec::with_capacity(input.len() * 2);
    std::thread::scope(|scope| {
        scope.spawn(move || stdin.write_all(input).unwrap());
        stdout.read_to_end(&mut out).unwrap();
    });
    let status = child.wait().unwrap();
    let lines: Vec<&[u8]> = out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), TOKENS, "one answer per token");
    for (i, line) in lines.iter().enumerate() {
        let line = String::from_utf8_lossy(line);
        assert!(line.starts_with(r#"{"valid":true"#), "every token must verify: {line}");
        assert!(line.contains(&format!(r#""sub":"user-{i}""#)), "answers in input order: {line}");
    }
    assert!(status.success(), "{status}");
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
