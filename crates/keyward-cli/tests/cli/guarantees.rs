//! CLI guarantees of the key-source flags, seen from outside the binary (the mapping of each
//! flag onto the library's settings is unit-tested in `cmd/verify.rs`).

use keyward_idp::{SigningAlg, jwks};

use super::support::*;

/// `--refresh-cooldown` is the window of the token-driven fetch budget, spaced window / 8 apart:
/// with `0s` nothing spaces the fetches, so a kid a fetch lacked is looked up again by its next
/// token, and when the IdP publishes it a moment later that token verifies.
#[test]
fn refresh_cooldown_sets_the_spacing_of_token_driven_fetches() {
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
    assert_eq!(idp.jwks_hits(), 3, "the missing kid was looked up again at once");
    assert_eq!(stream.finish(), 1, "one token was rejected");
}
