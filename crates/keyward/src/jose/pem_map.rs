//! The `{kid: PEM certificate}` key format published by Google's v1 certs endpoint and Firebase.

use serde_json::{Map, Value, json};
use x509_parser::oid_registry::OID_SIG_ED25519;
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

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

/// The public JWK (without `kid`) of one PEM block: a `PUBLIC KEY` (X.509
/// SubjectPublicKeyInfo: RSA, EC P-256/384/521 or Ed25519) or a `CERTIFICATE`'s key.
///
/// For tools handed a single public key instead of a JWKS; the error says what the PEM is.
pub fn public_key_pem_to_jwk(pem: &[u8]) -> Result<Value, String> {
    let (_, pem) = parse_x509_pem(pem).map_err(|e| format!("not valid PEM: {e}"))?;
    let mut jwk = match pem.label.as_str() {
        "PUBLIC KEY" => {
            let (_, spki) = SubjectPublicKeyInfo::from_der(&pem.contents)
                .map_err(|e| format!("PUBLIC KEY does not parse as SubjectPublicKeyInfo: {e}"))?;
            spki_jwk("", &spki)?
        }
        "CERTIFICATE" => {
            let cert = pem.parse_x509().map_err(|e| format!("certificate does not parse: {e}"))?;
            spki_jwk("", cert.public_key())?
        }
        "RSA PUBLIC KEY" => {
            return Err("an RSA PUBLIC KEY (PKCS #1) block; convert it to a PUBLIC KEY with \
                        `openssl rsa -RSAPublicKey_in -pubout`"
                .to_owned());
        }
        label if label.contains("PRIVATE KEY") => {
            return Err(format!(
                "a {label} block: give the PUBLIC key (e.g. `openssl pkey -pubout`), and keep the private key secret"
            ));
        }
        label => return Err(format!("a {label} block, not a PUBLIC KEY or CERTIFICATE")),
    };
    if let Value::Object(members) = &mut jwk {
        members.remove("kid");
    }
    Ok(jwk)
}

fn certificate_jwk(kid: &str, pem: &str) -> Result<Value, String> {
    let (_, pem) =
        parse_x509_pem(pem.as_bytes()).map_err(|e| format!("certificate is not valid PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("certificate does not parse: {e}"))?;
    spki_jwk(kid, cert.public_key())
}

fn spki_jwk(kid: &str, spki: &SubjectPublicKeyInfo<'_>) -> Result<Value, String> {
    if spki.algorithm.algorithm == OID_SIG_ED25519 {
        return Ok(json!({"kty": "OKP", "kid": kid, "crv": "Ed25519",
            "x": base64url::encode(&spki.subject_public_key.data)}));
    }
    let key = spki.parsed().map_err(|e| format!("public key does not parse: {e}"))?;
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
        _ => Err("the key is neither RSA, EC nor Ed25519".to_owned()),
    }
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}
