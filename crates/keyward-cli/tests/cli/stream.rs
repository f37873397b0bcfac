//! `keyward verify --stream`: one JSON line per token line, in order, flushed per line, with
//! one long-lived verifier whose key cache lives across lines.

use keyward_idp::{SigningAlg, jwks};
use serde_json::json;

use super::support::{
    Files, Idp, Interactive, NOW, NOW_ARG, assert_rejected, assert_valid, claims, claims_for, claims_with,
    key, run,
};

#[test]
fn batch_answers_every_line_in_order_and_exits_1_when_any_is_rejected() {
    let files = Files::new("k1");
    let valid = files.token(&claims());
    let expired = files.token(&claims_with(json!({"exp": NOW - 3600})));
    let valid_two = files.token(&claims_with(json!({"sub": "bob"})));
    // An empty line and a whitespace-only line are skipped; CRLF and padding are ignored.
    let stdin = format!("{valid}\n{expired}\r\n\n   \ngarbage\n  {valid_two}  ");
    let out = run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--stream"], &stdin);
    assert_eq!(out.code, 1, "{out:?}");
    let lines = out.json_lines();
    assert_eq!(lines.len(), 4, "one answer per token, none for blank lines: {out:?}");
    assert_valid(&lines[0]);
    assert_eq!(lines[0]["claims"]["sub"], json!("alice"));
    assert_rejected(&lines[1], "expired");
    assert_eq!(lines[1]["signature_verified"], json!(true));
    assert_rejected(&lines[2], "malformed");
    assert_valid(&lines[3]);
    assert_eq!(lines[3]["claims"]["sub"], json!("bob"), "answers are in input order");
}

/// Enough lines that they are split into many batches verified on several threads at once:
/// every answer still comes back once, in input order.
#[test]
fn a_long_batch_is_answered_in_input_order() {
    let files = Files::new("k1");
    let lines: Vec<String> = (0..700)
        .map(|n| match n % 7 {
            3 => files.token(&claims_with(json!({"sub": format!("user-{n}"), "exp": NOW - 3600}))),
            5 => format!("not-a-token-{n}"),
            _ => files.token(&claims_with(json!({"sub": format!("user-{n}")}))),
        })
        .collect();
    let out =
        run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--stream"], &(lines.join("\n") + "\n"));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let answers = out.json_lines();
    assert_eq!(answers.len(), lines.len(), "{}", out.stderr);
    for (n, answer) in answers.iter().enumerate() {
        match n % 7 {
            3 => {
                assert_rejected(answer, "expired");
                assert_eq!(answer["claims"]["sub"], json!(format!("user-{n}")), "line {n}");
            }
            5 => assert_rejected(answer, "malformed"),
            _ => {
                assert_valid(answer);
                assert_eq!(answer["claims"]["sub"], json!(format!("user-{n}")), "line {n}");
            }
        }
    }
}

#[test]
fn batch_of_valid_tokens_exits_0() {
    let files = Files::new("k1");
    let tokens: Vec<String> =
        (0..5).map(|n| files.token(&claims_with(json!({"sub": format!("user-{n}")})))).collect();
    let stdin = tokens.join("\n\n") + "\n";
    let out = run(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--stream"], &stdin);
    assert_eq!(out.code, 0, "{out:?}");
    let lines = out.json_lines();
    assert_eq!(lines.len(), 5, "{out:?}");
    for (n, line) in lines.iter().enumerate() {
        assert_valid(line);
        assert_eq!(line["claims"]["sub"], json!(format!("user-{n}")));
    }

    // No tokens at all: nothing printed, nothing rejected.
    let out = run(&["verify", "--jwks", &files.jwks(), "--stream"], "\n\n");
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
}

/// A token whose payload JSON is pretty-printed (line breaks between members) must still be
/// answered on exactly one output line, with its claims intact.
#[test]
fn pretty_printed_payloads_stay_on_one_line() {
    let files = Files::new("k1");
    let pretty = serde_json::to_string_pretty(&claims_with(json!({"sub": "pretty"}))).unwrap();
    assert!(pretty.contains('\n'));
    let token = files.key.sign_parts(br#"{"alg":"ES256","kid":"k1"}"#, pretty.as_bytes()).unwrap();
    let out = run(
        &["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--stream"],
        &format!("{token}\n{token}\n"),
    );
    assert_eq!(out.code, 0, "{out:?}");
    let lines = out.json_lines();
    assert_eq!(lines.len(), 2, "{out:?}");
    for line in lines {
        assert_valid(&line);
        assert_eq!(line["claims"]["sub"], json!("pretty"));
    }
}

#[test]
fn answers_are_flushed_line_by_line() {
    let files = Files::new("k1");
    let valid = files.token(&claims());
    let expired = files.token(&claims_with(json!({"exp": NOW - 3600})));
    // Each answer is read before the next token is written, with stdin still open.
    let mut stream = Interactive::spawn(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--stream"]);
    assert_valid(&stream.ask(&valid));
    assert_rejected(&stream.ask(&expired), "expired");
    assert_rejected(&stream.ask("garbage"), "malformed");
    assert_valid(&stream.ask(&valid));
    assert_eq!(stream.finish(), 1, "one token was rejected");

    let mut stream = Interactive::spawn(&["verify", "--jwks", &files.jwks(), "--now", NOW_ARG, "--stream"]);
    for _ in 0..3 {
        assert_valid(&stream.ask(&valid));
    }
    assert_eq!(stream.finish(), 0, "every token was valid");
}

#[test]
fn key_cache_lives_across_lines_and_a_new_kid_refetches_once() {
    let old = key(SigningAlg::ES256, "2026-01");
    let idp = Idp::start(jwks([&old]));
    let mut stream = Interactive::spawn(&[
        "verify",
        "--issuer",
        &idp.base,
        "--audience",
        "orders-api",
        "--now",
        NOW_ARG,
        "--stream",
    ]);
    for n in 0..20 {
        let token = old.sign_jwt(&claims_with_iss(&idp.base, n)).unwrap();
        let answer = stream.ask(&token);
        assert_valid(&answer);
        assert_eq!(answer["claims"]["sub"], json!(format!("user-{n}")));
    }
    assert_eq!(idp.jwks_hits(), 1, "20 tokens under one kid: one fetch");
    assert_eq!(idp.discovery_hits(), 1);

    // The IdP rotates: the new key is published next to the old one.
    let new = key(SigningAlg::ES256, "2026-02");
    idp.publish(jwks([&old, &new]));
    let answer = stream.ask(&new.sign_jwt(&claims_with_iss(&idp.base, 20)).unwrap());
    assert_valid(&answer);
    assert_eq!(answer["kid"], json!("2026-02"));
    assert_eq!(idp.jwks_hits(), 2, "the unknown kid fetched exactly once more");

    // Both keys now verify from the cache.
    assert_valid(&stream.ask(&new.sign_jwt(&claims_with_iss(&idp.base, 21)).unwrap()));
    assert_valid(&stream.ask(&old.sign_jwt(&claims_with_iss(&idp.base, 22)).unwrap()));
    assert_eq!(idp.jwks_hits(), 2);
    assert_eq!(idp.discovery_hits(), 1, "discovery is not repeated for a refetch");
    assert_eq!(stream.finish(), 0);
}

fn claims_with_iss(iss: &str, n: usize) -> serde_json::Value {
    let mut claims = claims_for(iss);
    claims["sub"] = json!(format!("user-{n}"));
    claims
}
