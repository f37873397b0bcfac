//! The `x5c` certificates published with keys: one past its validity (`expired_certificate`),
//! or one whose public key is not the JWK's (`x5c_mismatch`). Verification never uses `x5c`
//! (keys come from `n`/`e`/`x`/`y`), but consumers that pin or read the certificate do.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keyward::jwk::JwkSet;
use serde_json::{Map, Value};
use x509_parser::oid_registry::OID_SIG_ED25519;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use super::checks::Checklist;
use crate::when;

/// Adds the certificate warnings for every usable key of `set` that carries an `x5c`, judged at
/// `now` (Unix seconds).
pub(crate) fn warnings(list: &mut Checklist, set: &JwkSet, now: i64) {
    for key in set.keys() {
        let jwk = key.public_jwk();
        let Some(first) = jwk.get("x5c").and_then(Value::as_array).and_then(|c| c.first()) else { continue };
        let kid = key.kid().map_or_else(|| "without kid".to_owned(), |k| format!("{k:?}"));
        let Some(Ok(der)) = first.as_str().map(|b64| STANDARD.decode(b64)) else {
            list.warn("x5c_mismatch", format!("key {kid}: x5c[0] is not base64 (RFC 7517 §4.7)"));
            continue;
        };
        let cert = match X509Certificate::from_der(&der) {
            Ok((_, cert)) => cert,
            Err(e) => {
                list.warn("x5c_mismatch", format!("key {kid}: x5c[0] is not a DER certificate: {e}"));
                continue;
            }
        };
        let not_after = cert.validity().not_after.timestamp();
        if not_after < now {
            list.warn(
                "expired_certificate",
                format!(
                    "key {kid}: its x5c certificate ({}) expired {} and is still published",
                    cert.subject(),
                    when::relative(not_after, now)
                ),
            );
        }
        if let Some(differs) = mismatch(jwk, &cert) {
            list.warn(
                "x5c_mismatch",
                format!("key {kid}: {differs} differ from the x5c certificate's public key"),
            );
        }
    }
}

/// Which members of `jwk` differ from the certificate's key (`n`, `e`, `x`, `y`, or the key
/// type); `None` when they agree.
fn mismatch(jwk: &Map<String, Value>, cert: &X509Certificate<'_>) -> Option<String> {
    let member =
        |name: &str| jwk.get(name).and_then(Value::as_str).and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    let spki = cert.public_key();
    let differs = |pairs: &[(&str, &[u8])]| {
        let names: Vec<&str> = pairs
            .iter()
            .filter(|(name, cert_value)| member(name).as_deref().map(strip) != Some(strip(cert_value)))
            .map(|(name, _)| *name)
            .collect();
        (!names.is_empty()).then(|| names.join(" and "))
    };
    if spki.algorithm.algorithm == OID_SIG_ED25519 {
        return differs(&[("x", &spki.subject_public_key.data)]);
    }
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => differs(&[("n", rsa.modulus), ("e", rsa.exponent)]),
        Ok(PublicKey::EC(point)) => {
            let data = point.data();
            let len = data.len().saturating_sub(1) / 2;
            let xy = data.get(1..).unwrap_or_default();
            let (x, y) = xy.split_at(len.min(xy.len()));
            differs(&[("x", x), ("y", y)])
        }
        _ => Some("the key type".to_owned()),
    }
}

/// Big-endian integers compare without their leading zero bytes.
fn strip(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}
