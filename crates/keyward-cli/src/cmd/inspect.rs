//! `keyward inspect`: show a token's contents, loudly unverified.

use std::borrow::Cow;
use std::process::ExitCode;

use anyhow::Result;
use keyward::DEFAULT_MAX_TOKEN_LEN;
use keyward::clock::format_rfc3339;
use keyward::danger::decode_unverified;
use keyward::{Error, Reason};
use serde_json::{Map, Value};

use crate::cli::InspectArgs;
use crate::input;
use crate::when;
use crate::wire::{InspectReport, Problem, Validity};

/// Decoding is for display, so it allows far larger tokens than verification does.
const MAX_INSPECT_LEN: usize = 64 * DEFAULT_MAX_TOKEN_LEN;

pub(crate) fn run(args: &InspectArgs) -> Result<ExitCode> {
    let token = input::token(args.token.as_deref())?;
    let now = args.now.unwrap_or_else(|| keyward::Clock::now_unix(&keyward::SystemClock));
    let notes: Vec<Cow<'_, str>> = token.notes.iter().map(|n| Cow::Borrowed(n.as_str())).collect();
    if !args.json {
        for note in &token.notes {
            eprintln!("keyward: note: {note}");
        }
    }
    let decoded = if token.not_utf8.is_some() {
        Err(Error::new(Reason::Malformed, "the input is not UTF-8 text, so it cannot be a token"))
    } else {
        decode_unverified(&token.text, MAX_INSPECT_LEN)
    };
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(e) => {
            if args.json {
                let report = InspectReport {
                    reason: Some(e.reason().as_str()),
                    detail: Some(e.detail()),
                    notes,
                    ..InspectReport::default()
                };
                print(&report);
            } else {
                outln!("not a decodable token: {}: {}", e.reason(), e.detail());
            }
            return Ok(ExitCode::from(1));
        }
    };
    let claims = decoded.claims.as_ref().ok();
    let validity = claims.map(|c| validity(c, now));
    if args.json {
        let report = InspectReport {
            header: Some(&decoded.header),
            claims,
            claims_error: decoded.claims.as_ref().err().map(String::as_str),
            kid: decoded.header.get("kid").and_then(Value::as_str),
            alg: decoded.header.get("alg").and_then(Value::as_str),
            signature_bytes: Some(decoded.signature_len),
            header_problem: decoded
                .header_problem
                .as_ref()
                .map(|e| Problem { reason: e.reason().as_str(), detail: e.detail() }),
            notes,
            validity,
            ..InspectReport::default()
        };
        print(&report);
        return Ok(ExitCode::SUCCESS);
    }
    outln!("NOT VERIFIED: decoded without checking the signature; do not trust these contents.");
    outln!("header:\n{}", serde_json::to_string_pretty(&decoded.header).unwrap_or_default());
    match &decoded.claims {
        Ok(claims) => {
            outln!("claims:\n{}", serde_json::to_string_pretty(claims).unwrap_or_default());
            for line in time_notes(claims, now) {
                outln!("{line}");
            }
        }
        Err(e) => outln!("claims: (not readable) {e}"),
    }
    outln!("signature: {} bytes", decoded.signature_len);
    if let Some(e) = &decoded.header_problem {
        outln!("verification would reject it before any key is tried: {}: {}", e.reason(), e.detail());
    }
    Ok(ExitCode::SUCCESS)
}

fn print(report: &InspectReport<'_>) {
    match serde_json::to_string(report) {
        Ok(line) => outln!("{line}"),
        Err(e) => eprintln!("keyward: cannot encode the report: {e}"),
    }
}

fn validity(claims: &Map<String, Value>, now: i64) -> Validity {
    let time = |name: &str| when::numeric_date(claims, name);
    Validity {
        now,
        expired: time("exp").is_some_and(|exp| exp <= now),
        not_yet_valid: time("nbf").is_some_and(|nbf| nbf > now),
    }
}

/// `iat`, `nbf`, `exp` for people, and a loud line when the token is expired or not yet valid.
fn time_notes(claims: &Map<String, Value>, now: i64) -> Vec<String> {
    let mut lines: Vec<String> = ["iat", "nbf", "exp"]
        .into_iter()
        .filter_map(|name| {
            let t = when::numeric_date(claims, name)?;
            Some(format!("  {name} = {} ({})", format_rfc3339(t), when::relative(t, now).split(" (").next()?))
        })
        .collect();
    let state = validity(claims, now);
    if let Some(exp) = when::numeric_date(claims, "exp").filter(|_| state.expired) {
        lines.push(format!("EXPIRED {} (without leeway)", when::relative(exp, now)));
    }
    if let Some(nbf) = when::numeric_date(claims, "nbf").filter(|_| state.not_yet_valid) {
        lines.push(format!("NOT YET VALID: valid from {} (without leeway)", when::relative(nbf, now)));
    }
    lines
}
