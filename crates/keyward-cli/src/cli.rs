//! Command-line definitions: every flag's name, default and help live here.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use keyward::Algorithm;

/// JWT verification that survives identity-provider key rotation.
#[derive(Debug, Parser)]
#[command(name = "keyward", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// Log filter for diagnostics on stderr (e.g. `info`, `keyward=debug`); default `warn`,
    /// or the KEYWARD_LOG environment variable.
    #[arg(long, global = true, value_name = "FILTER")]
    pub(crate) log: Option<String>,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Verify a token's signature and claims against a JWKS.
    ///
    /// Exit status: 0 valid, 1 rejected (including an empty or unparsable token),
    /// 2 usage error, unreadable file, or a key file that is not a JWKS (an unusable fetched
    /// key set is a rejection, `keys_unavailable`, exit 1).
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(Box<VerifyArgs>),
    /// Rehearse an IdP key rotation end to end, with no outside service: an embedded mock IdP
    /// rotates and fails while a naive cached key set and keyward's key source verify tokens.
    ///
    /// Exit status: 0 when keyward accepted every valid token and rejected every forged one.
    Demo,
    /// Decode a token's header and claims WITHOUT verifying anything.
    ///
    /// Exit status: 0 decoded, 1 not a decodable token, 2 usage error.
    Inspect(InspectArgs),
}

const VERIFY_EXAMPLES: &str = "\
Examples:
  keyward verify --jwks jwks.json --issuer https://idp.example.com --audience api \"$TOKEN\"
  echo \"$TOKEN\" | keyward verify --jwks jwks.json --json
  keyward verify --jwks jwks.json --now 1767225600 @old-token.jwt   # replay an old token from a file
  keyward verify --issuer https://login.example.com --audience api \"$TOKEN\"   # discover the JWKS
  keyward verify --jwks https://idp.example.com/jwks.json --stream < tokens.txt  # audit a token log";

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("keys").required(true).multiple(true).args(["jwks", "issuer"])))]
pub(crate) struct VerifyArgs {
    /// The key set: a JWKS file (or `{kid: PEM certificate}` map), or an https URL to fetch it
    /// from (http only to loopback addresses unless --allow-insecure-http).
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

    /// Clock leeway for exp, nbf and iat, in seconds (at most 300).
    #[arg(long, value_name = "SECONDS", default_value_t = keyward::DEFAULT_LEEWAY_SECS)]
    pub(crate) leeway: u64,

    /// Pin the clock to this Unix time (for tests and for replaying old tokens).
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub(crate) now: Option<i64>,

    /// Print one JSON object instead of human-readable text.
    #[arg(long)]
    pub(crate) json: bool,

    /// Read one token per line from stdin and print one JSON result per line, in input order,
    /// with ONE long-lived verifier (the key cache lives across lines). A line with nothing
    /// queued behind it is answered at once, so a caller may wait for each answer; lines already
    /// queued are verified on all cores. Exit status 0 when every token was valid, 1 when any
    /// was rejected.
    #[arg(long, conflicts_with = "token")]
    pub(crate) stream: bool,

    #[command(flatten)]
    pub(crate) source: SourceArgs,

    /// The token, `@FILE` to read it from a file, `-` or absent for stdin. Surrounding
    /// whitespace is ignored.
    #[arg(value_name = "TOKEN")]
    pub(crate) token: Option<String>,
}

/// Key-source settings for a fetched key set (--jwks URL or --issuer). Durations take a
/// unit: `500ms`, `30s`, `15m`, `6h`, `1d`, or combinations such as `1h30m`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Key source (with --jwks URL or --issuer)")]
pub(crate) struct SourceArgs {
    /// Lower bound on the TTL taken from Cache-Control/Expires.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_duration)]
    pub(crate) min_ttl: Duration,

    /// Upper bound on the TTL.
    #[arg(long, value_name = "DURATION", default_value = "15m", value_parser = parse_duration)]
    pub(crate) max_ttl: Duration,

    /// Window of the per-issuer budget of token-driven fetches (unknown kid, signature retry:
    /// 8 per window, spaced window/8 apart), and how long a kid fetches kept missing is answered
    /// without a fetch once its 60 s follow-up is over.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub(crate) refresh_cooldown: Duration,

    /// How long past expiry the last good key set keeps serving while fetches fail.
    #[arg(long, value_name = "DURATION", default_value = "6h", value_parser = parse_duration)]
    pub(crate) max_stale: Duration,

    /// How long a key removed from the published set keeps verifying. Default: until a second
    /// fetch about 5 s later confirms the removal (never more than 60 s). `0s`: at once, no
    /// confirmation. A longer grace (at most --max-ttl) is for IdPs known to drop keys early; a
    /// pulled, compromised key then stays trusted that long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) removal_grace: Option<Duration>,

    /// Keep the last good key set here, and load it at start if younger than --max-stale.
    #[arg(long, value_name = "DIR")]
    pub(crate) cache_dir: Option<std::path::PathBuf>,

    /// Allow plain http:// to hosts other than loopback.
    #[arg(long)]
    pub(crate) allow_insecure_http: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// Print one JSON object instead of human-readable text.
    #[arg(long)]
    pub(crate) json: bool,

    /// The token, `@FILE` to read it from a file, `-` or absent for stdin.
    #[arg(value_name = "TOKEN")]
    pub(crate) token: Option<String>,
}

/// Parses `500ms`, `30s`, `15m`, `6h`, `1d` and sums such as `1h30m`.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let err = || {
        format!("invalid duration {text:?}: use a number with a unit, e.g. 0s, 30s, 15m, 6h, 500ms, 1h30m")
    };
    let mut total = Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let value: u64 = number.parse().map_err(|_| err())?;
        let unit_len = after.find(|c: char| c.is_ascii_digit()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(value),
            "s" => Duration::from_secs(value),
            "m" => Duration::from_secs(value.saturating_mul(60)),
            "h" => Duration::from_secs(value.saturating_mul(3600)),
            "d" => Duration::from_secs(value.saturating_mul(86_400)),
            _ => return Err(err()),
        };
        total = total.saturating_add(part);
        rest = after;
    }
    Ok(total)
}

fn parse_alg(name: &str) -> Result<Algorithm, String> {
    name.parse().map_err(|_| match name {
        "none" | "HS256" | "HS384" | "HS512" => {
            format!("{name} is never accepted: keyward verifies only public-key signatures")
        }
        _ => format!(
            "unknown algorithm {name:?}; supported: {}",
            Algorithm::ALL.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ")
        ),
    })
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
        for bad in ["", "30", "s", "5x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
