//! `keyward idp`: the real binary as a server, driven over HTTP exactly as a user's scripts
//! would drive it: discovery, the token endpoint, every admin rotation and fault mode, the state
//! file. Its tokens verify with `keyward verify` here and with PyJWT in `tests/idp_interop.rs`.
#![allow(clippy::disallowed_methods)] // bounded real-time polling of a child process

use std::time::{Duration, Instant};

use serde_json::Value;

use super::idp_support::{RunningIdp, decode, get, jwks_kids, post};
use super::support::run;

fn signing_kids(state: &Value) -> Vec<String> {
    state["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["signing"] == true)
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn token(idp: &RunningIdp, fields: &[(&str, &str)]) -> String {
    let answer = idp.admin("/token", fields);
    answer["access_token"].as_str().expect("access_token").to_owned()
}

fn token_kid(idp: &RunningIdp) -> String {
    let (header, _) = decode(&token(idp, &[("aud", "orders-api")]));
    header["kid"].as_str().unwrap().to_owned()
}

#[test]
fn token_endpoint_answers_like_an_oauth_server_and_keyward_verifies_its_tokens() {
    let idp = RunningIdp::spawn(&["--alg", "ES256", "--alg", "EdDSA"]);
    assert!(idp.banner.contains("keys and tokens are for rehearsals only"), "{}", idp.banner);

    let discovery = get(&idp.url("/.well-known/openid-configuration")).unwrap();
    assert_eq!(discovery.status, 200);
    let document = discovery.json();
    assert_eq!(document["issuer"], idp.issuer.as_str());
    assert_eq!(document["jwks_uri"], format!("{}/jwks", idp.issuer));
    assert_eq!(document["token_endpoint"], format!("{}/token", idp.issuer));
    assert_eq!(document["id_token_signing_alg_values_supported"], serde_json::json!(["ES256", "EdDSA"]));

    let answer = idp.admin(
        "/token",
        &[
            ("sub", "alice"),
            ("aud", "orders-api"),
            ("scope", "orders:read orders:write"),
            ("ttl", "600"),
            ("typ", "at+jwt"),
            ("claim.tenant", "acme"),
            ("claim.level", "3"),
        ],
    );
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["expires_in"], 600);
    let access = answer["access_token"].as_str().unwrap();
    let (header, claims) = decode(access);
    let state = idp.state();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256", "the first --alg signs by default");
    assert_eq!(header["kid"].as_str().unwrap(), signing_kids(&state)[0]);
    assert_eq!(claims["iss"], idp.issuer.as_str());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], "orders-api");
    assert_eq!(claims["scope"], "orders:read orders:write");
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["level"], 3, "a numeric claim value is a JSON number");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 600);

    let out = run(&["verify", "--issuer", &idp.issuer, "--audience", "orders-api", "--", access], "");
    assert_eq!(out.code, 0, "keyward verify against the idp's discovery: {out:?}");

    let ed = token(&idp, &[("aud", "orders-api"), ("alg", "EdDSA")]);
    assert_eq!(decode(&ed).0["alg"], "EdDSA");
    let out = run(&["verify", "--issuer", &idp.issuer, "--audience", "orders-api", "--", &ed], "");
    assert_eq!(out.code, 0, "{out:?}");

    for (fields, says) in [
        (vec![("ttl", "0")], "ttl"),
        (vec![("ttl", "soon")], "ttl"),
        (vec![("typ", "JWE")], "typ"),
        (vec![("alg", "HS256")], "alg"),
        (vec![("alg", "RS256")], "no signing key"),
    ] {
        let reply = post(&idp.url("/token"), &fields).unwrap();
        assert_eq!(reply.status, 400, "{fields:?}: {reply:?}");
        assert_eq!(reply.json()["error"], "invalid_request");
        let detail = reply.json()["error_description"].as_str().unwrap().to_owned();
        assert!(detail.contains(says), "{fields:?}: {detail}");
    }
    assert!(idp.stderr().contains("token: sub alice"), "every token is logged: {}", idp.stderr());
}

#[test]
fn every_rotation_mode_over_the_admin_api() {
    let idp = RunningIdp::spawn(&["--alg", "ES256"]);
    let k1 = token_kid(&idp);
    assert_eq!(jwks_kids(&idp), [k1.as_str()]);

    // overlap: the new key beside the old one, tokens signed by the new one.
    let answer = idp.admin("/admin/rotate", &[("mode", "overlap")]);
    let k2 = answer["signing_kid"].as_str().unwrap().to_owned();
    assert_ne!(k2, k1);
    assert_eq!(jwks_kids(&idp), [k1.as_str(), k2.as_str()]);
    assert_eq!(token_kid(&idp), k2);
    idp.wait_stderr(&format!("rotate overlap: published {k2}, signing with {k2}"));

    // pre-publish: a third key published, the second still signs; activate switches.
    idp.admin("/admin/rotate", &[("mode", "pre-publish")]);
    let kids = jwks_kids(&idp);
    assert_eq!(kids.len(), 3, "{kids:?}");
    let k3 = kids[2].clone();
    assert_eq!(token_kid(&idp), k2, "pre-publish keeps signing with the old key");
    idp.admin("/admin/rotate", &[("mode", "activate")]);
    assert_eq!(token_kid(&idp), k3);

    // retire: an old key goes; the signing key and unknown kids are refused.
    idp.admin("/admin/retire", &[("kid", &k1)]);
    assert_eq!(jwks_kids(&idp), [k2.as_str(), k3.as_str()]);
    idp.wait_stderr(&format!("retire: {k1} is no longer published"));
    for (kid, says) in [(k3.as_str(), "signing key"), ("nope", "no published key")] {
        let reply = post(&idp.url("/admin/retire"), &[("kid", kid)]).unwrap();
        assert_eq!(reply.status, 400, "{reply:?}");
        assert!(reply.json()["error_description"].as_str().unwrap().contains(says), "{reply:?}");
    }

    // replace: everything old dropped at once.
    let k4 = idp.admin("/admin/rotate", &[("mode", "replace")])["signing_kid"].as_str().unwrap().to_owned();
    assert_eq!(jwks_kids(&idp), [k4.as_str()]);
    assert_eq!(token_kid(&idp), k4);

    // reuse-kid: the same kid, other key material.
    let before = get(&idp.url("/jwks")).unwrap().json()["keys"][0].clone();
    idp.admin("/admin/rotate", &[("mode", "reuse-kid")]);
    let after = get(&idp.url("/jwks")).unwrap().json()["keys"][0].clone();
    assert_eq!(after["kid"], before["kid"]);
    assert_ne!(after["x"], before["x"], "new material under the same kid");
    assert_eq!(token_kid(&idp), k4);

    // sign-before-publish: tokens name a kid the JWKS does not hold yet, then it appears.
    let k5 = idp.admin("/admin/rotate", &[("mode", "sign-before-publish"), ("delay", "1")])["signing_kid"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(token_kid(&idp), k5);
    let state = idp.state();
    let pending = state["keys"].as_array().unwrap().iter().find(|k| k["kid"] == k5.as_str()).unwrap().clone();
    assert_eq!(pending["signing"], true);
    let deadline = Instant::now() + Duration::from_secs(20);
    if pending["published"] == false {
        assert!(!jwks_kids(&idp).contains(&k5), "published before its delay");
    }
    while !jwks_kids(&idp).contains(&k5) {
        assert!(Instant::now() < deadline, "{k5} was never published");
        std::thread::sleep(Duration::from_millis(50));
    }

    let reply = post(&idp.url("/admin/rotate"), &[("mode", "shuffle")]).unwrap();
    assert_eq!(reply.status, 400);
    assert!(reply.json()["error_description"].as_str().unwrap().contains("sign-before-publish"), "{reply:?}");
    let reply = post(&idp.url("/admin/rotate"), &[("mode", "overlap"), ("alg", "RS256")]).unwrap();
    assert_eq!(reply.status, 400, "an algorithm the idp does not hold: {reply:?}");
}

#[test]
fn every_fault_mode_over_the_admin_api() {
    let idp = RunningIdp::spawn(&["--alg", "ES256"]);
    let k1 = jwks_kids(&idp)[0].clone();
    let fault = |mode: &str, extra: &[(&str, &str)]| {
        let mut fields = vec![("mode", mode), ("seconds", "60")];
        fields.extend_from_slice(extra);
        idp.admin("/admin/fault", &fields)
    };

    let state = fault("500", &[]);
    assert_eq!(state["faults"][0]["mode"], "500");
    assert_eq!(get(&idp.url("/jwks")).unwrap().status, 500);

    fault("429", &[("retry_after", "7")]);
    let reply = get(&idp.url("/jwks")).unwrap();
    assert_eq!(reply.status, 429);
    assert_eq!(reply.header("retry-after"), Some("7"));
    assert_eq!(idp.state()["faults"].as_array().unwrap().len(), 1, "one body fault at a time");

    fault("garbage", &[]);
    let reply = get(&idp.url("/jwks")).unwrap();
    assert_eq!(reply.status, 200);
    assert!(serde_json::from_slice::<Value>(&reply.body).is_err(), "garbage is not JSON");

    fault("empty-set", &[]);
    assert_eq!(jwks_kids(&idp), Vec::<String>::new());

    fault("wrong-keys", &[]);
    assert_eq!(jwks_kids(&idp), ["foreign-issuer-key"]);

    fault("huge", &[]);
    let reply = get(&idp.url("/jwks")).unwrap();
    assert!(reply.body.len() > 8 * 1024 * 1024, "{} bytes", reply.body.len());

    idp.admin("/admin/fault", &[("mode", "none")]);
    assert_eq!(idp.state()["faults"], serde_json::json!([]));
    assert_eq!(jwks_kids(&idp), [k1.as_str()]);

    fault("cache-control", &[("value", "no-store")]);
    assert_eq!(get(&idp.url("/jwks")).unwrap().header("cache-control"), Some("no-store"));
    let reply = post(&idp.url("/admin/fault"), &[("mode", "cache-control")]).unwrap();
    assert_eq!(reply.status, 400, "cache-control needs a value: {reply:?}");

    idp.admin("/admin/rotate", &[("mode", "overlap")]);
    fault("flap", &[]);
    let counts: Vec<usize> = (0..4).map(|_| jwks_kids(&idp).len()).collect();
    assert_eq!(counts, [2, 1, 2, 1], "the newest key is absent from every other response");

    idp.admin("/admin/fault", &[("mode", "none")]);
    fault("slow", &[("delay", "1")]);
    let started = Instant::now();
    assert_eq!(get(&idp.url("/jwks")).unwrap().status, 200);
    assert!(started.elapsed() >= Duration::from_secs(1), "slow delays the JWKS by its delay");
    idp.admin("/admin/fault", &[("mode", "none")]);

    // down: connections are closed while it lasts (the admin API too), then it recovers.
    idp.admin("/admin/fault", &[("mode", "down"), ("seconds", "1")]);
    let during = get(&idp.url("/jwks"));
    assert!(during.is_err(), "the JWKS answered while down: {during:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let state = loop {
        if let Ok(reply) = get(&idp.url("/admin/state")) {
            break reply.json();
        }
        assert!(Instant::now() < deadline, "the idp never came back up");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(state["refused_connections"].as_u64().unwrap() >= 1, "{state}");
    assert!(state["jwks_requests"].as_u64().unwrap() >= 10, "{state}");

    let reply = post(&idp.url("/admin/fault"), &[("mode", "meltdown")]).unwrap();
    assert_eq!(reply.status, 400);
    let reply = post(&idp.url("/admin/fault"), &[("mode", "500"), ("seconds", "-1")]).unwrap();
    assert_eq!(reply.status, 400);
    let log = idp.stderr();
    for line in
        ["fault 500 for 60 s", "fault 429 for 60 s (Retry-After: 7)", "fault down for 1 s", "faults cleared"]
    {
        assert!(log.contains(line), "{line:?} not logged: {log}");
    }
}

#[test]
fn the_state_file_keeps_the_keys_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idp-state.json");
    let path_arg = path.to_str().unwrap();
    let idp = RunningIdp::spawn(&["--alg", "ES256", "--alg", "RS256", "--state", path_arg]);
    assert!(idp.banner.contains("idp-state.json (saved after every change)"), "{}", idp.banner);
    idp.admin("/admin/rotate", &[("mode", "overlap")]);
    let jwks = get(&idp.url("/jwks")).unwrap().json();
    let signing = signing_kids(&idp.state());
    idp.stop();

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the state file holds private keys");
    }
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind: {leftovers:?}");

    let again = RunningIdp::spawn(&["--alg", "ES256", "--alg", "RS256", "--state", path_arg]);
    assert_eq!(get(&again.url("/jwks")).unwrap().json(), jwks, "the same public keys after a restart");
    assert_eq!(signing_kids(&again.state()), signing);
    again.stop();

    std::fs::write(&path, "{\"format\": \"something else\"}").unwrap();
    let out = run(&["idp", "--listen", "127.0.0.1:0", "--state", path_arg], "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not a keyward idp state file"), "{out:?}");
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&["idp", "--alg", "HS256"], "");
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("ES256"), "{out:?}");
    let out = run(&["idp", "--listen", "localhost"], "");
    assert_eq!(out.code, 2, "{out:?}");
}
