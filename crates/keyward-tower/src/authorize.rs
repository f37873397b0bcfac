//! tower-http's `AsyncAuthorizeRequest`, for users already on `AsyncRequireAuthorizationLayer`.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{Request, Response};
use keyward::Verifier;
use pin_project_lite::pin_project;
use tower_http::auth::AsyncAuthorizeRequest;

use crate::body::RejectionBody;
use crate::reject::{DefaultReject, Reject};
use crate::service::{Decision, Mode, Waiting, completed, decide, respond, settle};
use crate::token::is_grpc;

/// Authorizes requests for `tower_http::auth::AsyncRequireAuthorizationLayer`, with the same
/// token handling, outcomes and responses as [`crate::KeywardLayer`]. `ResBody` is the
/// response body type of the wrapped service.
pub struct KeywardAuthorizer<ResBody, R = DefaultReject> {
    verifier: Verifier,
    mode: Mode,
    reject: R,
    body: PhantomData<fn() -> ResBody>,
}

impl<ResBody> KeywardAuthorizer<ResBody> {
    /// An authorizer in [`Mode::Required`] with the default responses.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier, mode: Mode::Required, reject: DefaultReject, body: PhantomData }
    }
}

impl<ResBody, R: Reject> KeywardAuthorizer<ResBody, R> {
    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Replaces how rejections become responses.
    pub fn reject_with<R2: Reject>(self, reject: R2) -> KeywardAuthorizer<ResBody, R2> {
        KeywardAuthorizer { verifier: self.verifier, mode: self.mode, reject, body: PhantomData }
    }
}

impl<ResBody, R: Clone> Clone for KeywardAuthorizer<ResBody, R> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            mode: self.mode,
            reject: self.reject.clone(),
            body: PhantomData,
        }
    }
}

impl<ResBody, R: fmt::Debug> fmt::Debug for KeywardAuthorizer<ResBody, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeywardAuthorizer").field("mode", &self.mode).field("reject", &self.reject).finish()
    }
}

impl<B, ResBody: RejectionBody, R: Reject> AsyncAuthorizeRequest<B> for KeywardAuthorizer<ResBody, R> {
    type RequestBody = B;
    type ResponseBody = ResBody;
    type Future = AuthorizeFuture<B, ResBody, R>;

    fn authorize(&mut self, mut request: Request<B>) -> Self::Future {
        let state = match decide(&self.verifier, self.mode, &mut request) {
            Decision::Forward => Auth::Done(Some(Ok(request))),
            Decision::Reject(rejection) => {
                let grpc = is_grpc(request.headers());
                Auth::Done(Some(Err(respond(&self.reject, &rejection, grpc))))
            }
            Decision::Wait(verify, sha) => Auth::Verifying {
                verify,
                sha,
                request: Some(request),
                mode: self.mode,
                reject: self.reject.clone(),
            },
        };
        AuthorizeFuture { state }
    }
}

pin_project! {
    /// The future of [`KeywardAuthorizer`]: ready at once unless the token needs a key fetch.
    pub struct AuthorizeFuture<B, ResBody, R = DefaultReject> {
        // Nothing is pinned structurally: the wait is boxed.
        state: Auth<B, ResBody, R>,
    }
}

enum Auth<B, ResBody, R> {
    Done(Option<Result<Request<B>, Response<ResBody>>>),
    Verifying { verify: Waiting, sha: [u8; 32], request: Option<Request<B>>, mode: Mode, reject: R },
}

impl<B, ResBody, R> fmt::Debug for AuthorizeFuture<B, ResBody, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let waiting = matches!(self.state, Auth::Verifying { .. });
        f.debug_struct("AuthorizeFuture").field("waiting_for_keys", &waiting).finish()
    }
}

impl<B, ResBody: RejectionBody, R: Reject> Future for AuthorizeFuture<B, ResBody, R> {
    type Output = Result<Request<B>, Response<ResBody>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state {
            Auth::Done(outcome) => Poll::Ready(outcome.take().unwrap_or_else(|| Err(completed()))),
            Auth::Verifying { verify, sha, request, mode, reject } => {
                let result = ready!(verify.as_mut().poll(cx));
                let Some(mut request) = request.take() else { return Poll::Ready(Err(completed())) };
                let grpc = is_grpc(request.headers());
                Poll::Ready(match settle(*mode, &mut request, result, *sha) {
                    Decision::Reject(rejection) => Err(respond(reject, &rejection, grpc)),
                    Decision::Forward | Decision::Wait(..) => Ok(request),
                })
            }
        }
    }
}
