//! One JSON Web Key, parsed once into a ready-to-use verification key, or set aside with why.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::digest;
use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents};
use serde_json::{Map, Value};

use crate::error::{Error, Reason};
use crate::jose::algorithm::{AlgName, Algorithm, KeyFamily};
use crate::jose::base64url;

/// The smallest RSA modulus keyward trusts (RFC 7518 §3.3).
pub const MIN_RSA_BITS: usize = 2048;
/// The largest RSA modulus keyward accepts (bounds the cost of one verification).
pub const MAX_RSA_BITS: usize = 8192;
/// The longest `kid` kept in a key set.
const MAX_JWK_KID_LEN: usize = crate::jose::header::MAX_KID_LEN;

const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "oth"];

/// A public key ready to verify signatures: parsed once, used for many tokens.
pub struct VerifyingKey {
    kid: Option<Arc<str>>,
    alg: Option<Algorithm>,
    family: KeyFamily,
    bits: usize,
    issuer: Option<String>,
    thumbprint: [u8; 32],
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
    jwk: Map<String, Value>,
}

impl VerifyingKey {
    /// The key id, if the JWK had one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The algorithm the JWK is bound to, if it named one.
    pub fn alg(&self) -> Option<Algorithm> {
        self.alg
    }

    /// The key family (RSA, EC curve, Ed25519).
    pub fn family(&self) -> KeyFamily {
        self.family
    }

    /// The key size in bits (modulus for RSA, field size for EC and Ed25519).
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// The non-standard `issuer` member (Entra ID): this key verifies only that issuer's tokens.
    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The RFC 7638 JWK thumbprint (SHA-256): the identity of the key material.
    pub fn thumbprint(&self) -> &[u8; 32] {
        &self.thumbprint
    }

    /// The RFC 7638 thumbprint as unpadded base64url.
    pub fn thumbprint_b64(&self) -> String {
        base64url::encode(&self.thumbprint)
    }

    /// The public members of the JWK as published (private members removed).
    pub fn public_jwk(&self) -> &Map<String, Value> {
        &self.jwk
    }

    /// True when this key may verify `alg`: the JWK `alg` if present, else the key family.
    pub fn supports(&self, alg: Algorithm) -> bool {
        match self.alg {
            Some(bound) => bound.same_operation(alg),
            None => alg.family() == self.family,
        }
    }

    /// Verifies `signature` over `message` with this key under `alg`.
    ///
    /// This is the raw primitive the JWS layer uses; it enforces the key/algorithm binding but
    /// knows nothing of tokens or claims.
    pub fn verify_signature(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        if !self.supports(alg) {
            return Err(Error::new(
                Reason::KeyAlgorithmMismatch,
                format!("{} cannot verify {alg}", self.describe()),
            ));
        }
        let parsed =
            self.parsed.iter().find(|(a, _)| a.same_operation(alg)).map(|(_, k)| k).ok_or_else(|| {
                Error::new(Reason::KeyAlgorithmMismatch, format!("{} cannot verify {alg}", self.describe()))
            })?;
        parsed.verify_sig(message, signature).map_err(|_| {
            Error::new(
                Reason::InvalidSignature,
                format!("signature does not verify under {}", self.describe()),
            )
        })
    }

    /// A short description such as `key "abc" (RSA 2048, RS256)`.
    pub fn describe(&self) -> String {
        let kid = self.kid.as_deref().map_or_else(|| "key without kid".to_owned(), |k| format!("key {k:?}"));
        let alg = self.alg.map_or_else(String::new, |a| format!(", {a}"));
        match self.family {
            KeyFamily::Rsa => format!("{kid} (RSA {}{alg})", self.bits),
            family => format!("{kid} ({}{alg})", family.describe()),
        }
    }

    pub(crate) fn kid_arc(&self) -> Option<&Arc<str>> {
        self.kid.as_ref()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("family", &self.family)
            .field("bits", &self.bits)
            .field("issuer", &self.issuer)
            .field("thumbprint", &self.thumbprint_b64())
            .finish_non_exhaustive()
    }
}

/// Why a JWK was set aside instead of becoming a [`VerifyingKey`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyProblem {
    /// RSA modulus under 2048 bits, exponent 1 or even, a ROCA-vulnerable modulus, or a
    /// small-order Ed25519 point.
    Weak,
    /// `use` is not `sig`, `key_ops` lacks `verify`, or the key is meant for encryption or agreement.
    NotForSigning,
    /// A key type, curve or `alg` keyward does not verify with (including `oct` keys).
    Unsupported,
    /// The key's `alg` does not fit its type or curve.
    AlgorithmMismatch,
    /// Missing or badly encoded members, a point not on its curve, a modulus too large.
    Malformed,
}

impl KeyProblem {
    /// The reason a token gets when its `kid` names only keys set aside for this problem.
    pub fn reason(self) -> Reason {
        match self {
            Self::Weak => Reason::WeakKey,
            Self::NotForSigning => Reason::KeyNotForSigning,
            Self::Unsupported => Reason::UnsupportedAlgorithm,
            Self::AlgorithmMismatch => Reason::KeyAlgorithmMismatch,
            // The token may be fine; the key is what cannot be used.
            Self::Malformed => Reason::KeyNotForSigning,
        }
    }

    /// The stable snake_case name, e.g. `"weak"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Weak => "weak",
            Self::NotForSigning => "not_for_signing",
            Self::Unsupported => "unsupported",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::Malformed => "malformed",
        }
    }
}

/// A JWK that will never verify anything, with the reason, kept for reports and diagnosis.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SetAsideKey {
    /// Position in the published `keys` array.
    pub index: usize,
    /// The key's `kid`, when it had a string one.
    pub kid: Option<String>,
    /// The key's `kty`, when it had a string one.
    pub kty: Option<String>,
    /// The category of problem.
    pub problem: KeyProblem,
    /// What exactly is wrong, for people.
    pub detail: String,
}

/// The outcome of parsing one JWK.
pub(crate) struct ParsedJwk {
    pub(crate) key: Result<VerifyingKey, (KeyProblem, String)>,
    pub(crate) kid: Option<String>,
    pub(crate) kty: Option<String>,
    pub(crate) private_members: Vec<&'static str>,
}

type KeyResult<T> = Result<T, (KeyProblem, String)>;

fn malformed<T>(detail: impl Into<String>) -> KeyResult<T> {
    Err((KeyProblem::Malformed, detail.into()))
}

fn str_member<'a>(jwk: &'a Map<String, Value>, name: &str) -> KeyResult<Option<&'a str>> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => malformed(format!("{name} is not a string")),
    }
}

fn b64_member(jwk: &Map<String, Value>, name: &str) -> KeyResult<Vec<u8>> {
    let text = str_member(jwk, name)?.ok_or((KeyProblem::Malformed, format!("{name} is missing")))?;
    base64url::decode(text).map_err(|_| (KeyProblem::Malformed, format!("{name} is not canonical base64url")))
}

/// Parses one JWK object (already checked for duplicate members).
pub(crate) fn parse_jwk(value: &Value) -> ParsedJwk {
    let Value::Object(jwk) = value else {
        return ParsedJwk {
            key: malformed("entry is not a JSON object"),
            kid: None,
            kty: None,
            private_members: Vec::new(),
        };
    };
    let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
    let kty = jwk.get("kty").and_then(Value::as_str).map(str::to_owned);
    let private_members = PRIVATE_MEMBERS.into_iter().filter(|m| jwk.contains_key(*m)).collect();
    ParsedJwk { key: build_key(jwk), kid, kty, private_members }
}

fn build_key(jwk: &Map<String, Value>) -> KeyResult<VerifyingKey> {
    let kty = str_member(jwk, "kty")?.ok_or((KeyProblem::Malformed, "kty is missing".to_owned()))?;
    let kid = str_member(jwk, "kid")?;
    if kid.is_some_and(|k| k.len() > MAX_JWK_KID_LEN) {
        return malformed(format!("kid is longer than {MAX_JWK_KID_LEN} bytes"));
    }
    // Before `alg`: an oct key usually says `alg: HS256`, and is still a secret, not a public key.
    if kty == "oct" {
        return Err((
            KeyProblem::NotForSigning,
            "kty oct is a symmetric secret: it never verifies a public-key signature".to_owned(),
        ));
    }
    check_usage(jwk)?;
    let alg = match str_member(jwk, "alg")? {
        None => None,
        Some(name) => match AlgName::classify(name) {
            AlgName::Supported(alg) => Some(alg),
            AlgName::Encryption => {
                return Err((KeyProblem::NotForSigning, format!("alg {name:?} is an encryption algorithm")));
            }
            AlgName::Forbidden | AlgName::Unknown => {
                return Err((
                    KeyProblem::Unsupported,
                    format!("alg {name:?} is not a supported signature algorithm"),
                ));
            }
        },
    };
    let issuer = str_member(jwk, "issuer")?.map(str::to_owned);

    let (family, bits, material) = match kty {
        "RSA" => rsa_material(jwk)?,
        "EC" => ec_material(jwk)?,
        "OKP" => okp_material(jwk)?,
        other => return Err((KeyProblem::Unsupported, format!("kty {other:?} is not supported"))),
    };
    if let Some(alg) = alg
        && alg.family() != family
    {
        return Err((
            KeyProblem::AlgorithmMismatch,
            format!("alg {alg} does not fit a {} key", family.describe()),
        ));
    }

    let algorithms: Vec<Algorithm> = match alg {
        Some(alg) => vec![alg],
        // EdDSA and Ed25519 share one parsed key.
        None => family.algorithms().iter().copied().filter(|a| *a != Algorithm::Ed25519).collect(),
    };
    let mut parsed = Vec::with_capacity(algorithms.len());
    for alg in algorithms {
        let key = match &material {
            Material::Rsa { n, e } => alg
                .rsa_params()
                .ok_or((KeyProblem::AlgorithmMismatch, format!("{alg} is not an RSA algorithm")))
                .and_then(|params| {
                    RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }
                        .to_parsed_public_key(params)
                        .map_err(|e| {
                            (KeyProblem::Malformed, format!("RSA key rejected by the crypto library: {e}"))
                        })
                })?,
            Material::Point(bytes) => ParsedPublicKey::new(alg.aws_lc(), bytes).map_err(|_| {
                (
                    KeyProblem::Malformed,
                    format!("{} public key is not a valid point on its curve", family.describe()),
                )
            })?,
        };
        parsed.push((alg, key));
    }

    let mut public = jwk.clone();
    for member in PRIVATE_MEMBERS {
        public.remove(member);
    }
    Ok(VerifyingKey {
        kid: kid.map(Arc::from),
        alg,
        family,
        bits,
        issuer,
        thumbprint: thumbprint(jwk, kty)?,
        parsed,
        jwk: public,
    })
}

/// `use` and `key_ops` must both allow verification and agree with each other (RFC 7517 §4.3).
fn check_usage(jwk: &Map<String, Value>) -> KeyResult<()> {
    let usage = str_member(jwk, "use")?;
    if let Some(usage) = usage
        && usage != "sig"
    {
        return Err((KeyProblem::NotForSigning, format!("use is {usage:?}, not \"sig\"")));
    }
    let Some(ops) = jwk.get("key_ops") else {
        return Ok(());
    };
    let Value::Array(ops) = ops else {
        return malformed("key_ops is not an array");
    };
    let mut names: Vec<&str> = Vec::with_capacity(ops.len());
    for op in ops {
        let Value::String(op) = op else {
            return malformed("key_ops has a member that is not a string");
        };
        if names.contains(&op.as_str()) {
            return malformed(format!("key_ops lists {op:?} twice"));
        }
        names.push(op);
    }
    if !names.contains(&"verify") {
        return Err((KeyProblem::NotForSigning, format!("key_ops {names:?} does not include \"verify\"")));
    }
    if usage.is_some()
        && let Some(op) = names.iter().find(|op| !matches!(**op, "sign" | "verify"))
    {
        return Err((KeyProblem::NotForSigning, format!("use \"sig\" disagrees with key_ops {op:?}")));
    }
    Ok(())
}

enum Material {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Point(Vec<u8>),
}

fn rsa_material(jwk: &Map<String, Value>) -> KeyResult<(KeyFamily, usize, Material)> {
    let n = b64_member(jwk, "n")?;
    let e = b64_member(jwk, "e")?;
    if n.first().is_none_or(|b| *b == 0) {
        return malformed("n is empty or has a leading zero octet (not minimal Base64urlUInt)");
    }
    if e.first().is_none_or(|b| *b == 0) {
        return malformed("e is empty or has a leading zero octet (not minimal Base64urlUInt)");
    }
    let bits = n.len() * 8 - n.first().map_or(0, |b| b.leading_zeros() as usize);
    if bits > MAX_RSA_BITS {
        return malformed(format!("RSA modulus of {bits} bits is above the {MAX_RSA_BITS}-bit limit"));
    }
    if bits < MIN_RSA_BITS {
        return Err((
            KeyProblem::Weak,
            format!("RSA modulus of {bits} bits is below the {MIN_RSA_BITS}-bit minimum"),
        ));
    }
    if e.len() > 4 {
        return malformed("e is longer than 32 bits");
    }
    let exponent = e.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    if exponent < 3 || exponent % 2 == 0 {
        return Err((KeyProblem::Weak, format!("RSA public exponent {exponent} must be odd and at least 3")));
    }
    if is_roca_vulnerable(&n) {
        return Err((
            KeyProblem::Weak,
            "RSA modulus has the ROCA fingerprint (CVE-2017-15361): its private key can be recovered"
                .to_owned(),
        ));
    }
    Ok((KeyFamily::Rsa, bits, Material::Rsa { n, e }))
}

fn ec_material(jwk: &Map<String, Value>) -> KeyResult<(KeyFamily, usize, Material)> {
    let crv = str_member(jwk, "crv")?.ok_or((KeyProblem::Malformed, "crv is missing".to_owned()))?;
    let (family, len, bits) = match crv {
        "P-256" => (KeyFamily::P256, 32, 256),
        "P-384" => (KeyFamily::P384, 48, 384),
        "P-521" => (KeyFamily::P521, 66, 521),
        other => return Err((KeyProblem::Unsupported, format!("EC curve {other:?} is not supported"))),
    };
    let x = b64_member(jwk, "x")?;
    let y = b64_member(jwk, "y")?;
    if x.len() != len || y.len() != len {
        return malformed(format!(
            "{crv} coordinates must be {len} bytes each, found x {} and y {}",
            x.len(),
            y.len()
        ));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok((family, bits, Material::Point(point)))
}

fn okp_material(jwk: &Map<String, Value>) -> KeyResult<(KeyFamily, usize, Material)> {
    let crv = str_member(jwk, "crv")?.ok_or((KeyProblem::Malformed, "crv is missing".to_owned()))?;
    match crv {
        "Ed25519" => {}
        "X25519" | "X448" => {
            return Err((
                KeyProblem::NotForSigning,
                format!("OKP curve {crv} is for key agreement, not signatures"),
            ));
        }
        other => return Err((KeyProblem::Unsupported, format!("OKP curve {other:?} is not supported"))),
    }
    let x = b64_member(jwk, "x")?;
    if x.len() != 32 {
        return malformed(format!("Ed25519 x must be 32 bytes, found {}", x.len()));
    }
    if is_small_order_ed25519(&x) {
        return Err((
            KeyProblem::Weak,
            "Ed25519 public key is a small-order point: signatures under it can be forged".to_owned(),
        ));
    }
    Ok((KeyFamily::Ed25519, 256, Material::Point(x)))
}

/// True when `point` encodes one of the 8 small-order points of edwards25519, in canonical or
/// non-canonical form (libsodium's blocklist, compared with the sign bit masked). Under such a
/// key a cofactorless verifier accepts forgeries (`docs/threat-model.md` A17): with the identity as key,
/// R = identity and S = 0 verify for every message.
fn is_small_order_ed25519(point: &[u8]) -> bool {
    const BLOCKLIST: [[u8; 32]; 7] = [
        // 0 (order 4)
        [0; 32],
        // 1 (order 1, the identity)
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        // order 8
        [
            0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
            0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05,
        ],
        // order 8
        [
            0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
            0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a,
        ],
        // p - 1 (order 2)
        [
            0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ],
        // p (non-canonical 0, order 4)
        [
            0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ],
        // p + 1 (non-canonical 1, order 1)
        [
            0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ],
    ];
    BLOCKLIST.iter().any(|blocked| {
        point.len() == 32
            && point
                .iter()
                .zip(blocked)
                .enumerate()
                .all(|(i, (p, b))| if i == 31 { p & 0x7f == *b } else { p == b })
    })
}

/// RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace.
fn thumbprint(jwk: &Map<String, Value>, kty: &str) -> KeyResult<[u8; 32]> {
    let members: &[&str] = match kty {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        _ => &["crv", "kty", "x"],
    };
    let mut canonical = String::from("{");
    for (i, name) in members.iter().enumerate() {
        let value = str_member(jwk, name)?.ok_or((KeyProblem::Malformed, format!("{name} is missing")))?;
        if i > 0 {
            canonical.push(',');
        }
        // Members are base64url or fixed names, so no JSON escaping is needed; serde does it anyway.
        canonical.push_str(&serde_json::to_string(name).unwrap_or_default());
        canonical.push(':');
        canonical.push_str(&serde_json::to_string(value).unwrap_or_default());
    }
    canonical.push('}');
    let digest = digest::digest(&digest::SHA256, canonical.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    Ok(out)
}

/// The ROCA fingerprint test (Nemec et al., CCS 2017): moduli from the vulnerable Infineon
/// generator are, modulo each small prime below, inside the subgroup generated by 65537.
fn is_roca_vulnerable(n: &[u8]) -> bool {
    const PRIMES: [u32; 17] = [11, 13, 17, 19, 37, 53, 61, 71, 73, 79, 97, 103, 107, 109, 127, 151, 157];
    PRIMES.into_iter().all(|p| {
        let residue = n.iter().fold(0u32, |acc, b| (acc * 256 + u32::from(*b)) % p);
        let generator = 65537 % p;
        let mut element = 1u32;
        for _ in 0..p {
            if element == residue {
                return true;
            }
            element = element * generator % p;
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_order_ed25519_keys_are_flagged_with_either_sign_bit() {
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(is_small_order_ed25519(&identity));
        identity[31] = 0x80;
        assert!(is_small_order_ed25519(&identity), "sign bit set");
        let mut not_small = identity;
        not_small[0] = 2;
        assert!(!is_small_order_ed25519(&not_small));
    }

    #[test]
    fn roca_check_flags_only_fingerprinted_moduli() {
        // 1 = 65537^0 lies in every subgroup; 2 is outside the subgroup {1, 10} modulo 11.
        assert!(is_roca_vulnerable(&[1]));
        assert!(!is_roca_vulnerable(&[2]));
    }
}
