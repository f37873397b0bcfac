//! Token verification: signature first, then claims, with one precise reason per rejection.

mod claims;
mod events;
mod now;
mod policy;

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub use self::claims::RegisteredClaims;
pub use self::events::{EVENT_BACKLOG, VerifierEvent, VerifierEvents};
pub use self::now::{Pending, VerifyFuture};
pub use self::policy::{DEFAULT_LEEWAY_SECS, Policy, PolicyBuilder};
use crate::clock::{Clock, SystemClock};
use crate::error::{ConfigError, Error, Reason};
use crate::jose::compact::{HeaderFields, UnverifiedToken};
use crate::jose::jwk::VerifyingKey;
use crate::jose::jwks::JwkSet;
use crate::jose::peek::peek_issuer;
use crate::jose::{Algorithm, json};
use crate::source::{JwksSource, KeyEvidence};
use crate::telemetry;

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
    let parsed = UnverifiedToken::parse_cached(token, policy.max_token_len)?;
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
        let (kid, alg) = (parsed.kid(), parsed.alg());
        policy.check_algorithm(alg).map_err(&context)?;
        keys.verify_signature(kid, alg, parsed.signing_input().as_bytes(), parsed.signature())
            .map_err(&context)?
    };
    finish(policy, parsed, key, None, now_unix, policy.issuer.as_deref())
}

/// Claims checks after a signature verified with `key`.
pub(crate) fn finish(
    policy: &Policy,
    parsed: UnverifiedToken<'_>,
    key: &Arc<VerifyingKey>,
    keys: Option<KeyEvidence>,
    now_unix: i64,
    expected_issuer: Option<&str>,
) -> Result<Verified, Error> {
    {
        let context = |e: Error| {
            let e = parsed.context()(e).after_signature();
            match keys {
                Some(evidence) => e.with_keys(evidence),
                None => e,
            }
        };
        policy.check_typ(parsed.typ()).map_err(context)?;
        claims::validate(parsed.payload(), policy, now_unix, key, expected_issuer).map_err(context)?;
    }
    parsed.remember_header();
    let (header, decoded, header_json, payload) = parsed.into_parts();
    Ok(Verified {
        header,
        decoded,
        header_json,
        payload,
        views: OnceLock::new(),
        key: Arc::clone(key),
        keys,
        issuer: None,
    })
}

/// A token whose signature and claims passed every check.
pub struct Verified {
    header: HeaderFields,
    /// The decoded header JSON, payload and signature, back to back.
    decoded: crate::jose::buffer::DecodeBuffer,
    /// The header JSON's range in `decoded`.
    header_json: std::ops::Range<usize>,
    /// The payload's range in `decoded`.
    payload: std::ops::Range<usize>,
    /// Registered claims and JSON maps, built on first use.
    views: OnceLock<Box<Views>>,
    key: Arc<VerifyingKey>,
    keys: Option<KeyEvidence>,
    /// The configured issuer that verified it (interned: copying it costs no atomic).
    issuer: Option<&'static str>,
}

/// What [`Verified`] builds from its buffer on first use, boxed so that a `Verified` stays
/// small to move: verification itself builds none of it.
#[derive(Default)]
struct Views {
    registered: OnceLock<RegisteredClaims>,
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
        self.header.view(self.decoded.bytes()).kid
    }

    /// The token's `typ`.
    pub fn typ(&self) -> Option<&str> {
        self.header.view(self.decoded.bytes()).typ
    }

    /// The key that verified the signature.
    pub fn key(&self) -> &Arc<VerifyingKey> {
        &self.key
    }

    /// What the key source knew and did (remote keys only): the key set's age, whether this
    /// verification fetched, and whether a key that is no longer published verified it
    /// (awaiting removal confirmation, or in the removal grace).
    pub fn keys(&self) -> Option<&KeyEvidence> {
        self.keys.as_ref()
    }

    /// Which configured issuer verified the token: its configured `iss`, or its template for a
    /// templated issuer. `None` from [`verify_with_keys`] and for a verifier whose policy names
    /// no issuer.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer
    }

    fn views(&self) -> &Views {
        self.views.get_or_init(Box::default)
    }

    /// The registered claims (`iss`, `sub`, `aud`, `exp`, `nbf`, `iat`), type-checked.
    pub fn registered(&self) -> &RegisteredClaims {
        self.views().registered.get_or_init(|| RegisteredClaims::of_validated(self.payload_json()))
    }

    /// The whole header as JSON.
    pub fn header(&self) -> &Map<String, Value> {
        // The header already parsed strictly as an object during verification, so this cannot
        // fail; an empty map is the unreachable fallback.
        self.views().header_map.get_or_init(|| json::parse_object(self.header_json()).unwrap_or_default())
    }

    /// All claims as JSON (parsed on first use: verification itself reads only what it checks).
    pub fn claims(&self) -> &Map<String, Value> {
        // Same invariant as `header`: the payload was scanned as a duplicate-free object.
        self.views().claims_map.get_or_init(|| json::parse_object(self.payload_json()).unwrap_or_default())
    }

    /// The claims deserialised into your own type.
    pub fn claims_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(self.payload_json()).map_err(|e| {
            Error::new(Reason::InvalidClaim, format!("claims do not fit the expected type: {e}"))
        })
    }

    /// The raw claims JSON exactly as signed.
    pub fn payload_json(&self) -> &[u8] {
        self.decoded.bytes().get(self.payload.clone()).unwrap_or_default()
    }

    /// The raw header JSON exactly as signed.
    pub fn header_json(&self) -> &[u8] {
        self.decoded.bytes().get(self.header_json.clone()).unwrap_or_default()
    }
}

impl fmt::Debug for Verified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verified")
            .field("alg", &self.header.alg)
            .field("kid", &self.kid())
            .field("registered", self.registered())
            .finish_non_exhaustive()
    }
}

/// Where a verifier's keys come from: a fixed [`JwkSet`] (or an `Arc` of one) or a remote,
/// rotation-aware [`JwksSource`]. Anything that converts into it is accepted where keys are.
#[derive(Debug, Clone)]
pub struct Keys(KeysKind);

#[derive(Debug, Clone)]
enum KeysKind {
    Static(Arc<JwkSet>),
    Remote(JwksSource),
}

impl From<JwkSet> for Keys {
    fn from(set: JwkSet) -> Self {
        Self(KeysKind::Static(Arc::new(set)))
    }
}

impl From<Arc<JwkSet>> for Keys {
    fn from(set: Arc<JwkSet>) -> Self {
        Self(KeysKind::Static(set))
    }
}

impl From<JwksSource> for Keys {
    fn from(source: JwksSource) -> Self {
        Self(KeysKind::Remote(source))
    }
}

/// How a configured issuer recognises its tokens' `iss`.
#[derive(Debug, Clone)]
enum IssuerMatch {
    /// No issuer configured: `iss` is not checked.
    Any,
    /// `iss` must equal this string exactly.
    Exact(String),
    /// `iss` must equal the template with `{tenantid}` replaced by the token's `tid`.
    Template { template: String, tenants: Option<Vec<String>> },
}

/// One trusted issuer and its keys. Keys are looked up by (issuer, kid), never by kid alone.
#[derive(Debug, Clone)]
pub struct Issuer {
    matcher: IssuerMatch,
    keys: Keys,
    label: Arc<str>,
    /// What [`Verified::issuer`] reports (`None`: any issuer accepted).
    name: Option<&'static str>,
    /// `keyward_verifications_total{issuer=label, outcome="valid"}`, built once so the common
    /// outcome is counted without building a key per token.
    valid_key: metrics::Key,
    any_tenant: bool,
}

impl Issuer {
    /// Tokens whose `iss` equals `issuer` exactly (no URL normalisation) use `keys`.
    pub fn new(issuer: impl Into<String>, keys: impl Into<Keys>) -> Self {
        let issuer = issuer.into();
        Self {
            valid_key: valid_key(&issuer),
            name: Some(intern(&issuer)),
            label: Arc::from(issuer.as_str()),
            matcher: IssuerMatch::Exact(issuer),
            keys: keys.into(),
            any_tenant: false,
        }
    }

    /// A templated issuer such as Entra ID's `https://login.microsoftonline.com/{tenantid}/v2.0`:
    /// the token's `tid` must be a GUID and `iss` must equal the template filled with it.
    /// Choose the tenants with [`Issuer::tenants`] or, explicitly, [`Issuer::any_tenant`].
    pub fn templated(template: impl Into<String>, keys: impl Into<Keys>) -> Self {
        let template = template.into();
        Self {
            valid_key: valid_key(&template),
            name: Some(intern(&template)),
            label: Arc::from(template.as_str()),
            matcher: IssuerMatch::Template { template, tenants: None },
            keys: keys.into(),
            any_tenant: false,
        }
    }

    /// The tenant ids a templated issuer accepts.
    pub fn tenants<I, S>(mut self, tenants: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        if let IssuerMatch::Template { tenants: allowed, .. } = &mut self.matcher {
            allowed
                .get_or_insert_with(Vec::new)
                .extend(tenants.into_iter().map(|t| t.into().to_ascii_lowercase()));
        }
        self
    }

    /// Accepts every tenant of a templated issuer (multi-tenant applications).
    pub fn any_tenant(mut self) -> Self {
        self.any_tenant = true;
        self
    }

    fn check(&self) -> Result<(), ConfigError> {
        match &self.matcher {
            IssuerMatch::Template { template, tenants } => {
                if !template.contains(claims::TENANT_PLACEHOLDER) {
                    return Err(ConfigError::Invalid(format!(
                        "templated issuer {template:?} has no {{tenantid}}"
                    )));
                }
                match (tenants, self.any_tenant) {
                    (None, false) => Err(ConfigError::Invalid(format!(
                        "templated issuer {template:?} needs .tenants(..) or, explicitly, .any_tenant()"
                    ))),
                    (Some(_), true) => Err(ConfigError::Invalid(format!(
                        "templated issuer {template:?}: tenants were given and any_tenant() was called"
                    ))),
                    _ => Ok(()),
                }
            }
            IssuerMatch::Exact(iss) if iss.is_empty() => {
                Err(ConfigError::Invalid("issuer must not be empty".to_owned()))
            }
            _ => Ok(()),
        }
    }

    /// The `iss` this issuer expects for a token with these (unverified) `iss` and `tid`.
    fn expected_iss(&self, iss: &str, tid: Option<&str>) -> Option<Cow<'_, str>> {
        match &self.matcher {
            IssuerMatch::Any => None,
            IssuerMatch::Exact(exact) => (exact == iss).then_some(Cow::Borrowed(exact.as_str())),
            IssuerMatch::Template { template, tenants } => {
                let tid = tid.filter(|t| claims::is_guid(t))?;
                let allowed = self.any_tenant
                    || tenants.as_ref().is_some_and(|list| list.iter().any(|t| t.eq_ignore_ascii_case(tid)));
                let filled = template.replace(claims::TENANT_PLACEHOLDER, tid);
                (allowed && filled == iss).then_some(Cow::Owned(filled))
            }
        }
    }
}

/// A configured verifier: issuers with their keys, a policy and a clock. Cheap to clone and
/// share across tasks.
#[derive(Clone, Debug)]
pub struct Verifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    issuers: Vec<Issuer>,
    policy: Policy,
    clock: Arc<dyn Clock>,
    /// True when the issuer must be known before the signature is checked (remote keys or
    /// several issuers): no token can make an unconfigured issuer's keys be fetched.
    preselect: bool,
}

const UNKNOWN_ISSUER_LABEL: &str = "unconfigured";

/// What `metrics::counter!` would attach, for the prebuilt keys.
static METRIC_METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

/// Notes the issuer on a verified token, counts the outcome, times it and logs a rejection:
/// shared by [`Verifier::verify`] and [`Verifier::verify_now`] so both record the same.
#[inline]
fn record(
    started: std::time::Instant,
    issuer: Option<&Issuer>,
    mut result: Result<Verified, Error>,
) -> Result<Verified, Error> {
    match (&mut result, issuer) {
        (Ok(verified), Some(issuer)) => {
            verified.issuer = issuer.name;
            metrics::with_recorder(|r| r.register_counter(&issuer.valid_key, &METRIC_METADATA)).increment(1);
        }
        _ => {
            let label = issuer.map_or(metrics::SharedString::const_str(UNKNOWN_ISSUER_LABEL), |i| {
                metrics::SharedString::from(Arc::clone(&i.label))
            });
            let outcome = result.as_ref().map_or_else(|e| e.reason().as_str(), |_| "valid");
            metrics::counter!(telemetry::VERIFICATIONS_TOTAL, "issuer" => label, "outcome" => outcome)
                .increment(1);
        }
    }
    metrics::histogram!(telemetry::VERIFY_DURATION_SECONDS).record(started.elapsed().as_secs_f64());
    if let Err(e) = &result {
        tracing::debug!(
            reason = e.reason().as_str(),
            kid = e.kid().unwrap_or(""),
            "token rejected: {}",
            e.detail()
        );
    }
    result
}

/// A configured issuer's name for the life of the process, so a [`Verified`] can carry it
/// without a reference count. Names come from configuration only, and each distinct name is
/// kept once, so what is kept is bounded by the distinct issuers ever configured.
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(known) = names.iter().find(|n| **n == name) {
        return known;
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.push(kept);
    kept
}

fn valid_key(label: &str) -> metrics::Key {
    metrics::Key::from_parts(
        telemetry::VERIFICATIONS_TOTAL,
        vec![metrics::Label::new("issuer", label.to_owned()), metrics::Label::new("outcome", "valid")],
    )
}

impl Verifier {
    /// Starts a verifier; a policy and keys (or issuers) are required.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder { keys: None, issuers: Vec::new(), policy: None, clock: None }
    }

    /// Verifies a compact JWS and its claims.
    pub async fn verify(&self, token: &str) -> Result<Verified, Error> {
        let started = crate::clock::stopwatch();
        let (issuer, result) = self.verify_inner(token).await;
        record(started, issuer, result)
    }

    /// Verifies, and says which configured issuer the outcome counts for (`None`: unconfigured).
    async fn verify_inner(&self, token: &str) -> (Option<&Issuer>, Result<Verified, Error>) {
        let inner = &*self.inner;
        let default_label = match inner.issuers.as_slice() {
            [only] => Some(only),
            _ => None,
        };
        let parsed = match UnverifiedToken::parse_cached(token, inner.policy.max_token_len) {
            Ok(parsed) => parsed,
            Err(e) => return (default_label, Err(e)),
        };
        if let Err(e) = inner.policy.check_algorithm(parsed.alg()) {
            return (default_label, Err(parsed.context()(e)));
        }
        let (issuer, expected) = match self.select_issuer(&parsed) {
            Ok(found) => found,
            Err(e) => return (default_label, Err(parsed.context()(e))),
        };
        let label = Some(issuer);
        let key = match &issuer.keys.0 {
            KeysKind::Static(set) => set
                .verify_signature(
                    parsed.kid(),
                    parsed.alg(),
                    parsed.signing_input().as_bytes(),
                    parsed.signature(),
                )
                .map(|key| (Arc::clone(key), None)),
            KeysKind::Remote(source) => {
                // With one issuer nothing was preselected: the source checks `iss` itself, and
                // only when it is about to fetch, so the hot path reads no claims twice.
                let gate = if inner.preselect { None } else { expected.as_deref() };
                source.verify_signature(&parsed, gate).await.map(|(key, evidence)| (key, Some(evidence)))
            }
        };
        let (key, evidence) = match key {
            Ok(found) => found,
            Err(e) => return (label, Err(parsed.context()(e))),
        };
        (label, finish(&inner.policy, parsed, &key, evidence, inner.clock.now_unix(), expected.as_deref()))
    }

    /// Picks the configured issuer for this token before any key is consulted.
    fn select_issuer(&self, parsed: &UnverifiedToken<'_>) -> Result<(&Issuer, Option<Cow<'_, str>>), Error> {
        let inner = &*self.inner;
        if !inner.preselect {
            let issuer = inner
                .issuers
                .first()
                .ok_or_else(|| Error::new(Reason::KeysUnavailable, "no issuer configured"))?;
            let expected = match &issuer.matcher {
                IssuerMatch::Exact(iss) => Some(Cow::Borrowed(iss.as_str())),
                IssuerMatch::Any | IssuerMatch::Template { .. } => None,
            };
            return Ok((issuer, expected));
        }
        let hint = peek_issuer(parsed.payload())?;
        let (Some(iss), tid) = (hint.iss, hint.tid) else {
            return Err(Error::new(
                Reason::MissingClaim,
                "iss is missing; it selects which issuer's keys verify the token",
            ));
        };
        for issuer in &inner.issuers {
            if matches!(issuer.matcher, IssuerMatch::Any) {
                return Ok((issuer, None));
            }
            if let Some(expected) = issuer.expected_iss(&iss, tid.as_deref()) {
                return Ok((issuer, Some(expected)));
            }
        }
        Err(Error::new(Reason::IssuerMismatch, format!("iss {iss:?} is not a configured issuer")))
    }

    /// The policy tokens are checked against.
    pub fn policy(&self) -> &Policy {
        &self.inner.policy
    }

    /// The current time by this verifier's clock.
    pub fn now_unix(&self) -> i64 {
        self.inner.clock.now_unix()
    }

    /// Health of every remote key source, one per configured issuer with remote keys.
    pub fn health(&self) -> Vec<crate::source::Health> {
        self.inner
            .issuers
            .iter()
            .filter_map(|i| match &i.keys.0 {
                KeysKind::Remote(source) => Some(source.health()),
                KeysKind::Static(_) => None,
            })
            .collect()
    }
}

/// Builds a [`Verifier`].
#[derive(Debug)]
pub struct VerifierBuilder {
    keys: Option<Keys>,
    issuers: Vec<Issuer>,
    policy: Option<Policy>,
    clock: Option<Arc<dyn Clock>>,
}

impl VerifierBuilder {
    /// The keys for the policy's issuer (or for any issuer, when the policy names none):
    /// a [`JwkSet`] or a remote [`JwksSource`].
    pub fn keys(mut self, keys: impl Into<Keys>) -> Self {
        self.keys = Some(keys.into());
        self
    }

    /// Adds a trusted issuer with its own keys; the token's `iss` picks the issuer (read
    /// before the signature only for that), and an unconfigured `iss` is `issuer_mismatch`
    /// without any network traffic.
    pub fn issuer(mut self, issuer: Issuer) -> Self {
        self.issuers.push(issuer);
        self
    }

    /// The validation policy (its `issuer`, if any, applies with [`VerifierBuilder::keys`]).
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
        let policy = self.policy.ok_or(ConfigError::NoPolicy)?;
        let mut issuers = self.issuers;
        if let Some(keys) = self.keys {
            if !issuers.is_empty() {
                return Err(ConfigError::Invalid(
                    "use either .keys(..) with the policy's issuer, or .issuer(..) for each issuer"
                        .to_owned(),
                ));
            }
            let (matcher, label, name) = match &policy.issuer {
                Some(iss) => (IssuerMatch::Exact(iss.clone()), Arc::from(iss.as_str()), Some(intern(iss))),
                None => (IssuerMatch::Any, Arc::from(UNKNOWN_ISSUER_LABEL), None),
            };
            issuers.push(Issuer {
                matcher,
                keys,
                valid_key: valid_key(&label),
                label,
                name,
                any_tenant: false,
            });
        } else if policy.issuer.is_some() {
            return Err(ConfigError::Invalid(
                "the policy names an issuer but keys come from .issuer(..): configure issuers there"
                    .to_owned(),
            ));
        }
        if issuers.is_empty() {
            return Err(ConfigError::NoKeys);
        }
        for issuer in &issuers {
            issuer.check()?;
        }
        // One issuer: `iss` is checked after the signature (and, for remote keys, before any
        // fetch). Several, or a templated one: `iss` picks the keys before the signature.
        let preselect = match issuers.as_slice() {
            [only] => matches!(only.matcher, IssuerMatch::Template { .. }),
            _ => true,
        };
        Ok(Verifier {
            inner: Arc::new(Inner {
                issuers,
                policy,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                preselect,
            }),
        })
    }
}
