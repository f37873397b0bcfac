//! The protected header: what keyward reads from it, and what it refuses.

use std::borrow::Cow;

use crate::error::{Error, Reason};
use crate::jose::algorithm::{AlgName, Algorithm};
use crate::jose::json::Scalar;
use crate::jose::scan;

/// The longest `kid` keyward looks up; longer ones cannot name a key and are `unknown_kid`.
pub const MAX_KID_LEN: usize = 256;

/// The parts of a JWS protected header that keyward acts on, borrowed from the decoded token.
///
/// `jku`, `x5u`, `jwk` and `x5c` are deliberately absent: keys come only from configuration,
/// never from the token (`docs/threat-model.md` A4, A18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header<'a> {
    /// The signature algorithm.
    pub alg: Algorithm,
    /// The key id, an opaque string compared byte for byte.
    pub kid: Option<&'a str>,
    /// The media type, e.g. `JWT` or `at+jwt`.
    pub typ: Option<&'a str>,
}

/// A checked header as parsed: strings borrow from the header JSON unless they had escapes.
pub(crate) struct ParsedHeader<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Cow<'a, str>>,
    pub(crate) typ: Option<Cow<'a, str>>,
}

impl<'a> ParsedHeader<'a> {
    /// Parses and checks decoded header bytes.
    pub(crate) fn parse(bytes: &'a [u8]) -> Result<Self, Error> {
        const MEMBERS: scan::Members<8> =
            scan::Members::new(&["alg", "kid", "typ", "cty", "crit", "b64", "zip", "enc"]);
        let [alg, kid, typ, cty, crit, b64, zip, enc] = MEMBERS
            .scan(bytes, &mut scan::Names::default())
            .map_err(|e| Error::malformed(format!("header is not a JSON object: {e}")))?;

        // A readable kid makes later errors more useful, so take it first.
        let kid = match kid {
            None => None,
            Some(Scalar::Str(s)) => Some(s),
            Some(other) => {
                return Err(Error::malformed(format!("header kid is {}, not a string", other.kind())));
            }
        };
        let alg = match alg {
            None => {
                return Err(Error::malformed("header has no alg").with_token_context(kid.as_deref(), None));
            }
            Some(Scalar::Str(name)) => match AlgName::classify(&name) {
                AlgName::Supported(alg) => alg,
                AlgName::Forbidden => {
                    return Err(Error::new(
                        Reason::AlgorithmNotAllowed,
                        format!("alg {name:?} is never accepted: tokens must be signed with a public-key algorithm"),
                    )
                    .with_token_context(kid.as_deref(), None));
                }
                AlgName::Encryption | AlgName::Unknown => {
                    return Err(Error::new(
                        Reason::UnsupportedAlgorithm,
                        format!("alg {name:?} is not a supported signature algorithm"),
                    )
                    .with_token_context(kid.as_deref(), None));
                }
            },
            Some(other) => {
                return Err(Error::malformed(format!("header alg is {}, not a string", other.kind()))
                    .with_token_context(kid.as_deref(), None));
            }
        };
        let context = |e: Error| e.with_token_context(kid.as_deref(), Some(alg));

        if enc.is_some() {
            return Err(context(Error::malformed(
                "header has enc: this is a JWE, and keyward verifies only signed JWTs",
            )));
        }
        if let Some(crit) = &crit {
            let detail = match crit {
                Scalar::StrArray(names) if names.is_empty() => "crit is an empty array".to_owned(),
                Scalar::StrArray(names) => format!(
                    "crit lists {} which keyward does not understand",
                    names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
                ),
                other => format!("crit is {}, not an array of strings", other.kind()),
            };
            return Err(context(Error::new(Reason::UnsupportedCriticalHeader, detail)));
        }
        match &b64 {
            None | Some(Scalar::Bool(true)) => {}
            Some(other) => {
                return Err(context(Error::new(
                    Reason::UnsupportedCriticalHeader,
                    format!(
                        "b64 is {} (unencoded payloads, RFC 7797, are not allowed in JWTs)",
                        describe(other)
                    ),
                )));
            }
        }
        if zip.is_some() {
            return Err(context(Error::new(
                Reason::UnsupportedCriticalHeader,
                "header has zip: compressed payloads are never accepted",
            )));
        }
        let typ = match typ {
            None => None,
            Some(Scalar::Str(s)) => Some(s),
            Some(other) => {
                return Err(context(Error::malformed(format!(
                    "header typ is {}, not a string",
                    other.kind()
                ))));
            }
        };
        match cty {
            None => {}
            Some(Scalar::Str(cty)) if cty.eq_ignore_ascii_case("jwt") => {
                return Err(context(Error::malformed("header cty is JWT: nested tokens are not supported")));
            }
            Some(Scalar::Str(_)) => {}
            Some(other) => {
                return Err(context(Error::malformed(format!(
                    "header cty is {}, not a string",
                    other.kind()
                ))));
            }
        }
        Ok(Self { alg, kid, typ })
    }
}

fn describe(value: &Scalar<'_>) -> String {
    match value {
        Scalar::Bool(b) => b.to_string(),
        Scalar::Str(s) => format!("{s:?}"),
        other => other.kind().to_owned(),
    }
}
