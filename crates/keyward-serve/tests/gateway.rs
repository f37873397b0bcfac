//! The gateway on 127.0.0.1:0 against the mock IdP, asked over HTTP as a proxy would: every
//! status, header and reason code of the endpoint contract (docs/serve.md).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keyward::source::SourceSettings;
use keyward::{Clock, SystemClock};
use keyward_idp::{MockIdp, SigningAlg, SigningKey};
use keyward_serve::Server;
use keyward_serve::config::{Config, QuickStart};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::sync::oneshot;

const AUD: &str = "orders-api";

fn key(kid: &str) -> Arc<SigningKey> {
    Arc::new(SigningKey::generate(SigningAlg::ES256, kid).unwrap())
}

fn now() -> i64 {
    SystemClock.now_unix()
}

fn token(iss: &str, signer: &SigningKey, extra: Value) -> String {
    let now = now();
    let mut claims =
        json!({"iss": iss, "sub": "alice", "aud": AUD, "iat": now, "nbf": now, "exp": now + 600});
    if let (Some(map), Value::Object(more)) = (claims.as_object_mut(), extra) {
        map.extend(more);
    }
    signer.sign_jwt(&claims).unwrap()
}

fn quick(issuer: &str, settings: SourceSettings) -> Config {
    Config::quick_start(QuickStart {
        issuer: issuer.to_owned(),
        audiences: vec![AUD.to_owned()],
        source: settings,
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
    })
    .unwrap()
}

/// A configuration file's text, listening on a free port.
fn toml(text: &str) -> Config {
    let text = format!("listen = \"127.0.0.1:0\"\n{text}");
    match Config::from_toml_str(&text, None) {
        Ok(config) => config,
        Err(e) => panic!("{e}\n--- in ---\n{text}"),
    }
}

/// A running gateway; stops (gracefully) when dropped.
struct Running {
    base: String,
    gateway: Arc<keyward_serve::Gateway>,
    stop: Option<oneshot::Sender<()>>,
    serving: Option<tokio::task::JoinHandle<Result<(), keyward_serve::ServeError>>>,
    client: reqwest::Client,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn start(config: Config) -> Running {
    let server = Server::bind(config).await.unwrap();
    let base = format!("http://{}", server.local_addr());
    let gateway = Arc::clone(server.gateway());
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(server.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    Running { base, gateway, stop: Some(stop), serving: Some(serving), client }
}

/// What the proxy sees: status, headers, body.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

impl Running {
    async fn ask(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap();
        Answer { status, headers, body }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        match token {
            Some(t) => self.ask("GET", path, &[("authorization", &format!("Bearer {t}"))]).await,
            None => self.ask("GET", path, &[]).await,
        }
    }
}

/// Waits (bounded) until `done` holds: for effects of background tasks, never for timing.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never happened: {what}");
}

async fn idp_with(keys: &[&Arc<SigningKey>]) -> MockIdp {
    let idp = MockIdp::start().await.unwrap();
    idp.publish(keys);
    idp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_is_200_with_claim_headers_that_overwrite_forged_ones() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    let gw = start(quick(idp.issuer(), SourceSettings::default())).await;
    let t = token(idp.issuer(), &k1, json!({}));
    let bearer = format!("Bearer {t}");
    let answer = gw
        .ask(
            "GET",
            "/auth",
            &[("authorization", &bearer), ("x-auth-subject", "mallory"), ("x-auth-issuer", "evil")],
        )
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert_eq!(answer.header("x-auth-subject"), Some("alice"));
    assert_eq!(answer.header("x-auth-issuer"), Some(idp.issuer()));
    assert_eq!(answer.headers.get_all("x-auth-subject").iter().count(), 1);
    assert_eq!(answer.header("x-keyward-reason"), None);

    // A token without `sub`: the header is still sent, empty, so a client's value never passes.
    let now = now();
    let no_sub =
        k1.sign_jwt(&json!({"iss": idp.issuer(), "aud": AUD, "iat": now, "exp": now + 600})).unwrap();
    let answer = gw
        .ask("GET", "/auth", &[("authorization", &format!("Bearer {no_sub}")), ("x-auth-subject", "mallory")])
        .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-auth-subject"), Some(""));

    // A `sub` with CR/LF (a header-injection attempt) is dropped: sent empty.
    let crlf = token(idp.issuer(), &k1, json!({"sub": "alice\r\nX-Admin: true"}));
    let answer = gw.get("/auth", Some(&crlf)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-auth-subject"), Some(""));
    assert_eq!(answer.header("x-admin"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_their_status_challenge_and_reason_and_never_the_token() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    let gw = start(quick(idp.issuer(), SourceSettings::default())).await;
    let iss = idp.issuer().to_owned();
    let now = now();

    let answer = gw.get("/auth", None).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("www-authenticate"), Some(r#"Bearer realm="default""#));
    assert_eq!(answer.header("x-keyward-reason"), Some("missing_token"));

    let expired = token(&iss, &k1, json!({"exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}));
    let forged = token(&iss, &key("k1"), json!({}));
    let wrong_aud = token(&iss, &k1, json!({"aud": "another-api"}));
    for (t, reason) in
        [(&expired, "expired"), (&forged, "invalid_signature"), (&wrong_aud, "audience_mismatch")]
    {
        let answer = gw.get("/auth", Some(t)).await;
        assert_eq!(answer.status, 401, "{reason}");
        assert_eq!(
            answer.header("www-authenticate"),
            Some(
                format!(r#"Bearer realm="default", error="invalid_token", error_description="{reason}""#)
                    .as_str()
            )
        );
        assert_eq!(answer.header("x-keyward-reason"), Some(reason));
        assert!(!answer.body.contains(t.as_str()), "the body echoes the token");
        assert!(!answer.body.contains(t.split('.').nth(1).unwrap()), "the body echoes the token's payload");
        assert_eq!(answer.body, format!(r#"{{"error":"invalid_token","reason":"{reason}"}}"#));
    }

    // Two Authorization headers: not exactly one bearer token; 401 (auth_request knows no 400).
    let bearer = format!("Bearer {expired}");
    let answer = gw.ask("GET", "/auth", &[("authorization", &bearer), ("authorization", &bearer)]).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("x-keyward-reason"), Some("invalid_request"));
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer realm="default", error="invalid_request", error_description="invalid_request""#)
    );
    assert!(!answer.body.contains(expired.as_str()));

    // Unknown policy: the deployment's fault, 500, never 401/403.
    let good = token(&iss, &k1, json!({}));
    let answer = gw.get("/auth/no-such-policy", Some(&good)).await;
    assert_eq!(answer.status, 500);
    assert_eq!(answer.header("x-keyward-reason"), Some("unknown_policy"));
    assert!(!answer.body.contains(good.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_description_can_be_turned_off_but_the_reason_header_stays() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    let mut config = quick(idp.issuer(), SourceSettings::default());
    config.error_description = false;
    let gw = start(config).await;
    let forged = token(idp.issuer(), &key("k1"), json!({}));
    let answer = gw.get("/auth", Some(&forged)).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("www-authenticate"), Some(r#"Bearer realm="default", error="invalid_token""#));
    assert_eq!(answer.header("x-keyward-reason"), Some("invalid_signature"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_cookies_and_the_original_query_and_two_different_ones_are_ambiguous() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    let mut config = quick(idp.issuer(), SourceSettings::default());
    config.tokens.cookies = vec!["session".to_owned()];
    config.tokens.query_parameter = true;
    let gw = start(config).await;
    let (a, b) =
        (token(idp.issuer(), &k1, json!({"sub": "a"})), token(idp.issuer(), &k1, json!({"sub": "b"})));

    let answer = gw.ask("GET", "/auth", &[("cookie", &format!("theme=dark; session={a}"))]).await;
    assert_eq!((answer.status, answer.header("x-auth-subject")), (200, Some("a")));

    // nginx passes the original URI; its access_token is the token.
    let uri = format!("/orders?access_token={b}");
    let answer = gw.ask("GET", "/auth", &[("x-original-method", "GET"), ("x-original-uri", &uri)]).await;
    assert_eq!((answer.status, answer.header("x-auth-subject")), (200, Some("b")));

    // The same token twice is one token; two different ones are refused.
    let both_same = [("authorization", format!("Bearer {a}")), ("cookie", format!("session={a}"))];
    let headers: Vec<(&str, &str)> = both_same.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(gw.ask("GET", "/auth", &headers).await.status, 200);
    let answer = gw
        .ask(
            "GET",
            "/auth",
            &[("authorization", &format!("Bearer {a}")), ("cookie", &format!("session={b}"))],
        )
        .await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("x-keyward-reason"), Some("ambiguous_token"));
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer realm="default", error="invalid_request", error_description="ambiguous_token""#)
    );
    assert!(!answer.body.contains(a.as_str()) && !answer.body.contains(b.as_str()));
}

/// Threat A25 (gateway-level parsing): scheme case and spacing, credentials that are not one
/// bearer token, and a query-string token while query tokens are off (the default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a25_odd_authorization_headers_and_query_tokens_are_parsed_strictly() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    let gw = start(quick(idp.issuer(), SourceSettings::default())).await;
    let t = token(idp.issuer(), &k1, json!({"sub": "alice"}));

    // The scheme is case-insensitive and spaces around the token are not part of it.
    for value in [format!("bearer {t}"), format!("BEARER {t}"), format!("Bearer   {t}  ")] {
        let answer = gw.ask("GET", "/auth", &[("authorization", &value)]).await;
        assert_eq!((answer.status, answer.header("x-auth-subject")), (200, Some("alice")), "{value:?}");
    }
    // Not exactly one bearer token: the client's fault, 401 invalid_request, nothing echoed.
    for value in [format!("Bearer {t} {t}"), "Bearer".to_owned(), "Bearer    ".to_owned()] {
        let answer = gw.ask("GET", "/auth", &[("authorization", &value)]).await;
        assert_eq!(
            (answer.status, answer.header("x-keyward-reason")),
            (401, Some("invalid_request")),
            "{value:?}"
        );
        assert!(!answer.body.contains(t.as_str()));
    }
    // Another scheme carries no bearer token.
    let answer = gw.ask("GET", "/auth", &[("authorization", "Basic YWxpY2U6cGFzc3dvcmQ=")]).await;
    assert_eq!((answer.status, answer.header("x-keyward-reason")), (401, Some("missing_token")));
    // Query tokens are off by default: a token in the original URI is not read, nor echoed.
    let uri = format!("/orders?access_token={t}");
    let answer = gw.ask("GET", "/auth", &[("x-original-method", "GET"), ("x-original-uri", &uri)]).await;
    assert_eq!((answer.status, answer.header("x-keyward-reason")), (401, Some("missing_token")));
    assert!(
        !answer.body.contains(t.as_str())
            && answer.headers.values().all(|v| !v.as_bytes().windows(t.len()).any(|w| w == t.as_bytes()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_are_believed_only_from_trusted_proxies() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    let t = token(idp.issuer(), &k1, json!({}));
    let uri = format!("/orders?access_token={t}");
    let forwarded =
        [("x-forwarded-method", "GET"), ("x-forwarded-uri", uri.as_str()), ("x-forwarded-host", "shop")];
    let preflight = [
        ("x-original-method", "OPTIONS"),
        ("x-original-uri", "/orders"),
        ("origin", "https://shop.example"),
        ("access-control-request-method", "POST"),
    ];

    let mut config = quick(idp.issuer(), SourceSettings::default());
    config.tokens.query_parameter = true;
    let trusted = start(config.clone()).await;
    assert_eq!(trusted.ask("GET", "/auth", &forwarded).await.status, 200);
    // A CORS preflight, judged on the original method, passes unauthenticated ...
    let answer = trusted.ask("GET", "/auth", &preflight).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-auth-subject"), Some(""));
    // ... but a plain OPTIONS is authenticated.
    let answer =
        trusted.ask("GET", "/auth", &[("x-original-method", "OPTIONS"), ("x-original-uri", "/orders")]).await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.header("x-keyward-reason"), Some("missing_token"));

    // The same requests from a peer outside trusted_proxies: the headers are ignored.
    config.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let untrusted = start(config).await;
    let answer = untrusted.ask("GET", "/auth", &forwarded).await;
    assert_eq!((answer.status, answer.header("x-keyward-reason")), (401, Some("missing_token")));
    let answer = untrusted.ask("GET", "/auth", &preflight).await;
    assert_eq!((answer.status, answer.header("x-keyward-reason")), (401, Some("missing_token")));
    // Its own query still counts (it is the request itself).
    assert_eq!(untrusted.get(&format!("/auth?access_token={t}"), None).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_path_prefix_puts_the_original_path_after_the_policy() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    let mut config = quick(idp.issuer(), SourceSettings::default());
    config.tokens.query_parameter = true;
    config.trusted_proxies = Vec::new();
    let gw = start(config).await;
    let t = token(idp.issuer(), &k1, json!({}));
    let answer = gw.ask("POST", &format!("/auth/default/orders/7?access_token={t}"), &[]).await;
    assert_eq!((answer.status, answer.header("x-auth-subject")), (200, Some("alice")));
    assert_eq!(gw.ask("PUT", "/auth/default/orders/7", &[]).await.status, 401);
    assert_eq!(gw.ask("DELETE", "/auth/missing/orders/7", &[]).await.status, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_request_is_a_cache_hit_and_a_removed_key_empties_its_entries() {
    let (k1, k2) = (key("k1"), key("k2"));
    let idp = idp_with(&[&k1]).await;
    let mut settings = SourceSettings::default();
    settings.removal_grace = Some(Duration::ZERO);
    let gw = start(quick(idp.issuer(), settings)).await;
    let t1 = token(idp.issuer(), &k1, json!({}));

    assert_eq!(gw.get("/auth", Some(&t1)).await.status, 200);
    let first = gw.gateway.cache_stats();
    assert_eq!((first.misses, first.hits, first.entries), (1, 0, 1));
    assert_eq!(gw.get("/auth", Some(&t1)).await.status, 200);
    let second = gw.gateway.cache_stats();
    assert_eq!((second.misses, second.hits), (1, 1));
    // Policies run on every request, cached or not: an unknown policy is still 500.
    assert_eq!(gw.get("/auth/nope", Some(&t1)).await.status, 500);

    // The IdP rotates k1 out; a token signed by k2 makes the gateway fetch the new set.
    idp.publish(&[&k2]);
    let t2 = token(idp.issuer(), &k2, json!({}));
    assert_eq!(gw.get("/auth", Some(&t2)).await.status, 200);
    // Two entries until the removal of k1 reaches the cache; then t1's is gone (and t2's too
    // when its verification straddled the removal: it is not put back, only verified again).
    eventually("the k1 entry is dropped", || gw.gateway.cache_stats().entries <= 1).await;
    // The cached k1 token is no longer let through.
    let answer = gw.get("/auth", Some(&t1)).await;
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(answer.header("x-keyward-reason"), Some("unknown_kid"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_never_fetched_are_503_with_retry_after_never_401() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    idp.provider().go_down();
    let gw = start(quick(idp.issuer(), SourceSettings::default())).await;
    let t = token(idp.issuer(), &k1, json!({}));
    let answer = gw.get("/auth", Some(&t)).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.header("x-keyward-reason"), Some("keys_unavailable"));
    let secs: u64 = answer.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&secs));
    assert!(!answer.body.contains(t.as_str()));
    // A token of another issuer needs no keys to be refused: 401, not 503.
    let foreign = token("https://elsewhere.example", &k1, json!({}));
    let answer = gw.get("/auth", Some(&foreign)).await;
    assert_eq!((answer.status, answer.header("x-keyward-reason")), (401, Some("issuer_mismatch")));
    // Not ready while no issuer a policy needs has keys.
    assert_eq!(gw.get("/readyz", None).await.status, 503);
    assert_eq!(gw.get("/healthz", None).await.status, 200);

    // The IdP comes back: the fetch that went on in the background (or the next) lets it through.
    idp.provider().come_up();
    let mut status = 0;
    for _ in 0..400 {
        status = gw.get("/auth", Some(&t)).await.status;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "while keys are unavailable the answer is 503, never 401");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(gw.get("/readyz", None).await.status, 200);
}

/// Two issuers, named policies with requirements, and path rules for `/auth`.
fn policies_config(a: &str, b: &str) -> Config {
    toml(&format!(
        r#"
[[issuer]]
name = "a"
issuer = "{a}"
audiences = ["{AUD}"]

[[issuer]]
name = "b"
issuer = "{b}"
audiences = ["{AUD}"]

[policy.default]

[policy.reader]
issuers = ["a"]
require = {{ scope = "orders:read" }}

[[rule]]
host = "api.example.com"
path_prefix = "/admin"
methods = ["POST"]
policy = "reader"

[[rule]]
path_prefix = "/public"
policy = "default"

[headers]
"X-Auth-Subject" = "sub"
"X-Auth-Roles" = "realm_access.roles"
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_check_issuers_and_requirements_on_every_request() {
    let (ka, kb) = (key("ka"), key("kb"));
    let (idp_a, idp_b) = (idp_with(&[&ka]).await, idp_with(&[&kb]).await);
    let gw = start(policies_config(idp_a.issuer(), idp_b.issuer())).await;
    let roles = json!({"realm_access": {"roles": ["admin", "ops"]}});
    let reader = token(
        idp_a.issuer(),
        &ka,
        json!({"scope": "openid orders:read", "realm_access": {"roles": ["admin", "ops"]}}),
    );
    let plain = token(idp_a.issuer(), &ka, roles);
    let from_b = token(idp_b.issuer(), &kb, json!({"scope": "orders:read"}));

    let answer = gw.get("/auth/reader", Some(&reader)).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("x-auth-roles"), Some("admin,ops"));
    assert_eq!(answer.header("x-auth-issuer"), None, "[headers] replaces the default mapping");

    // The token is cached now; the requirement still runs.
    for _ in 0..2 {
        let answer = gw.get("/auth/reader", Some(&plain)).await;
        assert_eq!(answer.status, 403);
        assert_eq!(
            answer.header("www-authenticate"),
            Some(r#"Bearer realm="reader", error="insufficient_scope", scope="orders:read""#)
        );
        assert_eq!(answer.header("x-keyward-reason"), Some("insufficient_scope"));
        assert!(!answer.body.contains(plain.as_str()));
    }
    assert!(gw.gateway.cache_stats().hits >= 1);

    // A genuine token of an issuer the policy does not accept: 403, not 401 (a new token from
    // the same IdP would not help, so a client must not be sent to refresh).
    let answer = gw.get("/auth/reader", Some(&from_b)).await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.header("x-keyward-reason"), Some("issuer_not_allowed"));
    assert_eq!(
        answer.header("www-authenticate"),
        Some(r#"Bearer realm="reader", error="insufficient_scope", error_description="issuer_not_allowed""#)
    );
    // The same token is fine where its issuer is accepted: the issuer is picked by `iss`.
    assert_eq!(gw.get("/auth/default/public/x", Some(&from_b)).await.status, 200);

    // An `iss` nobody configured: rejected before any key is fetched.
    let stranger = token("https://stranger.example", &ka, json!({}));
    let answer = gw.get("/auth/default/x", Some(&stranger)).await;
    assert_eq!((answer.status, answer.header("x-keyward-reason")), (401, Some("issuer_mismatch")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_rules_pick_the_policy_of_auth_and_no_match_is_no_rule() {
    let (ka, kb) = (key("ka"), key("kb"));
    let (idp_a, idp_b) = (idp_with(&[&ka]).await, idp_with(&[&kb]).await);
    let gw = start(policies_config(idp_a.issuer(), idp_b.issuer())).await;
    let reader = token(idp_a.issuer(), &ka, json!({"scope": "orders:read"}));
    let plain = token(idp_a.issuer(), &ka, json!({}));
    let ask = |method: &'static str, host: &'static str, uri: &'static str, t: String| {
        let gw = &gw;
        async move {
            let bearer = format!("Bearer {t}");
            let headers = [
                ("authorization", bearer.as_str()),
                ("x-forwarded-method", method),
                ("x-forwarded-host", host),
                ("x-forwarded-uri", uri),
            ];
            let answer = gw.ask("GET", "/auth", &headers).await;
            (answer.status, answer.header("x-keyward-reason").map(str::to_owned))
        }
    };
    assert_eq!(ask("POST", "api.example.com", "/admin/users", reader.clone()).await, (200, None));
    assert_eq!(
        ask("POST", "API.example.com:443", "/admin", plain.clone()).await,
        (403, Some("insufficient_scope".to_owned()))
    );
    // Another method, host or a prefix that only shares letters: no rule matches.
    for (method, host, uri) in [
        ("GET", "api.example.com", "/admin/users"),
        ("POST", "www.example.com", "/admin"),
        ("POST", "api.example.com", "/administrator"),
    ] {
        assert_eq!(
            ask(method, host, uri, reader.clone()).await,
            (403, Some("no_rule".to_owned())),
            "{method} {host}{uri}"
        );
    }
    assert_eq!(ask("GET", "www.example.com", "/public/index.html", plain.clone()).await, (200, None));
    // A path a backend would resolve elsewhere is refused, not matched as written (here it
    // would have matched `/public` and reached `/admin` under the open policy).
    for uri in ["/public/../admin/users", "/public/%2e%2e/admin", "/public/..%2Fadmin", "/./admin"] {
        assert_eq!(
            ask("POST", "api.example.com", uri, plain.clone()).await,
            (401, Some("invalid_request".to_owned())),
            "{uri}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_swaps_policies_keeps_unchanged_key_sets_and_empties_the_cache() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    let base = format!("[[issuer]]\nname = \"a\"\nissuer = \"{}\"\naudiences = [\"{AUD}\"]\n", idp.issuer());
    let gw = start(toml(&base)).await;
    let t = token(idp.issuer(), &k1, json!({}));
    assert_eq!(gw.get("/auth", Some(&t)).await.status, 200);
    assert_eq!(gw.get("/auth/strict", Some(&t)).await.status, 500);
    let fetched = idp.jwks_hits();
    assert_eq!(gw.gateway.cache_stats().entries, 1);

    gw.gateway.reload(toml(&format!("{base}\n[policy.strict]\nrequire = {{ scope = \"x\" }}\n"))).unwrap();
    assert_eq!(gw.gateway.cache_stats().entries, 0, "a reload empties the token cache");
    let answer = gw.get("/auth/strict", Some(&t)).await;
    assert_eq!((answer.status, answer.header("x-keyward-reason")), (403, Some("insufficient_scope")));
    assert_eq!(gw.get("/auth", Some(&t)).await.status, 200);
    assert_eq!(idp.jwks_hits(), fetched, "the unchanged issuer kept its key set");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_waits_at_most_the_deadline_and_the_fetch_goes_on_behind_it() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    // The JWKS answers only after 1.5 s; decisions wait 200 ms at most.
    idp.provider().fault(keyward_idp::FaultMode::Slow(Duration::from_millis(1500)), Duration::from_secs(60));
    let config = toml(&format!(
        "decision_deadline = \"200ms\"\n[[issuer]]\nname = \"a\"\nissuer = \"{}\"\naudiences = [\"{AUD}\"]\n",
        idp.issuer()
    ));
    let gw = start(config).await;
    let t = token(idp.issuer(), &k1, json!({}));
    let answer = gw.get("/auth", Some(&t)).await;
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.header("x-keyward-reason"), Some("keys_unavailable"));
    assert_eq!(answer.header("retry-after"), Some("1"));
    assert_eq!(answer.header("www-authenticate"), None);
    // Nobody asks again, yet the fetch completes: it was never the request's to cancel.
    eventually("the keys arrive without another request", || gw.gateway.readiness().ready).await;
    assert_eq!(gw.get("/auth", Some(&t)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_credentials_and_uris_are_refused_as_the_clients_fault() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    let mut config = quick(idp.issuer(), SourceSettings::default());
    // The original URI is read (for its `access_token`).
    config.tokens.query_parameter = true;
    let gw = start(config).await;
    let huge = format!("{}.{}.{}", "a".repeat(10_000), "b".repeat(10_000), "c".repeat(100));
    let answer = gw.get("/auth", Some(&huge)).await;
    assert_eq!((answer.status, answer.header("x-keyward-reason")), (401, Some("token_too_large")));
    assert!(!answer.body.contains(&huge[..100]));
    let long_uri = format!("/{}", "x".repeat(20_000));
    let answer = gw.ask("GET", "/auth", &[("x-original-uri", &long_uri)]).await;
    assert_eq!((answer.status, answer.header("x-keyward-reason")), (401, Some("invalid_request")));
    assert_eq!(gw.gateway.cache_stats().entries, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish_then_stops_listening() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    idp.provider().fault(keyward_idp::FaultMode::Slow(Duration::from_millis(1000)), Duration::from_secs(60));
    let config = toml(&format!(
        "decision_deadline = \"10s\"\nshutdown_grace = \"10s\"\n[[issuer]]\nname = \"a\"\nissuer = \"{}\"\naudiences = [\"{AUD}\"]\n",
        idp.issuer()
    ));
    let mut gw = start(config).await;
    let t = token(idp.issuer(), &k1, json!({}));
    let request = gw.client.get(format!("{}/auth", gw.base)).bearer_auth(&t).send();
    let in_flight = tokio::spawn(request);
    // The request is waiting for the slow key fetch when the shutdown begins.
    eventually("the request is in flight", || gw.gateway.cache_stats().misses == 1).await;
    let _ = gw.stop.take().unwrap().send(());
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 200, "the request in flight finished");
    gw.serving.take().unwrap().await.unwrap().unwrap();
    assert!(reqwest::get(format!("{}/healthz", gw.base)).await.is_err(), "still listening after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_templated_issuer_accepts_its_tenants_only_next_to_an_exact_one() {
    let (kt, ke) = (key("kt"), key("ke"));
    let (entra, other) = (idp_with(&[&kt]).await, idp_with(&[&ke]).await);
    let (tenant, stranger) = ("72f988bf-86f1-41af-91ab-2d7cd011db47", "0e3f5a4c-1111-4222-8333-944455556666");
    let template = format!("{}/{{tenantid}}/v2.0", entra.issuer());
    let config = toml(&format!(
        r#"
[[issuer]]
name = "entra"
template = "{template}"
tenants = ["{}"]
jwks_uri = "{}"
audiences = ["{AUD}"]

[[issuer]]
name = "other"
issuer = "{}"
audiences = ["{AUD}"]
"#,
        tenant.to_ascii_uppercase(),
        entra.jwks_uri(),
        other.issuer()
    ));
    let gw = start(config).await;
    let iss_of = |tid: &str| template.replace("{tenantid}", tid);
    let good = token(&iss_of(tenant), &kt, json!({"tid": tenant}));
    let answer = gw.get("/auth", Some(&good)).await;
    assert_eq!(
        (answer.status, answer.header("x-auth-issuer")),
        (200, Some(iss_of(tenant).as_str())),
        "{}",
        answer.body
    );
    // A tenant outside the allowlist, or a `tid` that does not match the `iss`: refused.
    let outsider = token(&iss_of(stranger), &kt, json!({"tid": stranger}));
    let answer = gw.get("/auth", Some(&outsider)).await;
    assert_eq!((answer.status, answer.header("x-keyward-reason")), (401, Some("issuer_mismatch")));
    let mismatched = token(&iss_of(tenant), &kt, json!({"tid": stranger}));
    assert_eq!(gw.get("/auth", Some(&mismatched)).await.status, 401);
    // The exact issuer next to it still picks its own keys.
    assert_eq!(gw.get("/auth", Some(&token(other.issuer(), &ke, json!({})))).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_decisions_cache_hits_and_dropped_claim_headers() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    let gw = start(quick(idp.issuer(), SourceSettings::default())).await;
    let crlf = token(idp.issuer(), &k1, json!({"sub": "x\r\nSet-Cookie: a=b"}));
    for _ in 0..2 {
        assert_eq!(gw.get("/auth", Some(&crlf)).await.status, 200);
    }
    let answer = gw.get("/metrics", None).await;
    assert_eq!(answer.status, 200);
    // The recorder is the process's: other tests add to the same series, never take away.
    let value = |series: &str| -> f64 {
        let line = answer
            .body
            .lines()
            .find(|l| l.starts_with(series))
            .unwrap_or_else(|| panic!("no {series} in\n{}", answer.body));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value(r#"keyward_claim_header_dropped_total{header="x-auth-subject"}"#) >= 2.0);
    assert!(value("keyward_token_cache_hits_total") >= 1.0);
    assert!(value(r#"keyward_decisions_total{policy="default",status="200",reason="allowed"}"#) >= 2.0);
    assert!(!answer.body.contains("Set-Cookie"), "a claim value reached a label");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_spike_counts_valid_tokens_served_from_the_cache() {
    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    // Defaults: over 20 % of at least 20 outcomes in a minute.
    let gw = start(quick(idp.issuer(), SourceSettings::default())).await;
    let valid = token(idp.issuer(), &k1, json!({}));
    let wrong_audience = token(idp.issuer(), &k1, json!({"aud": "another-api"}));
    let state = |body: &str| {
        let json: Value = serde_json::from_str(body).unwrap();
        json["issuers"][idp.issuer()]["state"].as_str().unwrap_or_default().to_owned()
    };

    // 100 valid requests (one verification, 99 cache hits) and 20 refusals: 17 % failed.
    for _ in 0..100 {
        assert_eq!(gw.get("/auth", Some(&valid)).await.status, 200);
    }
    for _ in 0..20 {
        assert_eq!(gw.get("/auth", Some(&wrong_audience)).await.status, 401);
    }
    assert_eq!(gw.gateway.cache_stats().hits, 99);
    let ready = gw.get("/readyz", None).await;
    assert_eq!(state(&ready.body), "fresh", "cached valid tokens count: {}", ready.body);

    // 40 more refusals: 60 of 160, 37.5 %, a spike; still ready, the dominant reason named.
    for _ in 0..40 {
        assert_eq!(gw.get("/auth", Some(&wrong_audience)).await.status, 401);
    }
    let ready = gw.get("/readyz", None).await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(state(&ready.body), "degraded", "{}", ready.body);
    let json: Value = serde_json::from_str(&ready.body).unwrap();
    assert!(
        json["issuers"][idp.issuer()]["dominant_failure"].as_str().is_some_and(|r| r.contains("aud")),
        "{json}"
    );
}

/// The verified-token cache keeps an entry min(exp − now, 300 s), judged by the gateway's
/// clock; past it the token is verified again (and refused once expired past the leeway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_tokens_live_until_exp_or_300_seconds_whichever_comes_first() {
    use http::{HeaderValue, Method, Uri};
    use keyward::FixedClock;

    let k1 = key("k1");
    let idp = idp_with(&[&k1]).await;
    let t0 = now();
    let clock = Arc::new(FixedClock::at(t0));
    let gateway = keyward_serve::Gateway::with_clock(
        quick(idp.issuer(), SourceSettings::default()),
        Arc::clone(&clock),
    )
    .unwrap();
    let signed = |exp_in: i64, sub: &str| {
        let claims = json!({"iss": idp.issuer(), "sub": sub, "aud": AUD, "iat": t0, "exp": t0 + exp_in});
        k1.sign_jwt(&claims).unwrap()
    };
    let long = signed(3600, "long");
    let short = signed(100, "short");
    let (peer, uri) = (std::net::IpAddr::from([127, 0, 0, 1]), Uri::from_static("/auth"));
    let ask = |token: &str| {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {token}")).unwrap());
        let gateway = &gateway;
        let uri = uri.clone();
        async move {
            let response = gateway.check(peer, &Method::GET, &uri, &headers).await;
            let reason = response.headers().get("x-keyward-reason").map(|v| v.to_str().unwrap().to_owned());
            (response.status().as_u16(), reason)
        }
    };
    let misses = || gateway.cache_stats().misses;

    assert_eq!(ask(&long).await.0, 200);
    assert_eq!(ask(&short).await.0, 200);
    assert_eq!(misses(), 2);

    // A token with an hour left is kept 300 s, not an hour.
    clock.set(t0 + 299);
    assert_eq!(ask(&long).await.0, 200);
    assert_eq!(misses(), 2, "still cached at +299 s");
    clock.set(t0 + 300);
    assert_eq!(ask(&long).await.0, 200);
    assert_eq!(misses(), 3, "verified again at +300 s");

    // A token with 100 s left is kept until its exp, not 300 s: at +101 it is verified again
    // (still inside the 60 s leeway), and refused once past it.
    clock.set(t0 + 101);
    assert_eq!(ask(&short).await.0, 200);
    assert_eq!(misses(), 4, "not served from the cache past its exp");
    clock.set(t0 + 161);
    assert_eq!(ask(&short).await, (401, Some("expired".to_owned())));
}
