//! `keyward verify`: one token (or a stream of them), one verdict each, one reason code.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use keyward::danger::decode_unverified;
use keyward::source::{JwksSource, SourceSettings};
use keyward::{Error, FixedClock, Keys, Policy, Reason, SystemClock, Verified, Verifier};
use serde_json::{Map, Value};

use crate::cli::{SourceArgs, VerifyArgs};
use crate::input::{self, Token};
use crate::keys::{self, KeyFile};
use crate::when;
use crate::wire::{self, VerifyReport};

/// Exit status of a one-token `verify` that reached no verdict: the keys could not be obtained.
pub(crate) const EXIT_NO_KEYS: u8 = 3;

/// A stream line longer than this is answered `token_too_large` without being kept whole.
const MAX_STREAM_LINE: u64 = 1024 * 1024;

pub(crate) fn run(args: VerifyArgs) -> Result<ExitCode> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
    let checker = runtime.block_on(async { build_checker(&args) })?;
    if args.stream {
        return stream(&runtime, &checker);
    }
    let token = input::token(args.token.as_deref())?;
    let outcome =
        if token.not_utf8 { Err(not_utf8()) } else { runtime.block_on(checker.verify(&token.text)) };
    let report = Report::new(&token, &checker, outcome);
    let mut out = Vec::new();
    if args.json {
        report.write_json(&mut out)?;
    } else {
        for note in &token.notes {
            eprintln!("keyward: note: {note}");
        }
        out.extend_from_slice(report.human().as_bytes());
    }
    crate::cmd::emit(&out)?;
    Ok(report.exit_code())
}

fn not_utf8() -> Error {
    Error::new(Reason::Malformed, "the input is not UTF-8 text, so it cannot be a token")
}

/// The verifier, plus what a key without `kid` needs: such a key verifies a token whatever
/// `kid` it names, so a token naming one gets a verifier whose only key carries that kid.
#[derive(Clone)]
pub(crate) struct Checker {
    base: Verifier,
    any_kid: Option<Arc<AnyKid>>,
}

/// One key given without `kid` (a PEM key or a kid-less JWK), and verifiers for the kids
/// tokens named, at most [`MAX_KIDS`] kept.
struct AnyKid {
    jwk: Map<String, Value>,
    policy: Policy,
    now: Option<i64>,
    by_kid: Mutex<HashMap<String, Verifier>>,
}

/// Bound on the per-kid verifiers kept for a kid-less key; past it the cache starts over.
const MAX_KIDS: usize = 64;

impl Checker {
    async fn verify(&self, token: &str) -> Outcome {
        let max_len = self.base.policy().max_token_len();
        if let Some(verifier) = self.any_kid.as_ref().and_then(|any| any.verifier_for(token, max_len)) {
            return verifier.verify(token).await;
        }
        self.base.verify(token).await
    }

    fn verifier(&self) -> &Verifier {
        &self.base
    }
}

impl AnyKid {
    /// A verifier holding the key under the token's kid; `None` when the token has no kid
    /// (the base verifier's kid-less key serves it).
    fn verifier_for(&self, token: &str, max_len: usize) -> Option<Verifier> {
        let kid = decode_unverified(token, max_len).ok()?.header.get("kid")?.as_str()?.to_owned();
        let mut cache = self.by_kid.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(verifier) = cache.get(&kid) {
            return Some(verifier.clone());
        }
        let verifier =
            build_from(keys::with_kid(&self.jwk, &kid)?.into(), self.policy.clone(), self.now).ok()?;
        if cache.len() >= MAX_KIDS {
            cache.clear();
        }
        cache.insert(kid, verifier.clone());
        Some(verifier)
    }
}

fn build_from(keys: Keys, policy: Policy, now: Option<i64>) -> Result<Verifier> {
    let builder = Verifier::builder().keys(keys).policy(policy);
    let builder = match now {
        Some(now) => builder.clock(FixedClock::at(now)),
        None => builder.clock(SystemClock),
    };
    Ok(builder.build()?)
}

fn build_checker(args: &VerifyArgs) -> Result<Checker> {
    let policy = policy(args)?;
    // Checked even for a key file, so an incoherent command line never passes silently.
    let settings = source_settings(&args.source)?;
    let insecure = args.source.allow_insecure_http;
    let mut any_kid = None;
    let keys: Keys = match (&args.jwks, &args.issuer) {
        (Some(jwks), _) if jwks.starts_with("https://") || jwks.starts_with("http://") => {
            keys::check_scheme("JWKS URL", jwks, insecure)?;
            let mut builder = JwksSource::from_url(jwks.clone()).settings(settings);
            if let Some(issuer) = &args.issuer {
                builder = builder.name(issuer.clone());
            }
            builder.build()?.into()
        }
        (Some(path), _) => match keys::load(path)? {
            KeyFile::Set(set) => set.into(),
            KeyFile::AnyKid { jwk, set, what } => {
                tracing::debug!("{path}: one {what} without kid; it verifies tokens whatever kid they name");
                any_kid = Some(Arc::new(AnyKid {
                    jwk,
                    policy: policy.clone(),
                    now: args.now,
                    by_kid: Mutex::new(HashMap::new()),
                }));
                set.into()
            }
        },
        (None, Some(issuer)) => {
            keys::check_scheme("issuer", issuer, insecure)?;
            JwksSource::from_issuer(issuer.clone()).settings(settings).build()?.into()
        }
        (None, None) => bail!("give --jwks FILE|URL, or --issuer to discover the key set"),
    };
    Ok(Checker { base: build_from(keys, policy, args.now)?, any_kid })
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
    let mut builder = Policy::builder().leeway(args.leeway);
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
///
/// A line that is not UTF-8 (`malformed`) or longer than [`MAX_STREAM_LINE`]
/// (`token_too_large`) gets its own verdict; the stream goes on.
fn stream(runtime: &tokio::runtime::Runtime, checker: &Checker) -> Result<ExitCode> {
    let stdin = std::io::stdin();
    // Our own buffer, so we can see without blocking whether the next line is already here.
    let mut input = std::io::BufReader::with_capacity(256 * 1024, stdin.lock());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let helpers = Helpers::start(threads - 1, runtime.handle(), checker);
    let window = 64 * threads;
    let mut all_valid = true;
    let mut batch: Vec<Line> = Vec::with_capacity(window);
    loop {
        batch.clear();
        // Block for one line, then take whatever complete lines are already buffered.
        match read_token_line(&mut input)? {
            Some(line) => batch.push(line),
            None => break,
        }
        while batch.len() < window && input.buffer().contains(&b'\n') {
            match read_token_line(&mut input)? {
                Some(line) => batch.push(line),
                None => break,
            }
        }
        batch.retain(|line| line.early.is_some() || !line.token.text.is_empty());
        let texts: Vec<String> = batch.iter_mut().map(|line| std::mem::take(&mut line.token.text)).collect();
        let outcomes = helpers.verify_all(runtime, checker, &texts)?;
        let mut written = Ok(());
        for ((line, text), outcome) in batch.iter_mut().zip(texts).zip(outcomes) {
            line.token.text = text;
            let outcome = match line.early.take() {
                Some(error) => Err(error),
                None => outcome,
            };
            let report = Report::new(&line.token, checker, outcome);
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

/// One input line of `--stream`: the tidied token, or a verdict reached before verification.
struct Line {
    token: Token,
    early: Option<Error>,
}

/// One token's verdict.
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
    fn start(count: usize, runtime: &tokio::runtime::Handle, verifier: &Checker) -> Self {
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
        verifier: &Checker,
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

/// The next line, tidied (an oversized line is cut at the bound, drained, and answered
/// `token_too_large`; a line that is not UTF-8 is answered `malformed`); `None` at EOF.
fn read_token_line(input: &mut impl BufRead) -> Result<Option<Line>> {
    let mut bytes = Vec::new();
    let read = Read::by_ref(input)
        .take(MAX_STREAM_LINE)
        .read_until(b'\n', &mut bytes)
        .context("cannot read tokens from stdin")?;
    if read == 0 {
        return Ok(None);
    }
    if !bytes.ends_with(b"\n") && read as u64 == MAX_STREAM_LINE {
        // The token is rejected by its size; skip the rest of the line, unread.
        let mut rest = 0u64;
        loop {
            let buffer = input.fill_buf().context("cannot read tokens from stdin")?;
            if buffer.is_empty() {
                break;
            }
            let (used, end) = match buffer.iter().position(|b| *b == b'\n') {
                Some(at) => (at + 1, true),
                None => (buffer.len(), false),
            };
            input.consume(used);
            rest = rest.saturating_add(used as u64);
            if end {
                break;
            }
        }
        let detail = format!(
            "the line is longer than the {MAX_STREAM_LINE}-byte line bound ({} bytes or more)",
            (read as u64).saturating_add(rest)
        );
        return Ok(Some(Line {
            token: Token::default(),
            early: Some(Error::new(Reason::TokenTooLarge, detail)),
        }));
    }
    let token = Token::from_bytes(bytes);
    let early = token.not_utf8.then(not_utf8);
    Ok(Some(Line { token, early }))
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
    input_notes: Vec<String>,
}

impl Report {
    pub(crate) fn new(token: &Token, checker: &Checker, outcome: Result<Verified, Error>) -> Self {
        let policy = checker.verifier().policy();
        let (header, unverified_claims) = match &outcome {
            Ok(_) => (None, None),
            Err(_) => match decode_unverified(&token.text, policy.max_token_len()) {
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
            now: checker.verifier().now_unix(),
            input_notes: token.notes.clone(),
        }
    }

    /// 0 verified, 1 rejected, 3 no verdict (the keys could not be obtained).
    pub(crate) fn exit_code(&self) -> ExitCode {
        match &self.outcome {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) if e.reason() == Reason::KeysUnavailable => ExitCode::from(EXIT_NO_KEYS),
            Err(_) => ExitCode::from(1),
        }
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
        let mut notes: Vec<Cow<'_, str>> =
            self.input_notes.iter().map(|n| Cow::Borrowed(n.as_str())).collect();
        let report = match &self.outcome {
            Ok(v) => {
                let mut detail = format!("signature verified with {}", v.key().describe());
                for note in self.unchecked_notes() {
                    detail.push_str("; ");
                    detail.push_str(note);
                    notes.push(Cow::Borrowed(note));
                }
                VerifyReport::valid(v, detail, notes)
            }
            Err(e) => VerifyReport::rejected(e, self.header.as_ref(), self.unverified_claims.as_ref(), notes),
        };
        wire::write_line(out, &report)
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
                    out.push_str(&format!("  exp  expires {}\n", when::relative(exp, self.now)));
                }
                for note in self.unchecked_notes() {
                    out.push_str(&format!("note: {note}\n"));
                }
                if let Some(line) = v.keys().and_then(|k| keys_line(k, None)) {
                    out.push_str(&format!("keys: {line}\n"));
                }
                let claims = serde_json::to_string_pretty(v.claims()).unwrap_or_default();
                out.push_str(&format!("claims:\n{claims}\n"));
            }
            Err(e) if e.reason() == Reason::KeysUnavailable => {
                out.push_str("no verdict: keys_unavailable (the keys could not be obtained)\n");
                out.push_str(&format!("  {}\n", e.detail()));
                if let Some(cause) = e.fetch_error() {
                    out.push_str(&format!("  cause: {cause}\n"));
                }
            }
            Err(e) => {
                out.push_str(&format!("rejected: {}\n  {}\n", e.reason(), rejection_line(e)));
                if e.kid().is_some() || e.alg().is_some() {
                    out.push_str(&format!(
                        "  token kid {}, alg {}\n",
                        e.kid().map_or_else(|| "(none)".to_owned(), |k| format!("{k:?}")),
                        e.alg().map_or("(unknown)", |a| a.as_str())
                    ));
                }
                if let Some(line) = e.keys().and_then(|k| keys_line(k, e.fetch_error())) {
                    out.push_str(&format!("  keys: {line}\n"));
                }
            }
        }
        out
    }
}

/// What the key source did, in one line for people; `None` when there is nothing to say (a
/// fresh set that answered without a fetch).
fn keys_line(k: &keyward::KeyEvidence, cause: Option<&keyward::source::FetchError>) -> Option<String> {
    use keyward::source::{FetchDecision, GraceKind};
    // The set's age is measured by the key source's own clock, not the verifier's (`--now`).
    let fetched = |at: i64| {
        let age = k.age.map_or(0, |a| i64::try_from(a.as_secs()).unwrap_or(i64::MAX));
        when::relative(at, at.saturating_add(age))
    };
    let set = match (k.fetched_at_unix, k.stale) {
        (Some(at), true) => format!("stale key set fetched {}", fetched(at)),
        (Some(at), false) => format!("key set fetched {}", fetched(at)),
        (None, _) => "no key set fetched yet".to_owned(),
    };
    let did = match k.fetch {
        FetchDecision::Made { trigger, succeeded: true } => {
            format!("this token made a fetch ({})", trigger.as_str())
        }
        FetchDecision::Made { trigger, succeeded: false } => {
            let why = cause.map_or_else(String::new, |c| format!(": {c}"));
            format!("this token made a fetch ({}), which failed{why}", trigger.as_str())
        }
        FetchDecision::Refused { reason, retry_after } => {
            let when = retry_after
                .map_or_else(String::new, |d| format!(", next allowed in {:.1} s", d.as_secs_f64()));
            format!("no fetch for this token ({}{when})", reason.as_str())
        }
        _ => String::new(),
    };
    let grace = match k.grace {
        Some(GraceKind::AwaitingConfirmation { .. }) => {
            "; verified by a key no longer published, until the next fetch confirms its removal (60 s at most)"
        }
        Some(GraceKind::RemovalGrace { .. }) => "; verified by a removed key in its removal grace",
        _ => "",
    };
    let changed = if k.material_changed { "; the key material under this kid changed" } else { "" };
    if did.is_empty() && grace.is_empty() && changed.is_empty() && !k.stale {
        return None;
    }
    let sep = if did.is_empty() { "" } else { "; " };
    Some(format!("{set}{sep}{did}{grace}{changed}"))
}

/// The explanation of a rejection for people: after a good signature it says so first, and
/// times read as "1 h 12 min ago (2026-12-06T04:20:00Z)".
fn rejection_line(e: &Error) -> String {
    if !e.signature_verified() {
        return e.detail().to_owned();
    }
    let leeway = |t: keyward::TimeEvidence| format!("; leeway {} s", t.leeway);
    match (e.reason(), e.times()) {
        (Reason::Expired, Some(t)) => {
            format!("signature valid, but expired {}{}", when::relative(t.claim, t.now), leeway(t))
        }
        (Reason::NotYetValid, Some(t)) => {
            format!("signature valid, but not yet valid: nbf {}{}", when::relative(t.claim, t.now), leeway(t))
        }
        (Reason::IssuedInFuture, Some(t)) => {
            format!(
                "signature valid, but issued in the future: iat {}{}",
                when::relative(t.claim, t.now),
                leeway(t)
            )
        }
        _ => format!("signature valid, but {}: {}", e.reason(), e.detail()),
    }
}
