//! Command-line definitions: every flag's name, default and help live here.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use keyward::Algorithm;

/// JWT verification that survives identity-provider key rotation.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, about, long_about = None, propagate_version = true, after_help = HELP_RULE)]
pub(crate) struct Cli {
    /// Log filter for diagnostics on stderr (e.g. `info`, `keyward=debug`); default `warn`,
    /// or the KEYWARD_LOG environment variable. For one token, `verify` leaves the key source's
    /// own warnings out by default: the verdict already names the cause (`drill` too: it
    /// provokes fetch failures on purpose).
    #[arg(long, global = true, value_name = "FILTER")]
    pub(crate) log: Option<String>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Verify a token's signature and claims against a JWKS.
    ///
    /// Exit status: 0 a token verified; 1 rejected (including an empty, unparsable or non-UTF-8
    /// token); 2 usage error, unreadable file, or a key file keyward cannot use as keys;
    /// 3 no verdict: the keys could not be obtained (`keys_unavailable`, one token only; in
    /// --stream mode it is a rejection like any other, exit 1).
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(Box<VerifyArgs>),
    /// Run the forward-auth gateway: nginx `auth_request`, Traefik ForwardAuth, Caddy
    /// `forward_auth` and Envoy ext_authz ask it about each request.
    ///
    /// `/auth` (default policy) and `/auth/<policy>` answer 200 with claim headers, 401 (no or
    /// bad token), 403 (policy unmet), 503 with Retry-After (keys unavailable, never 401) or
    /// 500 (unknown policy). Also `/healthz`, `/readyz`, `/metrics`. SIGHUP (and, by default,
    /// a change of the file) reloads --config; a bad file is logged and the running one stays.
    /// Runs until SIGTERM or Ctrl-C, letting requests in flight finish. Exit status: 0 after a clean shutdown (or a valid config with --check); 2 usage
    /// error, invalid configuration (printed as file:line:col: field: message), or the address
    /// cannot be bound.
    #[command(after_help = SERVE_HELP)]
    Serve(Box<ServeArgs>),
    /// Rehearse an IdP key rotation end to end, with no outside service: an embedded mock IdP
    /// rotates and fails while a naive cached key set and keyward's key source verify tokens.
    ///
    /// Exit status: 0 when keyward accepted every valid token and rejected every forged one.
    Demo,
    /// Decode a token's header and claims WITHOUT verifying anything.
    ///
    /// Exit status: 0 decoded, 1 not a decodable token, 2 usage error.
    #[command(after_help = HELP_RULE)]
    Inspect(InspectArgs),
    /// Diagnose why a token fails against an IdP's key set: one cause code, its evidence, the fix.
    ///
    /// Runs the rotation runbook: token, discovery, JWKS fetch, each key, the kid against the
    /// live and the cached key set, the signature with every compatible key, the claims. Exit
    /// status: 0 the cause is `ok`; 1 any other cause (with --audit: a warning or a failed
    /// check; with --stream: any token not `ok`); 2 usage error.
    #[command(after_help = DOCTOR_EXAMPLES)]
    Doctor(Box<DoctorArgs>),
    /// Poll a JWKS and print each key rotation event (kid added or removed, how long old and
    /// new overlapped), debounced so that flapping keys do not flood it.
    ///
    /// Runs until interrupted. Exit status: 2 usage error.
    Watch(WatchArgs),
    /// Run a mock OpenID provider that rotates its keys and fails on command (for rehearsals).
    ///
    /// Serves OIDC discovery, `/jwks`, `POST /token` and an admin API (loopback clients only).
    /// Runs until interrupted; every change is logged on stderr. Exit status: 2 usage error or
    /// the address cannot be bound.
    #[command(after_help = IDP_HELP)]
    Idp(IdpArgs),
    /// Rehearse key rotations and IdP failures against a verifier and check what it did.
    ///
    /// Exit status: 0 the target behaved as a rotation-safe verifier in every scenario; 1 a
    /// scenario failed (named, with the runbook cause it reproduced); 2 usage error.
    #[command(after_help = DRILL_HELP)]
    Drill(DrillArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    ///
    /// Example: `keyward completions bash > ~/.local/share/bash-completion/completions/keyward`.
    Completions {
        /// The shell to complete for.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout, e.g. `keyward man | man -l -`.
    Man,
}

const IDP_HELP: &str = "\
Token endpoint (anyone who can reach the port may mint tokens: it is a mock):
  curl -s -d sub=alice -d aud=orders-api -d scope=read -d ttl=600 -d claim.tenant=acme \\
       http://127.0.0.1:8600/token
  fields: sub, aud, scope, ttl (seconds), typ (JWT or at+jwt), alg, claim.NAME=value
  answer: {\"access_token\": \"…\", \"token_type\": \"Bearer\", \"expires_in\": 600}

Admin API (form fields; loopback clients only, 403 otherwise):
  POST /admin/rotate  mode=overlap|pre-publish|activate|replace|reuse-kid|sign-before-publish
                      [delay=SECONDS] (sign-before-publish: publish the new key that much later)
                      [alg=ALG] (which --alg to rotate; default the first)
  POST /admin/retire  kid=KID (stop publishing it; the signing key cannot be retired)
  POST /admin/fault   mode=down|slow|500|429|garbage|empty-set|wrong-keys|huge|flap|cache-control|none
                      [seconds=N] (default 30) [delay=N] (slow) [retry_after=N] (429)
                      [value=HEADER] (cache-control)
  GET  /admin/state   keys, active faults and the count of JWKS requests, as JSON

Example:
  keyward idp --alg ES256 --state idp-state.json &
  curl -s -d mode=sign-before-publish -d delay=20 http://127.0.0.1:8600/admin/rotate

See docs/idp.md.";

const SERVE_HELP: &str = "\
Quick start (one issuer, found by OIDC discovery; the `default` policy accepts its tokens):
  keyward serve --issuer https://login.example.com --audience orders-api
  keyward serve --config /etc/keyward/serve.toml --check   # validate, print a summary

nginx (auth_request; keyward answers only 2xx/401/403 to client faults, as nginx needs):
  location = /_auth {
      internal;
      proxy_pass http://127.0.0.1:4190/auth;          # or /auth/<policy>
      proxy_pass_request_body off;
      proxy_set_header Content-Length \"\";
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header X-Original-URI $request_uri;
  }
  location /api/ {
      auth_request /_auth;
      auth_request_set $sub $upstream_http_x_auth_subject;
      proxy_set_header X-Auth-Subject $sub;           # always overwritten: never the client's
      proxy_pass http://127.0.0.1:8080;
  }

Traefik/Caddy send X-Forwarded-Method/-Uri/-Host; Envoy ext_authz uses path_prefix
`/auth/<policy>` (the original path follows it). Forwarding headers are believed only from
trusted_proxies (default loopback). See docs/serve.md.";

const DRILL_HELP: &str = "\
Scenarios (default: all, in this order): steady, overlap, pre-publish, replace, kid-reuse,
sign-before-publish, outage-short, outage-long, slow-jwks, 429-storm, kid-flood, wrong-key-set,
flapping.

Examples:
  keyward drill --target self
  keyward drill --target-url http://127.0.0.1:8080/api/orders --idp http://127.0.0.1:8600 \\
                --audience orders-api
  keyward drill --target self --scenario overlap --scenario replace --json

With --target-url the service must trust the idp's issuer (its discovery URL); a 2xx answer
counts as accepted, 401/403 as rejected, anything else as an error. See docs/idp.md.";

/// How `--help` and `--version` are honoured, shown at the end of every help text.
const HELP_RULE: &str = "\
--help/-h and --version/-V are honoured only as the sole argument (`keyward verify --help`);
anywhere else on a longer command line they are a usage error (exit 2), so an untrusted token
that looks like an option never prints help and exits 0. Put `--` before an untrusted token:
`keyward verify --jwks jwks.json -- \"$TOKEN\"`.";

const VERIFY_EXAMPLES: &str = "\
Examples:
  keyward verify --jwks jwks.json --issuer https://idp.example.com --audience api \"$TOKEN\"
  echo \"$TOKEN\" | keyward verify --jwks jwks.json --json
  keyward verify --jwks jwks.json --now 1767225600 @old-token.jwt   # replay an old token
  keyward verify --issuer https://login.example.com --audience api \"$TOKEN\"   # discover the JWKS
  keyward verify --jwks https://idp.example.com/jwks.json --stream < tokens.txt  # audit a token log
  keyward verify --jwks public-key.pem --now 2026-12-06T04:20:00Z -- \"$TOKEN\"

--help/-h and --version/-V are honoured only as the sole argument after the subcommand; on a
longer command line they are a usage error (exit 2). Put `--` before an untrusted token.";

const DOCTOR_EXAMPLES: &str = "\
Examples:
  keyward doctor --issuer https://login.example.com --audience api \"$TOKEN\"
  keyward doctor --jwks https://idp.example.com/jwks.json --cached-jwks app-cache.json @token.jwt
  keyward doctor --issuer https://login.example.com --audit        # the IdP's rotation hygiene
  keyward doctor --jwks https://idp.example.com/jwks.json --stream --json < failing-tokens.txt

Causes, in precedence order (the first that applies is the verdict; a token that cannot be
decoded is token_tampered before anything else): foreign_token, wrong_key_set, jwks_unreachable,
algorithm_mismatch, kid_reused, token_tampered, clock_skew, expired, key_dropped_early,
stale_cache, ok. docs/runbook.md explains each one, its evidence and its fix.

--help/-h and --version/-V are honoured only as the sole argument after the subcommand; on a
longer command line they are a usage error (exit 2). Put `--` before an untrusted token.";

/// `keyward doctor`: a token (or a stream, or none with --audit) against a key set.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("keys").required(true).multiple(true).args(["jwks", "issuer"])))]
pub(crate) struct DoctorArgs {
    /// The IdP's key set: an https URL (http only to loopback unless --allow-insecure-http),
    /// or a file holding a JWKS, a `{kid: PEM certificate}` map or a single JWK.
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) jwks: Option<String>,

    /// The issuer the application expects. Alone, the JWKS is found through OIDC discovery;
    /// the token's `iss` and the discovery document's `issuer` are compared with it, and near
    /// misses (trailing slash, scheme, host, Entra v1/v2, `{tenantid}`) are named.
    #[arg(long, value_name = "ISS")]
    pub(crate) issuer: Option<String>,

    /// The application's own copy of the key set: a JWKS file, or keyward's warm-start cache
    /// file. Compared with the live set to tell a stale cache from a dropped or reused key.
    #[arg(long, value_name = "FILE", conflicts_with = "audit")]
    pub(crate) cached_jwks: Option<std::path::PathBuf>,

    /// An audience the application accepts (repeatable). Without it, `aud` is not checked.
    #[arg(long = "audience", value_name = "AUD")]
    pub(crate) audiences: Vec<String>,

    /// Clock leeway for exp, nbf and iat: a duration (`90s`, `2m`) or bare seconds; at most 300 s.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_leeway)]
    pub(crate) leeway: Duration,

    /// Judge the token's times against this time (Unix seconds or RFC 3339) instead of the
    /// clock. The server `Date` is then not compared with the local clock.
    #[arg(long, value_name = "TIME", value_parser = crate::when::parse_time)]
    pub(crate) now: Option<i64>,

    /// Allow plain http:// to hosts other than loopback.
    #[arg(long)]
    pub(crate) allow_insecure_http: bool,

    /// Print one JSON object (`cause`, `warnings`, `checks`, `fix`, `token`, `jwks`) instead of
    /// the checklist.
    #[arg(long)]
    pub(crate) json: bool,

    /// No token: audit the key set's rotation hygiene (key count, kids, alg/use, key sizes,
    /// private members, cache headers, discovery, certificates). Exit 1 on any warning code or
    /// failed check (no usable key, no-cache/no-store, a failed fetch); ⚠ remarks alone exit 0.
    #[arg(long, conflicts_with_all = ["token", "stream"])]
    pub(crate) audit: bool,

    /// Diagnose one token per line of stdin against ONE fetch of the key set, one line each
    /// (one JSON object each with --json), then a summary grouped by cause and kid.
    #[arg(long, conflicts_with = "token")]
    pub(crate) stream: bool,

    /// The token, `@FILE` to read it from a file, `-` or absent for stdin. Quotes and a
    /// `Bearer ` prefix are removed, with a note.
    #[arg(value_name = "TOKEN")]
    pub(crate) token: Option<String>,
}

/// `keyward watch`: rotation events of a remote key set over time.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("keys").required(true).args(["jwks", "issuer"])))]
pub(crate) struct WatchArgs {
    /// The JWKS URL to poll.
    #[arg(long, value_name = "URL")]
    pub(crate) jwks: Option<String>,

    /// The issuer whose JWKS to poll, found through OIDC discovery (once per poll).
    #[arg(long, value_name = "ISS")]
    pub(crate) issuer: Option<String>,

    /// Time between polls (`60s`, `5m`, `500ms`), at least 10 ms, at most 30 days.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_interval)]
    pub(crate) interval: Duration,

    /// How many consecutive polls must agree before a kid counts as added or removed: keys
    /// that flap between responses (Entra ID) are reported once they settle, not each time.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) confirm: u32,

    /// Print one JSON object per event line instead of text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Allow plain http:// to hosts other than loopback.
    #[arg(long)]
    pub(crate) allow_insecure_http: bool,

    /// Stop after this many rotation events (for tests and scripts).
    #[arg(long, value_name = "N", hide = true)]
    pub(crate) max_events: Option<u64>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("keys").required(true).multiple(true).args(["jwks", "issuer"])))]
pub(crate) struct VerifyArgs {
    /// The keys: a file holding a JWKS, a `{kid: PEM certificate}` map, a single JWK, or one PEM
    /// public key (`-----BEGIN PUBLIC KEY-----`) or certificate; or an https URL to fetch a JWKS
    /// from (http only to loopback addresses unless --allow-insecure-http). A single JWK without
    /// `kid` or a PEM key verifies a token whatever `kid` the token names.
    #[arg(long, value_name = "FILE|URL")]
    pub(crate) jwks: Option<String>,

    /// Require `iss` to equal this string exactly. Alone (without --jwks), the JWKS is found
    /// through OIDC discovery at {ISS}/.well-known/openid-configuration. Without it, `iss` is
    /// not checked.
    #[arg(long, value_name = "ISS")]
    pub(crate) issuer: Option<String>,

    /// Accept tokens whose `aud` names this audience (repeatable). Without it, `aud` is not checked.
    #[arg(long = "audience", value_name = "AUD")]
    pub(crate) audiences: Vec<String>,

    /// Allow this algorithm (repeatable). Default: every supported asymmetric algorithm, still
    /// bound to each key's type and `alg`.
    #[arg(long = "alg", value_name = "ALG", value_parser = parse_alg)]
    pub(crate) algs: Vec<Algorithm>,

    /// Clock leeway for exp, nbf and iat: a duration (`90s`, `2m`) or bare seconds (`60`);
    /// whole seconds, at most 300 s.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_leeway)]
    pub(crate) leeway: Duration,

    /// Pin the clock to this time, Unix seconds (`1767225600`) or RFC 3339
    /// (`2026-12-06T04:20:00Z`), for tests and for replaying old tokens.
    #[arg(long, value_name = "TIME", value_parser = crate::when::parse_time)]
    pub(crate) now: Option<i64>,

    /// Print one JSON object instead of human-readable text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Read one token per line from stdin and print one JSON result per line, in input order,
    /// with ONE long-lived verifier (the key cache lives across lines). A line with nothing
    /// queued behind it is answered at once, so a caller may wait for each answer; lines already
    /// queued are verified on all cores. A line that is not UTF-8 is answered `malformed`, a
    /// line over 1 MiB `token_too_large`, and the stream goes on. Exit status 0 when every
    /// token was valid, 1 when any was rejected (`keys_unavailable` included).
    #[arg(long, conflicts_with = "token")]
    pub(crate) stream: bool,

    #[command(flatten)]
    pub(crate) source: SourceArgs,

    /// The token, `@FILE` to read it from a file, `-` or absent for stdin. Surrounding
    /// whitespace, quotes ("…" or '…') and a `Bearer ` prefix are removed, with a note. A
    /// TOKEN naming an existing file is refused with a hint to write @FILE. Write `-- TOKEN`
    /// when the token comes from elsewhere.
    #[arg(value_name = "TOKEN")]
    pub(crate) token: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("setup").required(true).args(["issuer", "config"])))]
pub(crate) struct ServeArgs {
    /// The issuer to trust (quick start): its `iss`, and where OIDC discovery finds its keys.
    #[arg(long, value_name = "ISS", conflicts_with = "config", requires = "audiences")]
    pub(crate) issuer: Option<String>,

    /// An accepted audience (repeatable; at least one with --issuer).
    #[arg(long = "audience", value_name = "AUD", conflicts_with = "config")]
    pub(crate) audiences: Vec<String>,

    /// Where to listen (default 127.0.0.1:4190). A non-loopback address is logged as such.
    #[arg(long, value_name = "ADDR", conflicts_with = "config")]
    pub(crate) listen: Option<std::net::SocketAddr>,

    /// The TOML configuration (issuers, policies, path rules, claim headers, …); see
    /// docs/configuration.md. The key-source flags below apply to --issuer only: a file sets
    /// them per issuer, in `[issuer.keys]`, and beside --config they are refused.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<std::path::PathBuf>,

    /// Validate the configuration, print a summary and exit (0 valid, 2 invalid).
    #[arg(long)]
    pub(crate) check: bool,

    #[command(flatten)]
    pub(crate) source: SourceArgs,

    /// The key-source flags typed on the command line (filled in after parsing): refused
    /// beside --config, where a file sets them per issuer.
    #[arg(skip)]
    pub(crate) source_flags_given: Vec<&'static str>,
}

/// Key-source settings for a fetched key set (--jwks URL or --issuer). Durations take a
/// unit: `500ms`, `30s`, `15m`, `6h`, `1d`, or combinations such as `1h30m`; each is at most
/// 30 days.
#[derive(Debug, Args)]
#[command(next_help_heading = "Key source (with --jwks URL or --issuer)")]
pub(crate) struct SourceArgs {
    /// Lower bound on the TTL taken from Cache-Control/Expires.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_source_duration)]
    pub(crate) min_ttl: Duration,

    /// Upper bound on the TTL.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_source_duration)]
    pub(crate) max_ttl: Duration,

    /// Window of the per-issuer budget of token-driven fetches (unknown kid, signature retry:
    /// 8 per window, spaced window/8 apart), and how long a kid fetches kept missing is answered
    /// without a fetch once its 60 s follow-up is over.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_source_duration)]
    pub(crate) refresh_cooldown: Duration,

    /// How long past expiry the last good key set keeps serving while fetches fail.
    #[arg(long, value_name = "DURATION", default_value = "6h", value_parser = parse_source_duration)]
    pub(crate) max_stale: Duration,

    /// How long a key removed from the published set keeps verifying. Default: until a second
    /// fetch about 5 s later confirms the removal (never more than 60 s). `0s`: at once, no
    /// confirmation. A longer grace (at most --max-ttl) is for IdPs known to drop keys early; a
    /// pulled, compromised key then stays trusted that long.
    #[arg(long, value_name = "DURATION", value_parser = parse_source_duration)]
    pub(crate) removal_grace: Option<Duration>,

    /// Keep the last good key set here, and load it at start if younger than --max-stale.
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<std::path::PathBuf>,

    /// Allow plain http:// to hosts other than loopback.
    #[arg(long)]
    pub(crate) allow_insecure_http: bool,
}

impl SourceArgs {
    /// The flags of these settings (by argument id) that `matches` got from the command line,
    /// default values and absent flags left out, even when typed with the default value.
    pub(crate) fn given_on_command_line(matches: &clap::ArgMatches) -> Vec<&'static str> {
        const FLAGS: [(&str, &str); 7] = [
            ("min_ttl", "--min-ttl"),
            ("max_ttl", "--max-ttl"),
            ("refresh_cooldown", "--refresh-cooldown"),
            ("max_stale", "--max-stale"),
            ("removal_grace", "--removal-grace"),
            ("cache_dir", "--cache-dir"),
            ("allow_insecure_http", "--allow-insecure-http"),
        ];
        FLAGS
            .into_iter()
            .filter(|(id, _)| {
                matches.try_contains_id(id).unwrap_or(false)
                    && matches.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
            })
            .map(|(_, flag)| flag)
            .collect()
    }
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Print one JSON object instead of human-readable text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Judge exp and nbf against this time instead of the clock: Unix seconds or RFC 3339.
    #[arg(long, value_name = "TIME", value_parser = crate::when::parse_time)]
    pub(crate) now: Option<i64>,

    /// The token, `@FILE` to read it from a file, `-` or absent for stdin. Surrounding
    /// whitespace, quotes and a `Bearer ` prefix are removed, with a note.
    #[arg(value_name = "TOKEN")]
    pub(crate) token: Option<String>,
}

/// The largest key-source duration accepted: longer is a typo, not a setting.
pub(crate) const MAX_SOURCE_DURATION: Duration = Duration::from_secs(30 * 86_400);

/// A key-source duration, at most [`MAX_SOURCE_DURATION`].
fn parse_source_duration(text: &str) -> Result<Duration, String> {
    let value = parse_duration(text)?;
    if value > MAX_SOURCE_DURATION {
        return Err(format!("{text:?} is above the maximum of 30 days (30d)"));
    }
    Ok(value)
}

/// `watch --interval`: a key-source duration of at least 10 ms, so a typo (`0s`) cannot turn
/// the poll into a flood of requests to the IdP.
fn parse_interval(text: &str) -> Result<Duration, String> {
    let value = parse_source_duration(text)?;
    if value < Duration::from_millis(10) {
        return Err(format!("interval {text:?} is below the minimum of 10ms"));
    }
    Ok(value)
}

/// `--leeway`: a duration or bare seconds, whole seconds, at most [`keyward::MAX_LEEWAY_SECS`].
pub(crate) fn parse_leeway(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let value = if !trimmed.is_empty() && trimmed.bytes().all(|b| b.is_ascii_digit()) {
        match trimmed.parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => Duration::MAX,
        }
    } else {
        parse_duration(text)?
    };
    if value.subsec_nanos() != 0 {
        return Err(format!("leeway {text:?} is not a whole number of seconds"));
    }
    if value.as_secs() > keyward::MAX_LEEWAY_SECS {
        return Err(format!("leeway {text:?} is above the maximum of {} s", keyward::MAX_LEEWAY_SECS));
    }
    Ok(value)
}

/// Parses `500ms`, `30s`, `15m`, `6h`, `1d` and sums such as `1h30m` (the configuration file's
/// parser, without its bare seconds). A sum too large for a `Duration` is refused, never wrapped.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    keyward_serve::config::parse_duration_units(text).map_err(|e| match e {
        keyward_serve::config::DurationError::Invalid => {
            format!(
                "invalid duration {text:?}: use a number with a unit, e.g. 0s, 30s, 15m, 6h, 500ms, 1h30m"
            )
        }
        keyward_serve::config::DurationError::TooLarge => format!("duration {text:?} is too large"),
    })
}

fn parse_alg(name: &str) -> Result<Algorithm, String> {
    name.parse().map_err(|e: keyward::UnknownAlgorithm| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(21_600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "30", "s", "5x", "-1s", "1.5s", "99999999999999999999s", "18446744073709551615d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        assert_eq!(parse_source_duration("30d"), Ok(MAX_SOURCE_DURATION));
        assert!(parse_source_duration("30d1s").unwrap_err().contains("30 days"));
        assert!(parse_source_duration("10000000000d").is_err());
    }

    #[test]
    fn leeways() {
        assert_eq!(parse_leeway("60"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_leeway("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_leeway("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_leeway("300"), Ok(Duration::from_secs(300)));
        for bad in ["301", "5m1s", "500ms", "-1", "99999999999999999999999", ""] {
            assert!(parse_leeway(bad).is_err(), "{bad:?}");
        }
    }

    fn drill_args(line: &[&str]) -> Result<DrillArgs, clap::Error> {
        use clap::Parser;
        match Cli::try_parse_from(std::iter::once("keyward").chain(line.iter().copied()))?.command {
            Command::Drill(args) => Ok(args),
            other => panic!("not a drill: {other:?}"),
        }
    }

    #[test]
    fn fleet_alone_means_a_thousand_replicas_at_the_default_limit() {
        let args = drill_args(&["drill", "--fleet", "--json"]).unwrap();
        assert_eq!((args.fleet, args.jwks_rate_limit, args.json), (Some(1_000), None, true));
        let args = drill_args(&["drill", "--fleet", "250", "--jwks-rate-limit", "50"]).unwrap();
        assert_eq!((args.fleet, args.jwks_rate_limit), (Some(250), Some(50)));
        assert!(drill_args(&["drill", "--fleet", "0"]).is_err());
        assert!(drill_args(&["drill", "--target", "self", "--jwks-rate-limit", "50"]).is_err());
    }
}

/// `keyward idp`: where to listen, which keys to hold.
#[derive(Debug, Args)]
pub(crate) struct IdpArgs {
    /// The address to listen on. Anything but a loopback address is announced on stderr.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8600")]
    pub(crate) listen: std::net::SocketAddr,

    /// A signing algorithm to hold a key for (repeatable; the first signs tokens by default).
    #[arg(long = "alg", value_name = "ALG", value_parser = parse_idp_alg)]
    pub(crate) algs: Vec<keyward_idp::SigningAlg>,

    /// Load keys from this file at start and save them there (atomically) after every change.
    #[arg(long, value_name = "FILE")]
    pub(crate) state: Option<std::path::PathBuf>,

    /// The issuer to advertise (e.g. the URL of a proxy in front of the idp).
    #[arg(long, value_name = "URL")]
    pub(crate) issuer: Option<String>,

    /// Answer 429 to JWKS requests above this many per second.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) jwks_rate_limit: Option<u32>,
}

fn parse_idp_alg(name: &str) -> Result<keyward_idp::SigningAlg, String> {
    keyward_idp::SigningAlg::from_name(name).ok_or_else(|| {
        "one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA".to_owned()
    })
}

/// `keyward drill`: which idp, which target, which scenarios.
#[derive(Debug, Args)]
pub(crate) struct DrillArgs {
    /// A running `keyward idp` to drive through its admin API (default: one in process).
    #[arg(long, value_name = "URL")]
    pub(crate) idp: Option<String>,

    /// `self`: keyward's own verifier, in process.
    #[arg(long, value_name = "self", value_parser = ["self"], required_unless_present_any = ["target_url", "fleet"], conflicts_with = "target_url")]
    pub(crate) target: Option<String>,

    /// An HTTP endpoint that checks `Authorization: Bearer` tokens (2xx accepted, 401/403 rejected).
    #[arg(long, value_name = "URL", value_parser = parse_http_url)]
    pub(crate) target_url: Option<String>,

    /// The audience tokens are minted for.
    #[arg(long, value_name = "AUD", default_value = "keyward-drill")]
    pub(crate) audience: String,

    /// A scenario to run (repeatable; default all).
    #[arg(long = "scenario", value_name = "NAME")]
    pub(crate) scenarios: Vec<String>,

    /// How long each scenario watches the target, in seconds (1 to 30); with --fleet, each
    /// rotation phase lasts three windows.
    #[arg(long, value_name = "SECONDS", default_value_t = 6, value_parser = clap::value_parser!(u64).range(1..=30))]
    pub(crate) window: u64,

    /// One JSON object on stdout instead of the table.
    #[arg(long)]
    pub(crate) json: bool,

    /// Fleet simulation: N key sources in process against one idp answering 429 above
    /// --jwks-rate-limit JWKS requests per second; reports rejected valid tokens, JWKS requests
    /// and 429s per phase. The idp closes each connection after its answer, so a replica holds
    /// open files only while a fetch is in flight; past what the open-file limit (`ulimit -n`)
    /// could hold if every replica fetched at once, it warns, and the `unanswered` column says
    /// whether any fetch went without.
    /// `--fleet` alone simulates 1,000 replicas.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "1000", value_parser = clap::value_parser!(u64).range(1..=20_000), conflicts_with_all = ["target", "target_url", "idp"])]
    pub(crate) fleet: Option<u64>,

    /// With --fleet: the JWKS requests per second the idp answers before it answers 429
    /// (`Retry-After: 1`). Every replica needs one answer after a key is published, so with N
    /// replicas no verifier can have the key everywhere sooner than N / this many seconds.
    /// [default: 20]
    #[arg(long, value_name = "PER_SECOND", requires = "fleet", conflicts_with_all = ["target", "target_url", "idp"], value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) jwks_rate_limit: Option<u32>,
}

/// An `http://` or `https://` URL with a host, refused at once otherwise (the drill would wait
/// for it to become ready).
fn parse_http_url(text: &str) -> Result<String, String> {
    match url::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(text.to_owned()),
        Ok(url) => Err(format!("{text:?} is a {} URL; the target must be http(s)", url.scheme())),
        Err(e) => Err(format!("{text:?} is not a URL: {e}")),
    }
}
