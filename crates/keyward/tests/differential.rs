//! Differential testing: keyward against `jsonwebtoken` 11 (aws-lc-rs backend).
//!
//! Keys for the nine algorithms both libraries verify (RS256/384/512, PS256/384/512, ES256,
//! ES384, EdDSA) plus one RS256 key published under a wrong JWK `alg` are generated with
//! keyward-idp. From valid tokens a seeded PRNG derives thousands of mutants: re-signed header
//! and claims edits, random re-signed JSON corruption, and encoding-level mutations of signed
//! tokens (bit flips, segment swaps, drops and duplicates, padding, non-canonical base64,
//! signature re-encodings). Each goes through `keyward::verify_with_keys` and
//! `jsonwebtoken::decode` with the same policy: algorithm allowlist, issuer, audience (both
//! required), 60 s leeway, `nbf` checked. jsonwebtoken cannot be given a clock, so claims are
//! built from the real time, keyward gets the same second, and a case whose check straddles a
//! second boundary is rebuilt and rerun.
//!
//! The libraries must agree, accept or reject, except for the enumerated [`Difference`]s, each a
//! documented strictness choice of keyward (README, `docs/threat-model.md`) or a jsonwebtoken header
//! typing rule. A difference counts only when the token shows the feature that explains it and
//! keyward's reason code is the one that feature produces; anything else fails the test with the
//! token printed. When both accept, the claims they return must be identical.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keyward::jwk::JwkSet;
use keyward::{Algorithm, Error, Policy, Reason, Verified, verify_with_keys};
use keyward_idp::{SigningAlg, SigningKey};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value, json};

const ISS: &str = "https://idp.example.test";
const AUD: &str = "api";
const LEEWAY: i64 = 60;
const MAX_TOKEN_LEN: usize = 16 * 1024;
const MAX_NUMERIC_DATE: u64 = 1 << 53;
const SEED: u64 = 0x6b65_7977_6172_6421;

/// The algorithms both libraries implement: (keyward-idp, keyward, jsonwebtoken, kid).
const SHARED: [(SigningAlg, Algorithm, jsonwebtoken::Algorithm, &str); 9] = [
    (SigningAlg::RS256, Algorithm::RS256, jsonwebtoken::Algorithm::RS256, "rs256"),
    (SigningAlg::RS384, Algorithm::RS384, jsonwebtoken::Algorithm::RS384, "rs384"),
    (SigningAlg::RS512, Algorithm::RS512, jsonwebtoken::Algorithm::RS512, "rs512"),
    (SigningAlg::PS256, Algorithm::PS256, jsonwebtoken::Algorithm::PS256, "ps256"),
    (SigningAlg::PS384, Algorithm::PS384, jsonwebtoken::Algorithm::PS384, "ps384"),
    (SigningAlg::PS512, Algorithm::PS512, jsonwebtoken::Algorithm::PS512, "ps512"),
    (SigningAlg::ES256, Algorithm::ES256, jsonwebtoken::Algorithm::ES256, "es256"),
    (SigningAlg::ES384, Algorithm::ES384, jsonwebtoken::Algorithm::ES384, "es384"),
    (SigningAlg::EdDSA, Algorithm::EdDSA, jsonwebtoken::Algorithm::EdDSA, "eddsa"),
];
/// An RS256 key whose JWK says `alg: PS256` (index 9 in the key list).
const RELABELED_KID: &str = "relabeled";
const RELABELED: usize = SHARED.len();

const P256_ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
const P384_ORDER: &str =
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973";
/// The Ed25519 group order L, little-endian.
const ED25519_L: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

/// Where keyward deliberately differs from jsonwebtoken 11. Every entry is a documented
/// keyward rule (or, for [`Difference::HeaderMemberTyping`], a jsonwebtoken one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Difference {
    /// Duplicate member names in header or claims are `malformed` (THREATS A10); jsonwebtoken
    /// (serde) takes the last value of members outside its own structs.
    DuplicateMember,
    /// A claims payload that is a JSON array: serde lets jsonwebtoken's claims struct read a
    /// sequence positionally (`[exp, nbf, sub, iss, aud]`); keyward requires an object.
    NonObjectClaims,
    /// `crit` is `unsupported_critical_header` whatever it lists; jsonwebtoken ignores `crit`.
    CritHeader,
    /// `b64` other than `true` (RFC 7797) is refused; jsonwebtoken ignores it.
    B64Header,
    /// `zip` is refused; jsonwebtoken parses and ignores it.
    ZipHeader,
    /// `enc` marks a JWE and is `malformed`; jsonwebtoken parses and ignores it.
    EncHeader,
    /// `cty: JWT` (nested token) is `malformed`; jsonwebtoken ignores `cty`.
    NestedJwtCty,
    /// `typ` must be absent, JWT, at+jwt or application/at+jwt (`invalid_claim`); jsonwebtoken
    /// accepts any string.
    TypValue,
    /// The JWK `alg` binds the key: an RS256 signature under a key published as PS256 fails
    /// (`key_algorithm_mismatch`, or the kid-less candidate search skips it); jsonwebtoken's
    /// `decode` never looks at the JWK `alg`.
    KeyAlgBinding,
    /// `iat` is type-checked and must not be in the future; jsonwebtoken never reads `iat`.
    IatChecked,
    /// `sub` and `jti` must be strings and `iss` a single string; jsonwebtoken ignores an
    /// ill-typed `sub`/`jti` and accepts an `iss` array that contains the issuer.
    ClaimTypes,
    /// A member that is `null` is present and ill-typed, not absent: header `kid`/`typ` and
    /// claims `nbf`/`sub`/`jti` (jsonwebtoken's `Option` fields read `null` as `None`).
    NullAsAbsent,
    /// NumericDates above 2^53 are `invalid_claim`; jsonwebtoken accepts any u64 `exp`.
    NumericDateRange,
    /// `exp` is exclusive (RFC 7519: expired "on or after"): at exactly `exp + leeway`
    /// keyward says `expired`, jsonwebtoken (`exp < now - leeway`) still accepts.
    ExpBoundary,
    /// Fractional dates: keyward floors `exp` and ceils `nbf` (never extends validity);
    /// jsonwebtoken rounds to nearest.
    FractionalDate,
    /// Tokens above 16 KiB are `token_too_large` before parsing; jsonwebtoken has no bound.
    SizeBound,
    /// jsonwebtoken's header struct rejects ill-typed `jku`, `jwk`, `x5u`, `x5c`, `x5t`,
    /// `x5t#S256`, `url`, `nonce`, which keyward never reads (THREATS A4/A18).
    HeaderMemberTyping,
}

impl Difference {
    const ALL: [Self; 17] = [
        Self::DuplicateMember,
        Self::NonObjectClaims,
        Self::CritHeader,
        Self::B64Header,
        Self::ZipHeader,
        Self::EncHeader,
        Self::NestedJwtCty,
        Self::TypValue,
        Self::KeyAlgBinding,
        Self::IatChecked,
        Self::ClaimTypes,
        Self::NullAsAbsent,
        Self::NumericDateRange,
        Self::ExpBoundary,
        Self::FractionalDate,
        Self::SizeBound,
        Self::HeaderMemberTyping,
    ];
}

/// splitmix64: small, seeded, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn unix_now() -> i64 {
    keyward::Clock::now_unix(&keyward::SystemClock)
}

/// Who signs a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Signer {
    /// One of the published keys.
    Key(usize),
    /// An ES256 key that is not in the key set.
    Attacker,
    /// HS256 with the PEM of published key `n` as the secret (algorithm confusion).
    HmacWithPublicKey(usize),
    /// No signature at all (empty third segment).
    Unsigned,
}

/// Cache key for signed tokens: who signed which header and payload bytes.
type SignedKey = (Signer, Vec<u8>, Vec<u8>);
type Content = Box<dyn Fn(i64) -> (Vec<u8>, Vec<u8>)>;
type Post = Box<dyn Fn(&str, &str) -> String>;

struct Case {
    label: String,
    signer: Signer,
    content: Content,
    /// An encoding-level mutation of the signed token, given a donor token of another key.
    post: Option<Post>,
}

struct Fixture {
    keys: Vec<SigningKey>,
    attacker: SigningKey,
    pems: Vec<String>,
    jwks_json: Value,
    keyward_set: JwkSet,
    jwt_set: jsonwebtoken::jwk::JwkSet,
    policy: Policy,
    signed: RefCell<HashMap<SignedKey, String>>,
}

fn base_header(alg: &str, kid: &str) -> Map<String, Value> {
    let Value::Object(map) = json!({"alg": alg, "kid": kid, "typ": "JWT"}) else { unreachable!() };
    map
}

fn base_claims(now: i64) -> Map<String, Value> {
    let Value::Object(map) = json!({
        "iss": ISS, "sub": "alice", "aud": AUD, "iat": now - 10, "nbf": now - 10, "exp": now + 600,
        "jti": "id-1", "scope": "read write", "ext": {"roles": ["a", "b"], "n": 1.5},
    }) else {
        unreachable!()
    };
    map
}

fn to_bytes(map: &Map<String, Value>) -> Vec<u8> {
    serde_json::to_vec(map).unwrap()
}

impl Fixture {
    fn new() -> Self {
        let mut keys: Vec<SigningKey> =
            SHARED.iter().map(|(alg, _, _, kid)| SigningKey::generate(*alg, *kid).unwrap()).collect();
        keys.push(SigningKey::generate(SigningAlg::RS256, RELABELED_KID).unwrap());
        let attacker = SigningKey::generate(SigningAlg::ES256, "es256").unwrap();
        let mut jwks_json = keyward_idp::jwks(keys.iter());
        jwks_json["keys"][RELABELED]["alg"] = json!("PS256");
        let keyward_set = JwkSet::from_json(jwks_json.to_string().as_bytes()).unwrap();
        assert_eq!(keyward_set.len(), keys.len(), "{:?}", keyward_set.set_aside());
        let jwt_set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks_json.clone()).unwrap();
        let pems = keys
            .iter()
            .map(|k| {
                let der = STANDARD.encode(k.public_key_spki_der().unwrap());
                let lines: Vec<&str> =
                    der.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
                format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
            })
            .collect();
        let policy = Policy::builder()
            .issuer(ISS)
            .audience(AUD)
            .algorithms(SHARED.iter().map(|s| s.1))
            .leeway(Duration::from_secs(LEEWAY as u64))
            .build()
            .unwrap();
        assert_eq!(policy.max_token_len(), MAX_TOKEN_LEN);
        Self {
            keys,
            attacker,
            pems,
            jwks_json,
            keyward_set,
            jwt_set,
            policy,
            signed: RefCell::new(HashMap::new()),
        }
    }

    fn sign(&self, signer: Signer, header: &[u8], payload: &[u8]) -> String {
        let cache_key = (signer, header.to_vec(), payload.to_vec());
        if let Some(token) = self.signed.borrow().get(&cache_key) {
            return token.clone();
        }
        let token = match signer {
            Signer::Key(i) => self.keys[i].sign_parts(header, payload).unwrap(),
            Signer::Attacker => self.attacker.sign_parts(header, payload).unwrap(),
            Signer::HmacWithPublicKey(i) => {
                let input = format!("{}.{}", b64(header), b64(payload));
                let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, self.pems[i].as_bytes());
                let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
                format!("{input}.{}", b64(tag.as_ref()))
            }
            Signer::Unsigned => format!("{}.{}.", b64(header), b64(payload)),
        };
        self.signed.borrow_mut().insert(cache_key, token.clone());
        token
    }

    fn build(&self, case: &Case, now: i64) -> String {
        let (header, payload) = (case.content)(now);
        let token = self.sign(case.signer, &header, &payload);
        match &case.post {
            None => token,
            Some(post) => {
                let donor_index = match case.signer {
                    Signer::Key(i) => (i + 1) % SHARED.len(),
                    _ => 0,
                };
                let (_, _, _, kid) = SHARED[donor_index];
                let donor = self.sign(
                    Signer::Key(donor_index),
                    &to_bytes(&base_header(SHARED[donor_index].1.as_str(), kid)),
                    &to_bytes(&base_claims(now)),
                );
                post(&token, &donor)
            }
        }
    }

    /// What an application using jsonwebtoken does: pick the JWK by `kid` (or try every key
    /// when there is none), allow the policy's algorithms of that key's family, and decode.
    fn jsonwebtoken_verify(&self, token: &str) -> Result<(usize, Value), String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        let mut last = "no key with that kid".to_owned();
        for (index, jwk) in self.jwt_set.keys.iter().enumerate() {
            if header.kid.is_some() && jwk.common.key_id != header.kid {
                continue;
            }
            let key = jsonwebtoken::DecodingKey::from_jwk(jwk).map_err(|e| format!("key: {e}"))?;
            let algorithms: Vec<jsonwebtoken::Algorithm> =
                SHARED.iter().map(|s| s.2).filter(|a| a.family() == key.family()).collect();
            let mut validation = jsonwebtoken::Validation::new(algorithms[0]);
            validation.algorithms = algorithms;
            validation.leeway = LEEWAY as u64;
            validation.validate_exp = true;
            validation.validate_nbf = true;
            validation.set_issuer(&[ISS]);
            validation.set_audience(&[AUD]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            match jsonwebtoken::decode::<Value>(token, &key, &validation) {
                Ok(data) => return Ok((index, data.claims)),
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }

    /// Runs one case, rebuilding it if the second changed while the two libraries ran.
    fn run(&self, case: &Case) -> Run {
        for _ in 0..5 {
            let now = unix_now();
            let token = self.build(case, now);
            let keyward = verify_with_keys(&self.keyward_set, &self.policy, &token, now);
            let jwt = self.jsonwebtoken_verify(&token);
            if unix_now() == now {
                return Run { token, now, keyward, jwt };
            }
        }
        panic!("{}: the clock moved on every attempt", case.label);
    }

    /// Names the documented difference behind a disagreement, if the token shows one.
    fn classify(&self, run: &Run) -> Option<Difference> {
        let view = View::of(&run.token);
        let header = view.header.as_ref().and_then(Value::as_object);
        let member = |name: &str| header.and_then(|h| h.get(name));
        let claims = view.claims.as_ref().and_then(Value::as_object);
        let claim = |name: &str| claims.and_then(|c| c.get(name));
        match (&run.keyward, &run.jwt) {
            (Err(e), Ok((jwk_index, _))) => {
                let detail = e.detail();
                match e.reason() {
                    Reason::TokenTooLarge if run.token.len() > MAX_TOKEN_LEN => Some(Difference::SizeBound),
                    Reason::Malformed if view.duplicates => Some(Difference::DuplicateMember),
                    Reason::Malformed if view.claims.as_ref().is_some_and(Value::is_array) => {
                        Some(Difference::NonObjectClaims)
                    }
                    Reason::Malformed if member("enc").is_some() => Some(Difference::EncHeader),
                    Reason::Malformed
                        if member("cty")
                            .and_then(Value::as_str)
                            .is_some_and(|c| c.eq_ignore_ascii_case("jwt")) =>
                    {
                        Some(Difference::NestedJwtCty)
                    }
                    Reason::UnsupportedCriticalHeader if member("crit").is_some() => {
                        Some(Difference::CritHeader)
                    }
                    Reason::UnsupportedCriticalHeader
                        if member("b64").is_some_and(|b| *b != Value::Bool(true)) =>
                    {
                        Some(Difference::B64Header)
                    }
                    Reason::UnsupportedCriticalHeader if member("zip").is_some() => {
                        Some(Difference::ZipHeader)
                    }
                    Reason::InvalidClaim
                        if detail.starts_with("header typ")
                            && member("typ").and_then(Value::as_str).is_some_and(|t| !typ_accepted(t)) =>
                    {
                        Some(Difference::TypValue)
                    }
                    Reason::KeyAlgorithmMismatch | Reason::InvalidSignature | Reason::NoMatchingKey => {
                        let jwk_alg = self.jwks_json["keys"][*jwk_index]["alg"].as_str();
                        (jwk_alg.is_some() && jwk_alg != member("alg").and_then(Value::as_str))
                            .then_some(Difference::KeyAlgBinding)
                    }
                    Reason::IssuedInFuture
                        if claim("iat")
                            .and_then(Value::as_f64)
                            .is_some_and(|iat| iat > (run.now + LEEWAY) as f64) =>
                    {
                        Some(Difference::IatChecked)
                    }
                    Reason::InvalidClaim
                        if detail.starts_with("iat") && claim("iat").is_some_and(|v| !numeric_date_ok(v)) =>
                    {
                        Some(Difference::IatChecked)
                    }
                    Reason::InvalidClaim
                        if (detail.starts_with("exp") || detail.starts_with("nbf"))
                            && ["exp", "nbf"].iter().any(|n| {
                                claim(n).is_some_and(|v| {
                                    v.as_u64().map_or_else(
                                        || v.as_f64().is_some_and(|f| f > MAX_NUMERIC_DATE as f64),
                                        |u| u > MAX_NUMERIC_DATE,
                                    )
                                })
                            }) =>
                    {
                        Some(Difference::NumericDateRange)
                    }
                    Reason::Malformed
                        if ["kid", "typ"].iter().any(|n| {
                            detail.starts_with(&format!("header {n} is null"))
                                && member(n).is_some_and(Value::is_null)
                        }) =>
                    {
                        Some(Difference::NullAsAbsent)
                    }
                    Reason::InvalidClaim
                        if ["nbf", "sub", "jti"]
                            .iter()
                            .any(|n| detail.starts_with(n) && claim(n).is_some_and(Value::is_null)) =>
                    {
                        Some(Difference::NullAsAbsent)
                    }
                    Reason::InvalidClaim
                        if (detail.starts_with("sub") && claim("sub").is_some_and(|v| !v.is_string()))
                            || (detail.starts_with("jti")
                                && claim("jti").is_some_and(|v| !v.is_string()))
                            || (detail.starts_with("iss") && claim("iss").is_some_and(Value::is_array)) =>
                    {
                        Some(Difference::ClaimTypes)
                    }
                    Reason::Expired
                        if claim("exp").and_then(Value::as_i64) == Some(run.now - LEEWAY)
                            && claim("exp").is_some_and(Value::is_i64) =>
                    {
                        Some(Difference::ExpBoundary)
                    }
                    Reason::Expired | Reason::NotYetValid
                        if ["exp", "nbf"]
                            .iter()
                            .any(|n| claim(n).and_then(Value::as_f64).is_some_and(|v| v.fract() != 0.0)) =>
                    {
                        Some(Difference::FractionalDate)
                    }
                    _ => None,
                }
            }
            (Ok(_), Err(_)) => {
                let typed = ["jku", "jwk", "x5u", "x5c", "x5t", "x5t#S256", "url", "nonce"];
                let lenient_ok = header.is_some_and(|h| {
                    h.get("alg").is_some_and(Value::is_string)
                        && h.get("kid").is_none_or(Value::is_string)
                        && h.get("typ").is_none_or(Value::is_string)
                });
                let ill_typed = typed.iter().any(|name| match (*name, member(name)) {
                    (_, None) => false,
                    ("x5c", Some(v)) => !v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
                    ("jwk", Some(v)) => serde_json::from_value::<jsonwebtoken::jwk::Jwk>(v.clone()).is_err(),
                    (_, Some(v)) => !v.is_string(),
                });
                (jsonwebtoken::decode_header(&run.token).is_err() && lenient_ok && ill_typed)
                    .then_some(Difference::HeaderMemberTyping)
            }
            _ => None,
        }
    }
}

fn typ_accepted(typ: &str) -> bool {
    let t = typ.to_ascii_lowercase();
    t == "jwt" || t == "at+jwt" || t == "application/at+jwt"
}

fn numeric_date_ok(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.as_u64().is_some_and(|v| v <= MAX_NUMERIC_DATE)
                || n.as_f64()
                    .is_some_and(|v| n.as_i64().is_none() && v >= 0.0 && v <= MAX_NUMERIC_DATE as f64)
        }
        _ => false,
    }
}

struct Run {
    token: String,
    now: i64,
    keyward: Result<Verified, Error>,
    jwt: Result<(usize, Value), String>,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keyward = match &self.keyward {
            Ok(_) => "accept".to_owned(),
            Err(e) => format!("reject {} ({})", e.reason(), e.detail()),
        };
        let jwt = match &self.jwt {
            Ok((i, _)) => format!("accept (jwk #{i})"),
            Err(e) => format!("reject ({e})"),
        };
        write!(f, "now={} keyward: {keyward}; jsonwebtoken: {jwt}\n    token: {}", self.now, self.token)
    }
}

/// A lenient look at a token: segments decoded, JSON parsed last-wins, duplicates noted.
struct View {
    header: Option<Value>,
    claims: Option<Value>,
    duplicates: bool,
}

impl View {
    fn of(token: &str) -> Self {
        let segments: Vec<&str> = token.split('.').collect();
        let decode = |i: usize| segments.get(i).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok());
        let (header_bytes, claims_bytes) =
            if segments.len() == 3 { (decode(0), decode(1)) } else { (None, None) };
        let parse = |b: &Option<Vec<u8>>| b.as_ref().and_then(|b| serde_json::from_slice::<Value>(b).ok());
        let duplicates = [&header_bytes, &claims_bytes]
            .iter()
            .any(|b| b.as_ref().is_some_and(|b| has_duplicate_member(b) == Some(true)));
        Self { header: parse(&header_bytes), claims: parse(&claims_bytes), duplicates }
    }
}

/// An independent duplicate-member detector (not keyward's): `None` when not JSON.
fn has_duplicate_member(bytes: &[u8]) -> Option<bool> {
    struct Scan<'a>(&'a Cell<bool>);
    impl<'de> DeserializeSeed<'de> for Scan<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Scan<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Scan(self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key) {
                    self.0.set(true);
                }
                map.next_value_seed(Scan(self.0))?;
            }
            Ok(())
        }
    }
    let found = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    Scan(&found).deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(found.get())
}

/// The signing key of a case, with its header `alg` and `kid`.
#[derive(Clone, Copy)]
struct KeyRef {
    index: usize,
    alg: &'static str,
    kid: &'static str,
}

impl KeyRef {
    fn of(index: usize) -> Self {
        match SHARED.get(index) {
            Some((_, alg, _, kid)) => Self { index, alg: alg.as_str(), kid },
            None => Self { index, alg: "RS256", kid: RELABELED_KID },
        }
    }
}

#[derive(Default)]
struct Cases(Vec<Case>);

impl Cases {
    fn push(
        &mut self,
        label: impl Into<String>,
        signer: Signer,
        content: impl Fn(i64) -> (Vec<u8>, Vec<u8>) + 'static,
        post: Option<Post>,
    ) {
        self.0.push(Case { label: label.into(), signer, content: Box::new(content), post });
    }

    /// Base header with one member set (`Some`) or removed (`None`); base claims; re-signed.
    fn header(&mut self, label: String, k: KeyRef, name: &'static str, value: Option<Value>) {
        self.push(
            label,
            Signer::Key(k.index),
            move |now| {
                let mut header = base_header(k.alg, k.kid);
                match &value {
                    Some(v) => header.insert(name.to_owned(), v.clone()),
                    None => header.remove(name),
                };
                (to_bytes(&header), to_bytes(&base_claims(now)))
            },
            None,
        );
    }

    /// Base claims with one member set or removed (the value may depend on `now`).
    fn claim(
        &mut self,
        label: String,
        k: KeyRef,
        name: &'static str,
        value: impl Fn(i64) -> Option<Value> + 'static,
    ) {
        self.push(
            label,
            Signer::Key(k.index),
            move |now| {
                let mut claims = base_claims(now);
                match value(now) {
                    Some(v) => claims.insert(name.to_owned(), v),
                    None => claims.remove(name),
                };
                (to_bytes(&base_header(k.alg, k.kid)), to_bytes(&claims))
            },
            None,
        );
    }

    /// Raw header and claims text, re-signed.
    fn raw(&mut self, label: String, signer: Signer, f: impl Fn(i64) -> (String, String) + 'static) {
        self.push(
            label,
            signer,
            move |now| {
                let (h, c) = f(now);
                (h.into_bytes(), c.into_bytes())
            },
            None,
        );
    }

    /// An encoding-level mutation of the valid base token.
    fn post(&mut self, label: String, k: KeyRef, f: impl Fn(&str, &str) -> String + 'static) {
        self.push(
            label,
            Signer::Key(k.index),
            move |now| (to_bytes(&base_header(k.alg, k.kid)), to_bytes(&base_claims(now))),
            Some(Box::new(f)),
        );
    }
}

fn base_claims_text(now: i64) -> String {
    String::from_utf8(to_bytes(&base_claims(now))).unwrap()
}

fn header_cases(cases: &mut Cases, fx: &Fixture, k: KeyRef) {
    let mut algs: Vec<&'static str> = SHARED.iter().map(|s| s.1.as_str()).filter(|a| *a != k.alg).collect();
    algs.extend(["none", "HS256", "HS512", "Ed25519", "ES512", "RS256 ", "rs256", "None", ""]);
    for alg in algs {
        cases.header(format!("header:alg={alg:?}"), k, "alg", Some(json!(alg)));
    }
    let other_kid = SHARED[(k.index + 1) % SHARED.len()].3;
    let attacker_jwk = fx.attacker.public_jwk();
    let members: Vec<(&'static str, Option<Value>)> = vec![
        ("alg", None),
        ("alg", Some(json!(5))),
        ("alg", Some(Value::Null)),
        ("alg", Some(json!([k.alg]))),
        ("kid", None),
        ("kid", Some(json!("unknown"))),
        ("kid", Some(json!(7))),
        ("kid", Some(json!(""))),
        ("kid", Some(Value::Null)),
        ("kid", Some(json!(other_kid))),
        ("kid", Some(json!(format!("{} ", k.kid)))),
        ("typ", None),
        ("typ", Some(json!("jwt"))),
        ("typ", Some(json!("at+jwt"))),
        ("typ", Some(json!("application/at+jwt"))),
        ("typ", Some(json!("AT+JWT"))),
        ("typ", Some(json!("JOSE"))),
        ("typ", Some(json!("dpop+jwt"))),
        ("typ", Some(json!(""))),
        ("typ", Some(json!(5))),
        ("typ", Some(Value::Null)),
        ("crit", Some(json!(["exp"]))),
        ("crit", Some(json!([]))),
        ("crit", Some(json!("exp"))),
        ("crit", Some(json!(["kid"]))),
        ("b64", Some(json!(false))),
        ("b64", Some(json!(true))),
        ("b64", Some(json!("false"))),
        ("zip", Some(json!("DEF"))),
        ("enc", Some(json!("A256GCM"))),
        ("cty", Some(json!("JWT"))),
        ("cty", Some(json!("jwt"))),
        ("cty", Some(json!("json"))),
        ("cty", Some(json!(5))),
        ("jwk", Some(attacker_jwk)),
        ("jwk", Some(json!({"kty": "bogus"}))),
        ("jwk", Some(json!("x"))),
        ("jku", Some(json!("https://attacker.example/jwks"))),
        ("jku", Some(json!(5))),
        ("x5u", Some(json!("https://attacker.example/cert.pem"))),
        ("x5u", Some(json!(["x"]))),
        ("x5c", Some(json!(["AAAA"]))),
        ("x5c", Some(json!("AAAA"))),
        ("x5c", Some(json!([5]))),
        ("x5t", Some(json!(5))),
        ("x5t#S256", Some(json!([]))),
        ("nonce", Some(json!("n-0S6_WzA2Mj"))),
        ("nonce", Some(json!(7))),
        ("url", Some(json!(9))),
        ("url", Some(json!("https://x.example"))),
        ("ext", Some(json!({"deep": [1, {"a": null}], "n": 1e300}))),
    ];
    for (name, value) in members {
        let shown = value.as_ref().map_or_else(|| "<removed>".to_owned(), Value::to_string);
        cases.header(format!("header:{name}={shown}"), k, name, value);
    }
    // crit listing b64 together with b64:false (the RFC 7797 form).
    cases.raw("header:crit+b64".to_owned(), Signer::Key(k.index), move |now| {
        (
            format!(r#"{{"alg":"{}","kid":"{}","b64":false,"crit":["b64"]}}"#, k.alg, k.kid),
            base_claims_text(now),
        )
    });
    let (a, kid) = (k.alg, k.kid);
    let raw_headers: Vec<(&str, String)> = vec![
        ("dup-alg-same", format!(r#"{{"alg":"{a}","alg":"{a}","kid":"{kid}"}}"#)),
        ("dup-alg-none-first", format!(r#"{{"alg":"none","alg":"{a}","kid":"{kid}"}}"#)),
        ("dup-kid", format!(r#"{{"alg":"{a}","kid":"unknown","kid":"{kid}"}}"#)),
        ("dup-typ", format!(r#"{{"alg":"{a}","kid":"{kid}","typ":"JWT","typ":"JWT"}}"#)),
        ("dup-custom", format!(r#"{{"alg":"{a}","kid":"{kid}","x":1,"x":2}}"#)),
        ("dup-nested", format!(r#"{{"alg":"{a}","kid":"{kid}","ext":{{"y":1,"y":1}}}}"#)),
        ("dup-escaped", format!(r#"{{"alg":"{a}","kid":"{kid}","\u0061lg":"{a}"}}"#)),
        ("escaped-name", format!(r#"{{"\u0061lg":"{a}","k\u0069d":"{kid}"}}"#)),
        ("pretty", format!("{{\n  \"alg\" : \"{a}\" ,\n\t\"kid\":\"{kid}\"\n}}")),
        ("trailing-garbage", format!(r#"{{"alg":"{a}","kid":"{kid}"}} x"#)),
        ("trailing-space", format!("{{\"alg\":\"{a}\",\"kid\":\"{kid}\"}}\n ")),
        ("bom", format!("\u{feff}{{\"alg\":\"{a}\",\"kid\":\"{kid}\"}}")),
        ("array", format!(r#"["{a}"]"#)),
        ("empty-object", "{}".to_owned()),
        ("null", "null".to_owned()),
        ("empty", String::new()),
        ("nul-in-kid", format!("{{\"alg\":\"{a}\",\"kid\":\"{kid}\\u0000\"}}")),
        ("unicode-escape-kid", format!(r#"{{"alg":"{a}","kid":"{}"}}"#, kid.replace('s', "\\u0073"))),
    ];
    for (label, header) in raw_headers {
        cases.raw(format!("header-raw:{label}"), Signer::Key(k.index), move |now| {
            (header.clone(), base_claims_text(now))
        });
    }
}

type ClaimValue = Box<dyn Fn(i64) -> Option<Value>>;

fn claim_cases(cases: &mut Cases, k: KeyRef) {
    fn at(offset: i64) -> ClaimValue {
        Box::new(move |now| Some(json!(now + offset)))
    }
    fn at_f(offset: f64) -> ClaimValue {
        Box::new(move |now| Some(json!(now as f64 + offset)))
    }
    fn fixed(v: Value) -> ClaimValue {
        Box::new(move |_| Some(v.clone()))
    }
    fn absent() -> ClaimValue {
        Box::new(|_| None)
    }
    let edits: Vec<(&'static str, &'static str, ClaimValue)> = vec![
        ("exp", "absent", absent()),
        ("exp", "now-61", at(-61)),
        ("exp", "now-60", at(-60)),
        ("exp", "now-59", at(-59)),
        ("exp", "now-3600", at(-3600)),
        ("exp", "now+600.25", at_f(600.25)),
        ("exp", "now-58.5", at_f(-58.5)),
        ("exp", "now-60+0.4", at_f(-59.6)),
        ("exp", "now-61+0.6", at_f(-60.4)),
        ("exp", "now-0.5", at_f(-0.5)),
        ("exp", "string", Box::new(|now| Some(json!((now + 600).to_string())))),
        ("exp", "-1", fixed(json!(-1))),
        ("exp", "null", fixed(Value::Null)),
        ("exp", "true", fixed(json!(true))),
        ("exp", "array", Box::new(|now| Some(json!([now + 600])))),
        ("exp", "0", fixed(json!(0))),
        ("exp", "2^53", fixed(json!(MAX_NUMERIC_DATE))),
        ("exp", "2^53+1", fixed(json!(MAX_NUMERIC_DATE + 1))),
        ("exp", "1e20", fixed(json!(1e20))),
        ("exp", "u64::MAX", fixed(json!(u64::MAX))),
        ("exp", "i64::MIN", fixed(json!(i64::MIN))),
        ("nbf", "absent", absent()),
        ("nbf", "now+61", at(61)),
        ("nbf", "now+60", at(60)),
        ("nbf", "now+59", at(59)),
        ("nbf", "now+60.4", at_f(60.4)),
        ("nbf", "now+59.6", at_f(59.6)),
        ("nbf", "now+3600", at(3600)),
        ("nbf", "string", fixed(json!("x"))),
        ("nbf", "null", fixed(Value::Null)),
        ("nbf", "-5", fixed(json!(-5))),
        ("nbf", "2^53+1", fixed(json!(MAX_NUMERIC_DATE + 1))),
        ("nbf", "array", Box::new(|now| Some(json!([now])))),
        ("iat", "absent", absent()),
        ("iat", "now+61", at(61)),
        ("iat", "now+60", at(60)),
        ("iat", "now+600", at(600)),
        ("iat", "now+60.5", at_f(60.5)),
        ("iat", "now-100.5", at_f(-100.5)),
        ("iat", "string", fixed(json!("x"))),
        ("iat", "null", fixed(Value::Null)),
        ("iat", "-1", fixed(json!(-1))),
        ("iat", "1e20", fixed(json!(1e20))),
        ("iss", "absent", absent()),
        ("iss", "other", fixed(json!("https://other.example"))),
        ("iss", "null", fixed(Value::Null)),
        ("iss", "number", fixed(json!(5))),
        ("iss", "[ISS]", fixed(json!([ISS]))),
        ("iss", "[ISS,other]", fixed(json!([ISS, "https://other.example"]))),
        ("iss", "[other]", fixed(json!(["https://other.example"]))),
        ("iss", "trailing-slash", fixed(json!(format!("{ISS}/")))),
        ("iss", "uppercase", fixed(json!(ISS.to_uppercase()))),
        ("iss", "empty", fixed(json!(""))),
        ("aud", "[api]", fixed(json!([AUD]))),
        ("aud", "[other,api]", fixed(json!(["other", AUD]))),
        ("aud", "[other]", fixed(json!(["other"]))),
        ("aud", "[]", fixed(json!([]))),
        ("aud", "absent", absent()),
        ("aud", "null", fixed(Value::Null)),
        ("aud", "number", fixed(json!(5))),
        ("aud", "[api,5]", fixed(json!([AUD, 5]))),
        ("aud", "API", fixed(json!("API"))),
        ("aud", "[[api]]", fixed(json!([[AUD]]))),
        ("aud", "object", fixed(json!({AUD: true}))),
        ("sub", "number", fixed(json!(5))),
        ("sub", "null", fixed(Value::Null)),
        ("sub", "array", fixed(json!([]))),
        ("sub", "object", fixed(json!({}))),
        ("sub", "empty", fixed(json!(""))),
        ("jti", "number", fixed(json!(5))),
        ("jti", "null", fixed(Value::Null)),
        ("big", "17KiB", fixed(json!("x".repeat(17 * 1024)))),
        ("big", "10KiB", fixed(json!("x".repeat(10 * 1024)))),
        (
            "deep",
            "nesting-100",
            fixed(serde_json::from_str(&format!("{}{}", "[".repeat(100), "]".repeat(100))).unwrap()),
        ),
    ];
    for (name, label, value) in edits {
        cases.claim(format!("claims:{name}={label}"), k, name, value);
    }
    let (a, kid) = (k.alg, k.kid);
    let header = move || format!(r#"{{"alg":"{a}","kid":"{kid}"}}"#);
    type Raw = Box<dyn Fn(i64) -> String>;
    let raw_claims: Vec<(&str, Raw)> = vec![
        (
            "dup-exp-expired-first",
            Box::new(|n| format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"exp":{}}}"#, n - 600, n + 600)),
        ),
        (
            "dup-exp-expired-last",
            Box::new(|n| format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"exp":{}}}"#, n + 600, n - 600)),
        ),
        (
            "dup-aud",
            Box::new(|n| format!(r#"{{"iss":"{ISS}","aud":"other","aud":"{AUD}","exp":{}}}"#, n + 600)),
        ),
        (
            "dup-iss",
            Box::new(|n| {
                format!(r#"{{"iss":"https://evil","iss":"{ISS}","aud":"{AUD}","exp":{}}}"#, n + 600)
            }),
        ),
        (
            "dup-custom",
            Box::new(|n| {
                format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"role":"user","role":"admin"}}"#, n + 600)
            }),
        ),
        (
            "dup-nested",
            Box::new(|n| {
                format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"ext":[{{"a":1,"a":2}}]}}"#, n + 600)
            }),
        ),
        (
            "dup-escaped-exp",
            Box::new(|n| {
                format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"\u0065xp":{}}}"#, n + 600, n + 600)
            }),
        ),
        ("array-positional", Box::new(|n| format!(r#"[{},{},"alice","{ISS}","{AUD}"]"#, n + 600, n - 10))),
        ("array-empty", Box::new(|_| "[]".to_owned())),
        ("string", Box::new(|_| r#""claims""#.to_owned())),
        ("number", Box::new(|n| n.to_string())),
        ("null", Box::new(|_| "null".to_owned())),
        ("empty", Box::new(|_| String::new())),
        ("trailing-garbage", Box::new(|n| format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{}}}x"#, n + 600))),
        (
            "trailing-newline",
            Box::new(|n| format!("{{\"iss\":\"{ISS}\",\"aud\":\"{AUD}\",\"exp\":{}}}\n", n + 600)),
        ),
        (
            "leading-space",
            Box::new(|n| format!(" \t{{\"iss\":\"{ISS}\",\"aud\":\"{AUD}\",\"exp\":{}}}", n + 600)),
        ),
        (
            "number-1e400",
            Box::new(|n| format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"x":1e400}}"#, n + 600)),
        ),
        ("exp-exponent", Box::new(|n| format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{}e0}}"#, n + 600))),
        ("exp-dot-zero", Box::new(|n| format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{}.0}}"#, n + 600))),
        ("exp-leading-zero", Box::new(|n| format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":0{}}}"#, n + 600))),
        (
            "escaped-iss",
            Box::new(|n| {
                format!(r#"{{"iss":"{}","aud":"{AUD}","exp":{}}}"#, ISS.replace('/', "\\/"), n + 600)
            }),
        ),
        (
            "lone-surrogate",
            Box::new(|n| format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"x":"\ud800"}}"#, n + 600)),
        ),
        (
            "nesting-200",
            Box::new(|n| {
                format!(
                    r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"d":{}{}}}"#,
                    n + 600,
                    "[".repeat(200),
                    "]".repeat(200)
                )
            }),
        ),
        ("minimal", Box::new(|n| format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{}}}"#, n + 600))),
    ];
    for (label, claims) in raw_claims {
        cases.raw(format!("claims-raw:{label}"), Signer::Key(k.index), move |now| (header(), claims(now)));
    }
}

/// Splits a token into its dot-separated segments for editing.
fn segments(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

/// A random encoding-level mutation of a signed token.
fn random_post(rng: &mut Rng, k: KeyRef) -> (String, Post) {
    let seg = rng.below(3);
    let r = rng.next();
    let bit = rng.below(7) as u8;
    let n = 1 + rng.below(3);
    let kind = rng.below(19);
    let label = |what: &str| format!("encoding:{what}");
    match kind {
        0 | 1 => (
            label("flip-encoded-bit"),
            Box::new(move |t, _| {
                let mut bytes = t.as_bytes().to_vec();
                let i = (r % bytes.len() as u64) as usize;
                bytes[i] ^= 1 << bit;
                String::from_utf8(bytes).unwrap()
            }),
        ),
        2 | 3 => (
            label("flip-decoded-bit"),
            Box::new(move |t, _| {
                let mut s = segments(t);
                let mut bytes = URL_SAFE_NO_PAD.decode(&s[seg]).unwrap();
                if !bytes.is_empty() {
                    let i = (r % bytes.len() as u64) as usize;
                    bytes[i] ^= 1 << (bit + 1).min(7);
                }
                s[seg] = b64(&bytes);
                s.join(".")
            }),
        ),
        4 => (
            label("swap-segment"),
            Box::new(move |t, donor| {
                let mut s = segments(t);
                s[seg] = segments(donor)[seg].clone();
                s.join(".")
            }),
        ),
        5 => (
            label("drop-segment"),
            Box::new(move |t, _| {
                let mut s = segments(t);
                s.remove(seg);
                s.join(".")
            }),
        ),
        6 => (
            label("duplicate-segment"),
            Box::new(move |t, _| {
                let mut s = segments(t);
                let copy = s[seg].clone();
                s.insert(seg, copy);
                s.join(".")
            }),
        ),
        7 => (
            label("extra-dot"),
            Box::new(move |t, _| if r.is_multiple_of(2) { format!(".{t}") } else { format!("{t}.") }),
        ),
        8 => (
            label("padding"),
            Box::new(move |t, _| {
                let mut s = segments(t);
                s[seg].push_str(&"=".repeat(n));
                s.join(".")
            }),
        ),
        9 => (
            label("non-canonical-trailing-bits"),
            Box::new(move |t, _| {
                let mut s = segments(t);
                // The last char of a segment of length 2 or 3 (mod 4) has unused low bits: set one.
                const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let target = (0..3).map(|d| (seg + d) % 3).find(|&i| s[i].len() % 4 >= 2);
                if let Some(i) = target {
                    let unused = if s[i].len() % 4 == 2 { 4 } else { 2 };
                    let last = *s[i].as_bytes().last().unwrap();
                    let value = ALPHABET.iter().position(|&c| c == last).unwrap();
                    let flipped = value | (1 + (r as usize % ((1 << unused) - 1)));
                    s[i].pop();
                    s[i].push(ALPHABET[flipped] as char);
                }
                s.join(".")
            }),
        ),
        10 => (
            label("standard-alphabet"),
            Box::new(move |t, _| {
                let mut s = segments(t);
                s[seg] = s[seg].replace('-', "+").replace('_', "/");
                if !s[seg].contains(['+', '/']) {
                    s[seg].insert(0, '+');
                }
                s.join(".")
            }),
        ),
        11 => (
            label("whitespace"),
            Box::new(move |t, _| {
                let mut t = t.to_owned();
                let i = (r % (t.len() as u64 + 1)) as usize;
                t.insert(i, [' ', '\n', '\t', '\r'][n % 4]);
                t
            }),
        ),
        12 => (
            label("truncate-signature"),
            Box::new(move |t, _| {
                let mut s = segments(t);
                let mut sig = URL_SAFE_NO_PAD.decode(&s[2]).unwrap();
                sig.truncate(sig.len().saturating_sub(n));
                s[2] = b64(&sig);
                s.join(".")
            }),
        ),
        13 => (
            label("extend-signature"),
            Box::new(move |t, _| {
                let mut s = segments(t);
                let mut sig = URL_SAFE_NO_PAD.decode(&s[2]).unwrap();
                if r.is_multiple_of(2) {
                    sig.extend(std::iter::repeat_n(0, n));
                } else {
                    let mut padded = vec![0; n];
                    padded.extend(sig);
                    sig = padded;
                }
                s[2] = b64(&sig);
                s.join(".")
            }),
        ),
        14 => (
            label("empty-or-zero-signature"),
            Box::new(move |t, _| {
                let mut s = segments(t);
                let len = URL_SAFE_NO_PAD.decode(&s[2]).unwrap().len();
                s[2] = if r.is_multiple_of(2) { String::new() } else { b64(&vec![0; len]) };
                s.join(".")
            }),
        ),
        15 => (
            label("alg-swap-unsigned"),
            Box::new(move |t, _| {
                let mut s = segments(t);
                let other = SHARED[(r % SHARED.len() as u64) as usize].1.as_str();
                let mut header = base_header(other, k.kid);
                if r.is_multiple_of(3) {
                    header.insert("alg".into(), json!(["none", "HS256", "Ed25519"][n % 3]));
                }
                s[0] = b64(&to_bytes(&header));
                s.join(".")
            }),
        ),
        16 => (label("ecdsa-der-signature"), Box::new(|t, _| rewrite_signature(t, der_signature))),
        17 => (label("ecdsa-high-s"), Box::new(|t, _| rewrite_signature(t, high_s))),
        _ => (label("ed25519-s-plus-l"), Box::new(|t, _| rewrite_signature(t, ed25519_add_l))),
    }
}

fn rewrite_signature(token: &str, f: fn(&[u8]) -> Option<Vec<u8>>) -> String {
    let mut s = segments(token);
    let sig = URL_SAFE_NO_PAD.decode(&s[2]).unwrap();
    match f(&sig) {
        Some(new) => s[2] = b64(&new),
        None => s[2].push('A'), // not applicable to this key type: just break the encoding
    }
    s.join(".")
}

/// r‖s as an ASN.1 DER ECDSA-Sig-Value (what some libraries wrongly accept).
fn der_signature(sig: &[u8]) -> Option<Vec<u8>> {
    if sig.len() != 64 && sig.len() != 96 {
        return None;
    }
    let integer = |half: &[u8]| {
        let trimmed: Vec<u8> = half.iter().copied().skip_while(|&b| b == 0).collect();
        let mut int = if trimmed.first().is_some_and(|b| b & 0x80 != 0) { vec![0] } else { vec![] };
        int.extend(trimmed);
        let mut out = vec![0x02, int.len() as u8];
        out.extend(int);
        out
    };
    let (r, s) = sig.split_at(sig.len() / 2);
    let body: Vec<u8> = integer(r).into_iter().chain(integer(s)).collect();
    let mut out = vec![0x30, body.len() as u8];
    out.extend(body);
    Some(out)
}

/// Big-endian `a - b` for equal lengths (a ≥ b).
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0; a.len()];
    let mut borrow = 0i16;
    for i in (0..a.len()).rev() {
        let mut d = a[i] as i16 - b[i] as i16 - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

/// (r, n − s): the other valid ECDSA signature for the same message.
fn high_s(sig: &[u8]) -> Option<Vec<u8>> {
    let order = match sig.len() {
        64 => hex(P256_ORDER),
        96 => hex(P384_ORDER),
        _ => return None,
    };
    let (r, s) = sig.split_at(sig.len() / 2);
    let mut out = r.to_vec();
    out.extend(sub_be(&order, s));
    Some(out)
}

/// Ed25519 (R, S + L): the non-canonical scalar RFC 8032 requires verifiers to reject.
fn ed25519_add_l(sig: &[u8]) -> Option<Vec<u8>> {
    if sig.len() != 64 {
        return None;
    }
    let l = hex(ED25519_L);
    let mut out = sig.to_vec();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = u16::from(sig[32 + i]) + u16::from(l[i]) + carry;
        out[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    Some(out)
}

/// Random byte-level corruption of the header or claims JSON, then re-signed.
fn random_json_case(cases: &mut Cases, rng: &mut Rng, k: KeyRef) {
    const INTERESTING: &[u8] = b"\"{}[],:0123456789.eE-+ \\ntrufals\x00\x7f";
    let in_header = rng.below(10) < 3;
    let edits: Vec<(usize, u64, u64)> =
        (0..1 + rng.below(3)).map(|_| (rng.below(5), rng.next(), rng.next())).collect();
    let label = format!("json-random:{}", if in_header { "header" } else { "claims" });
    cases.push(
        label,
        Signer::Key(k.index),
        move |now| {
            let header = to_bytes(&base_header(k.alg, k.kid));
            let claims = to_bytes(&base_claims(now));
            let mut target = if in_header { header.clone() } else { claims.clone() };
            for &(op, a, b) in &edits {
                let len = target.len();
                let i = (a % len.max(1) as u64) as usize;
                match op {
                    0 => target[i] = INTERESTING[(b % INTERESTING.len() as u64) as usize],
                    1 => {
                        target.remove(i);
                    }
                    2 => target.insert(i, INTERESTING[(b % INTERESTING.len() as u64) as usize]),
                    3 => {
                        let end = (i + 1 + (b % 12) as usize).min(len);
                        let copy = target[i..end].to_vec();
                        target.splice(i..i, copy);
                    }
                    _ => target[i] ^= 1 << (b % 7),
                }
                if target.is_empty() {
                    target.push(b'{');
                }
            }
            if in_header { (target, claims) } else { (header, target) }
        },
        None,
    );
}

fn build_cases(fx: &Fixture) -> Cases {
    let mut rng = Rng(SEED);
    let mut cases = Cases::default();
    for index in 0..fx.keys.len() {
        let k = KeyRef::of(index);
        cases.header("base".to_owned(), k, "typ", Some(json!("JWT")));
        header_cases(&mut cases, fx, k);
        claim_cases(&mut cases, k);
        let (posts, jsons) = if index == RELABELED { (40, 20) } else { (160, 80) };
        for _ in 0..posts {
            let (label, post) = random_post(&mut rng, k);
            cases.post(label, k, move |t, d| post(t, d));
        }
        for _ in 0..jsons {
            random_json_case(&mut cases, &mut rng, k);
        }
    }
    // Keys the verifier does not hold, embedded in the header or not.
    let attacker_jwk = fx.attacker.public_jwk().to_string();
    for (label, header) in [
        ("attacker:embedded-jwk", format!(r#"{{"alg":"ES256","kid":"es256","jwk":{attacker_jwk}}}"#)),
        ("attacker:embedded-jwk-no-kid", format!(r#"{{"alg":"ES256","jwk":{attacker_jwk}}}"#)),
        ("attacker:jku", r#"{"alg":"ES256","kid":"es256","jku":"https://attacker.example/jwks"}"#.to_owned()),
        ("attacker:x5u", r#"{"alg":"ES256","x5u":"https://attacker.example/cert.pem"}"#.to_owned()),
    ] {
        cases.raw(label.to_owned(), Signer::Attacker, move |now| (header.clone(), base_claims_text(now)));
    }
    // Algorithm confusion: HS256 keyed with each public key's PEM; and unsigned tokens.
    for index in 0..fx.keys.len() {
        let kid = KeyRef::of(index).kid;
        for header in [format!(r#"{{"alg":"HS256","kid":"{kid}"}}"#), r#"{"alg":"HS256"}"#.to_owned()] {
            cases.raw(
                "confusion:hs256-public-key".to_owned(),
                Signer::HmacWithPublicKey(index),
                move |now| (header.clone(), base_claims_text(now)),
            );
        }
        for header in [
            format!(r#"{{"alg":"none","kid":"{kid}"}}"#),
            format!(r#"{{"alg":"{}","kid":"{kid}"}}"#, KeyRef::of(index).alg),
        ] {
            cases.raw("unsigned".to_owned(), Signer::Unsigned, move |now| {
                (header.clone(), base_claims_text(now))
            });
        }
    }
    cases
}

#[derive(Default)]
struct Tally {
    total: usize,
    agree_accept: usize,
    agree_reject: usize,
    differences: BTreeMap<Difference, usize>,
    /// Per case family (label up to ':'): [total, agree-accept, agree-reject, difference].
    families: BTreeMap<String, [usize; 4]>,
    failures: Vec<String>,
}

#[test]
fn keyward_agrees_with_jsonwebtoken_except_documented_differences() {
    let fx = Fixture::new();
    let cases = build_cases(&fx);
    let mut tally = Tally::default();
    for case in &cases.0 {
        let run = fx.run(case);
        tally.total += 1;
        // Encoding mutations are few kinds applied many times: count each kind on its own.
        let family = if case.label.starts_with("encoding:") {
            case.label.clone()
        } else {
            case.label.split(':').next().unwrap_or_default().to_owned()
        };
        let slot = match (&run.keyward, &run.jwt) {
            (Ok(verified), Ok((_, claims))) => {
                if Value::Object(verified.claims().clone()) != *claims {
                    tally.failures.push(format!("{}: claims differ\n  {run}", case.label));
                }
                tally.agree_accept += 1;
                1
            }
            (Err(_), Err(_)) => {
                tally.agree_reject += 1;
                2
            }
            _ => match fx.classify(&run) {
                Some(difference) => {
                    *tally.differences.entry(difference).or_default() += 1;
                    3
                }
                None => {
                    tally.failures.push(format!("{}: undocumented disagreement\n  {run}", case.label));
                    0
                }
            },
        };
        let counts = tally.families.entry(family).or_default();
        counts[0] += 1;
        if slot > 0 {
            counts[slot] += 1;
        }
        if case.label == "base" && case.signer != Signer::Key(RELABELED) {
            assert!(run.keyward.is_ok() && run.jwt.is_ok(), "a valid token must verify in both: {run}");
        }
    }

    println!(
        "differential: {} tokens, {} agree-accept, {} agree-reject, {} documented differences",
        tally.total,
        tally.agree_accept,
        tally.agree_reject,
        tally.differences.values().sum::<usize>()
    );
    for difference in Difference::ALL {
        println!("  {:<20} {}", format!("{difference:?}"), tally.differences.get(&difference).unwrap_or(&0));
    }
    println!("  by family: [total, agree-accept, agree-reject, documented difference]");
    for (family, counts) in &tally.families {
        println!("  {family:<40} {counts:?}");
    }
    let shown: Vec<&String> = tally.failures.iter().take(25).collect();
    assert!(
        tally.failures.is_empty(),
        "{} disagreements outside the documented list (first {}):\n{}",
        tally.failures.len(),
        shown.len(),
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    for difference in Difference::ALL {
        assert!(
            tally.differences.get(&difference).is_some_and(|&n| n > 0),
            "{difference:?} was never observed: the cases that exercise it no longer do"
        );
    }
    assert!(tally.total >= 3000, "only {} tokens", tally.total);
    assert!(tally.agree_accept >= 100, "only {} tokens accepted by both", tally.agree_accept);
    assert!(tally.agree_reject >= 2000, "only {} tokens rejected by both", tally.agree_reject);
}
