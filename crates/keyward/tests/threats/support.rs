//! Shared fixtures: the clock, a default policy, token assembly and byte arithmetic.

use keyward::internal::base64url;
use keyward::jwk::JwkSet;
use keyward::{Error, Policy, Reason, Verified, verify_with_keys};
use keyward_idp::{SigningAlg, SigningKey, jwks};
use serde_json::{Value, json};

/// The verifier's clock in every test: 2026-01-01T00:00:00Z.
pub(crate) const NOW: i64 = 1_767_225_600;
/// The configured issuer.
pub(crate) const ISS: &str = "https://idp.example.test";

/// Claims that pass the default policy.
pub(crate) fn claims() -> Value {
    json!({"iss": ISS, "sub": "alice", "aud": "api", "iat": NOW - 10, "exp": NOW + 600})
}

/// A fresh key; generation failing is a broken test environment.
pub(crate) fn key(alg: SigningAlg, kid: &str) -> SigningKey {
    SigningKey::generate(alg, kid).unwrap()
}

/// The key set publishing `keys`.
pub(crate) fn set(keys: &[&SigningKey]) -> JwkSet {
    set_from(&jwks(keys.iter().copied()))
}

/// The key set from a JWKS value; it must parse as a document.
pub(crate) fn set_from(document: &Value) -> JwkSet {
    JwkSet::from_json(document.to_string().as_bytes()).unwrap()
}

/// The default policy: issuer `ISS`, audience `api`, every algorithm, leeway 60 s, exp required.
pub(crate) fn policy() -> Policy {
    Policy::builder().issuer(ISS).audience("api").build().unwrap()
}

/// Verifies at `NOW`.
pub(crate) fn check(set: &JwkSet, policy: &Policy, token: &str) -> Result<Verified, Error> {
    verify_with_keys(set, policy, token, NOW)
}

/// Asserts that `token` is rejected with exactly `reason`; `case` names the case in failures.
#[track_caller]
pub(crate) fn assert_rejected(set: &JwkSet, policy: &Policy, token: &str, reason: Reason, case: &str) {
    match check(set, policy, token) {
        Ok(verified) => panic!("{case}: accepted ({verified:?}), expected {reason}"),
        Err(err) => assert_eq!(err.reason(), reason, "{case}: {err}"),
    }
}

/// Asserts that `token` verifies.
#[track_caller]
pub(crate) fn assert_accepted(set: &JwkSet, policy: &Policy, token: &str, case: &str) -> Verified {
    check(set, policy, token).unwrap_or_else(|err| panic!("{case}: rejected: {err}"))
}

/// Unpadded base64url.
pub(crate) fn b64(bytes: &[u8]) -> String {
    base64url::encode(bytes)
}

/// Strict base64url decoding of a segment this test produced.
pub(crate) fn unb64(text: &str) -> Vec<u8> {
    base64url::decode(text).unwrap()
}

/// A compact token from raw header JSON, raw payload JSON and signature bytes.
pub(crate) fn assemble(header: &[u8], payload: &[u8], signature: &[u8]) -> String {
    format!("{}.{}.{}", b64(header), b64(payload), b64(signature))
}

/// The three segments of a compact token.
pub(crate) fn segments(token: &str) -> [String; 3] {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    [parts[0].to_owned(), parts[1].to_owned(), parts[2].to_owned()]
}

/// `token` with its signature bytes replaced.
pub(crate) fn with_signature(token: &str, signature: &[u8]) -> String {
    let [h, p, _] = segments(token);
    format!("{h}.{p}.{}", b64(signature))
}

/// The decoded signature of `token`.
pub(crate) fn signature_of(token: &str) -> Vec<u8> {
    unb64(&segments(token)[2])
}

/// A header with `alg` and `kid` (as `sign_jwt` would write) plus `extra` members.
pub(crate) fn header_with(key: &SigningKey, extra: Value) -> Value {
    let mut header = json!({"alg": key.alg().as_str(), "kid": key.kid()});
    if let (Value::Object(map), Value::Object(extra)) = (&mut header, extra) {
        map.extend(extra);
    }
    header
}

/// Big-endian `a - b` for equal-length unsigned integers with `a >= b`.
pub(crate) fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    assert_eq!(a.len(), b.len());
    let mut out = vec![0u8; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = u8::try_from(d).unwrap();
    }
    assert_eq!(borrow, 0, "sub_be underflow");
    out
}

/// Little-endian `a + b` for equal-length unsigned integers; the carry out must be zero.
pub(crate) fn add_le(a: &[u8], b: &[u8]) -> Vec<u8> {
    assert_eq!(a.len(), b.len());
    let mut out = vec![0u8; a.len()];
    let mut carry = 0u16;
    for i in 0..a.len() {
        let s = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = u8::try_from(s & 0xff).unwrap();
        carry = s >> 8;
    }
    assert_eq!(carry, 0, "add_le overflow");
    out
}

/// Decodes a hex string (test constants only).
pub(crate) fn hex(text: &str) -> Vec<u8> {
    assert_eq!(text.len() % 2, 0);
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// DER: a definite length.
fn der_len(len: usize, out: &mut Vec<u8>) {
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap());
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | u8::try_from(bytes.len()).unwrap());
        out.extend(bytes);
    }
}

/// DER: an INTEGER from big-endian unsigned magnitude bytes, minimally encoded.
pub(crate) fn der_integer(magnitude: &[u8]) -> Vec<u8> {
    let trimmed: &[u8] = {
        let start = magnitude.iter().position(|b| *b != 0).unwrap_or(magnitude.len().saturating_sub(1));
        &magnitude[start..]
    };
    let mut body = Vec::new();
    if trimmed.first().is_some_and(|b| b & 0x80 != 0) {
        body.push(0);
    }
    body.extend_from_slice(trimmed);
    let mut out = vec![0x02];
    der_len(body.len(), &mut out);
    out.extend(body);
    out
}

/// DER: a SEQUENCE of already-encoded elements.
pub(crate) fn der_sequence(elements: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = elements.concat();
    let mut out = vec![0x30];
    der_len(body.len(), &mut out);
    out.extend(body);
    out
}

/// A JWK member of `key`'s public JWK, decoded.
pub(crate) fn jwk_member(key: &SigningKey, name: &str) -> Vec<u8> {
    unb64(key.public_jwk()[name].as_str().unwrap())
}

/// `key`'s public JWK with `changes` applied (a `null` value removes the member).
pub(crate) fn jwk_with(key: &SigningKey, changes: Value) -> Value {
    let mut jwk = key.public_jwk();
    if let (Value::Object(map), Value::Object(changes)) = (&mut jwk, changes) {
        for (name, value) in changes {
            if value.is_null() {
                map.remove(&name);
            } else {
                map.insert(name, value);
            }
        }
    }
    jwk
}

/// Random bytes from the crypto library's RNG.
pub(crate) fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    aws_lc_rs::rand::fill(&mut out).unwrap();
    out
}
