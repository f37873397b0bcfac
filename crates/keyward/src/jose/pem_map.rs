//! The `{kid: PEM certificate}` key format published by Google's v1 certs endpoint and Firebase.

use serde_json::{Map, Value, json};
use x509_parser::pem::parse_x509_pem;
use x509_parser::public_key::PublicKey;

use crate::jose::base64url;
use crate::jose::jwk::{self, KeyProblem, ParsedJwk};

const PEM_PREFIX: &str = "-----BEGIN CERTIFICATE-----";

/// True when every member is a PEM certificate string (and there is at least one).
pub(crate) fn looks_like_pem_map(document: &Map<String, Value>) -> bool {
    !document.is_empty()
        && document.values().all(|v| v.as_str().is_some_and(|s| s.trim_start().starts_with(PEM_PREFIX)))
}

/// Turns each certificate's public key into a JWK and parses it like any other JWK.
pub(crate) fn parse_pem_map(document: &Map<String, Value>) -> Vec<ParsedJwk> {
    document
        .iter()
        .map(|(kid, pem)| match certificate_jwk(kid, pem.as_str().unwrap_or_default()) {
            Ok(jwk) => jwk::parse_jwk(&jwk),
            Err(detail) => ParsedJwk {
                key: Err((KeyProblem::Malformed, detail)),
                kid: Some(kid.clone()),
                kty: None,
                private_members: Vec::new(),
            },
        })
        .collect()
}

fn certificate_jwk(kid: &str, pem: &str) -> Result<Value, String> {
    let (_, pem) =
        parse_x509_pem(pem.as_bytes()).map_err(|e| format!("certificate is not valid PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("certificate does not parse: {e}"))?;
    let key =
        cert.public_key().parsed().map_err(|e| format!("certificate public key does not parse: {e}"))?;
    match key {
        PublicKey::RSA(rsa) => Ok(json!({
            "kty": "RSA",
            "kid": kid,
            "n": base64url::encode(strip_leading_zeros(rsa.modulus)),
            "e": base64url::encode(strip_leading_zeros(rsa.exponent)),
        })),
        PublicKey::EC(point) => {
            let data = point.data();
            let (crv, len) = match data.len() {
                65 => ("P-256", 32),
                97 => ("P-384", 48),
                133 => ("P-521", 66),
                other => {
                    return Err(format!(
                        "EC point of {other} bytes is not an uncompressed P-256/384/521 point"
                    ));
                }
            };
            let (x, y) = data.get(1..).map(|xy| xy.split_at(len)).ok_or("EC point is empty")?;
            Ok(
                json!({"kty": "EC", "kid": kid, "crv": crv, "x": base64url::encode(x), "y": base64url::encode(y)}),
            )
        }
        _ => Err("certificate key is neither RSA nor EC".to_owned()),
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}
