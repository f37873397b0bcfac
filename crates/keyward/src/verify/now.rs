//! Verification that borrows nothing across an await: a synchronous answer whenever no fetch is
//! needed, and an owned future only for the rare token that must wait for one.
//!
//! Middleware (a tower service) cannot hold `Verifier::verify`'s future: it borrows the verifier
//! and the token. [`Verifier::verify_now`] runs the same verification and answers at once in the
//! common case (static keys, or a remote set that has the token's kid and is usable); only a
//! token that needs a fetch (unknown kid, a changed key, the very first fetch) gets a [`Pending`],
//! which owns what it needs.

use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use super::{Verified, Verifier, record};
use crate::error::Error;

impl Verifier {
    /// Verifies without awaiting when no key fetch is needed: `Ok(outcome)` then, with the same
    /// outcome, metrics, log line and key evidence as [`Verifier::verify`]. `Err(Pending)` when
    /// the token must wait for a fetch: await [`Pending::wait`].
    ///
    /// Must be called inside a tokio runtime when the verifier has remote keys (as `verify`).
    pub fn verify_now(&self, token: &str) -> Result<Result<Verified, Error>, Pending> {
        let started = crate::clock::stopwatch();
        let verifying = pin!(self.verify_inner(token));
        // The verification only waits on a fetch; polled once, it either finishes or has started
        // (or joined) the fetch it needs, which runs on its own task and survives this drop.
        match verifying.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready((issuer, result)) => Ok(record(started, issuer, result)),
            Poll::Pending => Err(Pending { verifier: self.clone(), token: token.to_owned() }),
        }
    }

    /// Verifies an owned token: a `'static`, `Send` future for code that cannot borrow (spawned
    /// tasks, services). Ready at once when no fetch is needed; boxed only when one is.
    pub fn verify_owned(&self, token: String) -> VerifyFuture {
        match self.verify_now(&token) {
            Ok(outcome) => VerifyFuture { state: State::Ready(Some(outcome)) },
            Err(pending) => VerifyFuture { state: State::Waiting(Box::pin(pending.wait())) },
        }
    }
}

/// A token that must wait for a key fetch before it can be verified (from
/// [`Verifier::verify_now`]). Owns a verifier handle and the token.
pub struct Pending {
    verifier: Verifier,
    token: String,
}

impl Pending {
    /// Waits for the fetch (at most the source's `fetch_wait`) and verifies.
    ///
    /// Verification runs again from the start: the fetch the first attempt started is joined,
    /// never repeated, and the outcome is counted and logged once, here.
    pub async fn wait(self) -> Result<Verified, Error> {
        self.verifier.verify(&self.token).await
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a credential: never printed.
        f.debug_struct("Pending").field("token_len", &self.token.len()).finish_non_exhaustive()
    }
}

/// The future of [`Verifier::verify_owned`]: ready at once, or waiting for a key fetch.
/// Polled again after it completed, it answers `malformed` instead of panicking.
#[must_use = "futures do nothing unless awaited"]
pub struct VerifyFuture {
    state: State,
}

type Waiting = Pin<Box<dyn Future<Output = Result<Verified, Error>> + Send + 'static>>;

// Moving a few hundred bytes once is cheaper than boxing the common, ready outcome.
#[allow(clippy::large_enum_variant)]
enum State {
    Ready(Option<Result<Verified, Error>>),
    Waiting(Waiting),
}

impl VerifyFuture {
    /// True when the outcome is already known (no fetch was needed).
    pub fn is_ready(&self) -> bool {
        matches!(self.state, State::Ready(Some(_)))
    }
}

impl Future for VerifyFuture {
    type Output = Result<Verified, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `VerifyFuture` is `Unpin`: both states are.
        let this = self.get_mut();
        match &mut this.state {
            State::Ready(outcome) => match outcome.take() {
                Some(outcome) => Poll::Ready(outcome),
                None => Poll::Ready(Err(Error::new(
                    crate::Reason::Malformed,
                    "VerifyFuture polled after it completed",
                ))),
            },
            State::Waiting(fut) => fut.as_mut().poll(cx),
        }
    }
}

impl fmt::Debug for VerifyFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyFuture").field("ready", &self.is_ready()).finish()
    }
}
