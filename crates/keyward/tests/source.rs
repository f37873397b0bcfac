//! Key-source tests (issue 3): a scripted JWKS server (`source/support.rs`) drives rotation,
//! floods, outages, caching, discovery, multi-issuer selection, metrics and the background
//! task through the public API (`Verifier::verify`, `JwksSource::{health, current, refresh}`).
//!
//! Time: every test runs on tokio's current-thread runtime with the clock paused
//! (`start_paused = true`). The key source measures TTLs, cooldowns, grace and `max_stale` with
//! `tokio::time::Instant`, so the tests move time with `tokio::time::advance` and nothing sleeps
//! on the wall clock. When the runtime has nothing to run, tokio auto-advances the paused clock
//! to the next timer; that is how retry backoffs, handler delays and HTTP timeouts elapse
//! instantly.
//!
//! Paused time and loopback I/O: auto-advance happens only when a park of the driver woke no
//! task. A loopback write is visible to the peer socket when the write syscall returns, and a
//! readiness event that wakes a task marks the driver as woken (tokio 1.54 `unpark_self`), so
//! the clock does not jump while a request or response is in flight and no HTTP timeout fires
//! early (`fetching::loopback_fetches_do_not_advance_paused_time` checks it). Waiting for work a
//! verification spawned uses `yield_now` loops (`support::until`, `support::settle`), which
//! never advance paused time; where time must pass (a hanging server), tests sleep in paused
//! time instead.

mod source {
    pub(crate) mod support;

    mod background;
    mod caching;
    mod discovery;
    mod evidence;
    mod fetching;
    mod flood;
    mod guarantees;
    mod issuers;
    mod keyset;
    mod outage;
    mod ratelimit;
    mod rotation;
    mod telemetry;
}
