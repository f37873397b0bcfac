//! Claim headers: response headers filled from verified claims on every 200.
//!
//! Dot paths (`realm_access.roles`) reach into objects; strings are sent as they are, numbers
//! and booleans as JSON text, arrays as comma-separated values (their scalar elements), objects
//! and nulls not at all (empty). A value holding a control character (CR, LF, TAB, DEL, …)
//! could split or forge headers downstream: it is dropped, sent empty and counted.

use http::HeaderValue;
use serde_json::{Map, Value};

/// Longest claim header value sent; a longer one is dropped like a control character.
pub(crate) const MAX_VALUE_LEN: usize = 4096;

/// What a claim becomes as a header value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClaimValue {
    /// The value to send (empty when the claim is absent or has no text form).
    Send(HeaderValue),
    /// The claim held a control character (or was too long): sent empty, counted.
    Dropped,
}

/// The claim at `path`, as policies read it: each dot segment walks into an object; when the
/// walk leads nowhere, a top-level claim named by the whole path (a namespaced custom claim such
/// as `https://example.com/tier`). The nested value comes first, so a flat look-alike cannot
/// mask it.
fn lookup<'a>(claims: &'a Map<String, Value>, path: &str) -> Option<&'a Value> {
    let walked = || {
        let mut parts = path.split('.');
        let mut current = claims.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    };
    walked().or_else(|| claims.get(path))
}

fn scalar(value: &Value, out: &mut String) -> bool {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        _ => return false,
    }
    true
}

/// The header value for the claim at `path`.
pub(crate) fn claim_value(claims: &Map<String, Value>, path: &str) -> ClaimValue {
    let mut text = String::new();
    match lookup(claims, path) {
        Some(Value::Array(items)) => {
            for item in items {
                let mark = text.len();
                if !text.is_empty() {
                    text.push(',');
                }
                if !scalar(item, &mut text) {
                    text.truncate(mark);
                }
            }
        }
        Some(value) => {
            scalar(value, &mut text);
        }
        None => {}
    }
    if text.len() > MAX_VALUE_LEN || text.chars().any(char::is_control) {
        return ClaimValue::Dropped;
    }
    // Control characters are gone; what remains (visible ASCII, space, UTF-8 bytes ≥ 0x80)
    // is a valid field value.
    match HeaderValue::from_bytes(text.as_bytes()) {
        Ok(value) => ClaimValue::Send(value),
        Err(_) => ClaimValue::Dropped,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn value(claims: Value, path: &str) -> ClaimValue {
        claim_value(claims.as_object().unwrap(), path)
    }

    fn sent(text: &str) -> ClaimValue {
        ClaimValue::Send(HeaderValue::from_bytes(text.as_bytes()).unwrap())
    }

    #[test]
    fn claims_become_header_text() {
        let claims = json!({
            "sub": "alice", "n": 42, "ok": true, "roles": ["a", "b", 3, {"x": 1}],
            "realm_access": {"roles": ["admin", "ops"]}, "obj": {"a": 1}, "nul": null,
            "name": "Jos\u{e9}", "dotted.key": "direct",
            "acct.suspended": "flat", "acct": {"suspended": "nested"}
        });
        assert_eq!(value(claims.clone(), "acct.suspended"), sent("nested"));
        assert_eq!(value(claims.clone(), "sub"), sent("alice"));
        assert_eq!(value(claims.clone(), "n"), sent("42"));
        assert_eq!(value(claims.clone(), "ok"), sent("true"));
        assert_eq!(value(claims.clone(), "roles"), sent("a,b,3"));
        assert_eq!(value(claims.clone(), "realm_access.roles"), sent("admin,ops"));
        assert_eq!(value(claims.clone(), "obj"), sent(""));
        assert_eq!(value(claims.clone(), "nul"), sent(""));
        assert_eq!(value(claims.clone(), "missing.path"), sent(""));
        assert_eq!(value(claims.clone(), "name"), sent("Jos\u{e9}"));
        assert_eq!(value(claims, "dotted.key"), sent("direct"));
    }

    #[test]
    fn control_characters_drop_the_value() {
        for bad in ["alice\r\nX-Admin: 1", "a\tb", "a\u{7f}", "x\u{0}"] {
            assert_eq!(value(json!({"sub": bad}), "sub"), ClaimValue::Dropped, "{bad:?}");
        }
        assert_eq!(value(json!({"sub": ["ok", "bad\n"]}), "sub"), ClaimValue::Dropped);
        assert_eq!(value(json!({"sub": "x".repeat(MAX_VALUE_LEN + 1)}), "sub"), ClaimValue::Dropped);
    }
}
