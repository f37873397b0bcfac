//! The configuration as a user meets it: the example file, the quick start, defaults, templated
//! issuers, require trees, and each validation error with its file, line, column and field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;
use keyward::Algorithm;
use keyward::source::SourceSettings;
use keyward_serve::config::{Config, ConfigError, IssuerMatcher, QuickStart};
use keyward_tower::{Requirement, claim_equals, claim_matches, group, not, role, scope};
use serde_json::{Map, Value, json};

/// The smallest valid file: one issuer (lines 1-3).
const BASE: &str = r#"[[issuer]]
issuer = "https://idp.example.com"
audiences = ["orders-api"]
"#;

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/keyward/keyward.toml")
}

fn load(text: &str) -> Config {
    match Config::from_toml_str(text, Some(Path::new("keyward.toml"))) {
        Ok(config) => config,
        Err(e) => panic!("{e}\n--- in ---\n{text}"),
    }
}

fn error(text: &str) -> ConfigError {
    match Config::from_toml_str(text, Some(Path::new("keyward.toml"))) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts the error's place, field and message, and that its text reads
/// `keyward.toml:LINE:COLUMN: FIELD: MESSAGE`.
#[track_caller]
fn expect(text: &str, line: usize, column: usize, field: &str, message: &str) {
    let e = error(text);
    let shown = e.to_string();
    assert_eq!((e.line(), e.column(), e.field()), (Some(line), Some(column), Some(field)), "{shown}");
    assert!(e.message().contains(message), "message {:?} lacks {message:?}", e.message());
    assert_eq!(shown, format!("keyward.toml:{line}:{column}: {field}: {}", e.message()));
}

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn claims(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn requirement_of(config: &Config, policy: &str) -> Requirement {
    let found = config.policies.iter().find(|p| p.name == policy);
    found.and_then(|p| p.require.clone()).unwrap_or_else(|| panic!("no requirement for {policy}"))
}

#[test]
fn the_example_file_loads_with_every_section() {
    let config = Config::load(&example_path()).unwrap();
    assert_eq!(config.path.as_deref(), Some(example_path().as_path()));
    assert_eq!(config.listen, "127.0.0.1:4190".parse::<SocketAddr>().unwrap());
    let names: Vec<&str> = config.issuers.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["corp", "entra"]);
    let corp = &config.issuers[0];
    assert_eq!(corp.matcher, IssuerMatcher::Exact("https://idp.example.com/realms/corp".to_owned()));
    assert_eq!(corp.algorithms, [Algorithm::RS256, Algorithm::ES256]);
    assert_eq!(corp.required_claims, ["sub"]);
    assert_eq!(corp.source.max_ttl, Duration::from_secs(900));
    assert_eq!(corp.source.removal_grace, None);
    let entra = &config.issuers[1];
    assert!(matches!(&entra.matcher, IssuerMatcher::Template { tenants, .. } if tenants.len() == 1));
    let policies: Vec<&str> = config.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(policies, ["default", "orders-read", "orders-admin", "staff"]);
    assert_eq!(
        requirement_of(&config, "orders-admin"),
        scope("orders:write")
            .and(role("admin").or(group("ops")))
            .and(not(claim_equals("acct.suspended", true)))
    );
    assert_eq!(
        requirement_of(&config, "staff"),
        claim_matches("email", r"[a-z0-9._-]+@example\.com").unwrap()
    );
    assert_eq!(config.rules.len(), 2);
    assert_eq!(config.rules[0].host.as_deref(), Some("api.example.com"));
    assert_eq!(config.rules[0].methods, [Method::POST, Method::DELETE]);
    assert_eq!(config.rules[1].path_prefix.as_deref(), Some("/"));
    assert_eq!(config.tokens.cookies, ["access_token"]);
    let headers: Vec<(&str, &str)> =
        config.claim_headers.iter().map(|h| (h.header.as_str(), h.claim.as_str())).collect();
    assert_eq!(
        headers,
        [("x-auth-subject", "sub"), ("x-auth-issuer", "iss"), ("x-auth-roles", "realm_access.roles")]
    );
    assert!(config.reload.watch);
}

#[test]
fn defaults_fill_every_field_not_written() {
    let config = load(BASE);
    assert_eq!(config.listen.to_string(), "127.0.0.1:4190");
    assert_eq!(config.default_policy, "default");
    let issuer = &config.issuers[0];
    assert_eq!(issuer.name, "https://idp.example.com");
    assert_eq!(issuer.jwks_uri, None);
    assert!(issuer.algorithms.is_empty());
    assert_eq!(issuer.leeway, Duration::from_secs(60));
    assert_eq!(issuer.source, SourceSettings::default());
    // The implicit default policy: every issuer, no requirement.
    assert_eq!(config.policies.len(), 1);
    assert_eq!(config.policies[0].name, "default");
    assert_eq!(config.policies[0].issuers, ["https://idp.example.com"]);
    assert_eq!(config.policies[0].require, None);
    assert!(config.rules.is_empty());
    assert!(config.tokens.cookies.is_empty());
    assert!(!config.tokens.query_parameter);
    let headers: Vec<(&str, &str)> =
        config.claim_headers.iter().map(|h| (h.header.as_str(), h.claim.as_str())).collect();
    assert_eq!(headers, [("x-auth-subject", "sub"), ("x-auth-issuer", "iss")]);
    let proxies: Vec<String> = config.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(proxies, ["127.0.0.0/8", "::1/128"]);
    assert!(config.token_cache.enabled);
    assert_eq!(config.token_cache.max_entries, 10_000);
    assert_eq!(config.token_cache.max_ttl, Duration::from_secs(300));
    assert_eq!(config.decision_deadline, Duration::from_secs(1));
    assert!(config.error_description);
    assert!(config.cors_preflight_bypass);
    assert!(config.failure_spike.enabled);
    assert_eq!(config.failure_spike.window, Duration::from_secs(60));
    assert_eq!(config.failure_spike.ratio, 0.2);
    assert_eq!(config.failure_spike.min_requests, 20);
    assert!(config.reload.watch);
    assert_eq!(config.reload.debounce, Duration::from_millis(500));
    assert_eq!(config.shutdown_grace, Duration::from_secs(10));
    // Text without a file has nothing to watch.
    assert!(!Config::from_toml_str(BASE, None).unwrap().reload.watch);
}

fn quick(issuer: &str, audiences: &[&str]) -> QuickStart {
    QuickStart {
        issuer: issuer.to_owned(),
        audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
        source: SourceSettings::default(),
        listen: None,
    }
}

#[test]
fn quick_start_is_one_discovered_issuer_and_the_default_policy() {
    let mut flags = quick("https://idp.example.com", &["orders-api", "orders-api", "billing"]);
    flags.source.max_stale = Duration::from_secs(3600);
    flags.listen = Some("0.0.0.0:8080".parse().unwrap());
    let config = Config::quick_start(flags).unwrap();
    assert_eq!(config.path, None);
    assert_eq!(config.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(config.issuers.len(), 1);
    let issuer = &config.issuers[0];
    assert_eq!(issuer.name, "https://idp.example.com");
    assert_eq!(issuer.matcher, IssuerMatcher::Exact("https://idp.example.com".to_owned()));
    assert_eq!(issuer.jwks_uri, None);
    assert_eq!(issuer.audiences, ["orders-api", "billing"]);
    assert_eq!(issuer.source.max_stale, Duration::from_secs(3600));
    assert_eq!(config.default_policy, "default");
    assert_eq!(config.policies.len(), 1);
    assert_eq!(config.policies[0].issuers, ["https://idp.example.com"]);
    assert!(!config.reload.watch);
    // Everything else as in a file that sets nothing.
    let from_file = Config::from_toml_str(
        "[[issuer]]\nissuer = \"https://idp.example.com\"\naudiences = [\"orders-api\"]\n",
        None,
    )
    .unwrap();
    assert_eq!(config.claim_headers, from_file.claim_headers);
    assert_eq!(config.token_cache, from_file.token_cache);
    assert_eq!(config.decision_deadline, from_file.decision_deadline);
    assert_eq!(Config::quick_start(quick("http://127.0.0.1:9000", &["a"])).unwrap().issuers.len(), 1);
}

#[test]
fn quick_start_errors_name_the_flag() {
    let e = Config::quick_start(quick("http://idp.example.com", &["a"])).unwrap_err();
    assert_eq!((e.field(), e.line()), (Some("--issuer"), None));
    assert!(e.to_string().starts_with("--issuer: \"http://idp.example.com\" is plain http"), "{e}");
    assert!(e.to_string().ends_with("pass --allow-insecure-http"), "the flag's advice names the flag: {e}");
    let mut insecure = quick("http://idp.example.com", &["a"]);
    insecure.source.http.allow_insecure_http = true;
    assert!(Config::quick_start(insecure).is_ok());
    let e = Config::quick_start(quick("https://idp.example.com", &[])).unwrap_err();
    assert_eq!(e.to_string(), "--audience: at least one audience is required");
    let e = Config::quick_start(quick("https://idp.example.com", &[" "])).unwrap_err();
    assert_eq!(e.to_string(), "--audience: an audience cannot be empty");
    let mut ttl = quick("https://idp.example.com", &["a"]);
    ttl.source.min_ttl = Duration::from_secs(3600);
    let e = Config::quick_start(ttl).unwrap_err();
    assert_eq!(e.field(), Some("--min-ttl"));
    assert!(e.message().contains("min_ttl"), "{e}");
}

#[test]
fn a_templated_issuer_needs_tenants_and_a_jwks_uri() {
    let text = r#"[[issuer]]
name = "entra"
template = "https://login.microsoftonline.com/{tenantid}/v2.0"
tenants = ["72F988BF-86F1-41AF-91AB-2D7CD011DB47", "72f988bf-86f1-41af-91ab-2d7cd011db47"]
jwks_uri = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
audiences = ["api://orders"]
"#;
    let config = load(text);
    assert_eq!(
        config.issuers[0].matcher,
        IssuerMatcher::Template {
            template: "https://login.microsoftonline.com/{tenantid}/v2.0".to_owned(),
            tenants: vec!["72f988bf-86f1-41af-91ab-2d7cd011db47".to_owned()],
        }
    );
    let without_tenants = text.replace(
        "tenants = [\"72F988BF-86F1-41AF-91AB-2D7CD011DB47\", \"72f988bf-86f1-41af-91ab-2d7cd011db47\"]\n",
        "",
    );
    expect(&without_tenants, 3, 12, "issuer[0].tenants", "needs `tenants`");
    let not_guid =
        text.replace("\"72F988BF-86F1-41AF-91AB-2D7CD011DB47\", ", "\"contoso.onmicrosoft.com\", ");
    expect(&not_guid, 4, 12, "issuer[0].tenants[0]", "is not a tenant id");
    let empty = text.replace(
        "tenants = [\"72F988BF-86F1-41AF-91AB-2D7CD011DB47\", \"72f988bf-86f1-41af-91ab-2d7cd011db47\"]",
        "tenants = []",
    );
    expect(&empty, 4, 11, "issuer[0].tenants", "at least one tenant id");
    let no_jwks =
        text.replace("jwks_uri = \"https://login.microsoftonline.com/common/discovery/v2.0/keys\"\n", "");
    expect(&no_jwks, 3, 12, "issuer[0].jwks_uri", "needs `jwks_uri`");
    let no_placeholder = text.replace("{tenantid}", "common");
    expect(&no_placeholder, 3, 12, "issuer[0].template", "exactly once");
    let twice = text.replace("/v2.0\"", "/{tenantid}\"");
    expect(&twice, 3, 12, "issuer[0].template", "exactly once");
    let both = text.replace("name = \"entra\"", "issuer = \"https://login.microsoftonline.com/x/v2.0\"");
    expect(&both, 3, 12, "issuer[0].template", "not both");
    let tenants_on_exact = with("tenants = [\"72f988bf-86f1-41af-91ab-2d7cd011db47\"]\n");
    expect(&tenants_on_exact, 4, 11, "issuer[0].tenants", "belongs to a templated issuer");
}

#[test]
fn unknown_fields_are_errors_with_a_hint_when_close() {
    expect(
        &with("audience = [\"x\"]\n"),
        4,
        1,
        "issuer[0].audience",
        "unknown field `audience`: did you mean `audiences`?",
    );
    expect(&with("leway = 30\n"), 4, 1, "issuer[0].leway", "did you mean `leeway`?");
    expect(&format!("listn = \"127.0.0.1:1\"\n{BASE}"), 1, 1, "listn", "did you mean `listen`?");
    expect(
        &with("[token_cache]\nmax_entrys = 5\n"),
        5,
        1,
        "token_cache.max_entrys",
        "did you mean `max_entries`?",
    );
    expect(
        &with("[issuer.keys]\nmin-ttl = \"1m\"\n"),
        5,
        1,
        "issuer[0].keys.min-ttl",
        "did you mean `min_ttl`?",
    );
    let e = error(&with("colour = \"blue\"\n"));
    assert_eq!(e.message(), "unknown field `colour`");
    expect(
        &with("[policy.p]\nrequire = { scopes = \"a\" }\n"),
        5,
        13,
        "policy.p.require.scopes",
        "did you mean `scope`?",
    );
}

#[test]
fn issuer_errors_name_line_column_and_field() {
    expect("listen = \"127.0.0.1:1\"\n", 1, 1, "issuer", "no issuer is configured");
    expect("[issuer]\nissuer = \"https://a.example\"\n", 1, 1, "issuer", "write [[issuer]]");
    expect(
        "[[issuer]]\nissuer = \"https://a.example\"\n",
        1,
        1,
        "issuer[0].audiences",
        "missing `audiences`",
    );
    expect("[[issuer]]\naudiences = [\"a\"]\n", 1, 1, "issuer[0]", "missing `issuer`");
    expect(
        &BASE.replace("[\"orders-api\"]", "[]"),
        3,
        13,
        "issuer[0].audiences",
        "at least one audience is required",
    );
    expect(
        &BASE.replace("[\"orders-api\"]", "\"orders-api\""),
        3,
        13,
        "issuer[0].audiences",
        "expected an array, found a string",
    );
    expect(&BASE.replace("[\"orders-api\"]", "[\"\"]"), 3, 14, "issuer[0].audiences[0]", "cannot be empty");
    let second =
        format!("{BASE}\n[[issuer]]\nname = \"b\"\nissuer = \"https://b.example\"\naudiences = []\n");
    expect(&second, 8, 13, "issuer[1].audiences", "at least one audience is required");
    let same_name = format!(
        "{BASE}name = \"x\"\n[[issuer]]\nname = \"x\"\nissuer = \"https://b.example\"\naudiences = [\"a\"]\n"
    );
    expect(&same_name, 6, 8, "issuer[1].name", "another issuer is already called \"x\"");
    let same_iss = format!(
        "{BASE}[[issuer]]\nname = \"b\"\nissuer = \"https://idp.example.com\"\naudiences = [\"a\"]\n"
    );
    expect(&same_iss, 6, 10, "issuer[1].issuer", "already matches the same `iss`");
    expect(&with("name = \"corp idp\"\n"), 4, 8, "issuer[0].name", "is not a valid name");
    expect(&BASE.replace("https://idp", "http://idp"), 2, 10, "issuer[0].issuer", "plain http");
    assert!(
        Config::from_toml_str(
            &with("[issuer.keys]\nallow_insecure_http = true\n").replace("https://idp", "http://idp"),
            None
        )
        .is_ok()
    );
    assert!(
        Config::from_toml_str(&BASE.replace("https://idp.example.com", "http://127.0.0.1:8080"), None)
            .is_ok()
    );
    expect(
        &BASE.replace("https://idp.example.com", "idp.example.com"),
        2,
        10,
        "issuer[0].issuer",
        "is not a URL",
    );
    expect(&with("jwks_uri = \"http://keys.example.com/jwks\"\n"), 4, 12, "issuer[0].jwks_uri", "plain http");
    expect(
        &with("algorithms = [\"RS256\", \"HS256\"]\n"),
        4,
        24,
        "issuer[0].algorithms[1]",
        "HS256 is never accepted",
    );
    expect(
        &with("algorithms = [\"RS257\"]\n"),
        4,
        15,
        "issuer[0].algorithms[0]",
        "unknown algorithm \"RS257\"; supported: ",
    );
    expect(&with("algorithms = []\n"), 4, 14, "issuer[0].algorithms", "leave `algorithms` out");
    expect(&with("leeway = \"301s\"\n"), 4, 10, "issuer[0].leeway", "5m1s is outside 0ms..=5m");
    expect(&with("leeway = \"1500ms\"\n"), 4, 10, "issuer[0].leeway", "whole seconds");
    assert_eq!(load(&with("leeway = 300\n")).issuers[0].leeway, Duration::from_secs(300));
}

#[test]
fn key_source_settings_are_checked_by_the_library_and_placed_on_the_field() {
    let keys = |body: &str| with(&format!("[issuer.keys]\n{body}\n"));
    let config = load(&keys(
        "min_ttl = \"30s\"\nmax_ttl = \"1h\"\nrefresh_cooldown = \"10s\"\nmax_stale = \"1d\"\nremoval_grace = \"0s\"\ncache_dir = \"/var/cache/keyward\"\nunknown_kid_fetches = 4\nretries = 0",
    ));
    let source = &config.issuers[0].source;
    assert_eq!(source.min_ttl, Duration::from_secs(30));
    assert_eq!(source.max_ttl, Duration::from_secs(3600));
    assert_eq!(source.refresh_cooldown, Duration::from_secs(10));
    assert_eq!(source.max_stale, Duration::from_secs(86_400));
    assert_eq!(source.removal_grace, Some(Duration::ZERO));
    assert_eq!(source.cache_dir.as_deref(), Some(Path::new("/var/cache/keyward")));
    assert_eq!(source.unknown_kid_fetches, 4);
    assert_eq!(source.http.retries, 0);
    expect(
        &keys("min_ttl = \"20m\""),
        5,
        11,
        "issuer[0].keys.min_ttl",
        "min_ttl 1200s is above max_ttl 900s",
    );
    expect(
        &keys("removal_grace = \"1h\""),
        5,
        17,
        "issuer[0].keys.removal_grace",
        "removal_grace 3600s is above max_ttl",
    );
    expect(&keys("max_stale = \"31d\""), 5, 13, "issuer[0].keys.max_stale", "above the maximum of 30 days");
    expect(
        &keys("refresh_cooldown = \"2h\""),
        5,
        20,
        "issuer[0].keys.refresh_cooldown",
        "above its upper bound",
    );
    expect(
        &keys("unknown_kid_fetches = 0"),
        5,
        23,
        "issuer[0].keys.unknown_kid_fetches",
        "0 is outside 1..=1000",
    );
    expect(&keys("max_ttl = \"soon\""), 5, 11, "issuer[0].keys.max_ttl", "invalid duration \"soon\"");
}

#[test]
fn policies_name_existing_issuers_and_valid_trees() {
    let two = format!(
        "{BASE}name = \"corp\"\n[[issuer]]\nname = \"partner\"\nissuer = \"https://partner.example\"\naudiences = [\"a\"]\n"
    );
    let config = load(&format!("{two}[policy.partner-only]\nissuers = [\"partner\"]\n[policy.any]\n"));
    let policy = |name: &str| config.policies.iter().find(|p| p.name == name).unwrap();
    assert_eq!(policy("partner-only").issuers, ["partner"]);
    assert_eq!(policy("any").issuers, ["corp", "partner"]);
    assert_eq!(policy("default").issuers, ["corp", "partner"]);
    expect(
        &format!("{two}[policy.p]\nissuers = [\"corp\", \"partnr\"]\n"),
        10,
        20,
        "policy.p.issuers[1]",
        "no issuer is called \"partnr\": did you mean `partner`?",
    );
    expect(&format!("{two}[policy.p]\nissuers = []\n"), 10, 11, "policy.p.issuers", "at least one issuer");
    expect(&with("[policy.\"orders admin\"]\n"), 4, 9, "policy.orders admin", "is not a valid name");
    expect(&with("[policy]\np = 1\n"), 5, 5, "policy.p", "expected a table, found an integer");
}

#[test]
fn require_trees_are_checked_where_they_are_written() {
    let policy = |tree: &str| with(&format!("[policy.p]\nrequire = {tree}\n"));
    // Column 11 is where the tree starts on line 5.
    expect(&policy("{}"), 5, 11, "policy.p.require", "empty requirement");
    expect(
        &policy("{ scope = \"a\", role = \"b\" }"),
        5,
        26,
        "policy.p.require.role",
        "`scope` and `role` in one table",
    );
    expect(&policy("{ equals = 1 }"), 5, 13, "policy.p.require.equals", "needs `claim = \"<path>\"`");
    expect(&policy("{ claim = \"tid\" }"), 5, 11, "policy.p.require", "needs a test");
    expect(
        &policy("{ claim = \"tid\", equals = \"a\", matches = \"a\" }"),
        5,
        42,
        "policy.p.require.matches",
        "one test per claim",
    );
    expect(
        &policy("{ claim = \"tid\", scope = \"a\" }"),
        5,
        28,
        "policy.p.require.scope",
        "cannot sit beside `claim`",
    );
    expect(
        &policy("{ claim = \"a..b\", equals = 1 }"),
        5,
        21,
        "policy.p.require.claim",
        "is not a claim path",
    );
    expect(
        &policy("{ claim = \"x\", equals = [1] }"),
        5,
        35,
        "policy.p.require.equals",
        "expected a string, number or boolean, found an array",
    );
    expect(
        &policy("{ claim = \"x\", contains = \"\" }"),
        5,
        37,
        "policy.p.require.contains",
        "contained in every string",
    );
    expect(
        &policy("{ all = [ { scope = \"a\" }, { any = [] } ] }"),
        5,
        46,
        "policy.p.require.all[1].any",
        "needs at least one requirement",
    );
    expect(
        &policy("{ not = { scope = \"a b\" } }"),
        5,
        29,
        "policy.p.require.not.scope",
        "a scope is one word",
    );
    expect(
        &policy("{ any = [ { group = \"\" } ] }"),
        5,
        31,
        "policy.p.require.any[0].group",
        "a group name cannot be empty",
    );
    expect(
        &policy("{ claim = \"email\", matches = \"(\" }"),
        5,
        40,
        "policy.p.require.matches",
        "invalid regular expression: unclosed group",
    );
    let long = format!("{{ claim = \"email\", matches = \"{}\" }}", "a".repeat(1025));
    expect(&policy(&long), 5, 40, "policy.p.require.matches", "above the limit of 1024 bytes");
    let deep = format!("{}{{ scope = \"a\" }}{}", "{ not = ".repeat(16), " }".repeat(16));
    let e = error(&policy(&deep));
    assert_eq!(e.field(), Some(format!("policy.p.require{}", ".not".repeat(16)).as_str()));
    assert!(e.message().contains("nested deeper than 16 levels"), "{e}");
    let fifteen = format!("{}{{ scope = \"a\" }}{}", "{ not = ".repeat(15), " }".repeat(15));
    assert!(Config::from_toml_str(&policy(&fifteen), None).is_ok());
    // A table written as `[policy.p.require]` is the same tree.
    let table_form = with("[policy.p.require]\nclaim = \"tid\"\nequals = \"t\"\n");
    assert_eq!(requirement_of(&load(&table_form), "p"), claim_equals("tid", "t"));
}

#[test]
fn require_trees_from_the_file_evaluate_as_documented() {
    let config = load(&with(
        r#"[policy.keycloak-admin]
require = { any = [ { role = "admin" }, { claim = "resource_access.orders-api.roles", contains = "admin" } ] }
[policy.entra-writer]
require = { all = [ { scope = "Orders.Write" }, { claim = "tid", equals = "72f988bf-86f1-41af-91ab-2d7cd011db47" } ] }
[policy.entra-app]
require = { all = [ { role = "Orders.Admin" }, { not = { claim = "idtyp", equals = "user" } } ] }
[policy.okta-ops]
require = { group = "ops" }
[policy.staff]
require = { all = [ { claim = "email", matches = '[a-z.]+@example\.com' }, { claim = "email_verified", equals = true }, { claim = "acr", equals = 2 } ] }
"#,
    ));
    let check = |policy: &str, value: Value| requirement_of(&config, policy).holds(&claims(value));
    assert!(check("keycloak-admin", json!({"realm_access": {"roles": ["admin"]}})));
    assert!(check("keycloak-admin", json!({"resource_access": {"orders-api": {"roles": ["admin"]}}})));
    assert!(!check("keycloak-admin", json!({"resource_access": {"billing": {"roles": ["admin"]}}})));
    let tid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    assert!(check("entra-writer", json!({"scp": "Orders.Read Orders.Write", "tid": tid})));
    assert!(!check(
        "entra-writer",
        json!({"scp": "Orders.Write", "tid": "00000000-0000-0000-0000-000000000000"})
    ));
    assert!(check("entra-app", json!({"roles": ["Orders.Admin"], "idtyp": "app"})));
    assert!(check("entra-app", json!({"roles": ["Orders.Admin"]})));
    assert!(!check("entra-app", json!({"roles": ["Orders.Admin"], "idtyp": "user"})));
    assert!(check("okta-ops", json!({"groups": ["Everyone", "ops"]})));
    assert!(!check("okta-ops", json!({"groups": ["Everyone"]})));
    assert!(check("staff", json!({"email": "ann.lee@example.com", "email_verified": true, "acr": 2})));
    assert!(check("staff", json!({"email": "ann.lee@example.com", "email_verified": true, "acr": 2.0})));
    assert!(!check("staff", json!({"email": "ann@example.com.evil", "email_verified": true, "acr": 2})));
    assert!(!check("staff", json!({"email": "ann.lee@example.com", "email_verified": "true", "acr": 2})));
    let written = requirement_of(&config, "entra-app").to_string();
    assert_eq!(written, "(role Orders.Admin and not claim idtyp equals \"user\")");
}

#[test]
fn rules_name_policies_with_valid_methods_hosts_and_prefixes() {
    let rule = |body: &str| with(&format!("[policy.admin]\n[[rule]]\n{body}\n"));
    let config = load(&rule(
        "host = \"API.Example.com\"\npath_prefix = \"/admin/\"\nmethods = [\"POST\", \"PURGE\"]\npolicy = \"admin\"",
    ));
    assert_eq!(config.rules[0].host.as_deref(), Some("api.example.com"));
    assert_eq!(config.rules[0].path_prefix.as_deref(), Some("/admin"));
    assert_eq!(config.rules[0].methods, [Method::POST, Method::from_bytes(b"PURGE").unwrap()]);
    assert_eq!(load(&rule("policy = \"default\"")).rules[0].policy, "default");
    expect(
        &rule("policy = \"admn\""),
        6,
        10,
        "rule[0].policy",
        "no policy is called \"admn\": did you mean `admin`?",
    );
    expect(&rule("path_prefix = \"/\""), 5, 1, "rule[0].policy", "names the `policy`");
    expect(
        &rule("policy = \"admin\"\nmethods = [\"GET\", \"post\"]"),
        7,
        19,
        "rule[0].methods[1]",
        "did you mean `POST`?",
    );
    expect(
        &rule("policy = \"admin\"\nmethods = [\"GE T\"]"),
        7,
        12,
        "rule[0].methods[0]",
        "is not an HTTP method",
    );
    expect(
        &rule("policy = \"admin\"\npath_prefix = \"admin\""),
        7,
        15,
        "rule[0].path_prefix",
        "starts with `/` (did you mean \"/admin\"?)",
    );
    expect(&rule("policy = \"admin\"\npath_prefix = \"/a?b=1\""), 7, 15, "rule[0].path_prefix", "no query");
    expect(&rule("policy = \"admin\"\nhost = \"api.example.com:443\""), 7, 8, "rule[0].host", "has no port");
    expect(
        &rule("policy = \"admin\"\nhost = \"https://api.example.com\""),
        7,
        8,
        "rule[0].host",
        "without scheme or path",
    );
    expect(&rule("policy = \"admin\"\nhost = \"api example\""), 7, 8, "rule[0].host", "is not a host name");
}

#[test]
fn the_default_policy_exists_or_is_the_implicit_one() {
    let config =
        load(&format!("default_policy = \"strict\"\n{BASE}[policy.strict]\nrequire = {{ scope = \"a\" }}\n"));
    assert_eq!(config.default_policy, "strict");
    // Naming another default does not open an implicit `default` as well.
    assert!(config.policies.iter().all(|p| p.name != "default"));
    expect(
        &format!("default_policy = \"strcit\"\n{BASE}[policy.strict]\n"),
        1,
        18,
        "default_policy",
        "no policy is called \"strcit\": did you mean `strict`?",
    );
    let explicit = load(&with("[policy.default]\nrequire = { scope = \"a\" }\n"));
    assert_eq!(explicit.policies.len(), 1);
    assert_eq!(explicit.policies[0].require, Some(scope("a")));
}

#[test]
fn claim_headers_replace_the_default_and_never_take_a_header_the_gateway_owns() {
    let headers = |body: &str| with(&format!("[headers]\n{body}\n"));
    let config = load(&headers("\"X-User\" = \"preferred_username\"\n\"X-Tenant\" = \"tid\""));
    let mapped: Vec<(&str, &str)> =
        config.claim_headers.iter().map(|h| (h.header.as_str(), h.claim.as_str())).collect();
    assert_eq!(mapped, [("x-user", "preferred_username"), ("x-tenant", "tid")]);
    assert!(load(&headers("")).claim_headers.is_empty());
    for owned in [
        "Authorization",
        "cookie",
        "Host",
        "Content-Length",
        "Connection",
        "Transfer-Encoding",
        "WWW-Authenticate",
        "Retry-After",
        "X-Keyward-Reason",
        "X-Forwarded-User",
        "X-Original-URI",
    ] {
        expect(
            &headers(&format!("\"{owned}\" = \"sub\"")),
            5,
            1,
            &format!("headers.{owned}"),
            "owned by the proxy or the gateway",
        );
    }
    expect(&headers("\"X-User\" = \"sub\"\n\"x-user\" = \"email\""), 6, 1, "headers.x-user", "mapped twice");
    expect(&headers("\"X User\" = \"sub\""), 5, 1, "headers.X User", "not a valid header name");
    expect(&headers("\"X-User\" = \"a..b\""), 5, 12, "headers.X-User", "not a claim path");
    expect(&headers("\"X-User\" = 1"), 5, 12, "headers.X-User", "expected a string, found an integer");
}

#[test]
fn token_sources_proxies_and_bounds() {
    let config = load(&format!(
        "trusted_proxies = [\"10.0.0.0/8\", \"192.168.1.7\", \"fd00::/8\"]\n{BASE}[token]\ncookies = [\"__Host-token\"]\nquery_parameter = true\n"
    ));
    let proxies: Vec<String> = config.trusted_proxies.iter().map(ToString::to_string).collect();
    assert_eq!(proxies, ["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]);
    assert_eq!(config.tokens.cookies, ["__Host-token"]);
    assert!(config.tokens.query_parameter);
    assert!(load(&format!("trusted_proxies = []\n{BASE}")).trusted_proxies.is_empty());
    expect(
        &format!("trusted_proxies = [\"10.0.0.0/33\"]\n{BASE}"),
        1,
        20,
        "trusted_proxies[0]",
        "neither an IP address nor a CIDR range",
    );
    expect(&with("[token]\ncookies = [\"a;b\"]\n"), 5, 12, "token.cookies[0]", "is not a cookie name");
    expect(&format!("listen = \"localhost\"\n{BASE}"), 1, 10, "listen", "not an address with a port");
    let top = |line: &str| format!("{line}\n{BASE}");
    expect(&top("decision_deadline = \"5ms\""), 1, 21, "decision_deadline", "5ms is outside 10ms..=30s");
    expect(&top("decision_deadline = \"31s\""), 1, 21, "decision_deadline", "31s is outside 10ms..=30s");
    expect(&top("shutdown_grace = \"1.5s\""), 1, 18, "shutdown_grace", "invalid duration \"1.5s\"");
    expect(&top("shutdown_grace = true"), 1, 18, "shutdown_grace", "expected a duration");
    expect(
        &top("error_description = \"yes\""),
        1,
        21,
        "error_description",
        "expected true or false, found a string",
    );
    let section = |s: &str| with(&format!("{s}\n"));
    expect(
        &section("[token_cache]\nmax_entries = 10000001"),
        5,
        15,
        "token_cache.max_entries",
        "outside 1..=10000000",
    );
    expect(&section("[token_cache]\nmax_entries = 0"), 5, 15, "token_cache.max_entries", "enabled = false");
    expect(
        &section("[token_cache]\nmax_entries = -1"),
        5,
        15,
        "token_cache.max_entries",
        "not a non-negative integer",
    );
    expect(&section("[token_cache]\nmax_ttl = \"0s\""), 5, 11, "token_cache.max_ttl", "outside 1s..=1h");
    expect(
        &section("[token_cache]\nmax_ttl = \"61m\""),
        5,
        11,
        "token_cache.max_ttl",
        "1h1m is outside 1s..=1h",
    );
    expect(&section("[failure_spike]\nratio = 0"), 5, 9, "failure_spike.ratio", "outside (0, 1]");
    expect(&section("[failure_spike]\nratio = 1.5"), 5, 9, "failure_spike.ratio", "outside (0, 1]");
    expect(&section("[failure_spike]\nratio = nan"), 5, 9, "failure_spike.ratio", "finite number");
    expect(&section("[failure_spike]\nwindow = \"2h\""), 5, 10, "failure_spike.window", "outside 1s..=1h");
    expect(
        &section("[failure_spike]\nmin_requests = 0"),
        5,
        16,
        "failure_spike.min_requests",
        "outside 1..=1000000000",
    );
    expect(&section("[reload]\ndebounce = \"2m\""), 5, 12, "reload.debounce", "outside 0ms..=1m");
    let bounds = load(&section(
        "[failure_spike]\nratio = 1\nwindow = \"1h\"\n[token_cache]\nmax_entries = 10000000\nmax_ttl = \"1h\"\nenabled = false\n[reload]\nwatch = false\ndebounce = 0",
    ));
    assert_eq!(bounds.failure_spike.ratio, 1.0);
    assert_eq!(bounds.token_cache.max_entries, 10_000_000);
    assert!(!bounds.token_cache.enabled);
    assert!(!bounds.reload.watch);
    assert_eq!(bounds.reload.debounce, Duration::ZERO);
}

#[test]
fn durations_take_units_sums_and_bare_seconds() {
    for (text, secs, millis) in [
        ("\"500ms\"", 0, 500),
        ("\"30s\"", 30, 0),
        ("\"5m\"", 300, 0),
        ("\"1h\"", 3600, 0),
        ("\"1h30m\"", 5400, 0),
        ("90", 90, 0),
        ("\"90\"", 90, 0),
    ] {
        let config = load(&with(&format!("[issuer.keys]\nmax_stale = {text}\n")));
        assert_eq!(
            config.issuers[0].source.max_stale,
            Duration::from_secs(secs) + Duration::from_millis(millis),
            "{text}"
        );
    }
    expect(
        &format!("shutdown_grace = 99999999999999999999\n{BASE}"),
        1,
        18,
        "shutdown_grace",
        "not a number of seconds within 30 days",
    );
}

#[test]
fn toml_syntax_errors_have_a_place() {
    let e = error("[[issuer]]\nissuer = https://idp.example.com\n");
    assert_eq!((e.line(), e.column(), e.field()), (Some(2), Some(10), Some("issuer[0].issuer")));
    assert!(e.to_string().starts_with("keyward.toml:2:10: issuer[0].issuer: invalid TOML: "), "{e}");
    let e = error(&with("[policy.p]\nrequire = { all = [ { scope = } ] }\n"));
    assert_eq!((e.line(), e.field()), (Some(5), Some("policy.p.require.all[0].scope")));
    let e = error("listen = \"127.0.0.1:1\"\n[[issuer]\n");
    assert_eq!((e.line(), e.column(), e.field()), (Some(2), Some(10), None), "{e}");
    let e = error(&format!("{BASE}audiences = [\"again\"]\n"));
    assert_eq!((e.line(), e.column()), (Some(4), Some(1)));
    assert!(e.message().contains("duplicate key"), "{e}");
}

#[test]
fn files_are_read_within_a_bound_and_named_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.toml");
    let missing = Config::load(&path).unwrap_err();
    assert_eq!(missing.file(), Some(path.display().to_string().as_str()));
    assert!(missing.to_string().starts_with(&format!("{}: cannot open: ", path.display())), "{missing}");
    let mut big = with("# padding\n");
    big.push_str(&"#".repeat(1024 * 1024));
    std::fs::write(&path, &big).unwrap();
    let too_large = Config::load(&path).unwrap_err();
    assert_eq!(
        too_large.to_string(),
        format!("{}: the file is larger than the limit of 1048576 bytes (1 MiB)", path.display())
    );
    std::fs::write(&path, format!("\"X\" = 1\n{BASE}")).unwrap();
    let placed = Config::load(&path).unwrap_err();
    assert_eq!(placed.to_string(), format!("{}:1:1: X: unknown field `X`", path.display()));
    std::fs::write(&path, b"# keyward\nlisten = \"\xff\"\n").unwrap();
    assert_eq!(
        Config::load(&path).unwrap_err().to_string(),
        format!("{}:2:11: not UTF-8 text (an invalid byte at offset 20)", path.display())
    );
    std::fs::write(&path, BASE).unwrap();
    assert_eq!(Config::load(&path).unwrap().path.as_deref(), Some(path.as_path()));
}

/// Issuers the documentation's fragments refer to (`corp` and the Entra template `entra`).
const DOC_ISSUERS: &str = r#"[[issuer]]
name = "corp"
issuer = "https://idp.example.com/realms/corp"
audiences = ["orders-api"]

[[issuer]]
name = "entra"
template = "https://login.microsoftonline.com/{tenantid}/v2.0"
tenants = ["72f988bf-86f1-41af-91ab-2d7cd011db47"]
jwks_uri = "https://login.microsoftonline.com/common/discovery/v2.0/keys"
audiences = ["api://orders"]
"#;

#[test]
fn every_toml_example_in_the_documentation_loads() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let text = std::fs::read_to_string(docs).unwrap();
    let blocks: Vec<&str> =
        text.split("```toml\n").skip(1).filter_map(|rest| rest.split("```").next()).collect();
    assert!(blocks.len() >= 4, "found {} toml blocks", blocks.len());
    for block in blocks {
        // Fragments get the issuers (and, for rules, the policies) they name.
        let mut file = if block.contains("[[issuer]]") { String::new() } else { DOC_ISSUERS.to_owned() };
        file.push_str(block);
        if block.contains("[[rule]]") {
            file.push_str("\n[policy.orders-admin]\n[policy.orders-read]\n");
        }
        if let Err(e) = Config::from_toml_str(&file, None) {
            panic!("{e}\n--- in ---\n{file}");
        }
    }
}

#[test]
fn a_policy_defined_twice_is_a_toml_error_at_the_second() {
    let e = error(&with("[policy.admin]\n[policy.ops]\n[policy.\"admin\"]\n"));
    // The column of the repeated name.
    assert_eq!((e.line(), e.column()), (Some(6), Some(9)));
    assert!(e.message().starts_with("invalid TOML: "), "{e}");
}
