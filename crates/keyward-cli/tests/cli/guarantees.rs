//! CLI guarantees of the key-source settings that only the binary makes (the library keeps
//! `refresh_cooldown` and `negative_cache_ttl` apart; the CLI sets both from one flag).

use keyward_idp::{SigningAlg, jwks};

use super::support::*;

/// README: "`negative_cache_ttl` (the CLI sets it from `--refresh-cooldown` too)". With
/// `--refresh-cooldown 0s` a kid a fetch lacked is not remembered at all, so when the IdP
/// publishes it a moment later the next token fetches and verifies; with the library's 30 s
/// default negative cache, the same token would still be `unknown_kid`.
#[test]
fn refresh_cooldown_also_sets_how_long_a_missing_kid_is_remembered() {
    let old = key(SigningAlg::ES256, "2026-01");
    let new = key(SigningAlg::ES256, "2026-02");
    let idp = Idp::start(jwks([&old]));
    let mut stream = Interactive::spawn(&[
        "verify",
        "--issuer",
        &idp.base,
        "--audience",
        AUD,
        "--now",
        NOW_ARG,
        "--refresh-cooldown",
        "0s",
        "--stream",
    ]);
    let token = new.sign_jwt(&claims_for(&idp.base)).unwrap();
    assert_rejected(&stream.ask(&token), "unknown_kid");
    assert_eq!(idp.jwks_hits(), 2, "startup fetch, then one for the unknown kid");

    idp.publish(jwks([&old, &new]));
    assert_valid(&stream.ask(&token));
    assert_eq!(idp.jwks_hits(), 3, "the missing kid was not negatively cached");
    assert_eq!(stream.finish(), 1, "one token was rejected");
}
