//! What a token must satisfy beyond its signature: issuer, audience, algorithms, times, typ.

use std::time::Duration;

use crate::error::{ConfigError, Error, MAX_LEEWAY_SECS, Reason};
use crate::jose::Algorithm;
use crate::jose::compact::DEFAULT_MAX_TOKEN_LEN;

/// The default leeway for `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// The validation rules for one kind of token; built with [`Policy::builder`].
#[derive(Clone, Debug)]
pub struct Policy {
    pub(crate) issuer: Option<String>,
    pub(crate) audiences: Option<Vec<String>>,
    algorithms: u16,
    pub(crate) leeway: u64,
    pub(crate) require_exp: bool,
    pub(crate) required_claims: Vec<String>,
    pub(crate) typ: Option<String>,
    pub(crate) max_token_len: usize,
}

impl Policy {
    /// Starts a policy; an audience decision is required before [`PolicyBuilder::build`].
    pub fn builder() -> PolicyBuilder {
        PolicyBuilder {
            issuer: None,
            audiences: Vec::new(),
            any_audience: false,
            algorithms: None,
            leeway: DEFAULT_LEEWAY_SECS,
            require_exp: true,
            required_claims: Vec::new(),
            typ: None,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }

    /// The issuer `iss` must equal, if one was configured.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The accepted audiences, or `None` when any audience is accepted.
    pub fn audiences(&self) -> Option<&[String]> {
        self.audiences.as_deref()
    }

    /// The accepted algorithms.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        Algorithm::ALL.into_iter().filter(|a| self.allows(*a)).collect()
    }

    /// The clock leeway in seconds.
    pub fn leeway_secs(&self) -> u64 {
        self.leeway
    }

    /// The bound on a token's size in bytes.
    pub fn max_token_len(&self) -> usize {
        self.max_token_len
    }

    /// True when `alg` is in the allowlist.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms & bit(alg) != 0
    }

    pub(crate) fn check_algorithm(&self, alg: Algorithm) -> Result<(), Error> {
        if self.allows(alg) {
            return Ok(());
        }
        let allowed: Vec<&str> = self.algorithms().iter().map(|a| a.as_str()).collect();
        Err(Error::new(
            Reason::AlgorithmNotAllowed,
            format!("alg {alg} is not in the allowed list [{}]", allowed.join(", ")),
        ))
    }

    pub(crate) fn check_typ(&self, typ: Option<&str>) -> Result<(), Error> {
        match (&self.typ, typ) {
            (None, None) => Ok(()),
            (None, Some(t)) if media_type_eq("JWT", t) || is_at_jwt(t) => Ok(()),
            (None, Some(t)) => Err(Error::new(
                Reason::InvalidClaim,
                format!("header typ {t:?} is not a JWT access or ID token type (JWT, at+jwt)"),
            )),
            (Some(want), Some(t)) if media_type_eq(want, t) => Ok(()),
            (Some(want), got) => Err(Error::new(
                Reason::InvalidClaim,
                match got {
                    Some(t) => format!("header typ is {t:?}, the policy requires {want:?}"),
                    None => format!("header has no typ, the policy requires {want:?}"),
                },
            )),
        }
    }
}

fn bit(alg: Algorithm) -> u16 {
    let index = Algorithm::ALL.iter().position(|a| *a == alg).unwrap_or(0);
    1 << index
}

fn is_at_jwt(typ: &str) -> bool {
    media_type_eq("at+jwt", typ)
}

/// RFC 7515 §4.1.9: case-insensitive, and `application/` may be omitted.
fn media_type_eq(a: &str, b: &str) -> bool {
    fn strip(t: &str) -> &str {
        t.get(..12).filter(|p| p.eq_ignore_ascii_case("application/")).and_then(|_| t.get(12..)).unwrap_or(t)
    }
    strip(a).eq_ignore_ascii_case(strip(b))
}

/// Builds a [`Policy`]; see each method for its default.
#[derive(Clone, Debug)]
pub struct PolicyBuilder {
    issuer: Option<String>,
    audiences: Vec<String>,
    any_audience: bool,
    algorithms: Option<Vec<Algorithm>>,
    leeway: u64,
    require_exp: bool,
    required_claims: Vec<String>,
    typ: Option<String>,
    max_token_len: usize,
}

impl PolicyBuilder {
    /// `iss` must equal this string exactly (no URL normalisation). Default: not checked.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Accepts tokens whose `aud` names this audience; call again to accept several.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts any of these audiences.
    pub fn audiences<I, S>(mut self, audiences: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.audiences.extend(audiences.into_iter().map(Into::into));
        self
    }

    /// Skips the audience check (an `aud` of the wrong type is still rejected).
    ///
    /// Only safe when the issuer mints tokens for this relying party alone (RFC 8725 §3.9).
    pub fn any_audience(mut self) -> Self {
        self.any_audience = true;
        self
    }

    /// The allowed algorithms. Default: every supported one, still bound to each key.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = Some(algorithms.into_iter().collect());
        self
    }

    /// Clock leeway for `exp`, `nbf` and `iat`. Default 60 s; at most 300 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway.as_secs();
        self
    }

    /// Whether `exp` must be present. Default: required.
    pub fn require_exp(mut self, required: bool) -> Self {
        self.require_exp = required;
        self
    }

    /// A claim that must be present (any type).
    pub fn require_claim(mut self, name: impl Into<String>) -> Self {
        self.required_claims.push(name.into());
        self
    }

    /// The header `typ` the token must carry (e.g. `at+jwt`, RFC 9068). Default: absent,
    /// `JWT`, `at+jwt` or `application/at+jwt` are all accepted.
    pub fn require_typ(mut self, typ: impl Into<String>) -> Self {
        self.typ = Some(typ.into());
        self
    }

    /// The bound on a whole token in bytes. Default 16 KiB.
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.max_token_len = bytes;
        self
    }

    /// Checks the settings and builds the policy.
    pub fn build(self) -> Result<Policy, ConfigError> {
        let audiences = match (self.audiences.is_empty(), self.any_audience) {
            (false, false) => Some(self.audiences),
            (true, true) => None,
            (true, false) => return Err(ConfigError::AudienceUndecided),
            (false, true) => {
                return Err(ConfigError::Invalid(
                    "audiences were given and any_audience() was called: choose one".to_owned(),
                ));
            }
        };
        let algorithms = self
            .algorithms
            .unwrap_or_else(|| Algorithm::ALL.to_vec())
            .into_iter()
            .fold(0u16, |mask, a| mask | bit(a));
        if algorithms == 0 {
            return Err(ConfigError::NoAlgorithms);
        }
        if self.leeway > MAX_LEEWAY_SECS {
            return Err(ConfigError::LeewayTooLarge(self.leeway));
        }
        if self.max_token_len == 0 {
            return Err(ConfigError::ZeroBound("max_token_len"));
        }
        if self.issuer.as_deref() == Some("") {
            return Err(ConfigError::Invalid("issuer must not be empty".to_owned()));
        }
        Ok(Policy {
            issuer: self.issuer,
            audiences,
            algorithms,
            leeway: self.leeway,
            require_exp: self.require_exp,
            required_claims: self.required_claims,
            typ: self.typ,
            max_token_len: self.max_token_len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typ_rules() {
        let open = Policy::builder().any_audience().build().unwrap();
        let typs = [None, Some("JWT"), Some("jwt"), Some("application/jwt"), Some("APPLICATION/JWT")];
        for ok in typs.into_iter().chain([Some("at+jwt"), Some("application/at+JWT")]) {
            assert!(open.check_typ(ok).is_ok(), "{ok:?}");
        }
        let reason = |p: &Policy, typ| p.check_typ(typ).map_err(|e| e.reason());
        for bad in [Some("dpop+jwt"), Some("application/"), Some("application/jwt+x"), Some("jose")] {
            assert_eq!(reason(&open, bad), Err(Reason::InvalidClaim), "{bad:?}");
        }
        let at = Policy::builder().any_audience().require_typ("at+jwt").build().unwrap();
        assert!(at.check_typ(Some("application/at+jwt")).is_ok());
        assert_eq!(reason(&at, Some("JWT")), Err(Reason::InvalidClaim));
        assert_eq!(reason(&at, None), Err(Reason::InvalidClaim));
        let jwt = Policy::builder().any_audience().require_typ("JWT").build().unwrap();
        assert!(jwt.check_typ(Some("application/jwt")).is_ok());
    }

    #[test]
    fn audience_must_be_decided() {
        assert!(matches!(Policy::builder().build(), Err(ConfigError::AudienceUndecided)));
        assert!(Policy::builder().audience("a").any_audience().build().is_err());
        assert!(matches!(
            Policy::builder().any_audience().leeway(Duration::from_secs(301)).build(),
            Err(ConfigError::LeewayTooLarge(301))
        ));
    }
}
