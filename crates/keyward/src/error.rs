//! Rejections, configuration mistakes and their stable reason codes.
//!
//! Every rejected token carries exactly one [`Reason`]: the stable, snake_case code that the
//! CLI prints, the gateway returns and metrics use as a label. The human text of an [`Error`]
//! carries the evidence and may change between releases; the code may not.

use std::fmt;

use crate::jose::Algorithm;
use crate::source::{FetchError, KeyEvidence};

/// The largest clock leeway keyward accepts, in seconds: more would make `exp` meaningless.
pub const MAX_LEEWAY_SECS: u64 = 300;

/// The stable reason a token was rejected (README "Reason codes").
///
/// Codes never change once published; use [`Reason::as_str`] for logs, metrics and JSON.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The token is not a well-formed compact JWS carrying a JSON claims object.
    Malformed,
    /// The token is larger than the configured bound; nothing else was looked at.
    TokenTooLarge,
    /// The header names an algorithm keyward does not implement.
    UnsupportedAlgorithm,
    /// The algorithm is known but never accepted (`none`, HMAC) or not in the policy's allowlist.
    AlgorithmNotAllowed,
    /// The header lists a critical extension keyward does not understand, or uses `b64`/`zip`.
    UnsupportedCriticalHeader,
    /// No key in the issuer's set has the token's `kid`.
    UnknownKid,
    /// The token has no `kid` and no key in the set is compatible with its algorithm.
    NoMatchingKey,
    /// The key selected by `kid` cannot be used with the token's algorithm.
    KeyAlgorithmMismatch,
    /// The key selected by `kid` is an encryption key, its `key_ops` exclude `verify`, or it is
    /// malformed (bad encoding, a point off its curve) and was set aside.
    KeyNotForSigning,
    /// The key selected by `kid` is too weak to trust (for example RSA under 2048 bits).
    WeakKey,
    /// The signature does not verify under any candidate key.
    InvalidSignature,
    /// `exp` is in the past beyond the leeway.
    Expired,
    /// `nbf` is in the future beyond the leeway.
    NotYetValid,
    /// `iat` is in the future beyond the leeway.
    IssuedInFuture,
    /// `iss` is not the configured issuer (or no configured issuer matches it).
    IssuerMismatch,
    /// `aud` does not name an allowed audience.
    AudienceMismatch,
    /// A claim the policy requires is absent.
    MissingClaim,
    /// A claim is present with the wrong JSON type or an out-of-range value.
    InvalidClaim,
    /// No usable key set: the JWKS was never fetched, or is unreachable past its stale limit.
    KeysUnavailable,
}

impl Reason {
    /// Every reason, in the order of the README's table.
    pub const ALL: [Self; 19] = [
        Self::Malformed,
        Self::TokenTooLarge,
        Self::UnsupportedAlgorithm,
        Self::AlgorithmNotAllowed,
        Self::UnsupportedCriticalHeader,
        Self::UnknownKid,
        Self::NoMatchingKey,
        Self::KeyAlgorithmMismatch,
        Self::KeyNotForSigning,
        Self::WeakKey,
        Self::InvalidSignature,
        Self::Expired,
        Self::NotYetValid,
        Self::IssuedInFuture,
        Self::IssuerMismatch,
        Self::AudienceMismatch,
        Self::MissingClaim,
        Self::InvalidClaim,
        Self::KeysUnavailable,
    ];

    /// The stable snake_case code, e.g. `"unknown_kid"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TokenTooLarge => "token_too_large",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::UnsupportedCriticalHeader => "unsupported_critical_header",
            Self::UnknownKid => "unknown_kid",
            Self::NoMatchingKey => "no_matching_key",
            Self::KeyAlgorithmMismatch => "key_algorithm_mismatch",
            Self::KeyNotForSigning => "key_not_for_signing",
            Self::WeakKey => "weak_key",
            Self::InvalidSignature => "invalid_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInFuture => "issued_in_future",
            Self::IssuerMismatch => "issuer_mismatch",
            Self::AudienceMismatch => "audience_mismatch",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::KeysUnavailable => "keys_unavailable",
        }
    }

    /// Parses a code produced by [`Reason::as_str`].
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == code)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Times involved in a time-claim rejection, as data for diagnosis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeEvidence {
    /// The claim's value (seconds since the epoch, rounded in the strict direction).
    pub claim: i64,
    /// The verifier's clock when the token was checked.
    pub now: i64,
    /// The leeway applied, in seconds.
    pub leeway: u64,
}

/// A rejected token: one [`Reason`] plus human-readable evidence.
///
/// The `Display` text is for people and may change; match on [`Error::reason`].
/// The error is one pointer wide so `Result<Verified, Error>` stays small.
#[derive(Clone)]
pub struct Error(Box<Inner>);

#[derive(Clone)]
struct Inner {
    reason: Reason,
    detail: String,
    kid: Option<String>,
    alg: Option<Algorithm>,
    times: Option<TimeEvidence>,
    keys: Option<KeyEvidence>,
    fetch_error: Option<FetchError>,
    signature_verified: bool,
}

impl Error {
    /// A rejection with `reason` and a human explanation.
    pub fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self(Box::new(Inner {
            reason,
            detail: detail.into(),
            kid: None,
            alg: None,
            times: None,
            keys: None,
            fetch_error: None,
            signature_verified: false,
        }))
    }

    pub(crate) fn malformed(detail: impl Into<String>) -> Self {
        Self::new(Reason::Malformed, detail)
    }

    /// The stable reason code.
    pub fn reason(&self) -> Reason {
        self.0.reason
    }

    /// The human explanation, without the reason code.
    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    /// The token's `kid`, when the header was readable and had one.
    pub fn kid(&self) -> Option<&str> {
        self.0.kid.as_deref()
    }

    /// The token's algorithm, when the header was readable and named a known one.
    pub fn alg(&self) -> Option<Algorithm> {
        self.0.alg
    }

    /// For `expired`, `not_yet_valid` and `issued_in_future`: the times compared.
    pub fn times(&self) -> Option<TimeEvidence> {
        self.0.times
    }

    /// True when the signature verified and a later check (claims, `typ`) rejected the token:
    /// only then are the token's claims authentic.
    pub fn signature_verified(&self) -> bool {
        self.0.signature_verified
    }

    pub(crate) fn after_signature(mut self) -> Self {
        self.0.signature_verified = true;
        self
    }

    /// True when a refetch showed the token's `kid` now maps to different key material.
    pub fn key_material_changed(&self) -> bool {
        self.0.keys.is_some_and(|k| k.material_changed)
    }

    /// What the key source knew and did for this token (remote keys only): when the set was
    /// fetched, whether this verification fetched or why not, negative caching, grace keys.
    pub fn keys(&self) -> Option<&KeyEvidence> {
        self.0.keys.as_ref()
    }

    /// The fetch failure behind this rejection, when a fetch failed (also [`std::error::Error::source`]).
    pub fn fetch_error(&self) -> Option<&FetchError> {
        self.0.fetch_error.as_ref()
    }

    pub(crate) fn with_keys(mut self, keys: KeyEvidence) -> Self {
        self.0.keys = Some(keys);
        self
    }

    pub(crate) fn with_fetch_error(mut self, error: Option<FetchError>) -> Self {
        if error.is_some() {
            self.0.fetch_error = error;
        }
        self
    }

    pub(crate) fn with_token_context(mut self, kid: Option<&str>, alg: Option<Algorithm>) -> Self {
        if self.0.kid.is_none() {
            self.0.kid = kid.map(str::to_owned);
        }
        if self.0.alg.is_none() {
            self.0.alg = alg;
        }
        self
    }

    pub(crate) fn with_times(mut self, times: TimeEvidence) -> Self {
        self.0.times = Some(times);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.reason, self.0.detail)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("reason", &self.0.reason)
            .field("detail", &self.0.detail)
            .field("kid", &self.0.kid)
            .field("alg", &self.0.alg)
            .field("times", &self.0.times)
            .field("keys", &self.0.keys)
            .field("fetch_error", &self.0.fetch_error)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.fetch_error.as_ref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A mistake in how the caller configured keyward (never caused by a token).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The policy must either name audiences or explicitly accept any audience.
    #[error("no audience decided: call .audience(..) or, to skip the check, .any_audience()")]
    AudienceUndecided,
    /// The algorithm allowlist is empty.
    #[error("the algorithm allowlist is empty")]
    NoAlgorithms,
    /// A verifier needs keys.
    #[error("no keys configured: call .keys(..) or .issuer(..)")]
    NoKeys,
    /// A verifier needs a policy.
    #[error("no policy configured: call .policy(..)")]
    NoPolicy,
    /// The leeway is larger than keyward allows ([`MAX_LEEWAY_SECS`]).
    #[error("leeway of {0} s is above the maximum of {MAX_LEEWAY_SECS} s")]
    LeewayTooLarge(u64),
    /// A size or count bound of zero would reject everything.
    #[error("{0} must be greater than zero")]
    ZeroBound(&'static str),
    /// A configured value is not acceptable; the text says which and why.
    #[error("{0}")]
    Invalid(String),
}
