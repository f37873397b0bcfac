//! axum extractors over what the layer recorded.

// axum extractors reject with a `Response`; these helpers build exactly that.
#![allow(clippy::result_large_err)]

use axum::extract::{FromRequestParts, MatchedPath, OptionalFromRequestParts};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::outcome::{AuthOutcome, Authenticated};
use crate::reject::{DefaultReject, Reject, Rejection};
use crate::token::is_grpc;

/// The verified claims, deserialised into `C` (default: the registered claims).
///
/// Without a token, the extractor rejects (401); `Option<Claims<C>>` gives `None` instead
/// (with [`crate::Mode::Optional`]). An invalid token never reaches the handler unless the layer
/// is in passthrough mode, where this extractor rejects it. Claims that do not fit `C` are
/// `invalid_claim` (401).
#[derive(Clone, Debug)]
pub struct Claims<C = StandardClaims>(pub C);

/// The registered claims (RFC 7519 §4.1), for handlers that need no more.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct StandardClaims {
    /// `iss`.
    pub iss: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `aud`: a string or an array, always a list here.
    #[serde(default, deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// `exp`, rounded down (a fractional NumericDate is valid, as the verifier reads it).
    #[serde(default, deserialize_with = "numeric_date_down")]
    pub exp: Option<i64>,
    /// `nbf`, rounded up.
    #[serde(default, deserialize_with = "numeric_date_up")]
    pub nbf: Option<i64>,
    /// `iat`, rounded up.
    #[serde(default, deserialize_with = "numeric_date_up")]
    pub iat: Option<i64>,
    /// `jti`.
    pub jti: Option<String>,
}

/// A NumericDate (RFC 7519 §2): an integer or a fraction of seconds, rounded by `round` (the
/// verifier accepted the token with the same reading, so the extractor must not refuse it).
fn numeric_date<'de, D: serde::Deserializer<'de>>(
    d: D,
    round: fn(f64) -> f64,
) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Seconds {
        Whole(i64),
        Fraction(f64),
    }
    match Option::<Seconds>::deserialize(d)? {
        None => Ok(None),
        Some(Seconds::Whole(s)) => Ok(Some(s)),
        // Finite and within i64 (the verifier bounds NumericDates far below), so `as` is exact.
        Some(Seconds::Fraction(f)) if f.is_finite() && f.abs() < 9.0e15 => Ok(Some(round(f) as i64)),
        Some(Seconds::Fraction(f)) => Err(serde::de::Error::custom(format!("{f} is not a NumericDate"))),
    }
}

fn numeric_date_down<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    numeric_date(d, f64::floor)
}

fn numeric_date_up<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    numeric_date(d, f64::ceil)
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) => v,
    })
}

/// The response for `rejection`: the layer's own mapping when it has one, else the default.
fn reject(parts: &Parts, rejection: &Rejection) -> Response {
    let grpc = is_grpc(&parts.headers);
    match parts.extensions.get::<crate::service::ExtractorReject>() {
        Some(custom) => (custom.0)(rejection, grpc).into_response(),
        None => DefaultReject.reject(rejection, grpc).into_response(),
    }
}

/// The outcome the layer recorded, or a 500 (and an error log naming the route) without one.
fn outcome(parts: &Parts) -> Result<&AuthOutcome, Response> {
    parts.extensions.get::<AuthOutcome>().ok_or_else(|| {
        let route = parts
            .extensions
            .get::<MatchedPath>()
            .map_or_else(|| parts.uri.path().to_owned(), |m| m.as_str().to_owned());
        tracing::error!(
            route,
            "a keyward extractor is used without a KeywardLayer in front of the route: server bug"
        );
        reject(parts, &Rejection::NotConfigured { route })
    })
}

fn claims_of<C: DeserializeOwned>(parts: &Parts, auth: &Authenticated) -> Result<C, Response> {
    auth.verified().claims_as::<C>().map_err(|e| reject(parts, &Rejection::InvalidToken(e)))
}

impl<S: Send + Sync, C: DeserializeOwned> FromRequestParts<S> for Claims<C> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match outcome(parts)? {
            AuthOutcome::Verified(auth) => claims_of(parts, auth).map(Claims),
            AuthOutcome::Missing => Err(reject(parts, &Rejection::MissingToken)),
            AuthOutcome::Rejected(rejection) => Err(reject(parts, rejection)),
        }
    }
}

impl<S: Send + Sync, C: DeserializeOwned> OptionalFromRequestParts<S> for Claims<C> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        match outcome(parts)? {
            AuthOutcome::Verified(auth) => claims_of(parts, auth).map(|c| Some(Claims(c))),
            AuthOutcome::Missing => Ok(None),
            AuthOutcome::Rejected(rejection) => Err(reject(parts, rejection)),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match outcome(parts)? {
            AuthOutcome::Verified(auth) => Ok(auth.clone()),
            AuthOutcome::Missing => Err(reject(parts, &Rejection::MissingToken)),
            AuthOutcome::Rejected(rejection) => Err(reject(parts, rejection)),
        }
    }
}

/// The recorded outcome itself, for handlers behind a [`crate::Mode::Passthrough`] layer.
impl<S: Send + Sync> FromRequestParts<S> for AuthOutcome {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        outcome(parts).cloned()
    }
}
