//! Registered-claim validation: types first (an ill-typed claim is never "absent"), then values.

use std::borrow::Cow;

use crate::clock::format_rfc3339;
use crate::error::{Error, Reason, TimeEvidence};
use crate::jose::json::Scalar;
use crate::jose::jwk::VerifyingKey;
use crate::jose::scan;
use crate::verify::policy::Policy;

/// The largest NumericDate keyward accepts (2^53, the exact-integer range of a JSON double).
const MAX_NUMERIC_DATE: u64 = 1 << 53;
/// Entra ID's placeholder in a key's `issuer` member.
pub(crate) const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// The registered claims of a verified token, already type-checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegisteredClaims {
    /// `iss`.
    pub iss: Option<String>,
    /// `sub`.
    pub sub: Option<String>,
    /// `aud`, as a list even when the token used a single string.
    pub aud: Vec<String>,
    /// `exp`, rounded down.
    pub exp: Option<i64>,
    /// `nbf`, rounded up.
    pub nbf: Option<i64>,
    /// `iat`, rounded up.
    pub iat: Option<i64>,
}

#[derive(Clone, Copy)]
enum Round {
    Down,
    Up,
}

fn numeric_date(name: &str, value: Option<Scalar<'_>>, round: Round) -> Result<Option<i64>, Error> {
    let invalid = |what: String| {
        Error::new(Reason::InvalidClaim, format!("{name} is {what}; a NumericDate is a number of seconds"))
    };
    let Some(value) = value else { return Ok(None) };
    let seconds = match value {
        Scalar::UInt(v) if v <= MAX_NUMERIC_DATE => v,
        Scalar::UInt(v) => return Err(cold(|| invalid(format!("{v}, beyond the supported range")))),
        Scalar::Int(v) => return Err(cold(|| invalid(format!("{v}, which is negative")))),
        Scalar::Float(v) if v.is_finite() && v >= 0.0 && v <= MAX_NUMERIC_DATE as f64 => {
            let rounded = match round {
                Round::Down => v.floor(),
                Round::Up => v.ceil(),
            };
            // In range by the guard above, so the conversion is exact.
            rounded as u64
        }
        Scalar::Float(v) => return Err(cold(|| invalid(format!("{v}, outside the supported range")))),
        other => return Err(cold(|| invalid(other.kind().to_owned()))),
    };
    Ok(Some(i64::try_from(seconds).unwrap_or(i64::MAX)))
}

fn string_claim<'a>(name: &str, value: Option<Scalar<'a>>) -> Result<Option<Cow<'a, str>>, Error> {
    match value {
        None => Ok(None),
        Some(Scalar::Str(s)) => Ok(Some(s)),
        Some(other) => Err(cold(|| {
            Error::new(Reason::InvalidClaim, format!("{name} is {}, not a string", other.kind()))
        })),
    }
}

/// Runs `f` out of line: rejections build their messages here, keeping the accepting path
/// (which shares the instruction cache with the signature check) short.
#[cold]
#[inline(never)]
fn cold<T>(f: impl FnOnce() -> T) -> T {
    f()
}

fn ago(now: i64, t: i64) -> String {
    let diff = now.saturating_sub(t);
    if diff >= 0 { format!("{diff} s ago") } else { format!("in {} s", diff.unsigned_abs()) }
}

/// `aud` as read: absent, one string, or a non-empty array of strings.
enum Audience<'a> {
    Absent,
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl<'a> Audience<'a> {
    fn as_slice(&self) -> &[Cow<'a, str>] {
        match self {
            Self::Absent => &[],
            Self::One(a) => std::slice::from_ref(a),
            Self::Many(list) => list,
        }
    }
}

/// The registered claims of a payload, type-checked and borrowing from it.
struct Read<'a> {
    iss: Option<Cow<'a, str>>,
    sub: Option<Cow<'a, str>>,
    aud: Audience<'a>,
    exp: Option<i64>,
    nbf: Option<i64>,
    iat: Option<i64>,
    tid: Option<Scalar<'a>>,
}

/// Scans the payload once and type-checks the registered claims (values are checked later);
/// every top-level member name goes into `names`.
#[inline(never)]
fn read<'a>(payload: &'a [u8], names: &mut scan::Names<'a>) -> Result<Read<'a>, Error> {
    const MEMBERS: scan::Members<8> =
        scan::Members::new(&["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "tid"]);
    let [iss, sub, aud, exp, nbf, iat, jti, tid] = MEMBERS
        .scan(payload, names)
        .map_err(|e| Error::malformed(format!("claims are not a JSON object: {e}")))?;

    let exp = numeric_date("exp", exp, Round::Down)?;
    let nbf = numeric_date("nbf", nbf, Round::Up)?;
    let iat = numeric_date("iat", iat, Round::Up)?;
    let iss = string_claim("iss", iss)?;
    let sub = string_claim("sub", sub)?;
    string_claim("jti", jti)?;
    let aud = match aud {
        None => Audience::Absent,
        Some(Scalar::Str(a)) => Audience::One(a),
        Some(Scalar::StrArray(list)) if !list.is_empty() => Audience::Many(list),
        Some(Scalar::StrArray(_)) => {
            return Err(cold(|| Error::new(Reason::InvalidClaim, "aud is an empty array")));
        }
        Some(other) => {
            return Err(cold(|| {
                Error::new(
                    Reason::InvalidClaim,
                    format!("aud is {}, not a string or an array of strings", other.kind()),
                )
            }));
        }
    };
    Ok(Read { iss, sub, aud, exp, nbf, iat, tid })
}

impl RegisteredClaims {
    /// The registered claims of a payload that already passed [`validate`]; built only when
    /// asked for, so verification itself copies no claim.
    pub(crate) fn of_validated(payload: &[u8]) -> Self {
        // `validate` read this payload successfully, so `read` cannot fail here.
        read(payload, &mut scan::Names::default()).map_or_else(
            |_| Self::default(),
            |r| Self {
                iss: r.iss.map(Cow::into_owned),
                sub: r.sub.map(Cow::into_owned),
                aud: r.aud.as_slice().iter().map(|a| a.as_ref().to_owned()).collect(),
                exp: r.exp,
                nbf: r.nbf,
                iat: r.iat,
            },
        )
    }
}

/// Type-checks and validates the claims of a token whose signature verified with `key`.
pub(crate) fn validate(
    payload: &[u8],
    policy: &Policy,
    now: i64,
    key: &VerifyingKey,
    expected_issuer: Option<&str>,
) -> Result<(), Error> {
    let mut names = scan::Names::default();
    let Read { iss, aud, exp, nbf, iat, tid, .. } = read(payload, &mut names)?;
    let aud = aud.as_slice();

    let leeway = policy.leeway;
    let leeway_i = i64::try_from(leeway).unwrap_or(i64::MAX);
    match exp {
        Some(exp) if now >= exp.saturating_add(leeway_i) => {
            return Err(cold(|| {
                Error::new(
                    Reason::Expired,
                    format!("expired at {}, {}, leeway {leeway} s", format_rfc3339(exp), ago(now, exp)),
                )
                .with_times(TimeEvidence { claim: exp, now, leeway })
            }));
        }
        Some(_) => {}
        None if policy.require_exp => {
            return Err(cold(|| {
                Error::new(Reason::MissingClaim, "exp is missing and the policy requires it")
            }));
        }
        None => {}
    }
    if let Some(nbf) = nbf
        && now.saturating_add(leeway_i) < nbf
    {
        return Err(cold(|| {
            Error::new(
                Reason::NotYetValid,
                format!("not valid before {}, {}, leeway {leeway} s", format_rfc3339(nbf), ago(now, nbf)),
            )
            .with_times(TimeEvidence { claim: nbf, now, leeway })
        }));
    }
    if let Some(iat) = iat
        && iat > now.saturating_add(leeway_i)
    {
        return Err(cold(|| {
            Error::new(
            Reason::IssuedInFuture,
            format!(
                "issued at {}, {} by this clock, leeway {leeway} s: check the clocks of issuer and verifier",
                format_rfc3339(iat),
                ago(now, iat)
            ),
        )
        .with_times(TimeEvidence { claim: iat, now, leeway })
        }));
    }

    if let Some(expected) = expected_issuer {
        match &iss {
            None => {
                return Err(cold(|| {
                    Error::new(Reason::MissingClaim, format!("iss is missing; expected {expected:?}"))
                }));
            }
            Some(iss) if *iss != expected => {
                return Err(cold(|| {
                    Error::new(Reason::IssuerMismatch, format!("iss is {iss:?}, expected {expected:?}"))
                }));
            }
            Some(_) => {}
        }
    }
    if let Some(bound) = key.issuer() {
        check_key_issuer(bound, iss.as_deref(), tid)?;
    }

    if let Some(allowed) = &policy.audiences {
        if aud.is_empty() {
            return Err(cold(|| {
                Error::new(Reason::MissingClaim, format!("aud is missing; expected one of {allowed:?}"))
            }));
        }
        if !aud.iter().any(|a| allowed.iter().any(|want| want == a)) {
            return Err(cold(|| {
                Error::new(
                    Reason::AudienceMismatch,
                    format!("aud {aud:?} does not include any of {allowed:?}"),
                )
            }));
        }
    }
    for required in &policy.required_claims {
        if !names.contains(required) {
            return Err(cold(|| {
                Error::new(Reason::MissingClaim, format!("{required} is missing and the policy requires it"))
            }));
        }
    }
    Ok(())
}

/// A key that names its issuer (Entra ID does) verifies only that issuer's tokens.
#[inline(never)]
fn check_key_issuer(bound: &str, iss: Option<&str>, tid: Option<Scalar<'_>>) -> Result<(), Error> {
    let Some(iss) = iss else {
        return Err(Error::new(
            Reason::MissingClaim,
            format!("iss is missing; the key is bound to issuer {bound:?}"),
        ));
    };
    let expected = if bound.contains(TENANT_PLACEHOLDER) {
        let tid = match tid {
            Some(Scalar::Str(tid)) if is_guid(&tid) => tid,
            Some(Scalar::Str(tid)) => {
                return Err(Error::new(Reason::InvalidClaim, format!("tid {tid:?} is not a GUID")));
            }
            Some(other) => {
                return Err(Error::new(
                    Reason::InvalidClaim,
                    format!("tid is {}, not a string", other.kind()),
                ));
            }
            None => {
                return Err(Error::new(
                    Reason::MissingClaim,
                    format!("tid is missing; the key is bound to the templated issuer {bound:?}"),
                ));
            }
        };
        bound.replace(TENANT_PLACEHOLDER, &tid)
    } else {
        bound.to_owned()
    };
    if iss == expected {
        Ok(())
    } else {
        Err(Error::new(
            Reason::IssuerMismatch,
            format!("iss is {iss:?} but the verifying key is bound to issuer {expected:?}"),
        ))
    }
}

/// True for the 8-4-4-4-12 hex form Entra uses for tenant ids.
pub(crate) fn is_guid(s: &str) -> bool {
    let bytes = s.as_bytes();
    bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}
