//! `--jwks FILE`: what the file holds, and a usage error naming it when it holds no keys.

use anyhow::{Result, bail};
use keyward::jwk::{JwkSet, JwksError, public_key_pem_to_jwk};
use serde_json::{Map, Value, json};

use crate::input;

/// Keys read from a file.
#[derive(Debug)]
pub(crate) enum KeyFile {
    /// A JWKS (or `{kid: PEM certificate}` map, or a single JWK with a `kid`): tokens select
    /// keys by `kid` as usual.
    Set(JwkSet),
    /// One key without `kid` (a PEM key, or a JWK without `kid`): it verifies a token whatever
    /// `kid` the token names. `what` says where it came from, for messages.
    AnyKid { jwk: Map<String, Value>, set: JwkSet, what: &'static str },
}

/// Reads `path` as keys. Anything else is an error saying what the file is instead.
pub(crate) fn load(path: &str) -> Result<KeyFile> {
    let bytes = input::file(std::path::Path::new(path))?;
    let start = bytes.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(bytes.len());
    if bytes.get(start..).is_some_and(|rest| rest.starts_with(b"-----BEGIN")) {
        let jwk = match public_key_pem_to_jwk(&bytes) {
            Ok(Value::Object(jwk)) => jwk,
            Ok(_) => bail!("cannot use {path} as a key set: the PEM block did not give a JWK"),
            Err(e) => bail!("cannot use {path} as a key set: it is {e}"),
        };
        return any_kid(path, jwk, "PEM key");
    }
    // The library's strict parser first: it refuses duplicate members and says precisely why a
    // document is not JSON or not a key set. Only then is the document looked at for what else
    // it may be.
    let not_keys = match JwkSet::from_json(&bytes) {
        Ok(set) if set.is_empty() => {
            // Every token would fail, for a reason that is really the file's.
            let aside: Vec<String> = set
                .set_aside()
                .iter()
                .map(|a| {
                    format!(
                        "{}: {} ({})",
                        a.kid.as_deref().unwrap_or("(no kid)"),
                        a.detail,
                        a.problem.as_str()
                    )
                })
                .collect();
            if aside.is_empty() {
                bail!("cannot use {path} as a key set: it holds no keys");
            }
            bail!("cannot use {path} as a key set: none of its keys is usable: {}", aside.join("; "));
        }
        Ok(set) => {
            warn_about(&set, None);
            return Ok(KeyFile::Set(set));
        }
        Err(e) => e,
    };
    let refuse = |e: &JwksError| {
        anyhow::anyhow!(
            "cannot use {path} as a key set: {e} (keyward takes a JWKS, a {{kid: PEM certificate}} map, a single JWK or a PEM public key)"
        )
    };
    let object = match (&not_keys, serde_json::from_slice::<Value>(&bytes)) {
        (JwksError::NotAKeySet(_), Ok(Value::Object(object))) => object,
        (JwksError::NotJson(_), Ok(other)) if !other.is_object() => bail!(
            "cannot use {path} as a key set: it is a JSON {}, not a JWKS (an object with a \"keys\" array), a single JWK or a PEM public key",
            kind_of(&other)
        ),
        _ => return Err(refuse(&not_keys)),
    };
    if object.contains_key("keys") {
        return Err(refuse(&not_keys));
    }
    if let Some(jwks_uri) = object.get("jwks_uri").and_then(Value::as_str) {
        let issuer = object.get("issuer").and_then(Value::as_str);
        bail!(
            "cannot use {path} as a key set: it is an OpenID discovery document (it has \"jwks_uri\"), not a key set; \
             use --jwks {jwks_uri}{}",
            issuer.map(|iss| format!(" or --issuer {iss}")).unwrap_or_default()
        );
    }
    if object.contains_key("kty") {
        if object.get("kid").is_some_and(Value::is_string) {
            let set = parse_set(path, json!({"keys": [object]}).to_string().as_bytes())?;
            return usable(path, set).map(KeyFile::Set);
        }
        return any_kid(path, object, "single JWK");
    }
    Err(refuse(&not_keys))
}

fn parse_set(path: &str, bytes: &[u8]) -> Result<JwkSet> {
    parse_set_quiet_about(path, bytes, None)
}

/// Parses a set, warning about what it holds except warnings named by `expected`.
fn parse_set_quiet_about(path: &str, bytes: &[u8], expected: Option<&str>) -> Result<JwkSet> {
    let keys =
        JwkSet::from_json(bytes).map_err(|e| anyhow::anyhow!("cannot use {path} as a key set: {e}"))?;
    warn_about(&keys, expected);
    Ok(keys)
}

/// Logs what is worth knowing about a key set, except the warning named by `expected`.
fn warn_about(keys: &JwkSet, expected: Option<&str>) {
    for warning in keys.warnings().iter().filter(|w| Some(w.as_str()) != expected) {
        tracing::warn!(warning = warning.as_str(), "{warning}");
    }
}

/// A one-key set must hold a usable key, or every token would fail for a reason that is
/// really the key file's.
fn usable(path: &str, set: JwkSet) -> Result<JwkSet> {
    if let Some(aside) = set.set_aside().first().filter(|_| set.is_empty()) {
        bail!("cannot use {path} as a key: {} ({})", aside.detail, aside.problem.as_str());
    }
    Ok(set)
}

fn any_kid(path: &str, jwk: Map<String, Value>, what: &'static str) -> Result<KeyFile> {
    // Having no kid is the point here, not a problem worth a warning.
    let document = json!({"keys": [jwk]}).to_string();
    let set = usable(path, parse_set_quiet_about(path, document.as_bytes(), Some("key_without_kid"))?)?;
    Ok(KeyFile::AnyKid { jwk, set, what })
}

/// The same key under the token's `kid`, so the token selects it.
pub(crate) fn with_kid(jwk: &Map<String, Value>, kid: &str) -> Option<JwkSet> {
    let mut jwk = jwk.clone();
    jwk.insert("kid".to_owned(), Value::String(kid.to_owned()));
    JwkSet::from_json(json!({"keys": [jwk]}).to_string().as_bytes()).ok()
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Refuses a plain-http URL to a host other than loopback up front, naming the flag that
/// allows it (`verify`, `doctor`); the rule is the library's own.
pub(crate) fn check_scheme(what: &str, url: &str, allowed: bool) -> Result<()> {
    if !allowed && keyward::source::needs_insecure_http_opt_in(url) {
        bail!(
            "{what} {url:?}: plain http is allowed only to loopback addresses; use https, or pass \
             --allow-insecure-http to allow it anyway"
        );
    }
    Ok(())
}
