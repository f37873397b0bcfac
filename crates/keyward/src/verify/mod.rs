//! Token verification: signature first, then claims, with one precise reason per rejection.

mod claims;
mod policy;

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use self::claims::RegisteredClaims;
pub use self::policy::{DEFAULT_LEEWAY_SECS, MAX_LEEWAY_SECS, Policy, PolicyBuilder};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, Error};
use crate::jose::compact::UnverifiedToken;
use crate::jose::header::Header;
use crate::jose::jwk::VerifyingKey;
use crate::jose::jwks::JwkSet;
use crate::jose::{Algorithm, json};

/// Verifies `token` against a fixed key set: the synchronous core every verifier shares.
///
/// Order: size bound, structure and header, algorithm allowlist, key selection and signature,
/// then claims. Nothing from the payload is trusted before the signature verifies.
pub fn verify_with_keys(
    keys: &JwkSet,
    policy: &Policy,
    token: &str,
    now_unix: i64,
) -> Result<Verified, Error> {
    let parsed = UnverifiedToken::parse(token, policy.max_token_len)?;
    verify_parsed(keys, policy, parsed, now_unix)
}

pub(crate) fn verify_parsed(
    keys: &JwkSet,
    policy: &Policy,
    parsed: UnverifiedToken<'_>,
    now_unix: i64,
) -> Result<Verified, Error> {
    let key = {
        let context = parsed.context();
        let header = parsed.header();
        policy.check_algorithm(header.alg).map_err(&context)?;
        keys.verify_signature(
            header.kid.as_deref(),
            header.alg,
            parsed.signing_input().as_bytes(),
            parsed.signature(),
        )
        .map_err(&context)?
    };
    finish(policy, parsed, key, now_unix)
}

/// Claims checks after a signature verified with `key`.
pub(crate) fn finish(
    policy: &Policy,
    parsed: UnverifiedToken<'_>,
    key: &Arc<VerifyingKey>,
    now_unix: i64,
) -> Result<Verified, Error> {
    let registered = {
        let context = parsed.context();
        policy.check_typ(parsed.header().typ.as_deref()).map_err(&context)?;
        claims::validate(parsed.payload(), policy, now_unix, key).map_err(&context)?
    };
    let (header, header_json, payload) = parsed.into_parts();
    Ok(Verified {
        header,
        header_json,
        payload,
        registered,
        key: Arc::clone(key),
        header_map: OnceLock::new(),
        claims_map: OnceLock::new(),
    })
}

/// A token whose signature and claims passed every check.
pub struct Verified {
    header: Header,
    header_json: Vec<u8>,
    payload: Vec<u8>,
    registered: RegisteredClaims,
    key: Arc<VerifyingKey>,
    header_map: OnceLock<Map<String, Value>>,
    claims_map: OnceLock<Map<String, Value>>,
}

impl Verified {
    /// The algorithm the signature was verified with.
    pub fn alg(&self) -> Algorithm {
        self.header.alg
    }

    /// The token's `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.header.kid.as_deref()
    }

    /// The key that verified the signature.
    pub fn key(&self) -> &Arc<VerifyingKey> {
        &self.key
    }

    /// The registered claims (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`), type-checked.
    pub fn registered(&self) -> &RegisteredClaims {
        &self.registered
    }

    /// The whole header as JSON.
    pub fn header(&self) -> &Map<String, Value> {
        // The header already parsed strictly as an object during verification, so this cannot
        // fail; an empty map is the unreachable fallback.
        self.header_map.get_or_init(|| json::parse_object(&self.header_json).unwrap_or_default())
    }

    /// All claims as JSON (parsed on first use: verification itself reads only what it checks).
    pub fn claims(&self) -> &Map<String, Value> {
        // Same invariant as `header`: the payload was scanned as a duplicate-free object.
        self.claims_map.get_or_init(|| json::parse_object(&self.payload).unwrap_or_default())
    }

    /// The claims deserialised into your own type.
    pub fn claims_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.payload).map_err(|e| {
            Error::new(crate::Reason::InvalidClaim, format!("claims do not fit the expected type: {e}"))
        })
    }

    /// The raw claims JSON exactly as signed.
    pub fn payload_json(&self) -> &[u8] {
        &self.payload
    }
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("alg", &self.header.alg)
            .field("kid", &self.header.kid)
            .field("registered", &self.registered)
            .finish_non_exhaustive()
    }
}

/// Where a verifier's keys come from.
#[derive(Debug, Clone)]
pub(crate) enum Keys {
    Static(Arc<JwkSet>),
}

impl From<JwkSet> for Keys {
    fn from(set: JwkSet) -> Self {
        Self::Static(Arc::new(set))
    }
}

impl From<Arc<JwkSet>> for Keys {
    fn from(set: Arc<JwkSet>) -> Self {
        Self::Static(set)
    }
}

/// A configured verifier: keys, policy and clock. Cheap to clone and share across tasks.
#[derive(Clone, Debug)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    keys: Keys,
    policy: Policy,
    clock: Arc<dyn Clock>,
}

impl Verifier {
    /// Starts a verifier; `policy` and `keys` are required.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder { keys: None, policy: None, clock: None }
    }

    /// Verifies a compact JWS and its claims.
    pub async fn verify(&self, token: &str) -> Result<Verified, Error> {
        let inner = &*self.inner;
        match &inner.keys {
            Keys::Static(set) => verify_with_keys(set, &inner.policy, token, inner.clock.now_unix()),
        }
    }

    /// The policy tokens are checked against.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The current time by this verifier's clock.
    pub fn now_unix(&self) -> i64 {
        self.inner.clock.now_unix()
    }
}

/// Builds a [`Verifier`].
#[derive(Debug)]
pub struct VerifierBuilder {
    keys: Option<Keys>,
    policy: Option<Policy>,
    clock: Option<Arc<dyn Clock>>,
}

impl VerifierBuilder {
    /// A fixed key set.
    pub fn keys(mut self, keys: impl Into<KeysArg>) -> Self {
        self.keys = Some(keys.into().0);
        self
    }

    /// The validation policy.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The clock for `exp`/`nbf`/`iat`. Default: the system clock.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Checks the configuration and builds the verifier.
    pub fn build(self) -> Result<Verifier, ConfigError> {
        Ok(Verifier {
            inner: Arc::new(Inner {
                keys: self.keys.ok_or(ConfigError::NoKeys)?,
                policy: self.policy.ok_or(ConfigError::NoPolicy)?,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
            }),
        })
    }
}

/// Anything a verifier can take keys from: a [`JwkSet`] (or `Arc` of one).
#[derive(Debug)]
pub struct KeysArg(pub(crate) Keys);

impl<T: Into<Keys>> From<T> for KeysArg {
    fn from(value: T) -> Self {
        Self(value.into())
    }
}
