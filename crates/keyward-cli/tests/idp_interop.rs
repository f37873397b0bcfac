//! `keyward idp`'s tokens verified by an independent JOSE implementation: PyJWT's
//! `PyJWKClient` fetches the running idp's JWKS (found through its discovery document) and
//! `jwt.decode` checks signature, issuer and audience, for every algorithm the issue names.
//!
//! A `harness = false` test (libtest-mimic), so the summary itself says whether PyJWT ran: on
//! a machine without it each trial is IGNORED and its name says `SKIPPED: PyJWT not
//! installed`; under `CI=true` (where `.ci/run` installs `interop/requirements.txt`) a missing
//! PyJWT is a failure.
#![allow(clippy::disallowed_methods)] // a child process is bounded by a real-time deadline

#[path = "cli/idp_support.rs"]
mod idp_support;

use std::io::Write;
use std::process::{Command, Stdio};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::{Value, json};

use crate::idp_support::{RunningIdp, decode, get};

const ALGS: [&str; 5] = ["RS256", "PS256", "ES256", "ES384", "EdDSA"];
const AUDIENCE: &str = "orders-api";

/// Fetches discovery, then verifies each token with PyJWKClient; prints `{alg: claims | error}`.
const SCRIPT: &str = r#"
import json, sys, urllib.request
import jwt
job = json.load(sys.stdin)
with urllib.request.urlopen(job["discovery"], timeout=20) as r:
    doc = json.load(r)
client = jwt.PyJWKClient(doc["jwks_uri"], cache_keys=False, timeout=20)
out = {}
for name, token in job["tokens"].items():
    try:
        key = client.get_signing_key_from_jwt(token)
        alg = jwt.get_unverified_header(token)["alg"]
        out[name] = {"claims": jwt.decode(token, key.key, algorithms=[alg], audience=job["aud"], issuer=doc["issuer"])}
    except Exception as e:
        out[name] = {"error": type(e).__name__ + ": " + str(e)}
print(json.dumps(out))
"#;

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn pyjwt_version() -> Option<String> {
    let out = Command::new("python3").args(["-c", "import jwt; print(jwt.__version__)"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn run_pyjwt(discovery: &str, tokens: &Value) -> Result<Value, String> {
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("python3: {e}"))?;
    let job = json!({"discovery": discovery, "tokens": tokens, "aud": AUDIENCE});
    child.stdin.take().ok_or("no stdin")?.write_all(job.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("python3 failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("python3 printed no JSON ({e})"))
}

fn main() {
    let args = Arguments::from_args();
    let Some(version) = pyjwt_version() else {
        let label = "SKIPPED: PyJWT not installed; pip install -r interop/requirements.txt";
        let trials = ALGS
            .iter()
            .map(|alg| {
                let trial = Trial::test(format!("idp::pyjwt::{alg} [{label}]"), || {
                    Err(Failed::from(
                        "CI=true and PyJWT is missing: .ci/run installs interop/requirements.txt",
                    ))
                });
                if in_ci() { trial } else { trial.with_ignored_flag(true) }
            })
            .collect();
        libtest_mimic::run(&args, trials).exit();
    };
    let algs: Vec<&str> = ALGS.iter().flat_map(|a| ["--alg", a]).collect();
    let idp = RunningIdp::spawn(&algs);
    let mut tokens = serde_json::Map::new();
    for alg in ALGS {
        let answer = idp
            .admin("/token", &[("sub", "alice"), ("aud", AUDIENCE), ("alg", alg), ("claim.tenant", "acme")]);
        tokens.insert(alg.to_owned(), answer["access_token"].clone());
    }
    // One token of the first key after an overlap rotation: PyJWKClient must find the new kid.
    idp.admin("/admin/rotate", &[("mode", "overlap"), ("alg", "ES256")]);
    let answer = idp.admin("/token", &[("sub", "bob"), ("aud", AUDIENCE), ("alg", "ES256")]);
    tokens.insert("ES256-rotated".to_owned(), answer["access_token"].clone());
    // A changed signature must be refused. The signature's first character carries six whole
    // bits (the last may carry only padding bits a lenient decoder drops, leaving the bytes as
    // they were).
    let good = answer["access_token"].as_str().unwrap_or_default();
    let mut bytes = good.as_bytes().to_vec();
    let first_of_signature = good.rfind('.').map_or(0, |dot| dot + 1);
    if let Some(c) = bytes.get_mut(first_of_signature) {
        *c = if *c == b'A' { b'B' } else { b'A' };
    }
    tokens.insert("tampered".to_owned(), json!(String::from_utf8_lossy(&bytes)));
    assert_eq!(get(&idp.url("/.well-known/openid-configuration")).map(|r| r.status).ok(), Some(200));
    let discovery = idp.url("/.well-known/openid-configuration");
    let tokens = Value::Object(tokens);
    let results = run_pyjwt(&discovery, &tokens);
    let label = format!("PyJWT {version}");
    let mut trials = Vec::new();
    for name in ALGS.iter().map(|a| (*a).to_owned()).chain(["ES256-rotated".to_owned()]) {
        let results = results.clone();
        let token = tokens[&name].as_str().unwrap_or_default().to_owned();
        let issuer = idp.issuer.clone();
        trials.push(Trial::test(format!("idp::pyjwt::{name} [{label}]"), move || {
            let results = results.map_err(Failed::from)?;
            let claims = results[&name]
                .get("claims")
                .ok_or_else(|| format!("PyJWT refused it: {}", results[&name]))?;
            let (_, minted) = decode(&token);
            if claims != &minted || claims["iss"] != issuer.as_str() {
                return Err(format!("PyJWT decoded {claims}, the idp signed {minted}").into());
            }
            Ok(())
        }));
    }
    let tampered = results;
    trials.push(Trial::test(format!("idp::pyjwt::tampered_signature_refused [{label}]"), move || {
        let results = tampered.map_err(Failed::from)?;
        match results["tampered"].get("error").and_then(Value::as_str) {
            Some(e) if e.contains("InvalidSignatureError") => Ok(()),
            _ => Err(format!("expected InvalidSignatureError: {}", results["tampered"]).into()),
        }
    }));
    let conclusion = libtest_mimic::run(&args, trials);
    idp.stop();
    conclusion.exit();
}
