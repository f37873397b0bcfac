//! Route-level requirements (scopes, roles) checked after the verifying layer, without
//! verifying again. [`Requirement`] is plain data over a claims map, so a gateway can reuse it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use serde_json::{Map, Value};
use tower_layer::Layer;
use tower_service::Service;

use crate::body::RejectionBody;
use crate::outcome::AuthOutcome;
use crate::reject::{DefaultReject, Reject, Rejection};
use crate::service::{completed, respond};
use crate::token::is_grpc;

/// What a route requires of a verified token's claims.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Requirement {
    /// This scope: from `scope` (space-separated), `scp` (string or array) or `scopes`.
    Scope(String),
    /// This role: from `roles`, `realm_access.roles`, or `resource_access.<aud>.roles` for each
    /// audience the token names.
    Role(String),
    /// Every one of these.
    All(Vec<Requirement>),
    /// At least one of these.
    Any(Vec<Requirement>),
}

/// Requires a scope.
pub fn scope(name: impl Into<String>) -> Requirement {
    Requirement::Scope(name.into())
}

/// Requires a role.
pub fn role(name: impl Into<String>) -> Requirement {
    Requirement::Role(name.into())
}

/// What a token lacked: the scopes to name in `scope=` and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmet {
    /// The scopes the requirement names (space-separated, for `WWW-Authenticate: … scope=`).
    pub scope: String,
    /// What was missing.
    pub detail: String,
}

impl Requirement {
    /// This and `other`.
    pub fn and(self, other: Requirement) -> Self {
        match self {
            Self::All(mut all) => {
                all.push(other);
                Self::All(all)
            }
            this => Self::All(vec![this, other]),
        }
    }

    /// This or `other`.
    pub fn or(self, other: Requirement) -> Self {
        match self {
            Self::Any(mut any) => {
                any.push(other);
                Self::Any(any)
            }
            this => Self::Any(vec![this, other]),
        }
    }

    /// Checks verified claims (for example [`keyward::Verified::claims`]).
    pub fn check(&self, claims: &Map<String, Value>) -> Result<(), Unmet> {
        if self.holds(claims) {
            return Ok(());
        }
        Err(Unmet { scope: self.scopes().join(" "), detail: format!("requires {self}") })
    }

    fn holds(&self, claims: &Map<String, Value>) -> bool {
        match self {
            Self::Scope(wanted) => scopes_of(claims).any(|s| s == wanted),
            Self::Role(wanted) => roles_of(claims).any(|r| r == wanted),
            Self::All(all) => all.iter().all(|r| r.holds(claims)),
            Self::Any(any) => any.iter().any(|r| r.holds(claims)),
        }
    }

    /// Every scope this requirement names, in order, once each.
    pub fn scopes(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_scopes(&mut out);
        out
    }

    fn collect_scopes<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Scope(s) if !out.contains(&s.as_str()) => out.push(s),
            Self::Scope(_) | Self::Role(_) => {}
            Self::All(list) | Self::Any(list) => list.iter().for_each(|r| r.collect_scopes(out)),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |f: &mut fmt::Formatter<'_>, list: &[Requirement], word: &str| {
            f.write_str("(")?;
            for (i, r) in list.iter().enumerate() {
                if i > 0 {
                    write!(f, " {word} ")?;
                }
                write!(f, "{r}")?;
            }
            f.write_str(")")
        };
        match self {
            Self::Scope(s) => write!(f, "scope {s}"),
            Self::Role(r) => write!(f, "role {r}"),
            Self::All(list) => join(f, list, "and"),
            Self::Any(list) => join(f, list, "or"),
        }
    }
}

/// Strings of a claim that is a space-separated string or an array of strings.
fn strings(value: Option<&Value>) -> impl Iterator<Item = &str> {
    let (text, list) = match value {
        Some(Value::String(s)) => (Some(s.as_str()), None),
        Some(Value::Array(items)) => (None, Some(items)),
        _ => (None, None),
    };
    text.into_iter()
        .flat_map(|s| s.split(' ').filter(|p| !p.is_empty()))
        .chain(list.into_iter().flatten().filter_map(Value::as_str))
}

fn scopes_of(claims: &Map<String, Value>) -> impl Iterator<Item = &str> {
    ["scope", "scp", "scopes"].into_iter().flat_map(|name| strings(claims.get(name)))
}

fn roles_of(claims: &Map<String, Value>) -> impl Iterator<Item = &str> {
    let realm = claims.get("realm_access").and_then(|r| r.get("roles"));
    let resource = claims.get("resource_access");
    let audiences = strings(claims.get("aud"));
    let client_roles =
        audiences.flat_map(move |aud| strings(resource.and_then(|r| r.get(aud)?.get("roles"))));
    strings(claims.get("roles")).chain(strings(realm)).chain(client_roles)
}

/// A layer that checks a [`Requirement`] against the claims the verifying layer recorded.
/// Put it on routes (`route_layer`), after [`crate::KeywardLayer`].
pub fn require(requirement: Requirement) -> RequireLayer {
    RequireLayer { requirement: Arc::new(requirement), reject: DefaultReject }
}

/// The layer of [`require`].
#[derive(Clone, Debug)]
pub struct RequireLayer<R = DefaultReject> {
    requirement: Arc<Requirement>,
    reject: R,
}

impl<R: Reject> RequireLayer<R> {
    /// Replaces how rejections become responses.
    pub fn reject_with<R2: Reject>(self, reject: R2) -> RequireLayer<R2> {
        RequireLayer { requirement: self.requirement, reject }
    }
}

impl<S, R: Reject> Layer<S> for RequireLayer<R> {
    type Service = Require<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Require { inner, requirement: Arc::clone(&self.requirement), reject: self.reject.clone() }
    }
}

/// The service of [`RequireLayer`].
#[derive(Clone, Debug)]
pub struct Require<S, R = DefaultReject> {
    inner: S,
    requirement: Arc<Requirement>,
    reject: R,
}

impl<S, R, B, ResBody> Service<Request<B>> for Require<S, R>
where
    S: Service<Request<B>, Response = Response<ResBody>>,
    R: Reject,
    ResBody: RejectionBody,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = RequireFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let rejection = match request.extensions().get::<AuthOutcome>() {
            Some(AuthOutcome::Verified(auth)) => match self.requirement.check(auth.verified().claims()) {
                Ok(()) => None,
                Err(unmet) => Some(Rejection::InsufficientScope { scope: unmet.scope, detail: unmet.detail }),
            },
            Some(AuthOutcome::Missing) => Some(Rejection::MissingToken),
            Some(AuthOutcome::Rejected(rejection)) => Some(rejection.clone()),
            None => {
                let route = request.uri().path().to_owned();
                tracing::error!(route, "a keyward requirement runs without a KeywardLayer in front of it");
                Some(Rejection::NotConfigured { route })
            }
        };
        match rejection {
            None => RequireFuture { state: RequireState::Called { future: self.inner.call(request) } },
            Some(rejection) => {
                let grpc = is_grpc(request.headers());
                let response = Some(respond(&self.reject, &rejection, grpc));
                RequireFuture { state: RequireState::Rejected { response } }
            }
        }
    }
}

pin_project! {
    /// The response future of [`Require`]: the wrapped service's, or a rejection.
    pub struct RequireFuture<F, ResBody> {
        #[pin]
        state: RequireState<F, ResBody>,
    }
}

pin_project! {
    #[project = RequireProj]
    enum RequireState<F, ResBody> {
        Called { #[pin] future: F },
        Rejected { response: Option<Response<ResBody>> },
    }
}

impl<F, ResBody, E> Future for RequireFuture<F, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: RejectionBody,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            RequireProj::Called { future } => future.poll(cx),
            RequireProj::Rejected { response } => Poll::Ready(Ok(response.take().unwrap_or_else(completed))),
        }
    }
}
