//! A fetched set with bad keys: they are set aside and reported, the good keys verify.

use keyward::Reason;
use keyward::jwk::KeyProblem;
use keyward_idp::mint::b64;
use serde_json::json;

use super::support::*;

#[tokio::test(start_paused = true)]
async fn bad_keys_in_a_fetched_set_are_set_aside() {
    let good = key("good");
    let enc = key("enc");
    // A 1024-bit RSA modulus (top bit set, odd): too small to trust.
    let mut modulus = vec![0x5a_u8; 128];
    modulus[0] = 0xc1;
    modulus[127] = 0x01;
    let weak =
        json!({"kty": "RSA", "kid": "weak", "use": "sig", "alg": "RS256", "n": b64(&modulus), "e": "AQAB"});
    let mut encryption = enc.public_jwk();
    encryption["use"] = json!("enc");
    let (server, source) =
        serving(Reply::json(&json!({"keys": [weak, good.public_jwk(), encryption]}))).await;
    ready(&source).await;
    let v = verifier(&source);

    let set = source.current().unwrap();
    assert_eq!(set.len(), 1);
    let aside: Vec<_> = set.set_aside().iter().map(|k| (k.index, k.kid.as_deref(), k.problem)).collect();
    assert_eq!(aside, [(0, Some("weak"), KeyProblem::Weak), (2, Some("enc"), KeyProblem::NotForSigning)]);
    assert_eq!(source.health().keys, 1);

    ok(v.verify(&token(&good)).await, "the good key");
    // Tokens naming a set-aside key get that key's reason, and trigger no fetch.
    let header = json!({"alg": "RS256", "kid": "weak", "typ": "JWT"});
    let forged = forge(&header, &claims_for(ISS), &[0x42; 128]);
    rejected(v.verify(&forged).await, Reason::WeakKey, "kid of the weak key");
    rejected(v.verify(&token(&enc)).await, Reason::KeyNotForSigning, "kid of the encryption key");
    assert_eq!(server.hits(KEYS), 1, "set-aside kids are known: no unknown-kid fetch");
}
