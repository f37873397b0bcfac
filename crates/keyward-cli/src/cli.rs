//! Command-line definitions: every flag's name, default and help live here.

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
    /// 2 usage error, unreadable file, or a key set that is not a JWKS.
    #[command(after_help = VERIFY_EXAMPLES)]
    Verify(VerifyArgs),
    /// Decode a token's header and claims WITHOUT verifying anything.
    ///
    /// Exit status: 0 decoded, 1 not a decodable token, 2 usage error.
    Inspect(InspectArgs),
}

const VERIFY_EXAMPLES: &str = "\
Examples:
  keyward verify --jwks jwks.json --issuer https://idp.example.com --audience api \"$TOKEN\"
  echo \"$TOKEN\" | keyward verify --jwks jwks.json --json
  keyward verify --jwks jwks.json --now 1767225600 @old-token.jwt   # replay an old token from a file";

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The key set: a JWKS file.
    #[arg(long, value_name = "FILE")]
    pub(crate) jwks: std::path::PathBuf,

    /// Require `iss` to equal this string exactly. Without it, `iss` is not checked.
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

    /// The token, `@FILE` to read it from a file, `-` or absent for stdin. Surrounding
    /// whitespace is ignored.
    #[arg(value_name = "TOKEN")]
    pub(crate) token: Option<String>,
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
