//! Token structure: A1 (`alg: none`), A6 (JSON serialization), A7 (non-canonical base64url),
//! A11 (oversized input) and A22 (nested JWT / JWE).

use keyward::{FixedClock, Policy, Reason, Verifier};
use keyward_idp::SigningAlg;
use serde_json::json;

use super::support::{
    ISS, NOW, assemble, assert_accepted, assert_rejected, b64, claims, header_with, jwk_with, key, policy,
    random_bytes, segments, set, set_from, signature_of, unb64,
};

#[tokio::test]
async fn a01_alg_none_and_empty_signature() {
    // A1 alg:none / empty signature: CVE-2022-23540 (jsonwebtoken), CVE-2020-28042 (ServiceStack),
    // GHSA-9gxv-x7rp-r2hc (gree/jose), GHSA-88q6-jcjg-hvmw (jose-swift).
    let rsa = key(SigningAlg::RS256, "rsa");
    let keys = set(&[&rsa]);
    let verifier =
        Verifier::builder().keys(set(&[&rsa])).policy(policy()).clock(FixedClock::at(NOW)).build().unwrap();
    let payload = claims().to_string();
    let real_signature = signature_of(&rsa.sign_jwt(&claims()).unwrap());

    // alg spellings: (header alg JSON, expected reason). `none` is a known, forbidden name; every
    // other spelling is not an algorithm keyward knows; a non-string alg is malformed.
    let spellings: [(&str, Reason); 10] = [
        (r#""none""#, Reason::AlgorithmNotAllowed),
        (r#""None""#, Reason::UnsupportedAlgorithm),
        (r#""NONE""#, Reason::UnsupportedAlgorithm),
        (r#""nOnE""#, Reason::UnsupportedAlgorithm),
        (r#""""#, Reason::UnsupportedAlgorithm),
        ("null", Reason::Malformed),
        (r#"["RS256"]"#, Reason::Malformed),
        (r#""RS256 ""#, Reason::UnsupportedAlgorithm),
        (r#""RS256\u0000""#, Reason::UnsupportedAlgorithm),
        (r#""rs256""#, Reason::UnsupportedAlgorithm),
    ];
    for (alg, reason) in spellings {
        let header = format!(r#"{{"alg":{alg},"kid":"rsa"}}"#);
        // Unsigned (empty signature) and carrying the RSA key's real signature over other bytes.
        for signature in [&[][..], &real_signature[..]] {
            let token = assemble(header.as_bytes(), payload.as_bytes(), signature);
            let err = verifier.verify(&token).await.unwrap_err();
            assert_eq!(err.reason(), reason, "alg {alg}, {}-byte signature: {err}", signature.len());
        }
    }

    // alg missing altogether.
    let token = assemble(br#"{"kid":"rsa"}"#, payload.as_bytes(), b"");
    assert_rejected(&keys, &policy(), &token, Reason::Malformed, "alg missing");
    let token = assemble(br#"{"typ":"JWT"}"#, payload.as_bytes(), &real_signature);
    assert_rejected(&keys, &policy(), &token, Reason::Malformed, "alg missing, signed");

    // The classic forged token: {"alg":"none"} with the trailing dot, no kid.
    let token = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), b64(payload.as_bytes()));
    assert_rejected(&keys, &policy(), &token, Reason::AlgorithmNotAllowed, "alg none, trailing dot");

    // RS256 with the signature stripped, and with S = "AA" (one zero byte).
    let signed = rsa.sign_jwt(&claims()).unwrap();
    let [h, p, _] = segments(&signed);
    let stripped = format!("{h}.{p}.");
    let err = verifier.verify(&stripped).await.unwrap_err();
    assert_eq!(err.reason(), Reason::InvalidSignature, "RS256, empty S: {err}");
    assert_rejected(&keys, &policy(), &format!("{h}.{p}.AA"), Reason::InvalidSignature, "RS256, S=AA");
    // The untouched token verifies, so the rejections above are about the signature alone.
    let verified =
        verifier.verify(&signed).await.unwrap_or_else(|e| panic!("the untouched token: rejected: {e}"));
    assert_eq!(verified.claims()["sub"], claims()["sub"]);
}

#[test]
fn a06_json_serialization_and_polyglots() {
    // A6 JWS JSON serialization, multiple signatures, polyglots: CVE-2016-9122 (go-jose),
    // CVE-2022-39227 (python-jwt).
    let es = key(SigningAlg::ES256, "k1");
    let other = key(SigningAlg::ES256, "k2");
    let keys = set(&[&es]);
    let valid = es.sign_jwt(&claims()).unwrap();
    let [h, p, s] = segments(&valid);
    let [_, _, s_other] = segments(&other.sign_jwt(&claims()).unwrap());

    let general = json!({
        "payload": p,
        "signatures": [
            {"protected": h, "signature": s_other},
            {"protected": h, "signature": s},
        ],
    })
    .to_string();
    let flattened = json!({
        "payload": p,
        "protected": h,
        "header": {"alg": "none"},
        "signature": "",
    })
    .to_string();
    let flattened_valid = json!({"payload": p, "protected": h, "signature": s}).to_string();
    let fake_payload = b64(json!({"sub": "admin"}).to_string().as_bytes());
    let polyglot = format!(r#"{valid}{{"payload":"{fake_payload}"}}"#);
    let polyglot_dotted = format!(r#"{valid}{{"payload":"{fake_payload}","iss":"{ISS}"}}"#);
    let polyglot_prefix = format!(r#"{{"payload":"{fake_payload}"}}{valid}"#);
    let cases = [
        ("general JSON, two signatures, one valid", &general),
        ("flattened JSON with unprotected alg none", &flattened),
        ("flattened JSON with a valid signature", &flattened_valid),
        ("compact token followed by a JSON blob", &polyglot),
        ("compact token followed by a JSON blob with dots", &polyglot_dotted),
        ("JSON blob followed by a compact token", &polyglot_prefix),
    ];
    for (case, token) in cases {
        assert_rejected(&keys, &policy(), token, Reason::Malformed, case);
    }
    assert_accepted(&keys, &policy(), &valid, "the compact original");
}

/// A token whose three segments each contain `-` and `_` (so `+`/`/` substitutions bite) and whose
/// header and payload lengths leave unused bits in the last character.
fn token_with_rich_segments(key: &keyward_idp::SigningKey) -> String {
    for attempt in 0..10_000 {
        // ">>>" encodes to "Pj4-" and "???" to "Pz8_" whatever the alignment, given 5 in a row.
        let filler = "x".repeat(attempt % 3);
        let header = format!(
            r#"{{"alg":"{}","kid":"{}","pad":">>>>>>?????{filler}"}}"#,
            key.alg().as_str(),
            key.kid()
        );
        let mut claims = claims();
        claims["pad"] = json!(format!(">>>>>>?????{}", "y".repeat(attempt / 3 % 3)));
        let token = key.sign_parts(header.as_bytes(), claims.to_string().as_bytes()).unwrap();
        let parts = segments(&token);
        let rich = parts.iter().all(|s| s.contains('-') && s.contains('_'));
        let unused_bits = parts.iter().all(|s| s.len() % 4 != 0);
        if rich && unused_bits {
            return token;
        }
    }
    panic!("no token with '-' and '_' in every segment after 10000 attempts");
}

#[test]
fn a07_non_canonical_base64url_and_mangled_structure() {
    // A7 non-canonical base64url: CVE-2022-25898 (jsrsasign), jpadilla/pyjwt#676 (padding),
    // mpdavis/python-jose#379 (trailing bits), nearform/fast-jwt#606 (whitespace).
    let es = key(SigningAlg::ES256, "k1");
    let keys = set(&[&es]);
    let token = token_with_rich_segments(&es);
    assert_accepted(&keys, &policy(), &token, "the unmangled token");
    let parts = segments(&token);
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    let mut cases = 0;
    for (index, name) in ["header", "payload", "signature"].into_iter().enumerate() {
        let segment = &parts[index];
        // Every segment has len % 4 in {2, 3}, so this prefix is shorter than the segment.
        let len_1_mod_4 = segment[..segment.len() / 4 * 4 + 1].to_owned();
        // Change the last character only in its unused low bits: the decoded bytes stay the same
        // for a lenient decoder.
        let trailing_bits = {
            let unused = match segment.len() % 4 {
                2 => 4,
                3 => 2,
                other => panic!("{name} has no unused bits (len % 4 = {other})"),
            };
            let last = segment.as_bytes()[segment.len() - 1];
            let value = ALPHABET.iter().position(|c| *c == last).unwrap();
            assert_eq!(value % (1 << unused), 0, "canonical encoder left bits set");
            let changed = char::from(ALPHABET[value | 1]);
            format!("{}{changed}", &segment[..segment.len() - 1])
        };
        let mangled: [(&str, String); 14] = [
            ("'=' suffix", format!("{segment}=")),
            ("'==' suffix", format!("{segment}==")),
            ("'+' for '-'", segment.replacen('-', "+", 1)),
            ("'/' for '_'", segment.replacen('_', "/", 1)),
            ("leading space", format!(" {segment}")),
            ("trailing space", format!("{segment} ")),
            ("tab inside", format!("{}\t{}", &segment[..4], &segment[4..])),
            ("trailing tab", format!("{segment}\t")),
            ("newline inside", format!("{}\n{}", &segment[..4], &segment[4..])),
            ("trailing newline", format!("{segment}\n")),
            ("'%3D' suffix", format!("{segment}%3D")),
            ("length = 1 (mod 4)", len_1_mod_4),
            ("unused trailing bits set", trailing_bits),
            ("non-alphabet character", format!("{}*{}", &segment[..4], &segment[5..])),
        ];
        for (how, replacement) in mangled {
            assert_ne!(&replacement, segment, "{name}, {how}: the mangling changed nothing");
            let mut new_parts = parts.clone();
            new_parts[index] = replacement;
            let mangled_token = new_parts.join(".");
            assert_rejected(&keys, &policy(), &mangled_token, Reason::Malformed, &format!("{name}, {how}"));
            cases += 1;
        }
    }
    assert_eq!(cases, 42);

    // Dots: one, three (a doubled dot), four, trailing, leading.
    let [h, p, s] = parts;
    let dotted = [
        ("one dot", format!("{h}.{p}{s}")),
        ("doubled dot (3 dots)", format!("{h}..{p}.{s}")),
        ("4 dots", format!("{h}.{p}.{s}.{p}.{s}")),
        ("trailing dot", format!("{h}.{p}.{s}.")),
        ("leading dot", format!(".{h}.{p}.{s}")),
        ("no dots", format!("{h}{p}{s}")),
        ("only dots", "..".to_owned()),
        ("empty", String::new()),
    ];
    for (case, token) in dotted {
        assert_rejected(&keys, &policy(), &token, Reason::Malformed, case);
    }
    // Empty header segment is malformed; an empty signature segment is a missing signature.
    assert_rejected(&keys, &policy(), &format!(".{p}.{s}"), Reason::Malformed, "empty header");
    assert_rejected(&keys, &policy(), &format!("{h}.{p}."), Reason::InvalidSignature, "empty signature");
    // An empty payload signed correctly: the signature verifies, the claims do not parse.
    let empty_payload = es.sign_parts(&unb64(&h), b"").unwrap();
    assert_rejected(&keys, &policy(), &empty_payload, Reason::Malformed, "empty payload");
}

#[test]
fn a07_signature_covers_the_received_bytes() {
    // A7 (RFC 7515 §5.2): the signing input is the raw received ASCII, never a re-encoding.
    let es = key(SigningAlg::ES256, "k1");
    let keys = set(&[&es]);
    // A header with whitespace and an unusual member order verifies over its own bytes...
    let spaced = br#"{ "kid" : "k1",  "alg" : "ES256" }"#;
    let payload = claims().to_string();
    let token = es.sign_parts(spaced, payload.as_bytes()).unwrap();
    assert_accepted(&keys, &policy(), &token, "header with whitespace");
    // ...and the same JSON re-encoded compactly no longer carries a valid signature.
    let signature = signature_of(&token);
    let reencoded = assemble(br#"{"kid":"k1","alg":"ES256"}"#, payload.as_bytes(), &signature);
    assert_rejected(&keys, &policy(), &reencoded, Reason::InvalidSignature, "re-encoded header");
    // Same for the payload: an equivalent re-serialisation breaks the signature.
    let pretty = serde_json::to_string_pretty(&claims()).unwrap();
    let token = es.sign_parts(br#"{"alg":"ES256","kid":"k1"}"#, pretty.as_bytes()).unwrap();
    assert_accepted(&keys, &policy(), &token, "pretty payload");
    let reencoded = assemble(br#"{"alg":"ES256","kid":"k1"}"#, payload.as_bytes(), &signature_of(&token));
    assert_rejected(&keys, &policy(), &reencoded, Reason::InvalidSignature, "re-encoded payload");
}

#[test]
fn a11_oversized_and_pathological_input() {
    // A11 oversized input / DoS: CVE-2025-30204 (golang-jwt dots), CVE-2025-27144 (go-jose),
    // zip bombs CVE-2024-28176 (panva jose), CVE-2024-28102 (jwcrypto), CVE-2024-28180 (go-jose).
    let es = key(SigningAlg::ES256, "k1");
    let keys = set(&[&es]);
    let default = policy();
    let roomy = Policy::builder().issuer(ISS).audience("api").max_token_len(4 << 20).build().unwrap();

    // 1 MB token: rejected on size alone.
    let mut big = claims();
    big["blob"] = json!("a".repeat(1 << 20));
    let token = es.sign_jwt(&big).unwrap();
    assert!(token.len() > 1 << 20);
    assert_rejected(&keys, &default, &token, Reason::TokenTooLarge, "1 MB string claim");
    let junk = "A".repeat(1 << 20);
    assert_rejected(&keys, &default, &junk, Reason::TokenTooLarge, "1 MB of base64 characters");

    // A million dots: over the size bound by default; with a 4 MiB bound, the dot count rejects it.
    let dots = ".".repeat(1_000_000);
    assert_rejected(&keys, &default, &dots, Reason::TokenTooLarge, "a million dots");
    assert_rejected(&keys, &roomy, &dots, Reason::Malformed, "a million dots under a 4 MiB bound");
    let with_bearer = format!("Bearer {dots}");
    assert_rejected(&keys, &roomy, &with_bearer, Reason::Malformed, "Bearer + a million dots");
    // Cost is bounded by construction (one pass counting dots, no allocation per segment);
    // speed is a benchmark's business, not a test's.

    // 10,000 nested '[' in a claim, validly signed. Unclosed (fits the default bound):
    let mut payload = claims().to_string();
    payload.pop();
    let unclosed = format!("{payload},\"deep\":{}}}", "[".repeat(10_000));
    let token = es.sign_parts(br#"{"alg":"ES256","kid":"k1"}"#, unclosed.as_bytes()).unwrap();
    assert!(token.len() <= default.max_token_len());
    assert_rejected(&keys, &default, &token, Reason::Malformed, "10,000 unclosed '['");
    // Closed (well-formed JSON, rejected by the depth limit alone):
    let closed = format!("{payload},\"deep\":{}{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let token = es.sign_parts(br#"{"alg":"ES256","kid":"k1"}"#, closed.as_bytes()).unwrap();
    assert_rejected(&keys, &roomy, &token, Reason::Malformed, "10,000 nested arrays");
    // Depth 100 is within serde_json's limit of 128, so nesting itself is not the problem.
    let shallow = format!("{payload},\"deep\":{}{}}}", "[".repeat(100), "]".repeat(100));
    let token = es.sign_parts(br#"{"alg":"ES256","kid":"k1"}"#, shallow.as_bytes()).unwrap();
    assert_accepted(&keys, &default, &token, "100 nested arrays");
    // The same in the header (checked before any key is consulted).
    let header = format!(r#"{{"alg":"ES256","kid":"k1","x":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    let token = es.sign_parts(header.as_bytes(), claims().to_string().as_bytes()).unwrap();
    assert_rejected(&keys, &roomy, &token, Reason::Malformed, "10,000 nested arrays in the header");

    // zip: never decompress.
    for zip in [json!("DEF"), json!("def"), json!(""), json!(null)] {
        let header = header_with(&es, json!({"zip": zip}));
        let token = es.sign_with_header(&header, &claims()).unwrap();
        assert_rejected(&keys, &default, &token, Reason::UnsupportedCriticalHeader, &format!("zip {zip}"));
    }

    // A JWKS key with a 16384-bit modulus (random odd 2048-byte n) is set aside as malformed,
    // and a token naming it is rejected with that reason.
    let mut n = random_bytes(2048);
    n[0] |= 0x80;
    n[2047] |= 1;
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "huge", "alg": "RS256", "use": "sig", "n": b64(&n), "e": "AQAB"},
        es.public_jwk(),
    ]});
    let huge = set_from(&jwks);
    assert_eq!(huge.len(), 1);
    assert_eq!(huge.set_aside().len(), 1);
    assert_eq!(huge.set_aside()[0].kid.as_deref(), Some("huge"));
    assert_eq!(huge.set_aside()[0].problem, keyward::jwk::KeyProblem::Malformed);
    assert!(huge.set_aside()[0].detail.contains("16384"), "{}", huge.set_aside()[0].detail);
    let rsa = key(SigningAlg::RS256, "huge");
    let token = rsa.sign_jwt(&claims()).unwrap();
    assert_rejected(&huge, &default, &token, Reason::KeyNotForSigning, "token naming the 16384-bit key");
    // The exponent is bounded too.
    let jwks = json!({"keys": [jwk_with(&rsa, json!({"e": b64(&[1u8; 9])}))]});
    assert_eq!(set_from(&jwks).set_aside()[0].problem, keyward::jwk::KeyProblem::Malformed);
}

#[test]
fn a22_nested_jwt_and_jwe() {
    // A22 nested JWT / JWE: CVE-2026-29000 (pac4j-jwt JWE-wrapped PlainJWT), pac4j/pac4j#898,
    // JanssenProject/jans#13437.
    let es = key(SigningAlg::ES256, "k1");
    let keys = set(&[&es]);

    // A 5-segment JWE-shaped token (RSA-OAEP + A128GCM), with and without a signature-like tail.
    let jwe_header = b64(br#"{"alg":"RSA-OAEP","enc":"A128GCM","kid":"k1"}"#);
    let jwe = format!(
        "{jwe_header}.{}.{}.{}.{}",
        b64(&random_bytes(256)),
        b64(&random_bytes(12)),
        b64(claims().to_string().as_bytes()),
        b64(&random_bytes(16))
    );
    assert_rejected(&keys, &policy(), &jwe, Reason::Malformed, "5-segment JWE");
    let jwe_dir = format!("{}....", b64(br#"{"alg":"dir","enc":"A256GCM"}"#));
    assert_rejected(&keys, &policy(), &jwe_dir, Reason::Malformed, "5-segment JWE, empty parts");

    // A JWS with cty JWT whose payload is an unsigned JWT; every letter case.
    let inner = format!(
        "{}.{}.",
        b64(br#"{"alg":"none"}"#),
        b64(json!({"iss": ISS, "sub": "admin", "aud": "api", "exp": NOW + 600}).to_string().as_bytes())
    );
    for cty in ["JWT", "jwt", "Jwt", "jWt"] {
        let header = header_with(&es, json!({"cty": cty}));
        let token = es.sign_parts(header.to_string().as_bytes(), inner.as_bytes()).unwrap();
        assert_rejected(&keys, &policy(), &token, Reason::Malformed, &format!("cty {cty}, nested none"));
        // Even when the outer payload is an ordinary claims object.
        let token = es.sign_with_header(&header, &claims()).unwrap();
        assert_rejected(&keys, &policy(), &token, Reason::Malformed, &format!("cty {cty}, claims"));
    }
    // A non-string cty is malformed; another string cty is not nesting and passes.
    let token = es.sign_with_header(&header_with(&es, json!({"cty": 1})), &claims()).unwrap();
    assert_rejected(&keys, &policy(), &token, Reason::Malformed, "cty 1");
    let token = es.sign_with_header(&header_with(&es, json!({"cty": "json"})), &claims()).unwrap();
    assert_accepted(&keys, &policy(), &token, "cty json");

    // enc in a JWS header.
    for enc in [json!("A128GCM"), json!("A256CBC-HS512"), json!(null)] {
        let header = header_with(&es, json!({"enc": enc}));
        let token = es.sign_with_header(&header, &claims()).unwrap();
        assert_rejected(&keys, &policy(), &token, Reason::Malformed, &format!("enc {enc}"));
    }
    // A JWE key-management alg in a 3-segment token is not a signature algorithm.
    let token = es.sign_parts(br#"{"alg":"RSA-OAEP","enc":"A128GCM","kid":"k1"}"#, b"{}").unwrap();
    assert_rejected(&keys, &policy(), &token, Reason::UnsupportedAlgorithm, "alg RSA-OAEP, 3 segments");
    // Sanity: the same key signs an accepted token.
    assert_accepted(&keys, &policy(), &es.sign_jwt(&claims()).unwrap(), "plain token");
}
