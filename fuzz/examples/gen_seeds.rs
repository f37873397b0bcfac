//! Regenerates the verify target's embedded JWKS and the seed corpora under `seeds/`.
//!
//! Run from `fuzz/`: `cargo run --example gen_seeds`. Keys are fresh each run and their private
//! halves are dropped when it exits, so the committed JWKS can verify only the seeds written
//! alongside it (and the fuzzer cannot sign anything new).

use std::fs;
use std::path::Path;

use keyward_idp::{SigningAlg, SigningKey, jwks};
use serde_json::{Value, json};

const NOW: i64 = 1_767_225_600;
const ISS: &str = "https://idp.example.test";

fn b64(bytes: &[u8]) -> String {
    keyward::internal::base64url::encode(bytes)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let keys: Vec<SigningKey> = [
        (SigningAlg::RS256, "rsa-1"),
        (SigningAlg::PS256, "pss-1"),
        (SigningAlg::ES256, "p256-1"),
        (SigningAlg::ES384, "p384-1"),
        (SigningAlg::ES512, "p521-1"),
        (SigningAlg::EdDSA, "ed-1"),
    ]
    .into_iter()
    .map(|(alg, kid)| SigningKey::generate(alg, kid).unwrap())
    .collect();
    // One key published without `alg` (family binding only) and one without `kid`.
    let noalg = SigningKey::generate(SigningAlg::ES256, "p256-noalg").unwrap();
    let nokid = SigningKey::generate(SigningAlg::EdDSA, "").unwrap();
    let mut document = jwks(keys.iter());
    let list = document["keys"].as_array_mut().unwrap();
    let mut bare = noalg.public_jwk_bare();
    bare["kid"] = json!("p256-noalg");
    bare["use"] = json!("sig");
    list.push(bare);
    list.push(nokid.public_jwk_bare());
    let jwks_text = serde_json::to_string_pretty(&document).unwrap();
    write(&root.join("fuzz_targets"), "fixture_jwks.json", jwks_text.as_bytes());

    let base = json!({"iss": ISS, "sub": "alice", "aud": "api", "iat": NOW - 10, "nbf": NOW - 10,
        "exp": NOW + 600, "jti": "j-1", "scope": "read write", "nested": {"a": [1, 2.5, null, true]}});
    let mut claim_variants = vec![base.clone()];
    for (name, value) in [
        ("exp", json!(NOW - 61)),
        ("exp", json!(NOW as f64 + 0.5)),
        ("exp", json!(9_007_199_254_740_993_u64)),
        ("exp", json!("soon")),
        ("nbf", json!(NOW + 61)),
        ("iat", json!(NOW + 61)),
        ("aud", json!(["api", "other"])),
        ("aud", json!([])),
        ("iss", json!(5)),
        ("sub", Value::Null),
        ("tid", json!("72f988bf-86f1-41af-91ab-2d7cd011db47")),
    ] {
        let mut c = base.clone();
        c[name] = value;
        claim_variants.push(c);
    }
    let mut no_exp = base.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    claim_variants.push(no_exp);

    let mut tokens: Vec<String> = Vec::new();
    let mut signed_inputs: Vec<String> = Vec::new();
    let mut sign = |key: &SigningKey, header: &[u8], payload: &[u8]| {
        let token = key.sign_parts(header, payload).unwrap();
        signed_inputs.push(token.rsplit_once('.').unwrap().0.to_owned());
        tokens.push(token);
    };
    for key in &keys {
        let alg = key.alg().as_str();
        let kid = key.kid();
        for claims in &claim_variants {
            let header = json!({"alg": alg, "kid": kid, "typ": "JWT"});
            sign(key, header.to_string().as_bytes(), claims.to_string().as_bytes());
        }
        for header in [
            json!({"alg": alg, "kid": kid}),
            json!({"alg": alg}),
            json!({"alg": alg, "kid": kid, "typ": "at+jwt", "cty": "json"}),
            json!({"alg": alg, "kid": kid, "jku": "https://attacker.example/jwks", "x5c": ["AAAA"]}),
            json!({"alg": alg, "kid": kid, "crit": ["exp"], "exp": NOW}),
            json!({"alg": alg, "kid": kid, "b64": false}),
            json!({"alg": alg, "kid": kid, "typ": "dpop+jwt"}),
            json!({"alg": "Ed25519", "kid": kid}),
        ] {
            sign(key, header.to_string().as_bytes(), base.to_string().as_bytes());
        }
        let header = format!(r#"{{"alg":"{alg}","kid":"{kid}","kid":"{kid}"}}"#);
        sign(key, header.as_bytes(), base.to_string().as_bytes());
        let header = json!({"alg": alg, "kid": kid}).to_string();
        let dup_claims = format!(r#"{{"iss":"{ISS}","exp":{},"exp":{}}}"#, NOW - 100, NOW + 600);
        sign(key, header.as_bytes(), dup_claims.as_bytes());
        sign(key, header.as_bytes(), b"[1,2,3]");
    }
    sign(
        &noalg,
        json!({"alg": "ES256", "kid": "p256-noalg"}).to_string().as_bytes(),
        base.to_string().as_bytes(),
    );
    sign(&nokid, json!({"alg": "EdDSA"}).to_string().as_bytes(), base.to_string().as_bytes());

    // Unsigned and structurally odd tokens (no valid signature, so not in the signed list).
    let payload = b64(base.to_string().as_bytes());
    let extra = [
        format!("{}.{payload}.", b64(br#"{"alg":"none"}"#)),
        format!("{}.{payload}.c2ln", b64(br#"{"alg":"HS256","kid":"rsa-1"}"#)),
        format!("{}.{payload}.c2ln", b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#)),
        format!("{}.{payload}.a.b.c", b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#)),
        format!("{}.{payload}.c2ln", b64(br#"{"alg":"ES256","zip":"DEF"}"#)),
        format!("{}.{payload}.c2ln", b64(br#"{"alg":"PS256","kid":7}"#)),
        format!(r#"{{"payload":"{payload}","signatures":[]}}"#),
    ];

    let mut signed_text = signed_inputs.join("\n");
    signed_text.push('\n');
    write(&root.join("fuzz_targets"), "fixture_signed_inputs.txt", signed_text.as_bytes());
    for dir in ["compact", "verify"] {
        let dir = root.join("seeds").join(dir);
        let _ = fs::remove_dir_all(&dir);
        for (i, token) in tokens.iter().chain(extra.iter()).enumerate() {
            write(&dir, &format!("token-{i:03}"), token.as_bytes());
        }
    }

    // JWKS seeds: the fixture plus one document per kind of key that must be set aside.
    let jwks_dir = root.join("seeds").join("jwks");
    let _ = fs::remove_dir_all(&jwks_dir);
    write(&jwks_dir, "fixture.json", jwks_text.as_bytes());
    let rsa = keys[0].public_jwk();
    let ec = keys[2].public_jwk();
    let mut variants: Vec<(&str, Value)> = Vec::new();
    let mut private = ec.clone();
    private["d"] = json!(b64(&[7u8; 32]));
    variants.push(("private-member", private));
    let mut small = rsa.clone();
    small["n"] = json!(b64(&[0xc1u8; 128]));
    variants.push(("rsa-1024", small));
    let mut even = rsa.clone();
    even["e"] = json!("AQAC");
    variants.push(("rsa-even-e", even));
    let mut off_curve = ec.clone();
    off_curve["y"] = json!(b64(&[1u8; 32]));
    variants.push(("ec-off-curve", off_curve));
    let mut short = ec.clone();
    short["x"] = json!(b64(&[1u8; 31]));
    variants.push(("ec-short-x", short));
    let mut enc = ec.clone();
    enc["use"] = json!("enc");
    variants.push(("use-enc", enc));
    let mut ops = ec.clone();
    ops["key_ops"] = json!(["encrypt"]);
    variants.push(("key-ops", ops));
    let mut mismatch = ec.clone();
    mismatch["alg"] = json!("RS256");
    variants.push(("alg-mismatch", mismatch));
    let mut issuer = rsa.clone();
    issuer["issuer"] = json!("https://login.microsoftonline.com/{tenantid}/v2.0");
    variants.push(("issuer-template", issuer));
    variants.push(("oct", json!({"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"})));
    variants.push(("x25519", json!({"kty": "OKP", "crv": "X25519", "x": b64(&[9u8; 32]), "kid": "x"})));
    variants.push(("padded", json!({"kty": "EC", "crv": "P-256", "x": "AAAA=", "y": "AAAA", "kid": "p"})));
    for (name, key) in variants {
        let doc = json!({"keys": [key, keys[5].public_jwk()]});
        write(&jwks_dir, &format!("{name}.json"), doc.to_string().as_bytes());
    }
    let duplicate = json!({"keys": [keys[2].public_jwk(), noalg.public_jwk_bare(), keys[2].public_jwk()]});
    write(&jwks_dir, "duplicate-kid.json", duplicate.to_string().as_bytes());
    write(&jwks_dir, "dup-member.json", br#"{"keys":[{"kty":"EC","kty":"RSA"}]}"#);
    write(
        &jwks_dir,
        "pem-map.json",
        br#"{"k1":"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}"#,
    );
    println!(
        "{} tokens ({} signed), JWKS with {} keys",
        tokens.len() + extra.len(),
        tokens.len(),
        document["keys"].as_array().unwrap().len()
    );
}
