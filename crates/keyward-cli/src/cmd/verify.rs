//! `keyward verify`: one token, one verdict, one reason code.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use keyward::clock::format_rfc3339;
use keyward::danger::decode_unverified;
use keyward::jwk::JwkSet;
use keyward::{Error, FixedClock, Policy, Reason, SystemClock, Verified, Verifier};
use serde_json::{Value, json};

use crate::cli::VerifyArgs;
use crate::cmd::print_json;
use crate::input;

pub(crate) fn run(args: VerifyArgs) -> Result<ExitCode> {
    let policy = policy(&args)?;
    let bytes = input::file(&args.jwks)?;
    let keys = JwkSet::from_json(&bytes)
        .with_context(|| format!("cannot use {} as a key set", args.jwks.display()))?;
    for warning in keys.warnings() {
        tracing::warn!(warning = warning.as_str(), "{warning}");
    }
    let mut builder = Verifier::builder().keys(keys).policy(policy);
    builder = match args.now {
        Some(now) => builder.clock(FixedClock::at(now)),
        None => builder.clock(SystemClock),
    };
    let verifier = builder.build()?;
    let token = input::token(args.token.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let outcome = runtime.block_on(verifier.verify(&token));
    let report = Report::new(&token, &verifier, outcome);
    if args.json {
        print_json(&report.json());
    } else {
        print!("{}", report.human());
    }
    Ok(report.exit_code())
}

fn policy(args: &VerifyArgs) -> Result<Policy> {
    let mut builder = Policy::builder().leeway(Duration::from_secs(args.leeway));
    if let Some(issuer) = &args.issuer {
        builder = builder.issuer(issuer.clone());
    }
    builder = if args.audiences.is_empty() {
        builder.any_audience()
    } else {
        builder.audiences(args.audiences.clone())
    };
    if !args.algs.is_empty() {
        builder = builder.algorithms(args.algs.iter().copied());
    }
    Ok(builder.build()?)
}

/// The verdict on one token, ready to print either way.
pub(crate) struct Report {
    outcome: Result<Verified, Error>,
    header: Option<serde_json::Map<String, Value>>,
    unverified_claims: Option<serde_json::Map<String, Value>>,
    issuer_checked: bool,
    audience_checked: bool,
    now: i64,
}

/// Reasons decided after the signature verified, so the claims shown are authentic.
fn signature_verified(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Expired
            | Reason::NotYetValid
            | Reason::IssuedInFuture
            | Reason::IssuerMismatch
            | Reason::AudienceMismatch
            | Reason::MissingClaim
            | Reason::InvalidClaim
    )
}

impl Report {
    pub(crate) fn new(token: &str, verifier: &Verifier, outcome: Result<Verified, Error>) -> Self {
        let policy = verifier.policy();
        let (header, unverified_claims) = match &outcome {
            Ok(_) => (None, None),
            Err(_) => match decode_unverified(token, policy.max_token_len()) {
                Ok(decoded) => (Some(decoded.header), decoded.claims.ok()),
                Err(_) => (None, None),
            },
        };
        Self {
            outcome,
            header,
            unverified_claims,
            issuer_checked: policy.issuer().is_some(),
            audience_checked: policy.audiences().is_some(),
            now: verifier.now_unix(),
        }
    }

    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(u8::from(self.outcome.is_err()))
    }

    fn unchecked_notes(&self) -> Vec<&'static str> {
        let mut notes = Vec::new();
        if !self.issuer_checked {
            notes.push("iss was not checked (no --issuer)");
        }
        if !self.audience_checked {
            notes.push("aud was not checked (no --audience)");
        }
        notes
    }

    pub(crate) fn json(&self) -> Value {
        match &self.outcome {
            Ok(v) => {
                let mut detail = format!("signature verified with {}", v.key().describe());
                for note in self.unchecked_notes() {
                    detail.push_str("; ");
                    detail.push_str(note);
                }
                json!({
                    "valid": true,
                    "reason": null,
                    "detail": detail,
                    "header": v.header(),
                    "claims": v.claims(),
                    "kid": v.kid(),
                    "alg": v.alg().as_str(),
                    "signature_verified": true,
                })
            }
            Err(e) => {
                let verified_sig = signature_verified(e.reason());
                json!({
                    "valid": false,
                    "reason": e.reason().as_str(),
                    "detail": e.detail(),
                    "header": self.header,
                    "claims": if verified_sig { self.unverified_claims.clone() } else { None },
                    "kid": e.kid(),
                    "alg": e.alg().map(|a| a.as_str()),
                    "signature_verified": verified_sig,
                })
            }
        }
    }

    pub(crate) fn human(&self) -> String {
        let mut out = String::new();
        match &self.outcome {
            Ok(v) => {
                out.push_str(&format!("valid: signature verified with {}\n", v.key().describe()));
                let r = v.registered();
                if let Some(iss) = &r.iss {
                    out.push_str(&format!(
                        "  iss  {iss}{}\n",
                        if self.issuer_checked { "" } else { "  (not checked)" }
                    ));
                }
                if let Some(sub) = &r.sub {
                    out.push_str(&format!("  sub  {sub}\n"));
                }
                if !r.aud.is_empty() {
                    out.push_str(&format!(
                        "  aud  {}{}\n",
                        r.aud.join(", "),
                        if self.audience_checked { "" } else { "  (not checked)" }
                    ));
                }
                if let Some(exp) = r.exp {
                    out.push_str(&format!("  exp  {} (in {} s)\n", format_rfc3339(exp), exp - self.now));
                }
                for note in self.unchecked_notes() {
                    out.push_str(&format!("note: {note}\n"));
                }
                let claims = serde_json::to_string_pretty(v.claims()).unwrap_or_default();
                out.push_str(&format!("claims:\n{claims}\n"));
            }
            Err(e) => {
                out.push_str(&format!("rejected: {}\n  {}\n", e.reason(), e.detail()));
                if e.kid().is_some() || e.alg().is_some() {
                    out.push_str(&format!(
                        "  token kid {}, alg {}\n",
                        e.kid().map_or_else(|| "(none)".to_owned(), |k| format!("{k:?}")),
                        e.alg().map_or("(unknown)", |a| a.as_str())
                    ));
                }
            }
        }
        out
    }
}
