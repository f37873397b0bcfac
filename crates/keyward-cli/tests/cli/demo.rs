//! `keyward demo`, the README's main job: the rotation rehearsal must pass on its own.

use super::support::run;

#[test]
fn demo_rehearses_a_rotation_and_keyward_gets_every_verdict_right() {
    let out = run(&["demo"], "");
    assert_eq!(out.code, 0, "{out:?}");
    for step in [
        "1. steady state",
        "2. overlap rotation",
        "3. kid flood",
        "4. the IdP drops k1",
        "5. the IdP signs with k3 before its JWKS shows it",
        "6. IdP outage",
        "7. recovery, then the IdP reuses kid",
    ] {
        assert!(out.stdout.contains(step), "missing step {step:?}:\n{}", out.stdout);
    }
    // Every flood verdict is graded by its reason code, and the line shows the codes produced.
    assert!(out.stdout.contains("rejected 1000 of 1000: 1000 unknown_kid\n"), "{}", out.stdout);
    // The fetch budget is judged against the windows the flood actually spanned (measured by
    // the demo), so a slow machine gets the budget the limiter really allows.
    assert!(out.stdout.contains("JWKS fetches caused: "), "{}", out.stdout);
    assert!(out.stdout.contains("keyward gave 13 right verdicts out of 13"), "{}", out.stdout);
    // Removal is revocation: k1 verifies until a second fetch confirms its removal, then not.
    assert!(out.stdout.contains("a second fetch 1 s later also lacks k1"), "{}", out.stdout);
    assert!(
        out.stdout.contains("keyward  rejected: unknown_kid (no key with kid \"rs256-1-"),
        "{}",
        out.stdout
    );
    // A key signed with before its publication is accepted soon after it appears.
    assert!(out.stdout.contains("after k3 was published"), "{}", out.stdout);
    // The naive cache also accepted the revoked key's token.
    assert!(out.stdout.contains("accepted 1 it should not have"), "{}", out.stdout);
    assert!(!out.stdout.contains("WRONG"), "{}", out.stdout);
    // The steps are the drill's scenarios, run on its engine against the in-process idp.
    for scenario in ["steady", "overlap", "kid-flood", "sign-before-publish", "kid-reuse"] {
        assert!(out.stdout.contains(&format!("(drill scenario {scenario}: ")), "{scenario}:\n{}", out.stdout);
    }
    // It ends by saying what to run against the reader's own IdP or service.
    let next = out.stdout.split("next, against your own IdP or service:").nth(1).unwrap_or_default();
    for command in ["keyward doctor --issuer", "keyward idp --listen", "keyward drill --idp", "--target-url"]
    {
        assert!(next.contains(command), "missing {command:?} after the summary:\n{}", out.stdout);
    }
    // The naive frozen cache is the foil: it must have failed valid tokens after the rotation.
    assert!(out.stdout.contains("naive    rejected: unknown_kid"), "{}", out.stdout);
}
