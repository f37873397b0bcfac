//! `keyward verify`: one token (or a stream of them), one verdict each, one reason code.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Read, Write};
use std::panic::AssertUnwindSafe;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use keyward::danger::decode_unverified;
use keyward::jwk::VerifyingKey;
use keyward::source::{JwksSource, SourceSettings};
use keyward::{Error, FixedClock, Keys, Policy, Reason, SystemClock, Verified, Verifier};
use serde_json::{Map, Value};

use crate::cli::{SourceArgs, VerifyArgs};
use crate::input::{self, Token};
use crate::keys::{self, KeyFile};
use crate::when;
use crate::wire::{self, Notes, VerifyReport};

/// Exit status of a one-token `verify` that reached no verdict: the keys could not be obtained.
pub(crate) const EXIT_NO_KEYS: u8 = 3;

/// A stream line longer than this is answered `token_too_large` without being kept whole.
const MAX_STREAM_LINE: u64 = 1024 * 1024;

pub(crate) fn run(args: VerifyArgs) -> Result<ExitCode> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build()?;
    let checker = runtime.block_on(async { build_checker(&args) })?;
    if args.stream {
        return stream(&runtime, &checker, workers);
    }
    let token = input::token(args.token.as_deref())?;
    let outcome = if let Some(len) = token.not_utf8 {
        Err(not_utf8(len))
    } else {
        runtime.block_on(checker.verify(&token.text))
    };
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

/// The verdict on input that is not UTF-8: too large first (the size bound is judged before
/// anything else, as for text), else malformed.
fn not_utf8(len: usize) -> Error {
    if len > keyward::DEFAULT_MAX_TOKEN_LEN {
        let max = keyward::DEFAULT_MAX_TOKEN_LEN;
        return Error::new(
            Reason::TokenTooLarge,
            format!("the input is {len} bytes, above the {max}-byte limit"),
        );
    }
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

pub(crate) fn source_settings(args: &SourceArgs) -> Result<SourceSettings> {
    let settings = unchecked_source_settings(args);
    settings.validate()?;
    Ok(settings)
}

/// The settings the flags give, not yet validated (`keyward serve` validates them itself, to
/// name the flag in its error).
pub(crate) fn unchecked_source_settings(args: &SourceArgs) -> SourceSettings {
    let mut settings = SourceSettings::default();
    settings.min_ttl = args.min_ttl;
    settings.max_ttl = args.max_ttl;
    settings.refresh_cooldown = args.refresh_cooldown;
    settings.negative_cache_ttl = args.refresh_cooldown;
    settings.max_stale = args.max_stale;
    settings.removal_grace = args.removal_grace;
    settings.cache_dir = args.cache_dir.clone();
    settings.http.allow_insecure_http = args.allow_insecure_http;
    settings
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

/// Lines per batch, at most: small enough that a burst is spread over every worker, large
/// enough that a hand-off costs little next to verifying the lines.
const BATCH_LINES: usize = 128;

/// A batch closes once its lines hold this many bytes (one line alone may hold up to
/// [`MAX_STREAM_LINE`]), so the bound on batches in flight also bounds memory.
const BATCH_BYTES: usize = 64 * 1024;

/// Batches read but not yet written, per worker: enough to keep every worker busy while the
/// writer catches up, few enough to bound memory.
const IN_FLIGHT_PER_WORKER: usize = 4;

/// One token per line in, one JSON line out, in input order.
///
/// A pipeline: a reader thread cuts stdin into numbered batches (up to [`BATCH_LINES`] lines
/// when a log is piped in; a line with nothing queued behind it is answered by the reader
/// itself); one worker per core verifies a batch and serialises its reports into one buffer; this thread writes the
/// buffers strictly in input order, and flushes whenever it has written everything that is
/// ready, so a caller that waits for each answer gets it at once. At most
/// [`IN_FLIGHT_PER_WORKER`] batches per worker are in flight. Every worker shares one
/// long-lived verifier (and so its key cache).
///
/// A line that is not UTF-8 (`malformed`) or longer than [`MAX_STREAM_LINE`]
/// (`token_too_large`) gets its own verdict; the stream goes on. A closed stdout ends the
/// stream quietly with the verdict so far.
///
/// `workers` verification threads are started (the core count, read once at start-up: it
/// reads cgroup files).
fn stream(runtime: &tokio::runtime::Runtime, checker: &Checker, workers: usize) -> Result<ExitCode> {
    let (pipeline, answers, credits) = Pipeline::start(workers, runtime.handle(), checker)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let mut all_valid = true;
    let written = write_answers(&answers, &credits, &mut out, &mut all_valid);
    // Stops and joins the workers before the runtime they verify on can be dropped.
    pipeline.finish();
    match written {
        Ok(()) => Ok(ExitCode::from(u8::from(!all_valid))),
        // The reader went away (e.g. `| head`): stop quietly.
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::from(u8::from(!all_valid))),
        Err(e) => Err(e),
    }
}

/// Writes the answered batches in input order until the reader's last batch; flushes whenever
/// nothing more is ready, and hands a credit back to the reader for every batch written.
/// `all_valid` is kept up to date so a closed stdout still yields the verdict so far.
fn write_answers(
    answers: &Receiver<Message>,
    credits: &SyncSender<()>,
    out: &mut impl Write,
    all_valid: &mut bool,
) -> Result<()> {
    let stopped = || anyhow::anyhow!("a verification thread stopped");
    let mut pending: BTreeMap<u64, Result<Answer>> = BTreeMap::new();
    let mut next = 0u64;
    let mut end: Option<(u64, Option<anyhow::Error>)> = None;
    loop {
        while let Some(answer) = pending.remove(&next) {
            let answer = answer?;
            *all_valid &= answer.all_valid;
            out.write_all(&answer.json)?;
            next = next.saturating_add(1);
            // Never full (no more credits exist than it holds), and fails only once the reader
            // has ended, which needs no more of them.
            credits.try_send(()).ok();
        }
        if let Some((batches, _)) = &end
            && next >= *batches
        {
            out.flush()?;
            return match end.and_then(|(_, error)| error) {
                Some(error) => Err(error),
                None => Ok(()),
            };
        }
        let message = match answers.try_recv() {
            Ok(message) => message,
            Err(TryRecvError::Empty) => {
                out.flush()?;
                answers.recv().map_err(|_| stopped())?
            }
            Err(TryRecvError::Disconnected) => return Err(stopped()),
        };
        match message {
            Message::Answered { seq, answer } => {
                pending.insert(seq, answer);
            }
            Message::End { batches, error } => end = Some((batches, error)),
        }
    }
}

/// One input line of `--stream`: the tidied token, or a verdict reached before verification.
struct Line {
    token: Token,
    early: Option<Error>,
}

/// One token's verdict.
type Outcome = Result<Verified, Error>;

/// Consecutive input lines, numbered in input order.
struct Batch {
    seq: u64,
    lines: Vec<Line>,
}

/// A batch's JSON lines, and whether every token in it was valid.
struct Answer {
    json: Vec<u8>,
    all_valid: bool,
}

/// What the workers and the reader tell the writer.
enum Message {
    /// Batch `seq` answered, or an error that ends the stream once its turn comes.
    Answered { seq: u64, answer: Result<Answer> },
    /// The reader sent `batches` batches and stopped: at the end of stdin, or on `error`.
    End { batches: u64, error: Option<anyhow::Error> },
}

/// The reader and worker threads of `--stream`, and what stops them.
struct Pipeline {
    /// The work queue's sending side, shared with the reader; taking it closes the queue, so
    /// idle workers end once it is drained.
    queue: Arc<Mutex<Option<Sender<Batch>>>>,
    /// Set when the stream ends early: workers skip what is left instead of verifying it.
    stop: Arc<AtomicBool>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl Pipeline {
    /// Starts `count` workers and the reader; returns the writer's side: answers in, credits
    /// (one per batch the reader may still send) out.
    fn start(
        count: usize,
        runtime: &tokio::runtime::Handle,
        checker: &Checker,
    ) -> Result<(Self, Receiver<Message>, SyncSender<()>)> {
        let in_flight = IN_FLIGHT_PER_WORKER.saturating_mul(count);
        let (credit_tx, credit_rx) = std::sync::mpsc::sync_channel::<()>(in_flight);
        for _ in 0..in_flight {
            credit_tx.try_send(()).map_err(|_| anyhow::anyhow!("cannot start the stream pipeline"))?;
        }
        let (work_tx, work_rx) = std::sync::mpsc::channel::<Batch>();
        let (answer_tx, answer_rx) = std::sync::mpsc::channel::<Message>();
        let mut pipeline = Self {
            queue: Arc::new(Mutex::new(Some(work_tx))),
            stop: Arc::new(AtomicBool::new(false)),
            workers: Vec::with_capacity(count),
        };
        let work_rx = Arc::new(Mutex::new(work_rx));
        let answerer =
            Answerer { stop: Arc::clone(&pipeline.stop), runtime: runtime.clone(), checker: checker.clone() };
        for n in 0..count {
            let worker = Worker {
                queue: Arc::clone(&work_rx),
                answers: answer_tx.clone(),
                answerer: answerer.clone(),
            };
            match std::thread::Builder::new().name(format!("keyward-verify-{n}")).spawn(move || worker.run())
            {
                Ok(handle) => pipeline.workers.push(handle),
                Err(e) => {
                    pipeline.finish();
                    return Err(e).context("cannot start a verification thread");
                }
            }
        }
        let queue = Arc::clone(&pipeline.queue);
        let reader = std::thread::Builder::new()
            .name("keyward-read".to_owned())
            .spawn(move || read_batches(&queue, &credit_rx, &answer_tx, &answerer));
        // The reader is not joined: it may be blocked reading a stdin nobody writes to.
        if let Err(e) = reader {
            pipeline.finish();
            return Err(e).context("cannot start the thread reading stdin");
        }
        Ok((pipeline, answer_rx, credit_tx))
    }

    /// Stops the workers (what is still queued is skipped) and waits for them, and for a line
    /// the reader is answering itself.
    fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        drop(self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        for worker in self.workers {
            // A panic while verifying was already answered as an error (`Answerer::answer`).
            worker.join().ok();
        }
    }
}

/// The reader thread: sends batches to the work queue, one credit each, then tells the writer
/// how many it sent. A panic here is reported as an error, so the writer never waits forever.
///
/// A lone line (nothing queued behind it: most likely a caller waiting for its answer) is
/// answered here, which spares it a hand-off to a worker and back.
fn read_batches(
    queue: &Mutex<Option<Sender<Batch>>>,
    credits: &Receiver<()>,
    answers: &Sender<Message>,
    answerer: &Answerer,
) {
    let mut sent = 0u64;
    let read = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let stdin = std::io::stdin();
        // Our own buffer, so we can see without blocking whether the next line is already here.
        let mut input = std::io::BufReader::with_capacity(256 * 1024, stdin.lock());
        // One line buffer for the whole stream.
        let mut scratch = Vec::new();
        while let Some(lines) = read_batch(&mut input, &mut scratch)? {
            if credits.recv().is_err() {
                return Ok(()); // The writer has stopped.
            }
            let slot = queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let Some(work) = slot.as_ref() else { return Ok(()) };
            if lines.len() == 1 {
                // Answered holding the queue's lock, which `Pipeline::finish` takes too: the
                // runtime is never dropped under this verification.
                let answer = answerer.answer(lines);
                if answers.send(Message::Answered { seq: sent, answer }).is_err() {
                    return Ok(());
                }
            } else if work.send(Batch { seq: sent, lines }).is_err() {
                return Ok(());
            }
            sent = sent.saturating_add(1);
        }
        Ok(())
    }));
    let error = match read {
        Ok(result) => result.err(),
        Err(_) => Some(anyhow::anyhow!("the thread reading stdin stopped")),
    };
    // Fails only when the writer has stopped, and then nobody needs to know.
    answers.send(Message::End { batches: sent, error }).ok();
}

/// The next batch of non-blank lines: blocks for one, then takes the complete lines already
/// buffered, within [`BATCH_LINES`] and [`BATCH_BYTES`]; `None` at the end of input.
fn read_batch(input: &mut std::io::BufReader<impl Read>, scratch: &mut Vec<u8>) -> Result<Option<Vec<Line>>> {
    let mut lines = Vec::new();
    let mut bytes = 0usize;
    loop {
        let Some(line) = read_token_line(input, scratch)? else {
            return Ok((!lines.is_empty()).then_some(lines));
        };
        if line.early.is_some() || !line.token.text.is_empty() {
            bytes = bytes.saturating_add(line.token.text.len());
            lines.push(line);
        }
        let full = lines.len() >= BATCH_LINES || bytes >= BATCH_BYTES;
        if !lines.is_empty() && (full || !input.buffer().contains(&b'\n')) {
            return Ok(Some(lines));
        }
    }
}

/// One verification thread: takes batches from the shared queue until it is closed, and
/// answers each with its reports already serialised.
struct Worker {
    queue: Arc<Mutex<Receiver<Batch>>>,
    answers: Sender<Message>,
    answerer: Answerer,
}

impl Worker {
    fn run(self) {
        loop {
            let batch = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
            let Ok(Batch { seq, lines }) = batch else { return };
            let answer = self.answerer.answer(lines);
            if self.answers.send(Message::Answered { seq, answer }).is_err() {
                return;
            }
        }
    }
}

/// What answering a batch takes: the shared verifier, the runtime it runs on, and the stop
/// flag.
#[derive(Clone)]
struct Answerer {
    stop: Arc<AtomicBool>,
    runtime: tokio::runtime::Handle,
    checker: Checker,
}

impl Answerer {
    /// The batch's JSON lines. A panic is answered as an error in the batch's place, so the
    /// writer never waits for a batch that will not come.
    fn answer(&self, lines: Vec<Line>) -> Result<Answer> {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.answer_lines(lines)))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("a verification thread stopped")))
    }

    /// Verifies the lines in order and serialises one JSON report line each.
    fn answer_lines(&self, mut lines: Vec<Line>) -> Result<Answer> {
        let outcomes: Vec<Outcome> = self.runtime.block_on(async {
            let mut outcomes = Vec::with_capacity(lines.len());
            for line in &mut lines {
                if self.stop.load(Ordering::Relaxed) {
                    break;
                }
                outcomes.push(match line.early.take() {
                    Some(error) => Err(error),
                    None => self.checker.verify(&line.token.text).await,
                });
            }
            outcomes
        });
        let mut answer =
            Answer { json: Vec::with_capacity(lines.len().saturating_mul(1024)), all_valid: true };
        let mut details = Details::default();
        for (line, outcome) in lines.iter().zip(outcomes) {
            let report = Report::new(&line.token, &self.checker, outcome);
            answer.all_valid &= report.outcome.is_ok();
            report.write_json_fast(&mut answer.json, &mut details)?;
        }
        Ok(answer)
    }
}

/// The next line, tidied (an oversized line is cut at the bound, drained, and answered
/// `token_too_large`; a line that is not UTF-8 is answered `malformed`); `None` at EOF.
fn read_token_line(input: &mut impl BufRead, bytes: &mut Vec<u8>) -> Result<Option<Line>> {
    bytes.clear();
    let read = Read::by_ref(input)
        .take(MAX_STREAM_LINE)
        .read_until(b'\n', bytes)
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
    // Tidied from the reused buffer: the token's text is its only allocation.
    let token = match std::str::from_utf8(bytes) {
        Ok(text) => Token::from_text(text),
        Err(_) => Token { not_utf8: Some(bytes.len()), ..Token::default() },
    };
    let early = token.not_utf8.map(not_utf8);
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

    /// What was not checked, as notes (a verified token's report lists them).
    fn unchecked_notes(&self) -> &'static [&'static str] {
        const ISS: &str = "iss was not checked (no --issuer)";
        const AUD: &str = "aud was not checked (no --audience)";
        match (self.issuer_checked, self.audience_checked) {
            (false, false) => &[ISS, AUD],
            (false, true) => &[ISS],
            (true, false) => &[AUD],
            (true, true) => &[],
        }
    }

    /// Writes the `--json` object and a newline.
    pub(crate) fn write_json(&self, out: &mut impl Write) -> Result<()> {
        let detail = self.outcome.as_ref().ok().map(|v| valid_detail(v.key(), self.unchecked_notes()));
        wire::write_line(out, &self.to_wire(detail.as_deref()))
    }

    /// Appends the same bytes as [`Report::write_json`], faster (`--stream`): the detail of a
    /// verified token comes from `details`, and the object is written by hand.
    fn write_json_fast(&self, out: &mut Vec<u8>, details: &mut Details) -> Result<()> {
        let Ok(v) = &self.outcome else {
            self.to_wire(None).write_line_fast(out)?;
            return Ok(());
        };
        let (detail, detail_json) = details.of(v.key(), self.unchecked_notes());
        let report = VerifyReport { detail_json, ..self.to_wire(Some(detail)) };
        report.write_line_fast(out)?;
        Ok(())
    }

    /// The wire form; `valid_detail` is the detail of a verified token.
    fn to_wire<'a>(&'a self, valid_detail: Option<&'a str>) -> VerifyReport<'a> {
        let notes = Notes { input: &self.input_notes, unchecked: &[] };
        match &self.outcome {
            Ok(v) => VerifyReport::valid(
                v,
                valid_detail.unwrap_or_default(),
                Notes { unchecked: self.unchecked_notes(), ..notes },
            ),
            Err(e) => VerifyReport::rejected(e, self.header.as_ref(), self.unverified_claims.as_ref(), notes),
        }
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

/// The detail of a verified token: the key, then what was not checked.
fn valid_detail(key: &VerifyingKey, unchecked: &[&str]) -> String {
    let mut detail = format!("signature verified with {}", key.describe());
    for note in unchecked {
        detail.push_str("; ");
        detail.push_str(note);
    }
    detail
}

/// The last verified token's detail, kept while the next token names the same key: a batch
/// of tokens signed by one key builds it once.
#[derive(Default)]
struct Details {
    key: Option<Arc<VerifyingKey>>,
    unchecked: &'static [&'static str],
    detail: String,
    /// `detail` as a JSON string.
    json: Vec<u8>,
}

impl Details {
    /// The detail for a token verified by `key`, as [`valid_detail`] writes it, and the same
    /// as a JSON string (`None` if it could not be written).
    fn of(&mut self, key: &Arc<VerifyingKey>, unchecked: &'static [&'static str]) -> (&str, Option<&[u8]>) {
        let same = self.key.as_ref().is_some_and(|k| Arc::ptr_eq(k, key)) && self.unchecked == unchecked;
        if !same {
            self.detail = valid_detail(key, unchecked);
            self.json.clear();
            if wire::write_str(&mut self.json, &self.detail).is_err() {
                // Not expected (a string always serialises); the detail is then escaped per report.
                self.json.clear();
            }
            self.key = Some(Arc::clone(key));
            self.unchecked = unchecked;
        }
        // A written JSON string is never empty: it has its quotes.
        (&self.detail, (!self.json.is_empty()).then_some(self.json.as_slice()))
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

#[cfg(test)]
mod stream_tests {
    use std::sync::mpsc;

    use super::{Answer, Message, write_answers};

    fn answered(seq: u64, json: &str, all_valid: bool) -> Message {
        Message::Answered { seq, answer: Ok(Answer { json: json.as_bytes().to_vec(), all_valid }) }
    }

    fn write(messages: Vec<Message>, drop_senders: bool) -> (anyhow::Result<()>, String, bool, usize) {
        let (tx, rx) = mpsc::channel();
        let (credit_tx, credit_rx) = mpsc::sync_channel(8);
        for message in messages {
            tx.send(message).unwrap();
        }
        // Kept alive across the call unless the test is about every sender being gone.
        let _kept = (!drop_senders).then_some(tx);
        let (mut out, mut all_valid) = (Vec::new(), true);
        let result = write_answers(&rx, &credit_tx, &mut out, &mut all_valid);
        (result, String::from_utf8(out).unwrap(), all_valid, credit_rx.try_iter().count())
    }

    #[test]
    fn batches_are_written_in_input_order_whatever_order_they_are_answered_in() {
        let (result, out, all_valid, credits) = write(
            vec![
                answered(2, "c\n", true),
                Message::End { batches: 3, error: None },
                answered(0, "a\n", true),
                answered(1, "b\n", false),
            ],
            false,
        );
        result.unwrap();
        assert_eq!(out, "a\nb\nc\n");
        assert!(!all_valid, "batch 1 held a rejected token");
        assert_eq!(credits, 3, "one credit back per batch written");
    }

    #[test]
    fn a_failed_batch_ends_the_stream_after_the_batches_before_it() {
        let (result, out, _, _) = write(
            vec![
                Message::Answered { seq: 1, answer: Err(anyhow::anyhow!("a verification thread stopped")) },
                answered(2, "c\n", true),
                answered(0, "a\n", true),
                Message::End { batches: 3, error: None },
            ],
            false,
        );
        assert_eq!(result.unwrap_err().to_string(), "a verification thread stopped");
        assert_eq!(out, "a\n", "batch 0 is answered, nothing after the failed batch");
    }

    #[test]
    fn a_read_error_comes_after_every_batch_read_before_it() {
        let (result, out, all_valid, _) = write(
            vec![
                answered(1, "b\n", true),
                Message::End { batches: 2, error: Some(anyhow::anyhow!("cannot read tokens from stdin")) },
                answered(0, "a\n", true),
            ],
            false,
        );
        assert_eq!(result.unwrap_err().to_string(), "cannot read tokens from stdin");
        assert_eq!(out, "a\nb\n");
        assert!(all_valid);
    }

    #[test]
    fn threads_gone_without_an_end_are_an_error_not_a_hang() {
        let (result, out, _, _) = write(vec![answered(1, "b\n", true)], true);
        assert_eq!(result.unwrap_err().to_string(), "a verification thread stopped");
        assert_eq!(out, "", "batch 1 waits for batch 0, which never came");
    }
}

#[cfg(test)]
mod settings_tests {
    use std::time::Duration;

    use clap::Parser as _;

    use super::source_settings;
    use crate::cli::{Cli, Command};

    fn settings_of(flags: &[&str]) -> keyward::source::SourceSettings {
        let line = ["keyward", "verify", "--jwks", "k.json"].iter().chain(flags).copied();
        let Command::Verify(args) = Cli::try_parse_from(line).unwrap().command else { panic!("not verify") };
        source_settings(&args.source).unwrap()
    }

    /// The flags map onto the library's settings as `--help` says: `--refresh-cooldown` sets the
    /// budget window and the negative-cache time; no `--removal-grace` means confirmed removal.
    #[test]
    fn source_flags_become_settings() {
        let defaults = settings_of(&[]);
        assert_eq!(defaults.refresh_cooldown, Duration::from_secs(30));
        assert_eq!(defaults.negative_cache_ttl, Duration::from_secs(30));
        assert_eq!(defaults.removal_grace, None, "confirmed removal by default");
        let set = settings_of(&["--refresh-cooldown", "7s", "--removal-grace", "0s", "--max-stale", "1h"]);
        assert_eq!(set.refresh_cooldown, Duration::from_secs(7));
        assert_eq!(
            set.negative_cache_ttl,
            Duration::from_secs(7),
            "--refresh-cooldown sets the negative cache"
        );
        assert_eq!(set.removal_grace, Some(Duration::ZERO), "0s: at once, no confirmation");
        assert_eq!(set.max_stale, Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod json_tests {
    use std::sync::Arc;

    use clap::Parser as _;
    use keyward_idp::{MockIdp, SigningAlg, SigningKey, jwks};
    use serde_json::{Value, json};

    use super::{Checker, Details, Report, build_checker};
    use crate::cli::{Cli, Command};
    use crate::input::Token;

    const NOW: i64 = 1_767_225_600;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
    }

    fn checker(runtime: &tokio::runtime::Runtime, flags: &[&str]) -> Checker {
        let now = NOW.to_string();
        let line = ["keyward", "verify", "--now", &now, "--json"].into_iter().chain(flags.iter().copied());
        let Command::Verify(args) = Cli::try_parse_from(line).unwrap().command else { panic!("not verify") };
        runtime.block_on(async { build_checker(&args) }).unwrap()
    }

    fn claims(exp: i64, sub: &str) -> Value {
        json!({"iss": "https://idp.example.test", "aud": "orders", "sub": sub, "iat": NOW - 60, "exp": exp})
    }

    /// Verifies `input` as `--stream` does, writes its report both ways, checks the two byte
    /// strings are equal, and returns the report.
    fn both_ways(
        runtime: &tokio::runtime::Runtime,
        checker: &Checker,
        input: &str,
        details: &mut Details,
    ) -> Value {
        let token = Token::from_bytes(input.as_bytes().to_vec());
        let outcome = runtime.block_on(checker.verify(&token.text));
        let report = Report::new(&token, checker, outcome);
        let mut serde = Vec::new();
        report.write_json(&mut serde).unwrap();
        let mut fast = Vec::new();
        report.write_json_fast(&mut fast, details).unwrap();
        assert_eq!(
            String::from_utf8(fast).unwrap(),
            String::from_utf8(serde.clone()).unwrap(),
            "input {input:?}"
        );
        assert_eq!(serde.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        serde_json::from_slice(&serde).unwrap()
    }

    #[test]
    fn the_fast_writer_writes_the_serde_bytes_for_every_kind_of_report_from_a_key_file() {
        let signer = SigningKey::generate(SigningAlg::RS256, "k\"1").unwrap();
        let stranger = SigningKey::generate(SigningAlg::ES256, "k2").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks([&signer]).to_string()).unwrap();
        let path = path.to_str().unwrap();
        let runtime = runtime();
        let mut details = Details::default();

        let valid = signer.sign_jwt(&claims(NOW + 3600, "user \"one\"\n\u{1}é/\\")).unwrap();
        let expired = signer.sign_jwt(&claims(NOW - 3600, "user-2")).unwrap();
        let payload = claims(NOW + 60, "user-3").to_string();
        // Blanks around the header are not part of the embedded object; a line break makes
        // it be written from the parsed object instead.
        let spaced =
            signer.sign_parts(b" \t{\"alg\": \"RS256\", \"kid\": \"k\\\"1\"} ", payload.as_bytes()).unwrap();
        let broken =
            signer.sign_parts(b"{\"alg\":\"RS256\",\r\n\"kid\":\"k\\\"1\"}\n", payload.as_bytes()).unwrap();
        let unknown = stranger.sign_jwt(&claims(NOW + 3600, "user-4")).unwrap();
        let cases: [(&str, &[&str], String, Option<&str>); 8] = [
            ("valid", &[], valid.clone(), None),
            ("valid", &["--issuer", "https://idp.example.test", "--audience", "orders"], valid.clone(), None),
            ("valid", &["--audience", "orders"], format!("\"Bearer {valid}\""), None),
            ("valid", &[], spaced, None),
            ("valid", &[], broken, None),
            ("expired", &[], expired, Some("expired")),
            ("unknown kid", &[], unknown, Some("unknown_kid")),
            ("malformed", &[], "not.a\ttoken".to_owned(), Some("malformed")),
        ];
        for (what, flags, input, reason) in cases {
            let checker = checker(&runtime, &[&["--jwks", path][..], flags].concat());
            let report = both_ways(&runtime, &checker, &input, &mut details);
            assert_eq!(report["reason"].as_str(), reason, "{what}: {report}");
            assert_eq!(report["keys"], Value::Null, "{what}: a key file has no key source");
        }
    }

    #[test]
    fn the_fast_writer_writes_the_serde_bytes_for_remote_keys_and_keys_unavailable() {
        let runtime = runtime();
        let signer = Arc::new(SigningKey::generate(SigningAlg::ES256, "k1").unwrap());
        let idp = runtime.block_on(MockIdp::start()).unwrap();
        idp.publish(&[&signer]);
        let url = idp.jwks_uri();
        let remote = checker(&runtime, &["--jwks", &url]);
        let mut details = Details::default();

        let valid = signer.sign_jwt(&claims(NOW + 3600, "user-1")).unwrap();
        let report = both_ways(&runtime, &remote, &valid, &mut details);
        assert_eq!(report["valid"], json!(true), "{report}");
        assert!(report["keys"]["fetched_at"].is_string(), "a remote key set is reported: {report}");

        let unknown = SigningKey::generate(SigningAlg::ES256, "k9").unwrap();
        let unknown = unknown.sign_jwt(&claims(NOW + 3600, "user-2")).unwrap();
        // The first asks for a fetch; the second finds it made (or refused) already.
        for _ in 0..2 {
            let report = both_ways(&runtime, &remote, &unknown, &mut details);
            assert_eq!(report["reason"], json!("unknown_kid"), "{report}");
            assert_ne!(report["keys"]["fetch"], json!("none"), "{report}");
        }

        let dead = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            drop(listener);
            format!("http://{addr}/jwks")
        };
        let down = checker(&runtime, &["--jwks", &dead]);
        let report = both_ways(&runtime, &down, &valid, &mut details);
        assert_eq!(report["reason"], json!("keys_unavailable"), "{report}");
        assert!(report["keys"]["fetch_error"]["stage"].is_string(), "{report}");
    }
}
