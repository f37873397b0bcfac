//! The verifying layer and its service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use keyward::{Error, Verified, Verifier};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::RejectionBody;
use crate::outcome::{AuthOutcome, Authenticated};
use crate::reject::{DefaultReject, Reject, Rejection};
use crate::token::{Bearer, bearer, digest, is_grpc};

/// What the layer does with requests it cannot authenticate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// Only requests with a valid token pass (the default).
    #[default]
    Required,
    /// A request without a token passes, with [`AuthOutcome::Missing`]; an invalid token is
    /// still rejected.
    Optional,
    /// Nothing is rejected: the outcome (verified, missing, or rejected with its reason) is
    /// recorded in [`AuthOutcome`] for the handler to decide.
    Passthrough,
}

/// Verifies the bearer token of every request with a [`Verifier`] (tower [`Layer`]).
#[derive(Clone, Debug)]
pub struct KeywardLayer<R = DefaultReject> {
    verifier: Verifier,
    mode: Mode,
    reject: R,
}

impl KeywardLayer {
    /// A layer in [`Mode::Required`] with the default rejection responses.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier, mode: Mode::Required, reject: DefaultReject }
    }
}

impl<R: Reject> KeywardLayer<R> {
    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Replaces how rejections become responses, the layer's and (in optional and passthrough
    /// modes) the extractors' alike. With a mapping other than [`DefaultReject`], `R` is cloned
    /// into each request's extensions for the extractors.
    pub fn reject_with<R2: Reject>(self, reject: R2) -> KeywardLayer<R2> {
        KeywardLayer { verifier: self.verifier, mode: self.mode, reject }
    }
}

impl<S, R: Reject> Layer<S> for KeywardLayer<R> {
    type Service = Keyward<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Keyward { inner, verifier: self.verifier.clone(), mode: self.mode, reject: self.reject.clone() }
    }
}

/// The service [`KeywardLayer`] wraps around yours.
#[derive(Clone, Debug)]
pub struct Keyward<S, R = DefaultReject> {
    inner: S,
    verifier: Verifier,
    mode: Mode,
    reject: R,
}

/// The layer's [`Reject`], for the extractors of a request it let through (optional and
/// passthrough modes), so a rejection they make is answered the application's way too.
#[cfg(feature = "axum")]
#[derive(Clone)]
pub(crate) struct ExtractorReject(pub(crate) std::sync::Arc<RejectFn>);

/// A [`Reject`] with its type erased: rejection and whether the request is gRPC in, response out.
#[cfg(feature = "axum")]
pub(crate) type RejectFn = dyn Fn(&Rejection, bool) -> Response<String> + Send + Sync;

/// A verification that must wait for a key fetch (boxed: the rare path only).
pub(crate) type Waiting = Pin<Box<dyn Future<Output = Result<Verified, Error>> + Send + 'static>>;

/// The layer's decision for a request, before any await.
pub(crate) enum Decision {
    /// Let it through (the outcome is in its extensions).
    Forward,
    /// Answer with this rejection.
    Reject(Rejection),
    /// The token needs a key fetch first.
    Wait(Waiting, [u8; 32]),
}

/// Reads the token and verifies it when that needs no fetch; records the outcome.
pub(crate) fn decide<B>(verifier: &Verifier, mode: Mode, request: &mut Request<B>) -> Decision {
    let (result, sha) = match bearer(request.headers_mut()) {
        Bearer::None => {
            if mode == Mode::Required {
                return Decision::Reject(Rejection::MissingToken);
            }
            request.extensions_mut().insert(AuthOutcome::Missing);
            return Decision::Forward;
        }
        Bearer::Invalid(why) => return refuse(mode, request, Rejection::InvalidRequest(why)),
        Bearer::Token(token) => {
            let sha = digest(token);
            match verifier.verify_now(token) {
                Ok(result) => (result, sha),
                Err(pending) => return Decision::Wait(Box::pin(pending.wait()), sha),
            }
        }
    };
    settle(mode, request, result, sha)
}

/// Records a finished verification; rejects unless the mode lets the request through.
pub(crate) fn settle<B>(
    mode: Mode,
    request: &mut Request<B>,
    result: Result<Verified, Error>,
    sha: [u8; 32],
) -> Decision {
    match result {
        Ok(verified) => {
            request.extensions_mut().insert(AuthOutcome::Verified(Authenticated::new(verified, sha)));
            Decision::Forward
        }
        Err(error) => refuse(mode, request, Rejection::from_error(error)),
    }
}

fn refuse<B>(mode: Mode, request: &mut Request<B>, rejection: Rejection) -> Decision {
    if mode == Mode::Passthrough {
        request.extensions_mut().insert(AuthOutcome::Rejected(rejection));
        return Decision::Forward;
    }
    Decision::Reject(rejection)
}

/// The response for `rejection`, with the body type of the wrapped service.
pub(crate) fn respond<R: Reject, ResBody: RejectionBody>(
    reject: &R,
    rejection: &Rejection,
    grpc: bool,
) -> Response<ResBody> {
    tracing::debug!(code = rejection.code(), grpc, "request rejected: {rejection}");
    reject.reject(rejection, grpc).map(ResBody::from_text)
}

impl<S, R, B, ResBody> Service<Request<B>> for Keyward<S, R>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone,
    R: Reject,
    ResBody: RejectionBody,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S, B, R, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // A mapping of the application's own reaches the extractors too (the default costs
        // nothing: they fall back to it).
        #[cfg(feature = "axum")]
        if std::any::TypeId::of::<R>() != std::any::TypeId::of::<DefaultReject>() {
            let reject = self.reject.clone();
            request.extensions_mut().insert(ExtractorReject(std::sync::Arc::new(move |rejection, grpc| {
                reject.reject(rejection, grpc)
            })));
        }
        let state = match decide(&self.verifier, self.mode, &mut request) {
            Decision::Forward => State::Called { future: self.inner.call(request) },
            Decision::Reject(rejection) => {
                let grpc = is_grpc(request.headers());
                State::Rejected { response: Some(respond(&self.reject, &rejection, grpc)) }
            }
            Decision::Wait(verify, sha) => {
                // The ready service goes with the request; this one gets a fresh clone.
                let clone = self.inner.clone();
                let service = std::mem::replace(&mut self.inner, clone);
                State::Verifying {
                    verify,
                    sha,
                    grpc: is_grpc(request.headers()),
                    request: Some(request),
                    service: Some(service),
                    mode: self.mode,
                    reject: self.reject.clone(),
                }
            }
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The response future of [`Keyward`]: the wrapped service's future, a rejection, or (only
    /// for a token that needs a key fetch) the wait for it.
    pub struct ResponseFuture<S, B, R, ResBody>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S, S::Future, B, R, ResBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, F, B, R, ResBody> {
        Called { #[pin] future: F },
        Rejected { response: Option<Response<ResBody>> },
        Verifying {
            verify: Waiting,
            sha: [u8; 32],
            grpc: bool,
            request: Option<Request<B>>,
            service: Option<S>,
            mode: Mode,
            reject: R,
        },
    }
}

impl<S, B, R, ResBody> Future for ResponseFuture<S, B, R, ResBody>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    R: Reject,
    ResBody: RejectionBody,
{
    type Output = Result<Response<ResBody>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Called { future } => return future.poll(cx),
                StateProj::Rejected { response } => {
                    return Poll::Ready(Ok(response.take().unwrap_or_else(completed)));
                }
                StateProj::Verifying { verify, sha, grpc, request, service, mode, reject } => {
                    let result = ready!(verify.as_mut().poll(cx));
                    let (Some(mut request), Some(mut service)) = (request.take(), service.take()) else {
                        return Poll::Ready(Ok(completed()));
                    };
                    match settle(*mode, &mut request, result, *sha) {
                        Decision::Reject(rejection) => {
                            return Poll::Ready(Ok(respond(reject, &rejection, *grpc)));
                        }
                        // `settle` never waits: anything but a rejection forwards.
                        Decision::Forward | Decision::Wait(..) => {
                            State::Called { future: service.call(request) }
                        }
                    }
                }
            };
            state.set(next);
        }
    }
}

/// The answer of a future polled after it completed (a caller bug): a bare 500, never a panic.
pub(crate) fn completed<ResBody: RejectionBody>() -> Response<ResBody> {
    let mut response = Response::new(ResBody::from_text(String::new()));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response
}
