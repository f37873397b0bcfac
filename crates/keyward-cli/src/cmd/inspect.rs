//! `keyward inspect`: show a token's contents, loudly unverified.

use std::process::ExitCode;

use anyhow::Result;
use keyward::clock::format_rfc3339;
use keyward::danger::decode_unverified;
use keyward::internal::DEFAULT_MAX_TOKEN_LEN;
use serde_json::{Map, Value, json};

use crate::cli::InspectArgs;
use crate::cmd::print_json;
use crate::input;

/// Decoding is for display, so it allows far larger tokens than verification does.
const MAX_INSPECT_LEN: usize = 64 * DEFAULT_MAX_TOKEN_LEN;

pub(crate) fn run(args: &InspectArgs) -> Result<ExitCode> {
    let token = input::token(args.token.as_deref())?;
    let decoded = match decode_unverified(&token, MAX_INSPECT_LEN) {
        Ok(decoded) => decoded,
        Err(e) => {
            if args.json {
                print_json(&json!({"verified": false, "reason": e.reason().as_str(), "detail": e.detail(),
                    "header": null, "claims": null}));
            } else {
                outln!("not a decodable token: {}: {}", e.reason(), e.detail());
            }
            return Ok(ExitCode::from(1));
        }
    };
    let problem =
        decoded.header_problem.as_ref().map(|e| json!({"reason": e.reason().as_str(), "detail": e.detail()}));
    if args.json {
        print_json(&json!({
            "verified": false,
            "header": decoded.header,
            "claims": decoded.claims.as_ref().ok(),
            "claims_error": decoded.claims.as_ref().err(),
            "signature_bytes": decoded.signature_len,
            "header_problem": problem,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    outln!("NOT VERIFIED: decoded without checking the signature; do not trust these contents.");
    outln!("header:\n{}", serde_json::to_string_pretty(&decoded.header).unwrap_or_default());
    match &decoded.claims {
        Ok(claims) => {
            outln!("claims:\n{}", serde_json::to_string_pretty(claims).unwrap_or_default());
            for line in time_notes(claims) {
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

fn time_notes(claims: &Map<String, Value>) -> Vec<String> {
    ["iat", "nbf", "exp"]
        .into_iter()
        .filter_map(|name| {
            let t = claims.get(name)?.as_i64()?;
            Some(format!("  {name} = {}", format_rfc3339(t)))
        })
        .collect()
}
