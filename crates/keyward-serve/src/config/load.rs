//! Reading the configuration: the TOML file (`Config::load`, `Config::from_toml_str`) and the
//! quick-start flags (`Config::quick_start`). Every field is checked here, with its place in the
//! file, so the runtime never meets a value it cannot use.
//!
//! The file is parsed into toml's spanned document tree and read by hand (not by serde derive):
//! that way every error, unknown fields included, names the field path and points at the
//! offending text.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderName, Method};
use ipnet::IpNet;
use keyward::source::SourceSettings;
use keyward::{Algorithm, MAX_LEEWAY_SECS};
use keyward_tower::{ClaimTest, ClaimValue, Pattern, Requirement};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::duration::{parse_duration, seconds, show};
use super::error::ConfigError;
use super::model::{
    ClaimHeader, Config, IssuerConfig, IssuerMatcher, PathRule, PolicyConfig, ReloadConfig, SpikeConfig,
    TokenCacheConfig, TokenSources,
};

/// The largest configuration file read: 1 MiB.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;
/// Where the gateway listens unless told otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 1)), 4190);
/// The policy of `/auth` unless `default_policy` says otherwise.
pub const DEFAULT_POLICY: &str = "default";
/// The deepest `require` tree accepted (an `all` inside an `any` is depth 2).
pub const MAX_REQUIRE_DEPTH: usize = 16;
/// The most entries the verified-token cache may be given.
pub const MAX_TOKEN_CACHE_ENTRIES: u64 = 10_000_000;

/// Headers the gateway or the proxy owns: mapping a claim onto one would break the protocol
/// or let a token steer the proxy. `x-original-*` and `x-forwarded-*` (the request facts the
/// gateway trusts) and `x-keyward-*` are refused by prefix.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "www-authenticate",
    "proxy-authenticate",
    "retry-after",
    "cache-control",
    "location",
    "forwarded",
    "via",
    "date",
    "server",
];
const RESERVED_HEADER_PREFIXES: &[&str] = &["x-keyward-", "x-original-", "x-forwarded-"];

/// The quick start: `keyward serve --issuer ISS --audience AUD [--listen ADDR]` with the
/// key-source flags; one issuer found by discovery, the implicit `default` policy, every other
/// field at its default.
#[derive(Clone, Debug)]
pub struct QuickStart {
    /// The issuer (`--issuer`): its `iss` value, and where discovery starts.
    pub issuer: String,
    /// Accepted audiences (`--audience`, repeatable; at least one).
    pub audiences: Vec<String>,
    /// Key-source settings (`--min-ttl`, `--max-ttl`, `--refresh-cooldown`, `--max-stale`,
    /// `--removal-grace`, `--allow-insecure-http`, …).
    pub source: SourceSettings,
    /// `--listen`; `None`: `127.0.0.1:4190`.
    pub listen: Option<SocketAddr>,
}

impl Config {
    /// Reads and validates the TOML file at `path` (at most 1 MiB).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let name = path.display().to_string();
        let file =
            std::fs::File::open(path).map_err(|e| ConfigError::io(&name, format!("cannot open: {e}"), e))?;
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| ConfigError::io(&name, format!("cannot read: {e}"), e))?;
        if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_CONFIG_BYTES {
            return Err(ConfigError::unplaced(
                Some(&name),
                None,
                format!("the file is larger than the limit of {MAX_CONFIG_BYTES} bytes (1 MiB)"),
            ));
        }
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => {
                // Placed like any other error: the line and column where the valid text ends.
                let valid = e.utf8_error().valid_up_to();
                let bytes = e.into_bytes();
                let before = std::str::from_utf8(bytes.get(..valid).unwrap_or_default()).unwrap_or_default();
                let message = format!("not UTF-8 text (an invalid byte at offset {valid})");
                return Err(ConfigError::at(Some(&name), before, &(valid..valid), "", message));
            }
        };
        Self::from_toml_str(&text, Some(path))
    }

    /// Validates a configuration given as TOML text; `path` is where it came from (named in
    /// errors, and re-read on reload).
    pub fn from_toml_str(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
        let name = path.map(|p| p.display().to_string());
        let reader = Reader { file: name.as_deref(), text };
        if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_CONFIG_BYTES {
            return Err(ConfigError::unplaced(
                reader.file,
                None,
                format!("the configuration is larger than the limit of {MAX_CONFIG_BYTES} bytes (1 MiB)"),
            ));
        }
        let document = DeTable::parse(text).map_err(|e| reader.syntax(&e))?;
        let root_span = document.span();
        let root = Table::new(&reader, String::new(), root_span, document.get_ref(), ROOT_KEYS)?;
        reader.config(&root, path.map(Path::to_path_buf))
    }

    /// The configuration of the quick-start flags.
    pub fn quick_start(quick: QuickStart) -> Result<Config, ConfigError> {
        let flag = |flag: &str, message: String| ConfigError::unplaced(None, Some(flag), message);
        let allow_insecure = quick.source.http.allow_insecure_http;
        // The file's advice names the file's setting; here the flag is what the user can set.
        check_url(&quick.issuer, allow_insecure).map_err(|m| {
            flag(
                "--issuer",
                m.replace("set allow_insecure_http = true in [issuer.keys]", "pass --allow-insecure-http"),
            )
        })?;
        if quick.audiences.is_empty() {
            return Err(flag("--audience", "at least one audience is required".to_owned()));
        }
        let mut audiences: Vec<String> = Vec::new();
        for audience in quick.audiences {
            if audience.trim().is_empty() {
                return Err(flag("--audience", "an audience cannot be empty".to_owned()));
            }
            if !audiences.contains(&audience) {
                audiences.push(audience);
            }
        }
        quick.source.validate().map_err(|e| flag(&source_flag(&e.to_string()), e.to_string()))?;
        let issuer = IssuerConfig {
            name: quick.issuer.clone(),
            matcher: IssuerMatcher::Exact(quick.issuer),
            jwks_uri: None,
            audiences,
            algorithms: Vec::new(),
            required_claims: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            source: quick.source,
        };
        let mut config = defaults(None);
        config.listen = quick.listen.unwrap_or(DEFAULT_LISTEN);
        config.policies = vec![implicit_default(std::slice::from_ref(&issuer))];
        config.issuers = vec![issuer];
        config.reload.watch = false;
        Ok(config)
    }
}

/// The flag naming the key-source setting an error of `SourceSettings::validate` is about.
fn source_flag(message: &str) -> String {
    let first = message.split([' ', ':']).next().unwrap_or_default();
    match first {
        "min_ttl" | "max_ttl" | "refresh_cooldown" | "max_stale" | "removal_grace" => {
            format!("--{}", first.replace('_', "-"))
        }
        _ => "key source".to_owned(),
    }
}

/// The default trusted proxies: loopback. Built in const context, so a wrong prefix length
/// would fail the build, never a start.
const LOOPBACK_V4: ipnet::Ipv4Net = ipnet::Ipv4Net::new_assert(std::net::Ipv4Addr::new(127, 0, 0, 0), 8);
const LOOPBACK_V6: ipnet::Ipv6Net = ipnet::Ipv6Net::new_assert(std::net::Ipv6Addr::LOCALHOST, 128);

const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);

/// Every field at its default, no issuer, no policy.
fn defaults(path: Option<PathBuf>) -> Config {
    let watch = path.is_some();
    Config {
        path,
        listen: DEFAULT_LISTEN,
        issuers: Vec::new(),
        policies: Vec::new(),
        default_policy: DEFAULT_POLICY.to_owned(),
        rules: Vec::new(),
        tokens: TokenSources::default(),
        claim_headers: default_headers(),
        trusted_proxies: vec![IpNet::V4(LOOPBACK_V4), IpNet::V6(LOOPBACK_V6)],
        token_cache: TokenCacheConfig {
            enabled: true,
            max_entries: 10_000,
            max_ttl: Duration::from_secs(300),
        },
        decision_deadline: Duration::from_secs(1),
        error_description: true,
        cors_preflight_bypass: true,
        failure_spike: SpikeConfig {
            enabled: true,
            window: Duration::from_secs(60),
            ratio: 0.2,
            min_requests: 20,
        },
        reload: ReloadConfig { watch, debounce: Duration::from_millis(500) },
        shutdown_grace: Duration::from_secs(10),
    }
}

fn default_headers() -> Vec<ClaimHeader> {
    vec![
        ClaimHeader { header: HeaderName::from_static("x-auth-subject"), claim: "sub".to_owned() },
        ClaimHeader { header: HeaderName::from_static("x-auth-issuer"), claim: "iss".to_owned() },
    ]
}

/// The implicit `default` policy: every issuer, no requirement.
fn implicit_default(issuers: &[IssuerConfig]) -> PolicyConfig {
    PolicyConfig {
        name: DEFAULT_POLICY.to_owned(),
        issuers: issuers.iter().map(|i| i.name.clone()).collect(),
        require: None,
    }
}

const ROOT_KEYS: &[&str] = &[
    "listen",
    "default_policy",
    "trusted_proxies",
    "decision_deadline",
    "error_description",
    "cors_preflight_bypass",
    "shutdown_grace",
    "issuer",
    "policy",
    "rule",
    "token",
    "headers",
    "token_cache",
    "failure_spike",
    "reload",
];
const ISSUER_KEYS: &[&str] = &[
    "name",
    "issuer",
    "template",
    "tenants",
    "jwks_uri",
    "audiences",
    "algorithms",
    "required_claims",
    "leeway",
    "keys",
];
const KEYS_KEYS: &[&str] = &[
    "min_ttl",
    "max_ttl",
    "default_ttl",
    "refresh_ahead",
    "refresh_cooldown",
    "unknown_kid_fetches",
    "max_stale",
    "removal_grace",
    "fetch_wait",
    "max_keys",
    "background_refresh",
    "cache_dir",
    "allow_insecure_http",
    "connect_timeout",
    "total_timeout",
    "max_body_bytes",
    "retries",
];
const POLICY_KEYS: &[&str] = &["issuers", "require"];
const RULE_KEYS: &[&str] = &["host", "path_prefix", "methods", "policy"];
const TOKEN_KEYS: &[&str] = &["cookies", "query_parameter"];
const CACHE_KEYS: &[&str] = &["enabled", "max_entries", "max_ttl"];
const SPIKE_KEYS: &[&str] = &["enabled", "window", "ratio", "min_requests"];
const RELOAD_KEYS: &[&str] = &["watch", "debounce"];
const REQUIRE_KEYS: &[&str] =
    &["all", "any", "not", "scope", "role", "group", "claim", "equals", "contains", "matches"];

/// The text being read and its name, for errors.
struct Reader<'t> {
    file: Option<&'t str>,
    text: &'t str,
}

type Span = Range<usize>;
type Value<'i> = Spanned<DeValue<'i>>;

impl Reader<'_> {
    fn error(&self, span: &Span, field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::at(self.file, self.text, span, field, message.into())
    }

    /// A TOML syntax error: toml's message without its own rendering of the place.
    fn syntax(&self, error: &toml::de::Error) -> ConfigError {
        let span = error.span().unwrap_or(0..0);
        let message = error.message().trim().trim_end_matches('.').to_owned();
        let field = syntax_field(self.text, span.start).unwrap_or_default();
        self.error(&span, &field, format!("invalid TOML: {message}"))
    }

    fn config(&self, root: &Table<'_, '_>, path: Option<PathBuf>) -> Result<Config, ConfigError> {
        let mut config = defaults(path);
        if let Some((listen, span)) = root.string("listen")? {
            config.listen = listen.parse().map_err(|_| {
                self.error(
                    &span,
                    "listen",
                    format!("{listen:?} is not an address with a port, such as 127.0.0.1:4190 or [::1]:4190"),
                )
            })?;
        }
        if let Some(list) = root.array("trusted_proxies")? {
            config.trusted_proxies = Vec::new();
            for (index, item) in list.iter().enumerate() {
                let field = format!("trusted_proxies[{index}]");
                let text = self.str_of(item, &field)?;
                config.trusted_proxies.push(parse_net(text).ok_or_else(|| {
                    self.error(
                        &item.span(),
                        &field,
                        format!("{text:?} is neither an IP address nor a CIDR range (10.0.0.0/8, fd00::/8)"),
                    )
                })?);
            }
        }
        if let Some(d) =
            root.duration_in("decision_deadline", Duration::from_millis(10), Duration::from_secs(30))?
        {
            config.decision_deadline = d;
        }
        if let Some(d) = root.duration_in("shutdown_grace", Duration::ZERO, Duration::from_secs(3600))? {
            config.shutdown_grace = d;
        }
        if let Some(b) = root.bool("error_description")? {
            config.error_description = b;
        }
        if let Some(b) = root.bool("cors_preflight_bypass")? {
            config.cors_preflight_bypass = b;
        }

        config.issuers = self.issuers(root)?;
        let default_policy = match root.string("default_policy")? {
            Some((name, span)) => {
                check_name(&name).map_err(|m| self.error(&span, "default_policy", m))?;
                Some((name, span))
            }
            None => None,
        };
        config.policies = self.policies(root, &config.issuers)?;
        if let Some((name, span)) = default_policy {
            if name != DEFAULT_POLICY && !config.policies.iter().any(|p| p.name == name) {
                return Err(self.error(
                    &span,
                    "default_policy",
                    format!(
                        "no policy is called {name:?}{}",
                        hint(&name, config.policies.iter().map(|p| p.name.as_str()))
                    ),
                ));
            }
            config.default_policy = name;
        }
        if config.default_policy == DEFAULT_POLICY
            && !config.policies.iter().any(|p| p.name == DEFAULT_POLICY)
        {
            config.policies.push(implicit_default(&config.issuers));
        }
        config.rules = self.rules(root, &config.policies)?;
        if let Some(token) = root.table("token", TOKEN_KEYS)? {
            config.tokens = self.tokens(&token)?;
        }
        if let Some(headers) = root.table("headers", &[])? {
            config.claim_headers = self.headers(&headers)?;
        }
        if let Some(cache) = root.table("token_cache", CACHE_KEYS)? {
            if let Some(b) = cache.bool("enabled")? {
                config.token_cache.enabled = b;
            }
            if let Some((n, span)) = cache.integer("max_entries")? {
                if !(1..=MAX_TOKEN_CACHE_ENTRIES).contains(&n) {
                    return Err(self.error(
                        &span,
                        &cache.field("max_entries"),
                        format!("{n} is outside 1..=10000000 (to turn the cache off, set enabled = false)"),
                    ));
                }
                config.token_cache.max_entries = n;
            }
            if let Some(d) =
                cache.duration_in("max_ttl", Duration::from_secs(1), Duration::from_secs(3600))?
            {
                config.token_cache.max_ttl = d;
            }
        }
        if let Some(spike) = root.table("failure_spike", SPIKE_KEYS)? {
            if let Some(b) = spike.bool("enabled")? {
                config.failure_spike.enabled = b;
            }
            if let Some(d) = spike.duration_in("window", Duration::from_secs(1), Duration::from_secs(3600))? {
                config.failure_spike.window = d;
            }
            if let Some((ratio, span)) = spike.float("ratio")? {
                if !(ratio > 0.0 && ratio <= 1.0) {
                    return Err(self.error(
                        &span,
                        &spike.field("ratio"),
                        format!(
                            "{ratio} is outside (0, 1]: a share of failed requests, such as 0.2 for 20 %"
                        ),
                    ));
                }
                config.failure_spike.ratio = ratio;
            }
            if let Some((n, span)) = spike.integer("min_requests")? {
                if !(1..=1_000_000_000).contains(&n) {
                    return Err(self.error(
                        &span,
                        &spike.field("min_requests"),
                        format!("{n} is outside 1..=1000000000"),
                    ));
                }
                config.failure_spike.min_requests = n;
            }
        }
        if let Some(reload) = root.table("reload", RELOAD_KEYS)? {
            if let Some(b) = reload.bool("watch")? {
                config.reload.watch = b;
            }
            if let Some(d) = reload.duration_in("debounce", Duration::ZERO, Duration::from_secs(60))? {
                config.reload.debounce = d;
            }
        }
        Ok(config)
    }

    fn str_of<'v>(&self, value: &'v Value<'_>, field: &str) -> Result<&'v str, ConfigError> {
        value.get_ref().as_str().ok_or_else(|| {
            self.error(
                &value.span(),
                field,
                format!("expected a string, found {}", type_name(value.get_ref())),
            )
        })
    }

    fn issuers(&self, root: &Table<'_, '_>) -> Result<Vec<IssuerConfig>, ConfigError> {
        let Some(value) = root.get("issuer") else {
            return Err(self.error(
                &root.span,
                "issuer",
                "no issuer is configured: add an [[issuer]] table with `issuer` and `audiences`",
            ));
        };
        let Some(list) = value.get_ref().as_array() else {
            let what = if value.get_ref().is_table() {
                "write [[issuer]] (an array of tables), not [issuer]".to_owned()
            } else {
                format!("expected [[issuer]] tables, found {}", type_name(value.get_ref()))
            };
            return Err(self.error(&value.span(), "issuer", what));
        };
        if list.is_empty() {
            return Err(self.error(&value.span(), "issuer", "at least one issuer is required"));
        }
        let mut issuers: Vec<IssuerConfig> = Vec::new();
        for (index, item) in list.iter().enumerate() {
            let field = format!("issuer[{index}]");
            let table = Table::of(self, field.clone(), item, ISSUER_KEYS)?;
            let (issuer, name_span) = self.issuer(&table)?;
            if issuers.iter().any(|other| other.name == issuer.name) {
                return Err(self.error(
                    &name_span,
                    &table.field("name"),
                    format!(
                        "another issuer is already called {:?}: give each a distinct `name`",
                        issuer.name
                    ),
                ));
            }
            if issuers.iter().any(|other| other.matcher == issuer.matcher) {
                let key =
                    if matches!(issuer.matcher, IssuerMatcher::Exact(_)) { "issuer" } else { "template" };
                let span = table.get(key).map_or(table.span.clone(), Spanned::span);
                return Err(self.error(
                    &span,
                    &table.field(key),
                    "another issuer already matches the same `iss`: merge them (list every audience in one)",
                ));
            }
            issuers.push(issuer);
        }
        Ok(issuers)
    }

    fn issuer(&self, table: &Table<'_, '_>) -> Result<(IssuerConfig, Span), ConfigError> {
        let mut source = SourceSettings::default();
        if let Some(keys) = table.table("keys", KEYS_KEYS)? {
            self.key_source(&keys, &mut source)?;
        }
        let insecure = source.http.allow_insecure_http;
        let exact = table.string("issuer")?;
        let template = table.string("template")?;
        let (matcher, matcher_span, default_name) = match (exact, template) {
            (Some(_), Some((_, span))) => {
                return Err(self.error(&span, &table.field("template"), "an issuer has either `issuer` (one exact iss) or `template` (Entra-style, with `tenants`), not both"));
            }
            (None, None) => {
                return Err(self.error(
                    &table.span,
                    &table.path,
                    "missing `issuer` (the exact iss value) or `template` (with `{tenantid}`)",
                ));
            }
            (Some((iss, span)), None) => {
                check_url(&iss, insecure).map_err(|m| self.error(&span, &table.field("issuer"), m))?;
                if let Some(tenants) = table.get("tenants") {
                    return Err(self.error(
                        &tenants.span(),
                        &table.field("tenants"),
                        "`tenants` belongs to a templated issuer (`template`), not to an exact `issuer`",
                    ));
                }
                (IssuerMatcher::Exact(iss.clone()), span, iss)
            }
            (None, Some((template, span))) => {
                let field = table.field("template");
                if template.matches("{tenantid}").count() != 1 {
                    return Err(self.error(&span, &field, "a template contains `{tenantid}` exactly once, e.g. https://login.microsoftonline.com/{tenantid}/v2.0"));
                }
                check_url(&template.replace("{tenantid}", "00000000-0000-0000-0000-000000000000"), insecure)
                    .map_err(|m| self.error(&span, &field, m))?;
                let Some(list) = table.array("tenants")? else {
                    return Err(self.error(&span, &table.field("tenants"), "a templated issuer needs `tenants`, the allowlist of tenant ids (GUIDs): any tenant's tokens would be accepted otherwise"));
                };
                let list_span = table.get("tenants").map_or(span.clone(), Spanned::span);
                if list.is_empty() {
                    return Err(self.error(
                        &list_span,
                        &table.field("tenants"),
                        "at least one tenant id is required",
                    ));
                }
                let mut tenants: Vec<String> = Vec::new();
                for (index, item) in list.iter().enumerate() {
                    let field = format!("{}[{index}]", table.field("tenants"));
                    let tenant = self.str_of(item, &field)?.to_ascii_lowercase();
                    if !is_guid(&tenant) {
                        return Err(self.error(&item.span(), &field, format!("{tenant:?} is not a tenant id (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47)")));
                    }
                    if !tenants.contains(&tenant) {
                        tenants.push(tenant);
                    }
                }
                (IssuerMatcher::Template { template: template.clone(), tenants }, span, template)
            }
        };
        let name = match table.string("name")? {
            Some((name, span)) => {
                check_name(&name).map_err(|m| self.error(&span, &table.field("name"), m))?;
                (name, span)
            }
            None => (default_name, matcher_span.clone()),
        };
        let jwks_uri = match table.string("jwks_uri")? {
            Some((uri, span)) => {
                let field = table.field("jwks_uri");
                if uri.contains("{tenantid}") {
                    return Err(self.error(
                        &span,
                        &field,
                        "`jwks_uri` is one key set for every tenant: it cannot contain `{tenantid}`",
                    ));
                }
                check_url(&uri, insecure).map_err(|m| self.error(&span, &field, m))?;
                Some(uri)
            }
            None if matches!(matcher, IssuerMatcher::Template { .. }) => {
                return Err(self.error(&matcher_span, &table.field("jwks_uri"), "a templated issuer needs `jwks_uri` (discovery needs one exact issuer), e.g. https://login.microsoftonline.com/common/discovery/v2.0/keys"));
            }
            None => None,
        };
        let audiences = match table.array("audiences")? {
            None => {
                return Err(self.error(
                    &table.span,
                    &table.field("audiences"),
                    "missing `audiences`: at least one audience is required",
                ));
            }
            Some(list) => {
                let span = table.get("audiences").map_or(table.span.clone(), Spanned::span);
                if list.is_empty() {
                    return Err(self.error(
                        &span,
                        &table.field("audiences"),
                        "at least one audience is required",
                    ));
                }
                self.strings(list, &table.field("audiences"))?
            }
        };
        let algorithms = match table.array("algorithms")? {
            None => Vec::new(),
            Some(list) => {
                let field = table.field("algorithms");
                if list.is_empty() {
                    let span = table.get("algorithms").map_or(table.span.clone(), Spanned::span);
                    return Err(self.error(
                        &span,
                        &field,
                        "an empty list accepts nothing: leave `algorithms` out for the default set",
                    ));
                }
                let mut algorithms = Vec::new();
                for (index, item) in list.iter().enumerate() {
                    let field = format!("{field}[{index}]");
                    let text = self.str_of(item, &field)?;
                    let alg: Algorithm = text.parse().map_err(|e: keyward::UnknownAlgorithm| {
                        self.error(&item.span(), &field, e.to_string())
                    })?;
                    if !algorithms.contains(&alg) {
                        algorithms.push(alg);
                    }
                }
                algorithms
            }
        };
        let required_claims = match table.array("required_claims")? {
            None => Vec::new(),
            Some(list) => self.strings(list, &table.field("required_claims"))?,
        };
        let leeway =
            match table.duration_in("leeway", Duration::ZERO, Duration::from_secs(MAX_LEEWAY_SECS))? {
                None => DEFAULT_LEEWAY,
                Some(d) if d.subsec_nanos() != 0 => {
                    let span = table.get("leeway").map_or(table.span.clone(), Spanned::span);
                    return Err(self.error(&span, &table.field("leeway"), "the leeway is whole seconds"));
                }
                Some(d) => d,
            };
        let issuer = IssuerConfig {
            name: name.0,
            matcher,
            jwks_uri,
            audiences,
            algorithms,
            required_claims,
            leeway,
            source,
        };
        Ok((issuer, name.1))
    }

    /// Non-empty strings, duplicates dropped.
    fn strings(&self, list: &toml::de::DeArray<'_>, field: &str) -> Result<Vec<String>, ConfigError> {
        let mut out: Vec<String> = Vec::new();
        for (index, item) in list.iter().enumerate() {
            let field = format!("{field}[{index}]");
            let text = self.str_of(item, &field)?;
            if text.trim().is_empty() {
                return Err(self.error(&item.span(), &field, "cannot be empty"));
            }
            if !out.iter().any(|s| s == text) {
                out.push(text.to_owned());
            }
        }
        Ok(out)
    }

    fn key_source(&self, keys: &Table<'_, '_>, source: &mut SourceSettings) -> Result<(), ConfigError> {
        let max = super::duration::MAX_DURATION;
        let durations: [(&str, &mut Duration); 9] = [
            ("min_ttl", &mut source.min_ttl),
            ("max_ttl", &mut source.max_ttl),
            ("default_ttl", &mut source.default_ttl),
            ("refresh_ahead", &mut source.refresh_ahead),
            ("refresh_cooldown", &mut source.refresh_cooldown),
            ("max_stale", &mut source.max_stale),
            ("fetch_wait", &mut source.fetch_wait),
            ("connect_timeout", &mut source.http.connect_timeout),
            ("total_timeout", &mut source.http.total_timeout),
        ];
        for (key, slot) in durations {
            if let Some(d) = keys.duration_in(key, Duration::ZERO, max)? {
                *slot = d;
            }
        }
        // As `--refresh-cooldown` does: the same window answers a kid that fetches kept missing.
        source.negative_cache_ttl = source.refresh_cooldown;
        if let Some(d) = keys.duration_in("removal_grace", Duration::ZERO, max)? {
            source.removal_grace = Some(d);
        }
        let counts: [(&str, &mut usize, u64); 3] = [
            ("unknown_kid_fetches", &mut source.unknown_kid_fetches, 1000),
            ("max_keys", &mut source.max_keys, 10_000),
            ("max_body_bytes", &mut source.http.max_body_bytes, 16 * 1024 * 1024),
        ];
        for (key, slot, bound) in counts {
            if let Some((n, span)) = keys.integer(key)? {
                if n == 0 || n > bound {
                    return Err(self.error(&span, &keys.field(key), format!("{n} is outside 1..={bound}")));
                }
                *slot = usize::try_from(n).unwrap_or(usize::MAX);
            }
        }
        if let Some((n, span)) = keys.integer("retries")? {
            if n > 10 {
                return Err(self.error(
                    &span,
                    &keys.field("retries"),
                    format!("{n} is above the maximum of 10"),
                ));
            }
            source.http.retries = u32::try_from(n).unwrap_or(10);
        }
        if let Some(b) = keys.bool("background_refresh")? {
            source.background_refresh = b;
        }
        if let Some(b) = keys.bool("allow_insecure_http")? {
            source.http.allow_insecure_http = b;
        }
        if let Some((dir, span)) = keys.string("cache_dir")? {
            if dir.is_empty() {
                return Err(self.error(
                    &span,
                    &keys.field("cache_dir"),
                    "cannot be empty: leave it out for no cache directory",
                ));
            }
            source.cache_dir = Some(PathBuf::from(dir));
        }
        source.validate().map_err(|e| {
            let message = e.to_string();
            // The setting the library names first, when this table sets it; else the table.
            let named = KEYS_KEYS
                .iter()
                .find(|k| message.starts_with(&format!("{k} ")) || message.contains(&format!("{k} must")));
            let key = named.filter(|k| keys.get(k).is_some());
            let span = key.and_then(|k| keys.get(k)).map_or(keys.span.clone(), Spanned::span);
            let field = key.map_or(keys.path.clone(), |k| keys.field(k));
            self.error(&span, &field, message)
        })
    }

    fn policies(
        &self,
        root: &Table<'_, '_>,
        issuers: &[IssuerConfig],
    ) -> Result<Vec<PolicyConfig>, ConfigError> {
        let Some(section) = root.table("policy", &[])? else {
            return Ok(Vec::new());
        };
        let mut policies = Vec::new();
        for (key, value) in section.entries_in_order() {
            let name = key.get_ref().to_string();
            let field = format!("policy.{name}");
            check_name(&name).map_err(|m| self.error(&key.span(), &field, m))?;
            let table = Table::of(self, field.clone(), value, POLICY_KEYS)?;
            let allowed = match table.array("issuers")? {
                None => issuers.iter().map(|i| i.name.clone()).collect(),
                Some(list) => {
                    let list_field = table.field("issuers");
                    if list.is_empty() {
                        let span = table.get("issuers").map_or(table.span.clone(), Spanned::span);
                        return Err(self.error(
                            &span,
                            &list_field,
                            "a policy needs at least one issuer: leave `issuers` out for every issuer",
                        ));
                    }
                    let mut names: Vec<String> = Vec::new();
                    for (index, item) in list.iter().enumerate() {
                        let item_field = format!("{list_field}[{index}]");
                        let wanted = self.str_of(item, &item_field)?;
                        if !issuers.iter().any(|i| i.name == wanted) {
                            return Err(self.error(
                                &item.span(),
                                &item_field,
                                format!(
                                    "no issuer is called {wanted:?}{}",
                                    hint(wanted, issuers.iter().map(|i| i.name.as_str()))
                                ),
                            ));
                        }
                        if !names.iter().any(|n| n == wanted) {
                            names.push(wanted.to_owned());
                        }
                    }
                    names
                }
            };
            let require = match table.get("require") {
                None => None,
                Some(value) => Some(self.requirement(value, &table.field("require"), 1)?),
            };
            policies.push(PolicyConfig { name, issuers: allowed, require });
        }
        Ok(policies)
    }

    fn requirement(&self, value: &Value<'_>, field: &str, depth: usize) -> Result<Requirement, ConfigError> {
        if depth > MAX_REQUIRE_DEPTH {
            return Err(self.error(
                &value.span(),
                field,
                format!("the requirement is nested deeper than {MAX_REQUIRE_DEPTH} levels"),
            ));
        }
        let table = Table::of(self, field.to_owned(), value, REQUIRE_KEYS)?;
        let present: Vec<&str> = REQUIRE_KEYS.iter().copied().filter(|k| table.get(k).is_some()).collect();
        let shape = "a requirement table holds one of `all`, `any`, `not`, `scope`, `role`, `group`, or `claim` with `equals`, `contains` or `matches`";
        if present.contains(&"claim") {
            let (path, path_span) = table.string("claim")?.unwrap_or_default();
            check_claim_path(&path).map_err(|m| self.error(&path_span, &table.field("claim"), m))?;
            let tests: Vec<&str> =
                present.iter().copied().filter(|k| ["equals", "contains", "matches"].contains(k)).collect();
            if let Some(extra) =
                present.iter().find(|k| !["claim", "equals", "contains", "matches"].contains(k))
            {
                let span = table.key_span(extra);
                return Err(self.error(
                    &span,
                    &table.field(extra),
                    format!("`{extra}` cannot sit beside `claim`: wrap both in `all = [...]`"),
                ));
            }
            let test = match tests.as_slice() {
                [] => {
                    return Err(self.error(
                        &table.span,
                        field,
                        "`claim` needs a test: `equals`, `contains` or `matches`",
                    ));
                }
                [_, second, ..] => {
                    let span = table.key_span(second);
                    return Err(self.error(
                        &span,
                        &table.field(second),
                        "one test per claim: wrap several in `all = [...]`",
                    ));
                }
                [one] => *one,
            };
            let test_field = table.field(test);
            let Some(test_value) = table.get(test) else {
                return Err(self.error(&table.span, &test_field, "missing"));
            };
            let span = test_value.span();
            let test = match test {
                "matches" => {
                    let pattern = self.str_of(test_value, &test_field)?;
                    ClaimTest::Matches(
                        Pattern::new(pattern).map_err(|e| self.error(&span, &test_field, e.to_string()))?,
                    )
                }
                _ => {
                    let scalar = self.scalar(test_value, &test_field)?;
                    if test == "contains" {
                        if scalar == ClaimValue::String(String::new()) {
                            return Err(self.error(
                                &span,
                                &test_field,
                                "an empty string is contained in every string",
                            ));
                        }
                        ClaimTest::Contains(scalar)
                    } else {
                        ClaimTest::Equals(scalar)
                    }
                }
            };
            return Ok(Requirement::Claim { path, test });
        }
        let kind = match present.as_slice() {
            [] => return Err(self.error(&value.span(), field, format!("empty requirement: {shape}"))),
            [one] => *one,
            [first, second, ..] => {
                let span = table.key_span(second);
                let message = if ["equals", "contains", "matches"].contains(first)
                    || ["equals", "contains", "matches"].contains(second)
                {
                    "a test (`equals`, `contains`, `matches`) needs `claim = \"<path>\"` beside it".to_owned()
                } else {
                    format!(
                        "`{first}` and `{second}` in one table: {shape}; combine several with `all = [...]`"
                    )
                };
                return Err(self.error(&span, &table.field(second), message));
            }
        };
        let kind_field = table.field(kind);
        let Some(inner) = table.get(kind) else {
            return Err(self.error(&table.span, &kind_field, "missing"));
        };
        match kind {
            "all" | "any" => {
                let Some(list) = inner.get_ref().as_array() else {
                    return Err(self.error(
                        &inner.span(),
                        &kind_field,
                        format!("expected an array of requirements, found {}", type_name(inner.get_ref())),
                    ));
                };
                if list.is_empty() {
                    return Err(self.error(
                        &inner.span(),
                        &kind_field,
                        format!("`{kind}` needs at least one requirement"),
                    ));
                }
                let mut items = Vec::with_capacity(list.len());
                for (index, item) in list.iter().enumerate() {
                    items.push(self.requirement(
                        item,
                        &format!("{kind_field}[{index}]"),
                        depth.saturating_add(1),
                    )?);
                }
                Ok(if kind == "all" { Requirement::All(items) } else { Requirement::Any(items) })
            }
            "not" => Ok(Requirement::Not(Box::new(self.requirement(
                inner,
                &kind_field,
                depth.saturating_add(1),
            )?))),
            "scope" | "role" | "group" => {
                let name = self.str_of(inner, &kind_field)?;
                if name.trim().is_empty() {
                    return Err(self.error(
                        &inner.span(),
                        &kind_field,
                        format!("a {kind} name cannot be empty"),
                    ));
                }
                if kind == "scope" && name.contains(char::is_whitespace) {
                    return Err(self.error(&inner.span(), &kind_field, "a scope is one word: require several with `all = [ { scope = \"a\" }, { scope = \"b\" } ]`"));
                }
                Ok(match kind {
                    "scope" => Requirement::Scope(name.to_owned()),
                    "role" => Requirement::Role(name.to_owned()),
                    _ => Requirement::Group(name.to_owned()),
                })
            }
            _ => Err(self.error(
                &table.key_span(kind),
                &kind_field,
                "a test (`equals`, `contains`, `matches`) needs `claim = \"<path>\"` beside it",
            )),
        }
    }

    /// A string, integer, float or boolean to compare a claim with.
    fn scalar(&self, value: &Value<'_>, field: &str) -> Result<ClaimValue, ConfigError> {
        let refuse = || {
            self.error(
                &value.span(),
                field,
                format!("expected a string, number or boolean, found {}", type_name(value.get_ref())),
            )
        };
        match value.get_ref() {
            DeValue::String(s) => Ok(ClaimValue::String(s.to_string())),
            DeValue::Boolean(b) => Ok(ClaimValue::Bool(*b)),
            DeValue::Integer(i) => {
                let n = i64::from_str_radix(i.as_str(), i.radix())
                    .map_err(|_| self.error(&value.span(), field, "integer out of range"))?;
                Ok(ClaimValue::from(n))
            }
            DeValue::Float(f) => f
                .as_str()
                .parse::<f64>()
                .ok()
                .and_then(ClaimValue::from_f64)
                .ok_or_else(|| self.error(&value.span(), field, "a claim value is a finite number")),
            _ => Err(refuse()),
        }
    }

    fn rules(&self, root: &Table<'_, '_>, policies: &[PolicyConfig]) -> Result<Vec<PathRule>, ConfigError> {
        let Some(value) = root.get("rule") else {
            return Ok(Vec::new());
        };
        let Some(list) = value.get_ref().as_array() else {
            return Err(self.error(&value.span(), "rule", "write [[rule]] (an array of tables)"));
        };
        let mut rules = Vec::new();
        for (index, item) in list.iter().enumerate() {
            let table = Table::of(self, format!("rule[{index}]"), item, RULE_KEYS)?;
            let host = match table.string("host")? {
                None => None,
                Some((host, span)) => {
                    check_host(&host).map_err(|m| self.error(&span, &table.field("host"), m))?;
                    Some(host.to_ascii_lowercase())
                }
            };
            let path_prefix = match table.string("path_prefix")? {
                None => None,
                Some((prefix, span)) => {
                    let field = table.field("path_prefix");
                    if !prefix.starts_with('/') {
                        return Err(self.error(
                            &span,
                            &field,
                            format!("a path prefix starts with `/` (did you mean \"/{prefix}\"?)"),
                        ));
                    }
                    if prefix.contains(['?', '#'])
                        || prefix.contains(char::is_whitespace)
                        || prefix.contains(char::is_control)
                    {
                        return Err(self.error(&span, &field, "a path prefix is a path: no query (`?`), fragment (`#`), spaces or control characters"));
                    }
                    // Matched on whole segments: `/api/` and `/api` mean the same.
                    let trimmed = prefix.trim_end_matches('/');
                    Some(if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() })
                }
            };
            let mut methods: Vec<Method> = Vec::new();
            if let Some(list) = table.array("methods")? {
                for (i, item) in list.iter().enumerate() {
                    let field = format!("{}[{i}]", table.field("methods"));
                    let text = self.str_of(item, &field)?;
                    let upper = text.to_ascii_uppercase();
                    if text != upper {
                        return Err(self.error(
                            &item.span(),
                            &field,
                            format!("methods are case-sensitive: did you mean `{upper}`?"),
                        ));
                    }
                    let method = Method::from_bytes(text.as_bytes()).map_err(|_| {
                        self.error(&item.span(), &field, format!("{text:?} is not an HTTP method"))
                    })?;
                    if !methods.contains(&method) {
                        methods.push(method);
                    }
                }
            }
            let Some((policy, span)) = table.string("policy")? else {
                return Err(self.error(
                    &table.span,
                    &table.field("policy"),
                    "a rule names the `policy` that decides its requests",
                ));
            };
            if !policies.iter().any(|p| p.name == policy) {
                return Err(self.error(
                    &span,
                    &table.field("policy"),
                    format!(
                        "no policy is called {policy:?}{}",
                        hint(&policy, policies.iter().map(|p| p.name.as_str()))
                    ),
                ));
            }
            rules.push(PathRule { host, path_prefix, methods, policy });
        }
        Ok(rules)
    }

    fn tokens(&self, table: &Table<'_, '_>) -> Result<TokenSources, ConfigError> {
        let mut tokens = TokenSources::default();
        if let Some(list) = table.array("cookies")? {
            for (index, item) in list.iter().enumerate() {
                let field = format!("{}[{index}]", table.field("cookies"));
                let name = self.str_of(item, &field)?;
                if !is_token(name) {
                    return Err(self.error(&item.span(), &field, format!("{name:?} is not a cookie name (an RFC 6265 token: letters, digits and !#$%&'*+-.^_`|~)")));
                }
                if !tokens.cookies.iter().any(|c| c == name) {
                    tokens.cookies.push(name.to_owned());
                }
            }
        }
        if let Some(b) = table.bool("query_parameter")? {
            tokens.query_parameter = b;
        }
        Ok(tokens)
    }

    fn headers(&self, table: &Table<'_, '_>) -> Result<Vec<ClaimHeader>, ConfigError> {
        let mut headers: Vec<ClaimHeader> = Vec::new();
        for (key, value) in table.entries_in_order() {
            let raw = key.get_ref().to_string();
            let field = format!("headers.{raw}");
            let header = HeaderName::from_bytes(raw.as_bytes()).map_err(|_| {
                self.error(&key.span(), &field, format!("{raw:?} is not a valid header name"))
            })?;
            let lower = header.as_str();
            if RESERVED_HEADERS.contains(&lower)
                || RESERVED_HEADER_PREFIXES.iter().any(|p| lower.starts_with(p))
            {
                return Err(self.error(
                    &key.span(),
                    &field,
                    format!("{raw} is owned by the proxy or the gateway and cannot carry a claim"),
                ));
            }
            if headers.iter().any(|h| h.header == header) {
                return Err(self.error(
                    &key.span(),
                    &field,
                    format!("{raw} is mapped twice (header names ignore case)"),
                ));
            }
            let claim = self.str_of(value, &field)?;
            check_claim_path(claim).map_err(|m| self.error(&value.span(), &field, m))?;
            headers.push(ClaimHeader { header, claim: claim.to_owned() });
        }
        Ok(headers)
    }
}

/// A table being read: its keys are checked against the known ones up front, so a typo is
/// reported (with a hint) before anything else in it.
struct Table<'r, 'i> {
    reader: &'r Reader<'r>,
    path: String,
    span: Span,
    entries: &'r DeTable<'i>,
}

impl<'r, 'i> Table<'r, 'i> {
    /// `known` empty: any key (for maps such as `[policy]` and `[headers]`).
    fn new(
        reader: &'r Reader<'r>,
        path: String,
        span: Span,
        entries: &'r DeTable<'i>,
        known: &[&str],
    ) -> Result<Self, ConfigError> {
        let table = Self { reader, path, span, entries };
        if !known.is_empty() {
            for (key, _) in table.entries_in_order() {
                let name = key.get_ref().as_ref();
                if !known.contains(&name) {
                    let message = format!("unknown field `{name}`{}", hint(name, known.iter().copied()));
                    return Err(reader.error(&key.span(), &table.field(name), message));
                }
            }
        }
        Ok(table)
    }

    /// The table a value must be.
    fn of(
        reader: &'r Reader<'r>,
        path: String,
        value: &'r Value<'i>,
        known: &[&str],
    ) -> Result<Self, ConfigError> {
        match value.get_ref() {
            DeValue::Table(entries) => Self::new(reader, path, value.span(), entries, known),
            other => Err(reader.error(
                &value.span(),
                &path,
                format!("expected a table, found {}", type_name(other)),
            )),
        }
    }

    fn field(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }

    fn get(&self, key: &str) -> Option<&'r Value<'i>> {
        self.entries.get(key)
    }

    fn key_span(&self, key: &str) -> Span {
        self.entries.iter().find(|(k, _)| k.get_ref() == key).map_or(self.span.clone(), |(k, _)| k.span())
    }

    /// Entries in the order they appear in the file.
    fn entries_in_order(&self) -> Vec<(&'r Spanned<toml::de::DeString<'i>>, &'r Value<'i>)> {
        let mut entries: Vec<_> = self.entries.iter().collect();
        entries.sort_by_key(|(key, _)| key.span().start);
        entries
    }

    fn wrong_type(&self, key: &str, value: &Value<'_>, wanted: &str) -> ConfigError {
        self.reader.error(
            &value.span(),
            &self.field(key),
            format!("expected {wanted}, found {}", type_name(value.get_ref())),
        )
    }

    fn string(&self, key: &str) -> Result<Option<(String, Span)>, ConfigError> {
        let Some(value) = self.get(key) else { return Ok(None) };
        match value.get_ref() {
            DeValue::String(s) => Ok(Some((s.to_string(), value.span()))),
            _ => Err(self.wrong_type(key, value, "a string")),
        }
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, ConfigError> {
        let Some(value) = self.get(key) else { return Ok(None) };
        value.get_ref().as_bool().map(Some).ok_or_else(|| self.wrong_type(key, value, "true or false"))
    }

    fn integer(&self, key: &str) -> Result<Option<(u64, Span)>, ConfigError> {
        let Some(value) = self.get(key) else { return Ok(None) };
        let Some(int) = value.get_ref().as_integer() else {
            return Err(self.wrong_type(key, value, "an integer"));
        };
        let n = u64::from_str_radix(int.as_str(), int.radix()).map_err(|_| {
            self.reader.error(
                &value.span(),
                &self.field(key),
                format!("{} is not a non-negative integer within range", int.as_str()),
            )
        })?;
        Ok(Some((n, value.span())))
    }

    fn float(&self, key: &str) -> Result<Option<(f64, Span)>, ConfigError> {
        let Some(value) = self.get(key) else { return Ok(None) };
        let number = match value.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok().map(|n| n as f64),
            _ => return Err(self.wrong_type(key, value, "a number")),
        };
        match number {
            Some(n) if n.is_finite() => Ok(Some((n, value.span()))),
            _ => Err(self.reader.error(&value.span(), &self.field(key), "expected a finite number")),
        }
    }

    fn array(&self, key: &str) -> Result<Option<&'r toml::de::DeArray<'i>>, ConfigError> {
        let Some(value) = self.get(key) else { return Ok(None) };
        value.get_ref().as_array().map(Some).ok_or_else(|| self.wrong_type(key, value, "an array"))
    }

    fn table(&self, key: &str, known: &[&str]) -> Result<Option<Table<'r, 'i>>, ConfigError> {
        let Some(value) = self.get(key) else { return Ok(None) };
        Table::of(self.reader, self.field(key), value, known).map(Some)
    }

    /// A duration (`"30s"`, `"1h30m"`, or integer seconds) within `min..=max`.
    fn duration_in(&self, key: &str, min: Duration, max: Duration) -> Result<Option<Duration>, ConfigError> {
        let Some(value) = self.get(key) else { return Ok(None) };
        let field = self.field(key);
        let error = |message: String| self.reader.error(&value.span(), &field, message);
        let d = match value.get_ref() {
            DeValue::String(s) => parse_duration(s).map_err(error)?,
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .and_then(seconds)
                .ok_or_else(|| error(format!("{} is not a number of seconds within 30 days", i.as_str())))?,
            _ => return Err(self.wrong_type(key, value, "a duration such as \"30s\" or \"1h30m\"")),
        };
        if d < min || d > max {
            return Err(error(format!("{} is outside {}..={}", show(d), show(min), show(max))));
        }
        Ok(Some(d))
    }
}

/// The field a syntax error sits in, from what the parser could recover: the key or value
/// with the narrowest span around `offset` (a value cut short ends at the error).
fn syntax_field(text: &str, offset: usize) -> Option<String> {
    fn consider(span: Span, path: &str, offset: usize, best: &mut Option<(usize, String)>) {
        if span.start <= offset && offset <= span.end {
            let width = span.end.saturating_sub(span.start);
            if best.as_ref().is_none_or(|(w, _)| width <= *w) {
                *best = Some((width, path.to_owned()));
            }
        }
    }
    fn visit(value: &Value<'_>, path: &str, offset: usize, best: &mut Option<(usize, String)>) {
        match value.get_ref() {
            DeValue::Table(table) => {
                for (key, item) in table.iter() {
                    let name = key.get_ref();
                    let child = if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
                    consider(key.span(), &child, offset, best);
                    consider(item.span(), &child, offset, best);
                    visit(item, &child, offset, best);
                }
            }
            DeValue::Array(items) => {
                for (index, item) in items.iter().enumerate() {
                    let child = format!("{path}[{index}]");
                    consider(item.span(), &child, offset, best);
                    visit(item, &child, offset, best);
                }
            }
            _ => {}
        }
    }
    let (recovered, _) = DeTable::parse_recoverable(text);
    let span = recovered.span();
    let root = Spanned::new(span, DeValue::Table(recovered.into_inner()));
    let mut best = None;
    visit(&root, "", offset, &mut best);
    best.map(|(_, path)| path).filter(|path| !path.is_empty())
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// ` (did you mean `x`?)` when one of `candidates` is close to `wanted`.
fn hint<'a>(wanted: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let limit = (wanted.chars().count() / 3).clamp(1, 3);
    candidates
        .map(|c| (edit_distance(&wanted.to_ascii_lowercase(), &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map_or_else(String::new, |(_, c)| format!(": did you mean `{c}`?"))
}

/// Levenshtein distance (names are short: at most a few dozen characters in practice).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len().saturating_add(1));
        current.push(i.saturating_add(1));
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j].saturating_add(usize::from(ca != *cb));
            let insert = current[j].saturating_add(1);
            let delete = previous[j.saturating_add(1)].saturating_add(1);
            current.push(substitute.min(insert).min(delete));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}

/// Issuer and policy names: `[A-Za-z0-9_-]{1,64}` (they appear in URLs and metric labels).
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(format!("{name:?} is not a valid name: 1 to 64 of A-Z, a-z, 0-9, `_` and `-`"));
    }
    Ok(())
}

/// An issuer, template or JWKS URL: https, or http to loopback (or with `allow_insecure_http`).
fn check_url(url: &str, allow_insecure_http: bool) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure_http || !keyward::source::needs_insecure_http_opt_in(url) => {}
        "http" => {
            return Err(format!(
                "{url:?} is plain http to a host that is not loopback: use https, or set allow_insecure_http = true in [issuer.keys]"
            ));
        }
        other => return Err(format!("{url:?} has scheme {other:?}: use https")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(format!("{url:?} carries credentials: keyward sends none"));
    }
    if parsed.fragment().is_some() {
        return Err(format!("{url:?} has a fragment (`#...`)"));
    }
    Ok(())
}

/// A dot path: non-empty segments.
fn check_claim_path(path: &str) -> Result<(), String> {
    if path.split('.').any(str::is_empty) {
        return Err(format!(
            "{path:?} is not a claim path: names separated by dots, such as realm_access.roles"
        ));
    }
    Ok(())
}

/// A rule's host: a DNS name or an IP literal, without port.
fn check_host(host: &str) -> Result<(), String> {
    let ip_literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
    let name = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ip_literal || name {
        return Ok(());
    }
    if host.contains("://") || host.contains('/') {
        return Err(format!(
            "{host:?} is not a host name: write the host alone (api.example.com), without scheme or path"
        ));
    }
    if host
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!(
            "{host:?}: a rule's host has no port (the request's port is ignored when matching)"
        ));
    }
    Err(format!("{host:?} is not a host name"))
}

/// An IP address or CIDR range; a bare address is a single-host range.
fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>().ok().or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// A GUID in its usual form: 8-4-4-4-12 hex digits (lower-case by now).
fn is_guid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An RFC 6265 cookie name (an RFC 2616 token).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_find_near_names_only() {
        assert_eq!(hint("audience", ISSUER_KEYS.iter().copied()), ": did you mean `audiences`?");
        assert_eq!(hint("Audiences", ISSUER_KEYS.iter().copied()), ": did you mean `audiences`?");
        assert_eq!(hint("colour", ISSUER_KEYS.iter().copied()), "");
    }

    #[test]
    fn names_guids_tokens_hosts() {
        assert!(check_name("orders-admin_2").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name(&"a".repeat(65)).is_err());
        assert!(is_guid("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(!is_guid("72f988bf86f141af91ab2d7cd011db47"));
        assert!(is_token("__Host-session"));
        assert!(!is_token("a b"));
        assert!(!is_token("a;b"));
        assert!(check_host("api.example.com").is_ok());
        assert!(check_host("[::1]").is_ok());
        assert!(check_host("api.example.com:443").unwrap_err().contains("no port"));
    }

    #[test]
    fn urls() {
        assert!(check_url("https://idp.example.com", false).is_ok());
        assert!(check_url("http://127.0.0.1:8080", false).is_ok());
        assert!(check_url("http://localhost:8080/realms/x", false).is_ok());
        assert!(check_url("http://idp.example.com", false).unwrap_err().contains("allow_insecure_http"));
        assert!(check_url("http://idp.example.com", true).is_ok());
        assert!(check_url("ftp://idp.example.com", true).is_err());
        assert!(check_url("https://user:pw@idp.example.com", false).is_err());
        assert!(check_url("idp.example.com", false).is_err());
    }
}
