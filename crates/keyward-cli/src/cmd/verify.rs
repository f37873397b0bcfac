//! `keyward verify`: one token (or a stream of them), one verdict each, one reason code.

use std::borrow::Cow;
use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keyward::clock::format_rfc3339;
use keyward::danger::decode_unverified;
use keyward::jwk::JwkSet;
use keyward::source::{JwksSource, SourceSettings};
use keyward::{Error, FixedClock, Keys, Policy, SystemClock, Verified, Verifier};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::cli::{SourceArgs, VerifyArgs};
use crate::input;

/// A stream line longer than this is answered `token_too_large` without being kept whole.
const MAX_STREAM_LINE: u64 = 1024 * 1024;

pub(crate) fn run(args: VerifyArgs) -> Result<ExitCode> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
    let verifier = runtime.block_on(async { build_verifier(&args) })?;
    if args.stream {
        return stream(&runtime, &verifier);
    }
    let token = input::token(args.token.as_deref())?;
    let outcome = runtime.block_on(verifier.verify(&token));
    let report = Report::new(&token, &verifier, outcome);
    let mut out = Vec::new();
    if args.json {
        report.write_json(&mut out)?;
    } else {
        out.extend_from_slice(report.human().as_bytes());
    }
    crate::cmd::emit(&out)?;
    Ok(report.exit_code())
}

fn build_verifier(args: &VerifyArgs) -> Result<Verifier> {
    let policy = policy(args)?;
    // Checked even for a key file, so an incoherent command line never passes silently.
    let settings = source_settings(&args.source)?;
    let keys: Keys = match (&args.jwks, &args.issuer) {
        (Some(jwks), _) if jwks.starts_with("https://") || jwks.starts_with("http://") => {
            let mut builder = JwksSource::from_url(jwks.clone()).settings(settings);
            if let Some(issuer) = &args.issuer {
                builder = builder.name(issuer.clone());
            }
            builder.build()?.into()
        }
        (Some(path), _) => {
            let bytes = input::file(std::path::Path::new(path))?;
            let keys =
                JwkSet::from_json(&bytes).with_context(|| format!("cannot use {path} as a key set"))?;
            for warning in keys.warnings() {
                tracing::warn!(warning = warning.as_str(), "{warning}");
            }
            keys.into()
        }
        (None, Some(issuer)) => JwksSource::from_issuer(issuer.clone()).settings(settings).build()?.into(),
        (None, None) => bail!("give --jwks FILE|URL, or --issuer to discover the key set"),
    };
    let builder = Verifier::builder().keys(keys).policy(policy);
    let builder = match args.now {
        Some(now) => builder.clock(FixedClock::at(now)),
        None => builder.clock(SystemClock),
    };
    Ok(builder.build()?)
}

fn source_settings(args: &SourceArgs) -> Result<SourceSettings> {
    let mut settings = SourceSettings::default();
    settings.min_ttl = args.min_ttl;
    settings.max_ttl = args.max_ttl;
    settings.refresh_cooldown = args.refresh_cooldown;
    settings.negative_cache_ttl = args.refresh_cooldown;
    settings.max_stale = args.max_stale;
    settings.removal_grace = args.removal_grace;
    settings.cache_dir = args.cache_dir.clone();
    settings.http.allow_insecure_http = args.allow_insecure_http;
    settings.validate()?;
    Ok(settings)
}

fn policy(args: &VerifyArgs) -> Result<Policy> {
    let mut builder = Policy::builder().leeway(Duration::from_secs(args.leeway));
    if let Some(issuer) = &args.issuer {
        builder = builder.issuer(issuer.clone());
    }
    builder = if args.audiences.is_empty() {
        builder.any_audience()
    } else {
        builder.audiences(args.audiences.clone())
    };
    if !args.algs.is_empty() {
        builder = builder.algorithms(args.algs.iter().copied());
    }
    Ok(builder.build()?)
}

/// Below this many buffered lines a batch is verified on the calling thread alone.
const PARALLEL_MIN_BATCH: usize = 8;

/// One token per line in, one JSON line out, in input order.
///
/// A caller that waits for each answer sends one line at a time: it is verified inline and
/// answered (flushed) at once. When many lines are already buffered (a log piped in), they are
/// split into contiguous chunks verified on helper threads alongside this one, answered in
/// order, and flushed when the input runs dry: one hand-off per chunk, not per token.
fn stream(runtime: &tokio::runtime::Runtime, verifier: &Verifier) -> Result<ExitCode> {
    let stdin = std::io::stdin();
    // Our own buffer, so we can see without blocking whether the next line is already here.
    let mut input = std::io::BufReader::with_capacity(256 * 1024, stdin.lock());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let helpers = Helpers::start(threads - 1, runtime.handle(), verifier);
    let window = 64 * threads;
    let mut all_valid = true;
    let mut batch: Vec<String> = Vec::with_capacity(window);
    loop {
        batch.clear();
        // Block for one line, then take whatever complete lines are already buffered.
        match read_token_line(&mut input)? {
            Some(token) => batch.push(token),
            None => break,
        }
        while batch.len() < window && input.buffer().contains(&b'\n') {
            match read_token_line(&mut input)? {
                Some(token) => batch.push(token),
                None => break,
            }
        }
        batch.retain(|t| !t.is_empty());
        let outcomes = helpers.verify_all(runtime, verifier, &batch)?;
        let mut written = Ok(());
        for (token, outcome) in batch.iter().zip(outcomes) {
            let report = Report::new(token, verifier, outcome);
            all_valid &= report.outcome.is_ok();
            written = written.and_then(|()| report.write_json(&mut out));
        }
        if !input.buffer().contains(&b'\n') {
            written = written.and_then(|()| out.flush().map_err(Into::into));
        }
        match written {
            Ok(()) => {}
            // The reader went away (e.g. `| head`): stop quietly.
            Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::from(u8::from(!all_valid))),
            Err(e) => return Err(e),
        }
    }
    out.flush().or_else(|e| if e.kind() == std::io::ErrorKind::BrokenPipe { Ok(()) } else { Err(e) })?;
    Ok(ExitCode::from(u8::from(!all_valid)))
}

type Outcome = Result<Verified, Error>;

/// Helper threads that verify chunks of a batch; they end when the sender side is dropped.
struct Helpers {
    workers: Vec<Worker>,
}

/// One helper thread's two channels: chunks in, outcomes out.
struct Worker {
    chunks: std::sync::mpsc::Sender<Vec<String>>,
    done: std::sync::mpsc::Receiver<Vec<Outcome>>,
}

impl Helpers {
    fn start(count: usize, runtime: &tokio::runtime::Handle, verifier: &Verifier) -> Self {
        let workers = (0..count)
            .map(|_| {
                let (chunks_tx, chunks_rx) = std::sync::mpsc::channel::<Vec<String>>();
                let (done_tx, done_rx) = std::sync::mpsc::channel::<Vec<Outcome>>();
                let (runtime, verifier) = (runtime.clone(), verifier.clone());
                std::thread::spawn(move || {
                    for chunk in chunks_rx {
                        let outcomes = chunk.iter().map(|t| runtime.block_on(verifier.verify(t))).collect();
                        if done_tx.send(outcomes).is_err() {
                            return;
                        }
                    }
                });
                Worker { chunks: chunks_tx, done: done_rx }
            })
            .collect();
        Self { workers }
    }

    /// Verifies `batch`, in order, spread over the helpers and the calling thread.
    fn verify_all(
        &self,
        runtime: &tokio::runtime::Runtime,
        verifier: &Verifier,
        batch: &[String],
    ) -> Result<Vec<Outcome>> {
        if batch.len() < PARALLEL_MIN_BATCH || self.workers.is_empty() {
            return Ok(batch.iter().map(|t| runtime.block_on(verifier.verify(t))).collect());
        }
        let chunk_len = batch.len().div_ceil(self.workers.len() + 1);
        let mut chunks = batch.chunks(chunk_len);
        let own = chunks.next().unwrap_or_default();
        let mut sent = 0;
        for (worker, chunk) in self.workers.iter().zip(chunks) {
            worker
                .chunks
                .send(chunk.to_vec())
                .map_err(|_| anyhow::anyhow!("a verification thread stopped"))?;
            sent += 1;
        }
        let mut outcomes: Vec<Outcome> = own.iter().map(|t| runtime.block_on(verifier.verify(t))).collect();
        for worker in self.workers.iter().take(sent) {
            outcomes
                .extend(worker.done.recv().map_err(|_| anyhow::anyhow!("a verification thread stopped"))?);
        }
        Ok(outcomes)
    }
}

/// The next line, trimmed (an oversized line is cut at the bound and drained); `None` at EOF.
fn read_token_line(input: &mut impl BufRead) -> Result<Option<String>> {
    let mut line = String::new();
    let read = Read::by_ref(input)
        .take(MAX_STREAM_LINE)
        .read_line(&mut line)
        .context("cannot read tokens from stdin")?;
    if read == 0 {
        return Ok(None);
    }
    if !line.ends_with('\n') && read as u64 == MAX_STREAM_LINE {
        // The token is rejected by its size anyway; skip the rest of the line.
        let mut sink = Vec::new();
        input.read_until(b'\n', &mut sink).context("cannot read tokens from stdin")?;
    }
    Ok(Some(line.trim().to_owned()))
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The verdict on one token, ready to print either way.
pub(crate) struct Report {
    outcome: Result<Verified, Error>,
    header: Option<Map<String, Value>>,
    unverified_claims: Option<Map<String, Value>>,
    issuer_checked: bool,
    audience_checked: bool,
    now: i64,
}

/// The `--json` object: field names are a contract (see README).
#[derive(Serialize)]
struct JsonReport<'a> {
    valid: bool,
    reason: Option<&'static str>,
    detail: Cow<'a, str>,
    header: Option<&'a Map<String, Value>>,
    claims: Option<&'a Map<String, Value>>,
    kid: Option<&'a str>,
    alg: Option<&'static str>,
    signature_verified: bool,
}

/// Writes the token's own JSON as is: verification already checked it strictly as one UTF-8
/// object, so it needs no re-parsing. JSON with line breaks would split the one-line output,
/// so it is re-serialised compactly instead.
fn write_embedded<'a>(
    out: &mut impl Write,
    bytes: &'a [u8],
    parsed: impl FnOnce() -> &'a Map<String, Value>,
) -> Result<()> {
    if bytes.contains(&b'\n') || bytes.contains(&b'\r') {
        serde_json::to_writer(&mut *out, parsed())?;
    } else {
        out.write_all(bytes)?;
    }
    Ok(())
}

impl Report {
    pub(crate) fn new(token: &str, verifier: &Verifier, outcome: Result<Verified, Error>) -> Self {
        let policy = verifier.policy();
        let (header, unverified_claims) = match &outcome {
            Ok(_) => (None, None),
            Err(_) => match decode_unverified(token, policy.max_token_len()) {
                Ok(decoded) => (Some(decoded.header), decoded.claims.ok()),
                Err(_) => (None, None),
            },
        };
        Self {
            outcome,
            header,
            unverified_claims,
            issuer_checked: policy.issuer().is_some(),
            audience_checked: policy.audiences().is_some(),
            now: verifier.now_unix(),
        }
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(u8::from(self.outcome.is_err()))
    }

    fn unchecked_notes(&self) -> Vec<&'static str> {
        let mut notes = Vec::new();
        if !self.issuer_checked {
            notes.push("iss was not checked (no --issuer)");
        }
        if !self.audience_checked {
            notes.push("aud was not checked (no --audience)");
        }
        notes
    }

    /// Writes the `--json` object and a newline.
    pub(crate) fn write_json(&self, out: &mut impl Write) -> Result<()> {
        let report = match &self.outcome {
            Ok(v) => {
                let mut detail = format!("signature verified with {}", v.key().describe());
                for note in self.unchecked_notes() {
                    detail.push_str("; ");
                    detail.push_str(note);
                }
                // Field order and names as in JsonReport; written by hand to embed the token's
                // already-checked JSON without a second parse.
                out.write_all(b"{\"valid\":true,\"reason\":null,\"detail\":")?;
                serde_json::to_writer(&mut *out, &detail)?;
                out.write_all(b",\"header\":")?;
                write_embedded(out, v.header_json(), || v.header())?;
                out.write_all(b",\"claims\":")?;
                write_embedded(out, v.payload_json(), || v.claims())?;
                out.write_all(b",\"kid\":")?;
                serde_json::to_writer(&mut *out, &v.kid())?;
                writeln!(out, ",\"alg\":\"{}\",\"signature_verified\":true}}", v.alg())?;
                return Ok(());
            }
            Err(e) => {
                let verified_sig = e.signature_verified();
                JsonReport {
                    valid: false,
                    reason: Some(e.reason().as_str()),
                    detail: Cow::Borrowed(e.detail()),
                    header: self.header.as_ref(),
                    claims: if verified_sig { self.unverified_claims.as_ref() } else { None },
                    kid: e.kid(),
                    alg: e.alg().map(|a| a.as_str()),
                    signature_verified: verified_sig,
                }
            }
        };
        serde_json::to_writer(&mut *out, &report)?;
        out.write_all(b"\n")?;
        Ok(())
    }

    pub(crate) fn human(&self) -> String {
        let mut out = String::new();
        match &self.outcome {
            Ok(v) => {
                out.push_str(&format!("valid: signature verified with {}\n", v.key().describe()));
                let r = v.registered();
                if let Some(iss) = &r.iss {
                    out.push_str(&format!(
                        "  iss  {iss}{}\n",
                        if self.issuer_checked { "" } else { "  (not checked)" }
                    ));
                }
                if let Some(sub) = &r.sub {
                    out.push_str(&format!("  sub  {sub}\n"));
                }
                if !r.aud.is_empty() {
                    out.push_str(&format!(
                        "  aud  {}{}\n",
                        r.aud.join(", "),
                        if self.audience_checked { "" } else { "  (not checked)" }
                    ));
                }
                if let Some(exp) = r.exp {
                    out.push_str(&format!("  exp  {} (in {} s)\n", format_rfc3339(exp), exp - self.now));
                }
                for note in self.unchecked_notes() {
                    out.push_str(&format!("note: {note}\n"));
                }
                let claims = serde_json::to_string_pretty(v.claims()).unwrap_or_default();
                out.push_str(&format!("claims:\n{claims}\n"));
            }
            Err(e) => {
                out.push_str(&format!("rejected: {}\n  {}\n", e.reason(), e.detail()));
                if e.kid().is_some() || e.alg().is_some() {
                    out.push_str(&format!(
                        "  token kid {}, alg {}\n",
                        e.kid().map_or_else(|| "(none)".to_owned(), |k| format!("{k:?}")),
                        e.alg().map_or("(unknown)", |a| a.as_str())
                    ));
                }
            }
        }
        out
    }
}
