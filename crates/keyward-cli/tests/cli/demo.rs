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
        "5. IdP outage",
        "6. recovery, then the IdP reuses kid",
    ] {
        assert!(out.stdout.contains(step), "missing step {step:?}:\n{}", out.stdout);
    }
    // Every flood verdict is graded by its reason code, and the line shows the codes produced.
    assert!(out.stdout.contains("rejected 1000 of 1000: 1000 unknown_kid\n"), "{}", out.stdout);
    // The fetch budget is judged against the windows the flood actually spanned (measured by
    // the demo), so a slow machine gets the budget the limiter really allows.
    assert!(out.stdout.contains("JWKS fetches caused: "), "{}", out.stdout);
    assert!(out.stdout.contains("keyward gave 9 right verdicts out of 9"), "{}", out.stdout);
    assert!(!out.stdout.contains("WRONG"), "{}", out.stdout);
    // The naive frozen cache is the foil: it must have failed valid tokens after the rotation.
    assert!(out.stdout.contains("naive    rejected: unknown_kid"), "{}", out.stdout);
}
