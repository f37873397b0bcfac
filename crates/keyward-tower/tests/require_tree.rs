//! The policy language: `all` / `any` / `not` trees over scopes, roles, groups and claim tests,
//! evaluated against claim maps as `keyward serve` and the `require` layer see them.

use keyward_tower::{
    ClaimTest, ClaimValue, Pattern, Requirement, claim_at, claim_contains, claim_equals, claim_matches,
    group, not, role, scope,
};
use serde_json::{Map, Value, json};

fn claims(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn holds(requirement: &Requirement, value: Value) -> bool {
    requirement.holds(&claims(value))
}

#[test]
fn scopes_come_from_scope_scp_and_scopes() {
    let wanted = scope("orders:write");
    assert!(holds(&wanted, json!({"scope": "openid orders:write"})));
    assert!(holds(&wanted, json!({"scp": "orders:write"})));
    assert!(holds(&wanted, json!({"scp": ["orders:read", "orders:write"]})));
    assert!(holds(&wanted, json!({"scopes": ["orders:write"]})));
    assert!(!holds(&wanted, json!({"scope": "orders:writer"})));
    assert!(!holds(&wanted, json!({})));
}

#[test]
fn roles_come_from_roles_realm_access_and_the_audiences_resource_access() {
    let admin = role("admin");
    assert!(holds(&admin, json!({"roles": ["admin"]})));
    assert!(holds(&admin, json!({"realm_access": {"roles": ["user", "admin"]}})));
    assert!(holds(&admin, json!({"aud": "api", "resource_access": {"api": {"roles": ["admin"]}}})));
    // A client the token is not for does not lend its roles.
    assert!(!holds(&admin, json!({"aud": "api", "resource_access": {"other": {"roles": ["admin"]}}})));
}

#[test]
fn groups_come_from_the_groups_claim_whole() {
    let ops = group("ops");
    assert!(holds(&ops, json!({"groups": ["dev", "ops"]})));
    assert!(holds(&ops, json!({"groups": "ops"})));
    assert!(!holds(&ops, json!({"groups": ["dev"]})));
    assert!(!holds(&ops, json!({"group": ["ops"]})));
    // A string is one group: names with spaces are not split.
    assert!(holds(&group("Domain Admins"), json!({"groups": "Domain Admins"})));
    assert!(!holds(&group("Admins"), json!({"groups": "Domain Admins"})));
}

#[test]
fn equals_compares_strings_numbers_and_booleans_as_json() {
    assert!(holds(&claim_equals("tid", "t-1"), json!({"tid": "t-1"})));
    assert!(!holds(&claim_equals("tid", "t-1"), json!({"tid": "T-1"})));
    assert!(holds(&claim_equals("acct.suspended", true), json!({"acct": {"suspended": true}})));
    assert!(!holds(&claim_equals("acct.suspended", true), json!({"acct": {"suspended": "true"}})));
    assert!(holds(&claim_equals("level", 3_i64), json!({"level": 3})));
    assert!(holds(&claim_equals("level", 3_i64), json!({"level": 3.0})));
    assert!(holds(&claim_equals("ratio", ClaimValue::from_f64(0.5).unwrap()), json!({"ratio": 0.5})));
    assert!(!holds(&claim_equals("level", 3_i64), json!({"level": "3"})));
    // An array never equals a scalar: that is `contains`.
    assert!(!holds(&claim_equals("roles", "admin"), json!({"roles": ["admin"]})));
    assert!(!holds(&claim_equals("big", u64::MAX), json!({"big": -1})));
    assert!(holds(&claim_equals("big", u64::MAX), json!({"big": u64::MAX})));
}

#[test]
fn dot_paths_walk_objects_and_a_missing_path_is_unmet() {
    let nested = json!({"resource_access": {"api": {"roles": ["reader"]}}});
    assert!(holds(&claim_contains("resource_access.api.roles", "reader"), nested.clone()));
    assert!(!holds(&claim_contains("resource_access.web.roles", "reader"), nested.clone()));
    assert!(!holds(&claim_contains("resource_access.api.roles.x", "reader"), nested));
    assert!(!holds(&claim_equals("a.b", 1_i64), json!({"a": [{"b": 1}]})));
    // Namespaced custom claims (dots in the name) are found by their whole name…
    let namespaced = claims(json!({"https://example.com/tier": "gold"}));
    assert_eq!(claim_at(&namespaced, "https://example.com/tier"), Some(&json!("gold")));
    assert!(claim_equals("https://example.com/tier", "gold").holds(&namespaced));
    // …but the nested walk comes first: a flat look-alike cannot mask a nested value.
    let both = claims(json!({"acct.suspended": false, "acct": {"suspended": true}}));
    assert_eq!(claim_at(&both, "acct.suspended"), Some(&json!(true)));
    assert!(!not(claim_equals("acct.suspended", true)).holds(&both));
}

#[test]
fn contains_is_element_of_an_array_or_substring_of_a_string() {
    assert!(holds(&claim_contains("amr", "mfa"), json!({"amr": ["pwd", "mfa"]})));
    assert!(!holds(&claim_contains("amr", "mf"), json!({"amr": ["pwd", "mfa"]})));
    assert!(holds(&claim_contains("levels", 2_i64), json!({"levels": [1, 2]})));
    assert!(holds(&claim_contains("email", "@example.com"), json!({"email": "a@example.com"})));
    // The documented caveat: a substring test is loose.
    assert!(holds(&claim_contains("title", "admin"), json!({"title": "not-admin"})));
    assert!(!holds(&claim_contains("n", 1_i64), json!({"n": 1})));
    assert!(!holds(&claim_contains("obj", "a"), json!({"obj": {"a": 1}})));
}

#[test]
fn matches_is_anchored_to_the_whole_value() {
    let staff = claim_matches("email", r"[a-z.]+@example\.com").unwrap();
    assert!(holds(&staff, json!({"email": "ann.lee@example.com"})));
    assert!(!holds(&staff, json!({"email": "ann@example.com.evil.net"})));
    assert!(!holds(&staff, json!({"email": "mallory+ann@example.com"})));
    // Alternation is anchored as a whole, not per branch.
    let either = claim_matches("env", "prod|staging").unwrap();
    assert!(holds(&either, json!({"env": "prod"})));
    assert!(!holds(&either, json!({"env": "prod-old"})));
    assert!(!holds(&either, json!({"env": "pre-staging"})));
    // Arrays: any string element; other types never match.
    assert!(holds(&either, json!({"env": ["dev", "staging"]})));
    assert!(!holds(&claim_matches("n", "[0-9]+").unwrap(), json!({"n": 42})));
    assert!(!holds(&either, json!({})));
}

#[test]
fn patterns_are_bounded_and_compared_by_text() {
    let long = "a".repeat(Pattern::MAX_LEN + 1);
    assert!(Pattern::new(&long).unwrap_err().to_string().contains("above the limit of 1024 bytes"));
    let huge = Pattern::new(r"(?:\w{200}){200}").unwrap_err();
    assert!(huge.to_string().contains("compiles to more than"), "{huge}");
    let invalid = Pattern::new("(").unwrap_err();
    assert_eq!(invalid.to_string(), "invalid regular expression: unclosed group");
    assert_eq!(Pattern::new("a+").unwrap(), Pattern::new("a+").unwrap());
    assert_ne!(Pattern::new("a+").unwrap(), Pattern::new("a{1,}").unwrap());
    assert_eq!(Pattern::new("a+").unwrap().as_str(), "a+");
}

#[test]
fn not_inverts_and_a_missing_claim_makes_its_negation_hold() {
    let unsuspended = not(claim_equals("acct.suspended", true));
    assert!(holds(&unsuspended, json!({"acct": {"suspended": false}})));
    assert!(holds(&unsuspended, json!({})));
    assert!(!holds(&unsuspended, json!({"acct": {"suspended": true}})));
}

fn orders_admin() -> Requirement {
    scope("orders:write").and(role("admin").or(group("ops"))).and(not(claim_equals("acct.suspended", true)))
}

#[test]
fn trees_combine_all_any_and_not() {
    let admin = orders_admin();
    let base = json!({"scope": "orders:write", "groups": ["ops"]});
    assert!(holds(&admin, base));
    assert!(holds(&admin, json!({"scp": ["orders:write"], "roles": ["admin"]})));
    assert!(!holds(&admin, json!({"scope": "orders:write"})));
    assert!(!holds(&admin, json!({"groups": ["ops"]})));
    assert!(!holds(&admin, json!({"scope": "orders:write", "groups": ["ops"], "acct": {"suspended": true}})));
}

#[test]
fn unmet_names_required_scopes_only_and_reads_as_a_sentence() {
    let tree = orders_admin().and(not(scope("orders:delete"))).and(scope("orders:write"));
    assert_eq!(tree.scopes(), vec!["orders:write"]);
    let unmet = tree.check(&claims(json!({"scope": "orders:read"}))).unwrap_err();
    assert_eq!(unmet.scope, "orders:write");
    assert_eq!(
        unmet.detail,
        "requires (scope orders:write and (role admin or group ops) and not claim acct.suspended equals true \
         and not scope orders:delete and scope orders:write)"
    );
    let matches = claim_matches("email", r".+@example\.com").unwrap();
    assert_eq!(matches.to_string(), r#"claim email matches ".+@example\\.com""#);
    assert_eq!(claim_contains("amr", "mfa").to_string(), r#"claim amr contains "mfa""#);
    assert_eq!(claim_equals("level", 3_i64).to_string(), "claim level equals 3");
}

#[test]
fn requirements_compare_and_clone_structurally() {
    let a = orders_admin().and(claim_matches("email", "x.+").unwrap());
    assert_eq!(a.clone(), a);
    assert_ne!(a, orders_admin());
    let built = Requirement::Claim { path: "tid".to_owned(), test: ClaimTest::Equals(ClaimValue::from("t")) };
    assert_eq!(built, claim_equals("tid", "t"));
    assert_eq!(ClaimValue::from_json(&json!([1])), None);
    assert_eq!(ClaimValue::from_f64(f64::NAN), None);
}
