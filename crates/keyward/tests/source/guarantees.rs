//! One test per documented key-source guarantee that no other test pinned down: each of these
//! was seen to fail when the guarantee was broken in the source (`scripts/mutants.sh` applies
//! the breakages again; `docs/testing.md` lists them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keyward::source::{FetchStage, JwksSource};
use keyward::{FixedClock, Issuer, Policy, Reason, Verifier};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio::time::{Instant, advance};

use super::support::*;

/// The default limiter window (`refresh_cooldown`), plus a second.
const PAST_WINDOW: Duration = Duration::from_secs(31);

/// A forged ES256 token for `ISS` naming `kid`, with a well-formed but wrong signature.
fn forged_with_kid(kid: &str) -> String {
    forge(&json!({"alg": "ES256", "kid": kid, "typ": "JWT"}), &claims_for(ISS), &[7; 64])
}

// --- Warm start: "the last good set per source is written atomically" ---------------------

/// A JWKS of `key` padded to about `pad` bytes (unknown top-level members are ignored), so a
/// non-atomic write has a wide window in which a reader sees part of the file.
fn padded_jwks(key: &keyward_idp::SigningKey, pad: usize) -> Reply {
    let mut doc = keyward_idp::jwks([key]);
    doc["padding"] = Value::String("p".repeat(pad));
    Reply::json(&doc)
}

/// The one saved file in `dir` (fails when there is none or more than one).
fn saved_file(dir: &std::path::Path) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// A reader that reads the warm-start file in a loop while the source saves it 150 times never
/// sees a partial file: the save writes a temp file and renames it over the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_start_readers_never_see_a_partial_file() {
    let dir = TempDir::new("atomic");
    let k1 = key("k1");
    let (server, source) = {
        let server = Server::start().await;
        server.set(KEYS, padded_jwks(&k1, 512 * 1024));
        let cache = dir.0.clone();
        let source = quiet(&server.url(KEYS)).configure(|s| s.cache_dir = Some(cache)).build().unwrap();
        (server, source)
    };
    source.refresh().await.unwrap();
    let path = saved_file(&dir.0);

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (stop, path) = (Arc::clone(&stop), path.clone());
        std::thread::spawn(move || {
            let (mut reads, mut torn) = (0usize, Vec::new());
            while !stop.load(Ordering::SeqCst) {
                match std::fs::read(&path) {
                    Ok(bytes) => {
                        reads += 1;
                        let whole = serde_json::from_slice::<Value>(&bytes)
                            .is_ok_and(|v| v["jwks"].as_str().is_some_and(|j| j.contains("padding")));
                        if !whole {
                            torn.push(bytes.len());
                        }
                    }
                    Err(e) => torn.push(usize::MAX - e.raw_os_error().unwrap_or(0) as usize),
                }
            }
            (reads, torn)
        })
    };
    for _ in 0..150 {
        source.refresh().await.unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let (reads, torn) = reader.join().unwrap();
    assert_eq!(server.hits(KEYS), 151);
    assert!(reads > 0, "the reader never read the file");
    assert!(
        torn.is_empty(),
        "{} of {reads} reads saw a partial or missing file (sizes {torn:?})",
        torn.len()
    );
}

/// A crash between writing the temp file and renaming it leaves a `.tmp` beside the saved file:
/// the next start still uses the saved file, and later saves are not blocked by the leftover.
#[tokio::test(start_paused = true)]
async fn a_leftover_temp_file_neither_hides_the_saved_set_nor_blocks_later_saves() {
    let dir = TempDir::new("leftover");
    let server = Server::start().await;
    let (k1, k2) = (key("k1"), key("k2"));
    let clock = Arc::new(FixedClock::at(NOW));
    let build = || warm_process(&server, &dir, &clock);

    server.set(KEYS, Reply::jwks(&[&k1]));
    let a = build();
    ready(&a).await;
    let path = saved_file(&dir.0);
    drop(a);
    // What a crash between write and rename leaves: a partial temp file.
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, b"{\"saved_at\": 17672").unwrap();

    // B starts during an outage: the saved set serves.
    server.set(KEYS, Reply::status(503));
    clock.advance(60);
    let b = build();
    ok(verifier(&b).verify(&token(&k1)).await, "saved set beside a leftover temp file");
    // The IdP comes back with k2: B saves it despite the leftover.
    server.set(KEYS, Reply::jwks(&[&k2]));
    b.refresh().await.unwrap();
    drop(b);

    // C starts during the next outage: it has k2, so B's save reached the saved file.
    server.set(KEYS, Reply::status(503));
    clock.advance(60);
    let c = build();
    ok(verifier(&c).verify(&token(&k2)).await, "the set B saved");
    assert_eq!(saved_file(&dir.0), path);
}

// --- "Tokens and signatures are never logged" ---------------------------------------------

thread_local! {
    /// Every event and span field rendered on this thread while a capture is on.
    static CAPTURED: std::cell::RefCell<Option<Vec<String>>> = const { std::cell::RefCell::new(None) };
}

/// A layer that renders every field of every event and span, at every level (TRACE included),
/// into [`CAPTURED`] on the thread that emitted it.
///
/// It is installed as the global subscriber, once per test binary, rather than with
/// `set_default`: with only thread-scoped subscribers, a callsite first hit on another test's
/// thread could cache "never interested" and this test saw none of the rejection events when
/// the suite ran in parallel. A global subscriber that wants everything keeps every callsite
/// enabled; tests with their own `set_default` subscriber still see only their own events.
struct ThreadCapture;

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.push_str(&format!(" {}={value:?}", field.name()));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.push_str(&format!(" {}={value}", field.name()));
    }
}

fn keep(line: impl FnOnce() -> String) {
    CAPTURED.with(|captured| {
        if let Some(lines) = captured.borrow_mut().as_mut() {
            lines.push(line());
        }
    });
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ThreadCapture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        keep(|| {
            let mut line = format!("{} {}:", event.metadata().level(), event.metadata().target());
            event.record(&mut Fields(&mut line));
            line
        });
    }
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        keep(|| {
            let mut line = format!("span {}:", attrs.metadata().name());
            attrs.record(&mut Fields(&mut line));
            line
        });
    }
    fn on_record(
        &self,
        _: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        keep(|| {
            let mut line = "span record:".to_owned();
            values.record(&mut Fields(&mut line));
            line
        });
    }
}

/// Starts capturing this thread's events (installing the global layer on first use).
fn capture_this_thread() {
    use tracing_subscriber::layer::SubscriberExt as _;
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(ThreadCapture))
            .expect("no other global subscriber in the source tests");
    });
    CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
}

/// Stops capturing this thread's events and returns them.
fn captured_on_this_thread() -> Vec<String> {
    CAPTURED.with(|captured| captured.borrow_mut().take().unwrap_or_default())
}

#[tokio::test(start_paused = true)]
async fn no_token_segment_reaches_any_log_field_at_any_level() {
    capture_this_thread();

    let (k1, stranger) = (key("k1"), key("stranger"));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);
    advance(PAST_WINDOW).await; // old enough for a signature retry: the rejected path fetches too

    let valid = token(&k1);
    let expired =
        k1.sign_jwt(&json!({"iss": ISS, "sub": "alice", "iat": NOW - 7200, "exp": NOW - 3600})).unwrap();
    let bad_signature = {
        let other = stranger.sign_jwt(&claims_for(ISS)).unwrap();
        let (head, _) = valid.rsplit_once('.').unwrap();
        format!("{head}.{}", other.rsplit_once('.').unwrap().1)
    };
    let unknown_kid = token(&stranger);
    let kidless =
        stranger.sign_with_header(&json!({"alg": "ES256", "typ": "JWT"}), &claims_for(ISS)).unwrap();
    let malformed = {
        // A payload segment of impossible length (4n+1), everything else genuine.
        let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
        while parts[1].len() % 4 != 1 {
            parts[1].push('A');
        }
        parts.join(".")
    };
    let cases = [
        ("valid", valid.as_str(), None),
        ("expired", &expired, Some(Reason::Expired)),
        ("bad signature", &bad_signature, Some(Reason::InvalidSignature)),
        ("unknown kid", &unknown_kid, Some(Reason::UnknownKid)),
        ("no kid, signature fails", &kidless, Some(Reason::InvalidSignature)),
        ("malformed", &malformed, Some(Reason::Malformed)),
    ];
    let mut rejections = 0;
    for (case, token, expect) in &cases {
        match expect {
            None => drop(ok(v.verify(token).await, case)),
            Some(reason) => {
                rejected(v.verify(token).await, *reason, case);
                rejections += 1;
            }
        }
    }
    settle().await;
    assert!(server.hits(KEYS) >= 2, "the unknown kid fetched: the fetch path's logs are covered too");

    let lines = captured_on_this_thread();
    let debug_rejections =
        lines.iter().filter(|l| l.starts_with("DEBUG") && l.contains("token rejected")).count();
    assert_eq!(debug_rejections, rejections, "every rejection is logged at DEBUG:\n{}", lines.join("\n"));
    for (case, token, _) in &cases {
        for segment in token.split('.') {
            // Whole segments, and their first 16 characters (a truncated token is still a leak).
            for needle in [segment, &segment[..16]] {
                if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                    panic!("{case}: a token segment ({needle}) was logged: {line}");
                }
            }
        }
    }
}

// --- "Tokens without a kid never trigger a refetch" ---------------------------------------

#[tokio::test(start_paused = true)]
async fn a_kidless_token_whose_signature_fails_never_fetches() {
    let (k1, stranger) = (key("k1"), key("stranger"));
    let (server, source) = serving(Reply::jwks(&[&k1])).await;
    ready(&source).await;
    let v = verifier(&source);
    // Past the cooldown, so a signature failure under a kid would refetch now.
    advance(PAST_WINDOW).await;

    let kidless = |k: &keyward_idp::SigningKey| {
        k.sign_with_header(&json!({"alg": "ES256", "typ": "JWT"}), &claims_for(ISS)).unwrap()
    };
    ok(v.verify(&kidless(&k1)).await, "kid-less token from the one key");
    for _ in 0..3 {
        rejected(v.verify(&kidless(&stranger)).await, Reason::InvalidSignature, "kid-less forged token");
        let rs = forge(&json!({"alg": "RS256", "typ": "JWT"}), &claims_for(ISS), &[7; 256]);
        rejected(v.verify(&rs).await, Reason::NoMatchingKey, "kid-less token, no compatible key");
    }
    settle().await;
    assert_eq!(server.hits(KEYS), 1, "kid-less tokens caused a fetch");
    // The control: the same forged signature under the known kid does refetch.
    rejected(
        v.verify(&stranger.with_kid("k1").sign_jwt(&claims_for(ISS)).unwrap()).await,
        Reason::InvalidSignature,
        "forged under k1",
    );
    assert_eq!(server.hits(KEYS), 2, "a signature failure under a kid refetches (the control)");
}

// --- Single-flight and the limiter, each with the other out of reach -----------------------

/// 1,000 concurrent requests for one unknown kid, the limiter budget out of reach: one fetch.
async fn single_flight(server: &Server, source: &JwksSource) {
    let v = verifier(source);
    let before = server.hits(KEYS);
    let mut tasks = JoinSet::new();
    let forged = forged_with_kid("new-kid");
    for _ in 0..1_000 {
        let (v, forged) = (v.clone(), forged.clone());
        tasks.spawn(async move { v.verify(&forged).await.map(drop) });
    }
    let mut answered = 0;
    while let Some(joined) = tasks.join_next().await {
        rejected(joined.unwrap(), Reason::UnknownKid, "concurrent unknown kid");
        answered += 1;
    }
    assert_eq!(answered, 1_000);
    assert_eq!(server.hits(KEYS) - before, 1, "1,000 concurrent lookups of one kid");
}

#[tokio::test(start_paused = true)]
async fn concurrent_unknown_kid_lookups_share_one_fetch() {
    let k1 = key("k1");
    let server = Server::start().await;
    server.set(KEYS, Reply::jwks(&[&k1]));
    let source = quiet(&server.url(KEYS)).configure(|s| s.unknown_kid_fetches = 1_000_000).build().unwrap();
    ready(&source).await;
    // The fetch the lookups cause takes 500 ms of (paused) time: they all arrive while it runs.
    server.set(KEYS, Reply::jwks(&[&k1]).delay(Duration::from_millis(500)));
    single_flight(&server, &source).await;
}

/// The same on four worker threads with real time: the reply is held for 300 ms so the lookups
/// pile up behind the one fetch (late arrivals find the kid negatively cached, so a slow
/// machine cannot add a legitimate second fetch).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_unknown_kid_lookups_share_one_fetch_on_many_threads() {
    let k1 = key("k1");
    let server = Server::start().await;
    server.set(KEYS, Reply::jwks(&[&k1]).delay(Duration::from_millis(300)));
    let source = quiet(&server.url(KEYS)).configure(|s| s.unknown_kid_fetches = 1_000_000).build().unwrap();
    source.refresh().await.unwrap();
    single_flight(&server, &source).await;
}

/// Requests one after another (single-flight cannot merge them), one new kid a second for 90 s:
/// never more than `unknown_kid_fetches` requests reach the IdP in any window (here 3 per 30 s,
/// so spaced 10 s apart), and the budget renews as the window slides. Times are those at which
/// the requests were sent (after their random jitter; the fetch itself takes no paused time).
#[tokio::test(start_paused = true)]
async fn sequential_unknown_kids_fetch_at_most_the_budget_per_window() {
    let k1 = key("k1");
    let server = Server::start().await;
    server.set(KEYS, Reply::jwks(&[&k1]));
    let source = quiet(&server.url(KEYS)).configure(|s| s.unknown_kid_fetches = 3).build().unwrap();
    ready(&source).await;
    let v = verifier(&source);
    let start = Instant::now();
    let mut fetched_at = Vec::new();
    for second in 0..90u64 {
        let before = server.hits(KEYS);
        rejected(v.verify(&forged_with_kid(&format!("s{second}"))).await, Reason::UnknownKid, "new kid");
        settle().await;
        if server.hits(KEYS) > before {
            fetched_at.push(start.elapsed());
        }
        advance(Duration::from_secs(1)).await;
    }
    for (i, first) in fetched_at.iter().enumerate() {
        // Closed windows: a request exactly 30 s after another still counts against it.
        let in_window =
            fetched_at[i..].iter().take_while(|t| **t <= *first + Duration::from_secs(30)).count();
        assert!(in_window <= 3, "{in_window} fetches in the 30 s from {first:?}: {fetched_at:?}");
    }
    for pair in fetched_at.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_secs(10), "spacing: {fetched_at:?}");
    }
    assert!(fetched_at.len() >= 8, "the budget renews as the window slides: {fetched_at:?}");
}

/// A concurrent flood of distinct kids on four worker threads, with a window far longer than
/// the test: never more fetches than the budget, and every answer `unknown_kid`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_concurrent_flood_on_many_threads_stays_within_the_budget() {
    let k1 = key("k1");
    let server = Server::start().await;
    server.set(KEYS, Reply::jwks(&[&k1]));
    let source = quiet(&server.url(KEYS))
        .configure(|s| s.refresh_cooldown = Duration::from_secs(3600))
        .build()
        .unwrap();
    // The startup fetch, and a manual one if the startup fetch had already finished.
    source.refresh().await.unwrap();
    let before = server.hits(KEYS);
    let v = verifier(&source);
    let mut tasks = JoinSet::new();
    for i in 0..2_000 {
        let v = v.clone();
        tasks.spawn(async move { v.verify(&forged_with_kid(&format!("flood-{i}"))).await.map(drop) });
    }
    let mut answered = 0;
    while let Some(joined) = tasks.join_next().await {
        rejected(joined.unwrap(), Reason::UnknownKid, "flood kid");
        answered += 1;
    }
    assert_eq!(answered, 2_000);
    let fetched = server.hits(KEYS) - before;
    assert!((1..=2).contains(&fetched), "{fetched} fetches for the flood (budget 2)");
}

// --- "Retries on DNS errors" ----------------------------------------------------------------

/// An unresolvable host (RFC 6761 `.invalid`): each retry sleeps its backoff on the paused
/// clock, and a DNS lookup itself never moves paused time (tokio holds the clock while the
/// resolver's blocking task runs), so the paused time a fetch takes counts its retries.
#[tokio::test(start_paused = true)]
async fn dns_errors_are_retried() {
    async fn fetch_time(retries: u32) -> Duration {
        let source = JwksSource::from_url("https://keyward-test.invalid/jwks")
            .configure(|s| {
                s.background_refresh = false;
                s.http.retries = retries;
                s.http.retry_backoff = Duration::from_secs(10);
                s.http.retry_backoff_max = Duration::from_secs(10);
            })
            .build()
            .unwrap();
        // Wait for the startup fetch, without starting another.
        let started = Instant::now();
        let err = loop {
            if let Some(err) = source.health().last_error {
                break err;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(err.stage, FetchStage::Dns, "{err}");
        assert_eq!(source.health().consecutive_failures, 1);
        started.elapsed()
    }
    // No retry: the failure is immediate in paused time (up to the 100 ms polling step).
    let once = fetch_time(0).await;
    assert!(once <= Duration::from_millis(100), "{once:?}");
    // Three retries: three backoffs of 10 s ± 20 % jitter.
    let retried = fetch_time(3).await;
    assert!(
        (Duration::from_secs(24)..=Duration::from_secs(37)).contains(&retried),
        "a DNS failure with 3 retries took {retried:?} of paused time"
    );
}

// --- "Budgets are per source: one issuer's flood never degrades another" -------------------

#[tokio::test(start_paused = true)]
async fn a_flood_on_one_issuer_never_delays_another_issuers_rotation() {
    const A: &str = "https://a.example.test";
    const B: &str = "https://b.example.test";
    let (ka, kb1, kb2) = (key("a1"), key("b1"), key("b2"));
    let (server_a, source_a) = serving(Reply::jwks(&[&ka])).await;
    let (server_b, source_b) = serving(Reply::jwks(&[&kb1])).await;
    ready(&source_a).await;
    ready(&source_b).await;
    let v = Verifier::builder()
        .issuer(Issuer::new(A, source_a.clone()))
        .issuer(Issuer::new(B, source_b.clone()))
        .policy(Policy::builder().any_audience().build().unwrap())
        .clock(FixedClock::at(NOW))
        .build()
        .unwrap();

    // A flood on A: its first kid fetches, the spacing answers the rest.
    let claims_a = claims_for(A);
    for i in 0..50 {
        let forged = forge(&json!({"alg": "ES256", "kid": format!("flood-{i}")}), &claims_a, &[7; 64]);
        rejected(v.verify(&forged).await, Reason::UnknownKid, "A flood kid");
    }
    assert_eq!(server_a.hits(KEYS), 2, "A: startup and one unknown-kid fetch, then the spacing refuses");

    // B rotates while A's budget refuses: B's new kid verifies with one fetch, sent within B's
    // own token-fetch jitter (0-500 ms), never after A's spacing.
    server_b.set(KEYS, Reply::jwks(&[&kb1, &kb2]));
    let started = Instant::now();
    ok(v.verify(&kb2.sign_jwt(&claims_for(B)).unwrap()).await, "B's new kid during A's flood");
    assert!(started.elapsed() <= source_b.settings().token_fetch_jitter, "{:?}", started.elapsed());
    assert_eq!(server_b.hits(KEYS), 2);
    // One spacing later A's flood takes A's next fetch; B's own next fetch is unaffected.
    advance(Duration::from_secs(4)).await;
    for i in 50..100 {
        let forged = forge(&json!({"alg": "ES256", "kid": format!("flood-{i}")}), &claims_a, &[7; 64]);
        rejected(v.verify(&forged).await, Reason::UnknownKid, "A flood kid");
    }
    assert_eq!(server_a.hits(KEYS), 3);
    let forged = forge(&json!({"alg": "ES256", "kid": "b-new"}), &claims_for(B), &[7; 64]);
    rejected(v.verify(&forged).await, Reason::UnknownKid, "B new kid");
    assert_eq!(server_b.hits(KEYS), 3, "B's budget is its own");
}
