//! `--jwks FILE` beyond a JWKS: one PEM public key, one JWK; and files that are not keys at
//! all, named for what they are.

use keyward_idp::{SigningAlg, jwks};
use serde_json::json;

use super::support::{
    Files, NOW_ARG, assert_rejected, assert_usage_error, assert_valid, claims, key, public_key_pem, run,
};

#[test]
fn a_pem_public_key_verifies_tokens_whatever_kid_they_name() {
    let files = Files::new("unused");
    for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::ES384, SigningAlg::EdDSA] {
        let signer = key(alg, "k-pem");
        let pem = files.write("key.pem", &public_key_pem(&signer));
        let pem = pem.to_str().unwrap();
        let token = signer.sign_jwt(&claims()).unwrap();
        let out = run(&["verify", "--jwks", pem, "--now", NOW_ARG, "--json", &token], "");
        assert_eq!(out.code, 0, "{alg:?}: {out:?}");
        assert_eq!(out.stderr, "", "{alg:?}: {out:?}");
        let report = out.json();
        assert_valid(&report);
        assert_eq!(report["kid"], json!("k-pem"));

        // Another key's token is still refused.
        let other = key(alg, "k-pem").sign_jwt(&claims()).unwrap();
        let out = run(&["verify", "--jwks", pem, "--now", NOW_ARG, "--json", &other], "");
        assert_eq!(out.code, 1, "{alg:?}: {out:?}");
        assert_rejected(&out.json(), "invalid_signature");
    }

    // In a stream, tokens naming several kids all select the one key.
    let signer = key(SigningAlg::ES256, "first");
    let pem = files.write("stream.pem", &public_key_pem(&signer));
    let tokens: Vec<String> = ["first", "second", "third"]
        .iter()
        .map(|kid| {
            signer.sign_with_header(&json!({"alg": "ES256", "kid": kid, "typ": "JWT"}), &claims()).unwrap()
        })
        .collect();
    let out = run(
        &["verify", "--jwks", pem.to_str().unwrap(), "--now", NOW_ARG, "--stream"],
        &(tokens.join("\n") + "\n"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let lines = out.json_lines();
    assert_eq!(lines.len(), 3);
    for (line, kid) in lines.iter().zip(["first", "second", "third"]) {
        assert_valid(line);
        assert_eq!(line["kid"], json!(kid));
    }
}

/// A PEM certificate's key (here RSA, made with openssl; see tests/data/README.md).
#[test]
fn a_pem_certificate_verifies_with_its_key() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data");
    let cert = format!("{data}/cert-key.pem");
    let token = format!("@{data}/cert-key-token.jwt");
    let out = run(&["verify", "--jwks", &cert, "--now", NOW_ARG, &token], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("valid: signature verified with key \"cert-key\" (RSA 2048"), "{out:?}");
    assert_eq!(out.stderr, "", "a kid-less key is expected here, not warned about: {out:?}");

    // Any other signer is refused.
    let other = key(SigningAlg::RS256, "cert-key").sign_jwt(&claims()).unwrap();
    let out = run(&["verify", "--jwks", &cert, "--now", NOW_ARG, "--json", &other], "");
    assert_eq!(out.code, 1, "{out:?}");
    assert_rejected(&out.json(), "invalid_signature");
}

#[test]
fn a_single_jwk_is_a_key_set_of_one() {
    let files = Files::new("unused");
    let signer = key(SigningAlg::ES256, "k1");
    let token = signer.sign_jwt(&claims()).unwrap();

    // Without kid: any kid selects it.
    let bare = files.write("bare.jwk", &signer.public_jwk_bare().to_string());
    let out = run(&["verify", "--jwks", bare.to_str().unwrap(), "--now", NOW_ARG, "--json", &token], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert_valid(&out.json());

    // With kid: tokens select it by kid, as in a JWKS.
    let with_kid = files.write("kid.jwk", &signer.public_jwk().to_string());
    let out = run(&["verify", "--jwks", with_kid.to_str().unwrap(), "--now", NOW_ARG, "--json", &token], "");
    assert_eq!(out.code, 0, "{out:?}");
    assert_valid(&out.json());
    let other_kid = signer.sign_with_header(&json!({"alg": "ES256", "kid": "k2"}), &claims()).unwrap();
    let out =
        run(&["verify", "--jwks", with_kid.to_str().unwrap(), "--now", NOW_ARG, "--json", &other_kid], "");
    assert_eq!(out.code, 1, "{out:?}");
    let report = out.json();
    assert_rejected(&report, "unknown_kid");
    // "1 usable key", not "1 usable keys".
    let detail = report["detail"].as_str().unwrap();
    assert!(detail.contains("among 1 usable key") && !detail.contains("usable keys"), "{detail}");
}

#[test]
fn files_that_are_not_keys_say_what_they_are() {
    let files = Files::new("k1");
    let token = files.token(&claims());
    let discovery = json!({
        "issuer": "https://idp.example.test",
        "jwks_uri": "https://idp.example.test/.well-known/jwks.json",
        "authorization_endpoint": "https://idp.example.test/authorize",
    });
    let path = files.write("openid-configuration.json", &discovery.to_string());
    let out = run(&["verify", "--jwks", path.to_str().unwrap(), &token], "");
    assert_usage_error(&out, "OpenID discovery document");
    assert!(out.stderr.contains("--jwks https://idp.example.test/.well-known/jwks.json"), "{out:?}");
    assert!(out.stderr.contains("--issuer https://idp.example.test"), "{out:?}");

    for (name, contents, says) in [
        ("array.json", "[1, 2]".to_owned(), "it is a JSON array, not a JWKS"),
        ("string.json", "\"k1\"".to_owned(), "it is a JSON string, not a JWKS"),
        ("object.json", r#"{"hello": "world"}"#.to_owned(), "not a JWKS"),
        ("not-json.txt", "hello".to_owned(), "not valid JSON"),
        (
            "private.pem",
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n".to_owned(),
            "PRIVATE KEY",
        ),
        (
            "pkcs1.pem",
            "-----BEGIN RSA PUBLIC KEY-----\nMAA=\n-----END RSA PUBLIC KEY-----\n".to_owned(),
            "openssl rsa -RSAPublicKey_in -pubout",
        ),
    ] {
        let path = files.write(name, &contents);
        let out = run(&["verify", "--jwks", path.to_str().unwrap(), &token], "");
        assert_usage_error(&out, says);
    }

    // A single JWK is parsed as strictly as a JWKS: a duplicate member is refused, not
    // resolved by keeping one of the values.
    let signer = key(SigningAlg::ES256, "k1");
    let jwk = signer.public_jwk_bare();
    let dup = format!(
        r#"{{"kty":"EC","crv":"P-256","x":{},"x":{},"y":{}}}"#,
        jwk["x"],
        key(SigningAlg::ES256, "k2").public_jwk_bare()["x"],
        jwk["y"]
    );
    let path = files.write("dup.jwk", &dup);
    let out = run(&["verify", "--jwks", path.to_str().unwrap(), &token], "");
    assert_usage_error(&out, "not valid JSON");

    // A JWKS in the same directory still works, of course.
    let path = files.write("set.json", &jwks([&files.key]).to_string());
    let out = run(&["verify", "--jwks", path.to_str().unwrap(), "--now", NOW_ARG, &token], "");
    assert_eq!(out.code, 0, "{out:?}");
}
