//! Route-level requirements (scopes, roles, groups, claim tests) checked after the verifying
//! layer, without verifying again. [`Requirement`] is plain data over a claims map, so a gateway
//! (`keyward serve`) reuses it and the layer and the gateway never disagree.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use serde_json::{Map, Number, Value};
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
    /// The inner requirement does not hold (a missing claim makes a claim test unmet, so
    /// `not` of it holds).
    Not(Box<Requirement>),
    /// This group, from the `groups` claim: a string (one group, compared whole) or an array
    /// of strings (Okta, Entra, Keycloak's group mapper).
    Group(String),
    /// A test on the claim at a dot path (`realm_access.roles`, `resource_access.api.roles`).
    /// A path that leads nowhere leaves the test unmet.
    Claim {
        /// The claim: a top-level name, or a dot path walking nested objects; when the walk
        /// finds nothing, a top-level claim named by the whole path (`https://example.com/roles`).
        path: String,
        /// What its value must satisfy.
        test: ClaimTest,
    },
}

/// What a claim's value must satisfy in [`Requirement::Claim`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimTest {
    /// The value equals this string, number or boolean (JSON equality; numbers compare by
    /// value, so `1` equals `1.0`). An array never equals a scalar: use `Contains`.
    Equals(ClaimValue),
    /// An array with an element equal to this value, or a string containing this string as a
    /// substring. Substring tests are loose (`"admin"` is in `"not-admin"`): prefer `Matches`
    /// for strings.
    Contains(ClaimValue),
    /// A string matching this pattern as a whole, or an array with such a string element.
    Matches(Pattern),
}

/// A scalar a claim is compared with: a string, a number or a boolean.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimValue {
    /// A JSON string.
    String(String),
    /// A JSON number.
    Number(Number),
    /// A JSON boolean.
    Bool(bool),
}

impl ClaimValue {
    /// The scalar of a JSON value; `None` for null, arrays and objects.
    pub fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(Self::String(s.clone())),
            Value::Number(n) => Some(Self::Number(n.clone())),
            Value::Bool(b) => Some(Self::Bool(*b)),
            _ => None,
        }
    }

    /// A finite float; `None` for NaN and infinities, which JSON cannot carry.
    pub fn from_f64(value: f64) -> Option<Self> {
        Number::from_f64(value).map(Self::Number)
    }

    /// Whether a claim's value is this scalar (numbers by value).
    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Self::String(want), Value::String(have)) => want == have,
            (Self::Bool(want), Value::Bool(have)) => want == have,
            (Self::Number(want), Value::Number(have)) => numbers_equal(want, have),
            _ => false,
        }
    }
}

/// JSON number equality by value: integers exactly, otherwise as floats.
fn numbers_equal(a: &Number, b: &Number) -> bool {
    if let (Some(a), Some(b)) = (a.as_i64(), b.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
        return a == b;
    }
    if a.is_f64() || b.is_f64() {
        return matches!((a.as_f64(), b.as_f64()), (Some(a), Some(b)) if a == b);
    }
    // One is a negative integer and the other an integer above i64::MAX.
    false
}

impl From<&str> for ClaimValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<String> for ClaimValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<bool> for ClaimValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<i64> for ClaimValue {
    fn from(value: i64) -> Self {
        Self::Number(value.into())
    }
}

impl From<u64> for ClaimValue {
    fn from(value: u64) -> Self {
        Self::Number(value.into())
    }
}

impl fmt::Display for ClaimValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => write!(f, "{s:?}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// A regular expression that must match a WHOLE value (it is anchored at both ends), compiled
/// with a size limit. Two patterns are equal when their texts are.
///
/// The engine (the `regex` crate) runs in time linear in the input: no pattern can make a
/// check slow (no backtracking, no look-around, no backreferences).
#[derive(Clone, Debug)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// The longest pattern text accepted, in bytes.
    pub const MAX_LEN: usize = 1024;
    /// The bound on the compiled program, in bytes (the `regex` crate's `size_limit`).
    pub const COMPILED_SIZE_LIMIT: usize = 1 << 20;

    /// Compiles `source`, anchored (`\A(?:source)\z`), within [`Self::MAX_LEN`] and
    /// [`Self::COMPILED_SIZE_LIMIT`].
    pub fn new(source: &str) -> Result<Self, PatternError> {
        if source.len() > Self::MAX_LEN {
            return Err(PatternError(format!(
                "the pattern is {} bytes long, above the limit of {} bytes",
                source.len(),
                Self::MAX_LEN
            )));
        }
        let regex = regex::RegexBuilder::new(&format!(r"\A(?:{source})\z"))
            .size_limit(Self::COMPILED_SIZE_LIMIT)
            .dfa_size_limit(Self::COMPILED_SIZE_LIMIT)
            .nest_limit(64)
            .build()
            .map_err(|e| {
                PatternError(match e {
                    regex::Error::CompiledTooBig(limit) => {
                        format!("the pattern compiles to more than {limit} bytes: simplify it")
                    }
                    // The syntax error's own text is a multi-line diagram: keep its last line.
                    other => {
                        let text = other.to_string();
                        let last =
                            text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("invalid pattern");
                        format!("invalid regular expression: {}", last.trim().trim_start_matches("error: "))
                    }
                })
            })?;
        Ok(Self { source: source.to_owned(), regex })
    }

    /// The pattern as written (without the added anchors).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `text` matches as a whole.
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

/// Why a [`Pattern`] was refused: too long, too large once compiled, or not a valid regular
/// expression.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatternError(String);

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PatternError {}

/// Requires a scope.
pub fn scope(name: impl Into<String>) -> Requirement {
    Requirement::Scope(name.into())
}

/// Requires a role.
pub fn role(name: impl Into<String>) -> Requirement {
    Requirement::Role(name.into())
}

/// Requires a group (from the `groups` claim).
pub fn group(name: impl Into<String>) -> Requirement {
    Requirement::Group(name.into())
}

/// Requires that `requirement` does not hold.
pub fn not(requirement: Requirement) -> Requirement {
    Requirement::Not(Box::new(requirement))
}

/// Requires the claim at `path` to equal `value`.
pub fn claim_equals(path: impl Into<String>, value: impl Into<ClaimValue>) -> Requirement {
    Requirement::Claim { path: path.into(), test: ClaimTest::Equals(value.into()) }
}

/// Requires the claim at `path` to contain `value` (array element, or substring of a string).
pub fn claim_contains(path: impl Into<String>, value: impl Into<ClaimValue>) -> Requirement {
    Requirement::Claim { path: path.into(), test: ClaimTest::Contains(value.into()) }
}

/// Requires the claim at `path` (a string, or an array's string element) to match `pattern`
/// as a whole.
pub fn claim_matches(path: impl Into<String>, pattern: &str) -> Result<Requirement, PatternError> {
    Ok(Requirement::Claim { path: path.into(), test: ClaimTest::Matches(Pattern::new(pattern)?) })
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

    /// Whether the claims satisfy this requirement. Recursion follows the tree, whose depth
    /// is the caller's (the gateway's configuration bounds it).
    pub fn holds(&self, claims: &Map<String, Value>) -> bool {
        match self {
            Self::Scope(wanted) => scopes_of(claims).any(|s| s == wanted),
            Self::Role(wanted) => roles_of(claims).any(|r| r == wanted),
            Self::Group(wanted) => groups_of(claims).any(|g| g == wanted),
            Self::All(all) => all.iter().all(|r| r.holds(claims)),
            Self::Any(any) => any.iter().any(|r| r.holds(claims)),
            Self::Not(inner) => !inner.holds(claims),
            Self::Claim { path, test } => claim_at(claims, path).is_some_and(|value| test.holds(value)),
        }
    }

    /// Every scope this requirement needs, in order, once each: the scopes a token could be
    /// granted to satisfy it. Scopes under `not` are left out (they are forbidden, not required).
    pub fn scopes(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_scopes(&mut out);
        out
    }

    fn collect_scopes<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Self::Scope(s) if !out.contains(&s.as_str()) => out.push(s),
            Self::Scope(_) | Self::Role(_) | Self::Group(_) | Self::Claim { .. } | Self::Not(_) => {}
            Self::All(list) | Self::Any(list) => list.iter().for_each(|r| r.collect_scopes(out)),
        }
    }
}

impl ClaimTest {
    /// Whether a claim's value passes this test.
    pub fn holds(&self, value: &Value) -> bool {
        match self {
            Self::Equals(want) => want.equals(value),
            Self::Contains(want) => match (want, value) {
                (_, Value::Array(items)) => items.iter().any(|item| want.equals(item)),
                (ClaimValue::String(needle), Value::String(hay)) => hay.contains(needle.as_str()),
                _ => false,
            },
            Self::Matches(pattern) => match value {
                Value::String(s) => pattern.is_match(s),
                Value::Array(items) => items.iter().filter_map(Value::as_str).any(|s| pattern.is_match(s)),
                _ => false,
            },
        }
    }
}

impl fmt::Display for ClaimTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Equals(v) => write!(f, "equals {v}"),
            Self::Contains(v) => write!(f, "contains {v}"),
            Self::Matches(p) => write!(f, "matches {:?}", p.as_str()),
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
            Self::Group(g) => write!(f, "group {g}"),
            Self::All(list) => join(f, list, "and"),
            Self::Any(list) => join(f, list, "or"),
            Self::Not(inner) => write!(f, "not {inner}"),
            Self::Claim { path, test } => write!(f, "claim {path} {test}"),
        }
    }
}

/// The claim at a dot path: each segment walks into an object (`realm_access.roles`). When
/// the walk leads nowhere, a top-level claim named by the whole path (a namespaced custom claim
/// such as `https://example.com/tier`) is used. `None` when neither exists.
pub fn claim_at<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let walked = || {
        let mut segments = path.split('.');
        let mut value = claims.get(segments.next()?)?;
        for segment in segments {
            value = value.as_object()?.get(segment)?;
        }
        Some(value)
    };
    walked().or_else(|| claims.get(path))
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

/// Groups from the `groups` claim: a string is one group (names may hold spaces), an array
/// lists them.
fn groups_of(claims: &Map<String, Value>) -> impl Iterator<Item = &str> {
    let (one, list) = match claims.get("groups") {
        Some(Value::String(s)) => (Some(s.as_str()), None),
        Some(Value::Array(items)) => (None, Some(items)),
        _ => (None, None),
    };
    one.into_iter().chain(list.into_iter().flatten().filter_map(Value::as_str))
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
