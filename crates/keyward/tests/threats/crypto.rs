//! Cryptographic attacks: A2 (HMAC with the public key), A3 (ECDSA r/s range), A16 (weak RSA),
//! A17 (invalid EC/OKP keys) and A24 (Ed25519 malleability).

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keyward::jwk::{JwkSet, KeyProblem};
use keyward::{Algorithm, FixedClock, Policy, Reason, Verifier};
use keyward_idp::SigningAlg;
use serde_json::{Value, json};

use super::support::{
    ISS, NOW, add_le, assemble, assert_accepted, assert_rejected, b64, claims, der_integer, der_sequence,
    hex, jwk_member, jwk_with, key, policy, random_bytes, set, set_from, signature_of, sub_be,
    with_signature,
};

/// PEM armour with 64-column base64 lines.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

#[tokio::test]
async fn a02_hmac_signed_with_the_rsa_public_key() {
    // A2 algorithm confusion (public key as HMAC secret): CVE-2015-9235 (jsonwebtoken),
    // CVE-2016-10555 (jwt-simple), CVE-2017-11424 and CVE-2022-29217 (PyJWT), CVE-2022-23541,
    // CVE-2024-37568 (Authlib), CVE-2024-33663 (python-jose), CVE-2026-48526 (PyJWT), Keats/jsonwebtoken#41.
    let rsa = key(SigningAlg::RS256, "rsa");
    let n = jwk_member(&rsa, "n");
    let e = jwk_member(&rsa, "e");
    let spki = rsa.public_key_spki_der().unwrap();
    let pkcs1 = der_sequence(&[der_integer(&n), der_integer(&e)]);
    assert!(spki.ends_with(&pkcs1), "PKCS#1 RSAPublicKey is the SPKI's bit string");
    let secrets: [(&str, Vec<u8>); 8] = [
        ("SPKI PEM", pem("PUBLIC KEY", &spki).into_bytes()),
        ("SPKI PEM without newline", pem("PUBLIC KEY", &spki).trim_end().as_bytes().to_vec()),
        ("PKCS#1 PEM", pem("RSA PUBLIC KEY", &pkcs1).into_bytes()),
        ("SPKI DER", spki.clone()),
        ("PKCS#1 DER", pkcs1.clone()),
        ("JWK JSON text", rsa.public_jwk().to_string().into_bytes()),
        ("bare JWK JSON text", rsa.public_jwk_bare().to_string().into_bytes()),
        ("raw n", n.clone()),
    ];

    let keys = set(&[&rsa]);
    let rs256_only =
        Policy::builder().issuer(ISS).audience("api").algorithms([Algorithm::RS256]).build().unwrap();
    let verifier =
        Verifier::builder().keys(set(&[&rsa])).policy(policy()).clock(FixedClock::at(NOW)).build().unwrap();
    let mut forged = claims();
    forged["sub"] = json!("admin");
    let payload = forged.to_string();

    let mut cases = 0;
    for (alg, mac) in
        [("HS256", hmac::HMAC_SHA256), ("HS384", hmac::HMAC_SHA384), ("HS512", hmac::HMAC_SHA512)]
    {
        for (encoding, secret) in &secrets {
            for header in [json!({"alg": alg, "kid": "rsa", "typ": "JWT"}), json!({"alg": alg})] {
                let signing_input =
                    format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload.as_bytes()));
                let mac_key = hmac::Key::new(mac, secret);
                let tag = hmac::sign(&mac_key, signing_input.as_bytes());
                let token = format!("{signing_input}.{}", b64(tag.as_ref()));
                // The forgery is a correct HMAC token: a verifier that accepted HS* would accept it.
                assert!(hmac::verify(&mac_key, signing_input.as_bytes(), tag.as_ref()).is_ok());
                let case = format!("{alg} keyed with {encoding}, header {header}");
                assert_rejected(&keys, &policy(), &token, Reason::AlgorithmNotAllowed, &case);
                assert_rejected(&keys, &rs256_only, &token, Reason::AlgorithmNotAllowed, &case);
                let err = verifier.verify(&token).await.unwrap_err();
                assert_eq!(err.reason(), Reason::AlgorithmNotAllowed, "{case}: {err}");
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 3 * 8 * 2);

    // An `oct` key in the JWKS holding the same bytes changes nothing: HS* is refused first, and
    // the oct key is never usable.
    let oct = json!({"kty": "oct", "kid": "rsa-as-secret", "k": b64(&spki)});
    let with_oct = set_from(&json!({"keys": [rsa.public_jwk(), oct]}));
    assert_eq!(with_oct.set_aside()[0].problem, KeyProblem::NotForSigning);
    let header = json!({"alg": "HS256", "kid": "rsa-as-secret"});
    let signing_input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload.as_bytes()));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &spki), signing_input.as_bytes());
    let token = format!("{signing_input}.{}", b64(tag.as_ref()));
    assert_rejected(&with_oct, &policy(), &token, Reason::AlgorithmNotAllowed, "HS256 naming an oct key");
}

/// The group orders of P-256 and P-384.
fn order(alg: SigningAlg) -> Vec<u8> {
    match alg {
        SigningAlg::ES256 => hex("FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"),
        SigningAlg::ES384 => hex(
            "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFC7634D81F4372DDF581A0DB248B0A77AECEC196ACCC52973",
        ),
        other => panic!("no order for {other}"),
    }
}

#[test]
fn a03_ecdsa_psychic_signatures_and_out_of_range_r_s() {
    // A3 ECDSA psychic signatures: CVE-2022-21449 (Java SunEC), CVE-2021-43568..43572 (Stark Bank),
    // lionello/secp256k1-js#11.
    for alg in [SigningAlg::ES256, SigningAlg::ES384] {
        let es = key(alg, "k1");
        let keys = set(&[&es]);
        let token = es.sign_jwt(&claims()).unwrap();
        assert_accepted(&keys, &policy(), &token, &format!("{alg} original"));
        let sig = signature_of(&token);
        let width = sig.len() / 2;
        assert_eq!(width, if alg == SigningAlg::ES256 { 32 } else { 48 });
        let (r, s) = sig.split_at(width);
        let n = order(alg);
        let mut one = vec![0u8; width];
        one[width - 1] = 1;
        let n_minus_1 = sub_be(&n, &one);
        let zero = vec![0u8; width];
        let all_ff = vec![0xffu8; width];

        let mut cases: Vec<(String, Vec<u8>)> = vec![
            (format!("{} zero bytes", 2 * width), vec![0u8; 2 * width]),
            ("r = s = n".to_owned(), [n.clone(), n.clone()].concat()),
            ("r = s = 1".to_owned(), [one.clone(), one.clone()].concat()),
            ("r = s = 2^k - 1".to_owned(), [all_ff.clone(), all_ff.clone()].concat()),
        ];
        for (name, value) in [("0", &zero), ("1", &one), ("n-1", &n_minus_1), ("n", &n), ("2^k-1", &all_ff)] {
            cases.push((format!("r = {name}"), [value.as_slice(), s].concat()));
            cases.push((format!("s = {name}"), [r, value.as_slice()].concat()));
        }
        // Lengths: DER, padded, truncated, doubled.
        let der = der_sequence(&[der_integer(r), der_integer(s)]);
        cases.push(("DER-encoded valid (r, s)".to_owned(), der));
        cases.push(("two trailing zeros".to_owned(), [sig.as_slice(), &[0, 0]].concat()));
        cases.push(("one trailing zero".to_owned(), [sig.as_slice(), &[0]].concat()));
        cases.push(("leading zero".to_owned(), [&[0], sig.as_slice()].concat()));
        cases.push(("one byte short".to_owned(), sig[..sig.len() - 1].to_vec()));
        cases.push(("r only".to_owned(), r.to_vec()));
        cases.push(("514 bytes".to_owned(), [sig.clone(), vec![0u8; 514 - sig.len()]].concat()));
        // r and s each zero-padded to P-521 width (the ES512 layout).
        let mut padded = vec![0u8; 66 - width];
        padded.extend_from_slice(r);
        padded.extend(vec![0u8; 66 - width]);
        padded.extend_from_slice(s);
        cases.push(("r, s padded to 66 bytes each".to_owned(), padded));
        for (case, signature) in &cases {
            let forged = with_signature(&token, signature);
            assert_rejected(&keys, &policy(), &forged, Reason::InvalidSignature, &format!("{alg} {case}"));
        }

        // High-S is valid in JOSE: (r, n - s) verifies the same message. Never use signature
        // bytes as a token identifier.
        let high_s = [r, sub_be(&n, s).as_slice()].concat();
        let malleated = with_signature(&token, &high_s);
        assert_ne!(malleated, token);
        assert_accepted(&keys, &policy(), &malleated, &format!("{alg} (r, n - s)"));
    }
}

#[test]
fn a16_weak_or_malformed_rsa_keys() {
    // A16 weak RSA keys: CVE-2006-4339 (Bleichenbacher e=3), CVE-2017-15361 (ROCA), CVE-2020-14968
    // (jsrsasign zero-prefixed PSS signatures).
    let rsa = key(SigningAlg::RS256, "rsa");
    let n = jwk_member(&rsa, "n");
    let e = jwk_member(&rsa, "e");
    let token_for =
        |kid: &str| rsa.sign_with_header(&json!({"alg": "RS256", "kid": kid}), &claims()).unwrap();

    // 1024-bit modulus (random odd n with the top bit set).
    let mut n1024 = random_bytes(128);
    n1024[0] |= 0x80;
    n1024[127] |= 1;
    // A 2048-bit modulus with the ROCA fingerprint: n = 1 + r * M, M the product of the primes the
    // fingerprint test uses, so n is 1 (inside every subgroup generated by 65537) modulo each.
    let roca_n = {
        let m: u128 = [11u128, 13, 17, 19, 37, 53, 61, 71, 73, 79, 97, 103, 107, 109, 127, 151, 157]
            .into_iter()
            .product();
        let mut r = random_bytes(244);
        r[0] |= 0x80;
        let mut out = vec![0u8; r.len() + 16];
        let mut carry: u128 = 0;
        for i in (0..r.len()).rev() {
            let v = u128::from(r[i]) * m + carry;
            out[i + 16] = u8::try_from(v & 0xff).unwrap();
            carry = v >> 8;
        }
        for i in (0..16).rev() {
            out[i] = u8::try_from(carry & 0xff).unwrap();
            carry >>= 8;
        }
        assert_eq!(carry, 0);
        // + 1, with carry.
        for byte in out.iter_mut().rev() {
            let (v, overflow) = byte.overflowing_add(1);
            *byte = v;
            if !overflow {
                break;
            }
        }
        let start = out.iter().position(|b| *b != 0).unwrap();
        out[start..].to_vec()
    };
    assert!(roca_n.len() * 8 >= 2048);

    let mut leading_zero_n = vec![0u8];
    leading_zero_n.extend_from_slice(&n);
    let cases: [(&str, Value, KeyProblem); 10] = [
        ("e=2", json!({"kid": "e2", "e": b64(&[2])}), KeyProblem::Weak),
        ("e=1", json!({"kid": "e1", "e": b64(&[1])}), KeyProblem::Weak),
        ("e=65536 (even)", json!({"kid": "even", "e": b64(&[1, 0, 0])}), KeyProblem::Weak),
        ("e with a leading zero", json!({"kid": "e0", "e": "AAEAAQ"}), KeyProblem::Malformed),
        ("e of 5 bytes", json!({"kid": "e5", "e": b64(&[1, 0, 0, 0, 1])}), KeyProblem::Malformed),
        ("n with a leading zero", json!({"kid": "n0", "n": b64(&leading_zero_n)}), KeyProblem::Malformed),
        ("1024-bit n", json!({"kid": "small", "n": b64(&n1024)}), KeyProblem::Weak),
        ("ROCA n", json!({"kid": "roca", "n": b64(&roca_n)}), KeyProblem::Weak),
        ("padded base64 n", json!({"kid": "pad", "n": format!("{}=", b64(&n))}), KeyProblem::Malformed),
        ("e missing", json!({"kid": "noe", "e": null}), KeyProblem::Malformed),
    ];
    for (case, changes, problem) in cases {
        let kid = changes["kid"].as_str().unwrap().to_owned();
        let keys = set_from(&json!({"keys": [jwk_with(&rsa, changes)]}));
        assert!(keys.is_empty(), "{case}: the key must be set aside");
        assert_eq!(keys.set_aside().len(), 1);
        assert_eq!(keys.set_aside()[0].problem, problem, "{case}: {}", keys.set_aside()[0].detail);
        assert_rejected(&keys, &policy(), &token_for(&kid), problem.reason(), case);
    }
    // e=3 is odd and at least 3: a usable (if old-fashioned) key, whose signatures are checked.
    let e3 = set_from(&json!({"keys": [jwk_with(&rsa, json!({"kid": "e3", "e": b64(&[3])}))]}));
    assert_eq!(e3.len(), 1);
    assert_rejected(&e3, &policy(), &token_for("e3"), Reason::InvalidSignature, "e=3 key, e=65537 signature");
    assert_eq!(e, [1, 0, 1]);

    // Signatures of the wrong length or out of range, for PKCS#1 v1.5 and PSS.
    for alg in [SigningAlg::RS256, SigningAlg::PS256] {
        let signer = key(alg, "k");
        let keys = set(&[&signer]);
        let token = signer.sign_jwt(&claims()).unwrap();
        assert_accepted(&keys, &policy(), &token, &format!("{alg} original"));
        let sig = signature_of(&token);
        let modulus = jwk_member(&signer, "n");
        assert_eq!(sig.len(), modulus.len());
        let cases: [(&str, Vec<u8>); 7] = [
            ("one byte short", sig[..sig.len() - 1].to_vec()),
            ("one byte long (trailing zero)", [sig.as_slice(), &[0]].concat()),
            ("zero-prefixed (CVE-2020-14968)", [&[0], sig.as_slice()].concat()),
            ("equal to n", modulus.clone()),
            ("n + 0 with sig appended", [modulus.clone(), sig.clone()].concat()),
            ("all 0xff (above n)", vec![0xff; sig.len()]),
            ("all zero", vec![0; sig.len()]),
        ];
        for (case, signature) in cases {
            let forged = with_signature(&token, &signature);
            assert_rejected(&keys, &policy(), &forged, Reason::InvalidSignature, &format!("{alg} {case}"));
        }
    }
}

/// The P-256 field prime.
const P256_P: &str = "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF";

/// The canonical encodings of the Ed25519 points of small order (y-coordinate, sign bit clear),
/// checked against the curve equation: orders 4, 1, 8, 8 and 2.
const ED25519_SMALL_ORDER: [&str; 5] = [
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
];

fn one_key_set(jwk: Value) -> JwkSet {
    set_from(&json!({"keys": [jwk]}))
}

#[test]
fn a17_invalid_ec_and_okp_public_keys() {
    // A17 invalid curve points: CVE-2016-9121 (go-jose ECDH-ES), GHSA-rvj9-8cvx-3vq9 (node-jose),
    // CVE-2015-7940 (Bouncy Castle).
    let es = key(SigningAlg::ES256, "k1");
    let token = es.sign_jwt(&claims()).unwrap();
    let x = jwk_member(&es, "x");
    let y = jwk_member(&es, "y");

    // A key with a leading zero in x (or y): the full 32-byte form is fine, 31 bytes is not.
    let (zero_key, coord) = (0..100_000)
        .map(|_| key(SigningAlg::ES256, "lz"))
        .find_map(|k| {
            let (kx, ky) = (jwk_member(&k, "x"), jwk_member(&k, "y"));
            if kx[0] == 0 {
                Some((k, "x"))
            } else if ky[0] == 0 {
                Some((k, "y"))
            } else {
                None
            }
        })
        .expect("a P-256 key with a leading zero coordinate in 100000 tries");
    let full = one_key_set(zero_key.public_jwk());
    assert_eq!(full.len(), 1, "32-byte coordinate with a leading zero is valid");
    assert_accepted(&full, &policy(), &zero_key.sign_jwt(&claims()).unwrap(), "leading-zero coordinate");
    let stripped = b64(&jwk_member(&zero_key, coord)[1..]);
    let short = one_key_set(jwk_with(&zero_key, json!({ coord: stripped })));
    assert_eq!(short.set_aside()[0].problem, KeyProblem::Malformed);
    assert_rejected(
        &short,
        &policy(),
        &zero_key.sign_jwt(&claims()).unwrap(),
        Reason::KeyNotForSigning,
        "31-byte coord",
    );

    let compressed = [&[0x02 | (y[31] & 1)], x.as_slice()].concat();
    let mut y_flipped = y.clone();
    y_flipped[31] ^= 1;
    let p384 = key(SigningAlg::ES384, "p384");
    let cases: [(&str, Value); 12] = [
        ("x 31 bytes", json!({"x": b64(&x[1..])})),
        ("y 31 bytes", json!({"y": b64(&y[1..])})),
        ("x 33 bytes (leading zero added)", json!({"x": b64(&[&[0], x.as_slice()].concat())})),
        ("point (0,0)", json!({"x": b64(&[0; 32]), "y": b64(&[0; 32])})),
        ("compressed point in x, no y", json!({"x": b64(&compressed), "y": null})),
        ("compressed point in x, y kept", json!({"x": b64(&compressed)})),
        ("x = p", json!({"x": b64(&hex(P256_P))})),
        ("y modified (off-curve)", json!({"y": b64(&y_flipped)})),
        ("y missing", json!({"y": null})),
        ("crv missing", json!({"crv": null})),
        ("P-384 crv with P-256 coordinates", json!({"crv": "P-384"})),
        (
            "P-256 crv with P-384 coordinates",
            json!({"x": p384.public_jwk()["x"], "y": p384.public_jwk()["y"]}),
        ),
    ];
    for (case, changes) in cases {
        let keys = one_key_set(jwk_with(&es, changes));
        assert!(keys.is_empty(), "{case}: must be set aside");
        assert_eq!(
            keys.set_aside()[0].problem,
            KeyProblem::Malformed,
            "{case}: {}",
            keys.set_aside()[0].detail
        );
        assert_rejected(&keys, &policy(), &token, Reason::KeyNotForSigning, case);
    }
    let keys = one_key_set(jwk_with(&es, json!({"crv": "secp256k1"})));
    assert_eq!(keys.set_aside()[0].problem, KeyProblem::Unsupported);
    assert_rejected(&keys, &policy(), &token, Reason::UnsupportedAlgorithm, "crv secp256k1");

    // Ed25519: x of 31 and 33 bytes.
    let ed = key(SigningAlg::EdDSA, "ed");
    let ed_token = ed.sign_jwt(&claims()).unwrap();
    let ed_x = jwk_member(&ed, "x");
    for (case, bad_x) in [("31", ed_x[1..].to_vec()), ("33", [ed_x.as_slice(), &[0]].concat())] {
        let keys = one_key_set(jwk_with(&ed, json!({"x": b64(&bad_x)})));
        assert_eq!(keys.set_aside()[0].problem, KeyProblem::Malformed, "Ed25519 x of {case} bytes");
        assert_rejected(
            &keys,
            &policy(),
            &ed_token,
            Reason::KeyNotForSigning,
            &format!("Ed25519 x of {case} bytes"),
        );
    }

    // Ed25519 small-order public keys: a signature with R = identity and S = 0 satisfies the
    // cofactorless equation for every message under the identity key, so no such key is usable.
    let mut forged = claims();
    forged["sub"] = json!("admin");
    let identity = hex(ED25519_SMALL_ORDER[1]);
    let universal_signature = [identity.as_slice(), &[0u8; 32]].concat();
    for encoded in ED25519_SMALL_ORDER {
        let keys =
            one_key_set(json!({"kty": "OKP", "crv": "Ed25519", "kid": "small", "x": b64(&hex(encoded))}));
        assert!(keys.is_empty(), "small-order Ed25519 key {encoded} must be set aside");
        assert_eq!(
            keys.set_aside()[0].problem,
            KeyProblem::Weak,
            "{encoded}: {}",
            keys.set_aside()[0].detail
        );
        let token = assemble(
            json!({"alg": "EdDSA", "kid": "small"}).to_string().as_bytes(),
            forged.to_string().as_bytes(),
            &universal_signature,
        );
        assert_rejected(&keys, &policy(), &token, Reason::WeakKey, &format!("small-order key {encoded}"));
    }
}

#[test]
fn a24_ed25519_malleability_and_encodings() {
    // A24 Ed25519 malleability and encodings (no CVE; Wycheproof SignatureMalleability): S >= L,
    // non-canonical lengths, Ed448 keys under alg EdDSA.
    let ed = key(SigningAlg::EdDSA, "ed");
    let keys = set(&[&ed]);
    let token = ed.sign_jwt(&claims()).unwrap();
    assert_accepted(&keys, &policy(), &token, "EdDSA original");
    let sig = signature_of(&token);
    assert_eq!(sig.len(), 64);

    // S + L: the same scalar mod L, a different encoding.
    let l = hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010");
    let s_plus_l = add_le(&sig[32..], &l);
    let malleated = [&sig[..32], s_plus_l.as_slice()].concat();
    // S + 2L and S + 4L still fit in 256 bits (L < 2^253).
    let s_plus_2l = add_le(&s_plus_l, &l);
    let cases: [(&str, Vec<u8>); 7] = [
        ("S + L", malleated),
        ("S + 2L", [&sig[..32], s_plus_2l.as_slice()].concat()),
        ("S = L", [&sig[..32], l.as_slice()].concat()),
        ("63 bytes", sig[..63].to_vec()),
        ("65 bytes", [sig.as_slice(), &[0]].concat()),
        ("R = identity, S = 0", [hex(ED25519_SMALL_ORDER[1]), vec![0u8; 32]].concat()),
        ("all zero", vec![0u8; 64]),
    ];
    for (case, signature) in cases {
        assert_rejected(
            &keys,
            &policy(),
            &with_signature(&token, &signature),
            Reason::InvalidSignature,
            case,
        );
    }

    // alg EdDSA with an Ed448 JWK (57-byte x): the key is set aside as unsupported.
    let ed448 = json!({"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": b64(&random_bytes(57))});
    let keys448 = one_key_set(ed448);
    assert_eq!(keys448.set_aside()[0].problem, KeyProblem::Unsupported);
    let token448 = ed.sign_with_header(&json!({"alg": "EdDSA", "kid": "ed448"}), &claims()).unwrap();
    assert_rejected(
        &keys448,
        &policy(),
        &token448,
        Reason::UnsupportedAlgorithm,
        "EdDSA naming an Ed448 key",
    );
    let token448 = ed.sign_with_header(&json!({"alg": "Ed448", "kid": "ed"}), &claims()).unwrap();
    assert_rejected(&keys, &policy(), &token448, Reason::UnsupportedAlgorithm, "alg Ed448");

    // EdDSA and the fully specified Ed25519 are one operation, in either direction.
    let token = ed.sign_with_header(&json!({"alg": "Ed25519", "kid": "ed"}), &claims()).unwrap();
    assert_accepted(&keys, &policy(), &token, "alg Ed25519, JWK alg EdDSA");
    let bound = one_key_set(jwk_with(&ed, json!({"alg": "Ed25519"})));
    assert_accepted(&bound, &policy(), &ed.sign_jwt(&claims()).unwrap(), "alg EdDSA, JWK alg Ed25519");
    // The allowlist still decides: Ed25519 allowed does not allow EdDSA.
    let only =
        Policy::builder().issuer(ISS).audience("api").algorithms([Algorithm::Ed25519]).build().unwrap();
    assert_rejected(
        &keys,
        &only,
        &ed.sign_jwt(&claims()).unwrap(),
        Reason::AlgorithmNotAllowed,
        "EdDSA not listed",
    );
    // EdDSA naming an EC key.
    let es = key(SigningAlg::ES256, "es");
    let mixed = set(&[&ed, &es]);
    let token = ed.sign_with_header(&json!({"alg": "EdDSA", "kid": "es"}), &claims()).unwrap();
    assert_rejected(&mixed, &policy(), &token, Reason::KeyAlgorithmMismatch, "EdDSA naming a P-256 key");
}
