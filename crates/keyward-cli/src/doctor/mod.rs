//! `keyward doctor` and `keyward watch`: the rotation runbook as commands.
//!
//! `doctor` gathers every fact first (the token as decoded, the live key set through the
//! library's side-effect-free one-shot fetch, the application's cached copy), then
//! [`diagnose`] turns the facts into a checklist, warnings and exactly one cause. Nothing here
//! verifies a token for access: the verdict is a diagnosis.

mod audit;
mod causes;
mod certs;
mod checks;
mod diagnose;
mod keyset;
mod watch;

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use keyward::Clock;

use crate::cli::{DoctorArgs, WatchArgs};
use crate::input::{self, Token};
use crate::wire::{self, StreamCount, StreamSummary};

pub(crate) use self::causes::Cause;
use self::diagnose::Diagnosis;
use self::keyset::{Cached, Live};

/// A stream line longer than this is diagnosed as a malformed token without being kept whole.
const MAX_STREAM_LINE: u64 = 1024 * 1024;

/// The settings a diagnosis runs with, from the command line.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The issuer the application expects (`--issuer`).
    pub(crate) issuer: Option<String>,
    /// The audiences the application accepts; empty when not checked.
    pub(crate) audiences: Vec<String>,
    /// The leeway, seconds.
    pub(crate) leeway: u64,
    /// The clock the token is judged by.
    pub(crate) now: i64,
    /// The real clock, for the server `Date` comparison; `None` with `--now`.
    pub(crate) wall_clock: Option<i64>,
}

pub(crate) fn run(args: &DoctorArgs) -> Result<ExitCode> {
    let wall = keyward::SystemClock.now_unix();
    let settings = Settings {
        issuer: args.issuer.clone(),
        audiences: args.audiences.clone(),
        leeway: args.leeway.as_secs(),
        now: args.now.unwrap_or(wall),
        wall_clock: args.now.is_none().then_some(wall),
    };
    if let Some(issuer) = &args.issuer {
        if issuer.trim().is_empty() {
            anyhow::bail!("--issuer is empty: give the issuer the application expects (its `iss`)");
        }
        crate::keys::check_scheme("issuer", issuer, args.allow_insecure_http)?;
    }
    if let Some(jwks) = args.jwks.as_deref().filter(|j| keyset::is_url(j)) {
        crate::keys::check_scheme("JWKS URL", jwks, args.allow_insecure_http)?;
    }
    // Inputs that cannot be read are usage errors, before any network traffic.
    let cached = match &args.cached_jwks {
        Some(path) => Some(Cached::load(path, wall)?),
        None => None,
    };
    let token = if args.audit || args.stream { None } else { Some(input::token(args.token.as_deref())?) };
    if token.as_ref().is_some_and(|t| t.text.is_empty() && t.not_utf8.is_none()) {
        // Nothing to diagnose is a usage error, not a tampered token.
        anyhow::bail!("no token: give it as an argument, as @FILE, or on stdin (`-`)");
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let live = runtime.block_on(Live::get(
        args.jwks.as_deref(),
        args.issuer.as_deref(),
        args.allow_insecure_http,
    ))?;

    if args.audit {
        let report = audit::audit(&live, &settings);
        let mut out = Vec::new();
        if args.json {
            wire::write_line(&mut out, &report.wire())?;
        } else {
            out.extend_from_slice(report.human().as_bytes());
        }
        crate::cmd::emit(&out)?;
        return Ok(ExitCode::from(u8::from(!report.clean())));
    }
    if args.stream {
        return stream(&live, cached.as_ref(), &settings, args.json);
    }
    let token = token.unwrap_or_default();
    let diagnosis = diagnose::diagnose(&token, &live, cached.as_ref(), &settings);
    let mut out = Vec::new();
    if args.json {
        wire::write_line(&mut out, &diagnosis.wire(&live, cached.as_ref(), &settings))?;
    } else {
        out.extend_from_slice(diagnosis.human().as_bytes());
    }
    crate::cmd::emit(&out)?;
    Ok(exit_code(&diagnosis))
}

fn exit_code(diagnosis: &Diagnosis) -> ExitCode {
    ExitCode::from(u8::from(diagnosis.cause != Cause::Ok))
}

/// `doctor --stream`: one diagnosis per stdin line against one fetch, then a summary grouped by
/// cause and kid. Exit 0 when every token was `ok`.
fn stream(live: &Live, cached: Option<&Cached>, settings: &Settings, json: bool) -> Result<ExitCode> {
    let stdin = std::io::stdin();
    let mut input = std::io::BufReader::new(stdin.lock());
    let mut counts: BTreeMap<(&'static str, String), u64> = BTreeMap::new();
    let mut tokens = 0u64;
    let mut all_ok = true;
    loop {
        let mut bytes = Vec::new();
        let read = Read::by_ref(&mut input)
            .take(MAX_STREAM_LINE)
            .read_until(b'\n', &mut bytes)
            .context("cannot read tokens from stdin")?;
        if read == 0 {
            break;
        }
        if !bytes.ends_with(b"\n") && read as u64 == MAX_STREAM_LINE {
            // The first MiB is kept: far over the token size bound, it is diagnosed as such.
            skip_rest_of_line(&mut input)?;
        }
        let token = Token::from_bytes(bytes);
        if token.text.is_empty() && token.not_utf8.is_none() {
            continue;
        }
        tokens = tokens.saturating_add(1);
        let diagnosis = diagnose::diagnose(&token, live, cached, settings);
        all_ok &= diagnosis.cause == Cause::Ok;
        let kid = diagnosis.token.kid.clone().unwrap_or_default();
        let count = counts.entry((diagnosis.cause.as_str(), kid)).or_default();
        *count = count.saturating_add(1);
        let mut out = Vec::new();
        if json {
            wire::write_line(&mut out, &diagnosis.wire(live, cached, settings))?;
        } else {
            out.extend_from_slice(diagnosis.one_line().as_bytes());
            out.push(b'\n');
        }
        crate::cmd::emit(&out)?;
    }
    let mut groups: Vec<StreamCount> = counts
        .into_iter()
        .map(|((cause, kid), count)| StreamCount { cause, kid: (!kid.is_empty()).then_some(kid), count })
        .collect();
    // Largest groups first; ties in cause then kid order (stable sort over the sorted map).
    groups.sort_by_key(|g| std::cmp::Reverse(g.count));
    let mut out = Vec::new();
    if json {
        wire::write_line(&mut out, &StreamSummary { tokens, summary: groups })?;
    } else {
        let parts: Vec<String> = groups
            .iter()
            .map(|g| match &g.kid {
                Some(kid) => format!("{} {} kid {kid}", g.count, g.cause),
                None => format!("{} {}", g.count, g.cause),
            })
            .collect();
        let text = if parts.is_empty() { "no tokens".to_owned() } else { parts.join("; ") };
        let noun = if tokens == 1 { "token" } else { "tokens" };
        out.extend_from_slice(format!("summary: {tokens} {noun}: {text}\n").as_bytes());
    }
    crate::cmd::emit(&out)?;
    Ok(ExitCode::from(u8::from(!all_ok)))
}

fn skip_rest_of_line(input: &mut impl BufRead) -> Result<()> {
    loop {
        let buffer = input.fill_buf().context("cannot read tokens from stdin")?;
        if buffer.is_empty() {
            return Ok(());
        }
        let (used, end) = match buffer.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (buffer.len(), false),
        };
        input.consume(used);
        if end {
            return Ok(());
        }
    }
}

pub(crate) fn run_watch(args: &WatchArgs) -> Result<ExitCode> {
    if let Some(jwks) = &args.jwks {
        if !keyset::is_url(jwks) {
            bail!("watch polls a URL: --jwks {jwks:?} is not an http(s) URL");
        }
        crate::keys::check_scheme("JWKS URL", jwks, args.allow_insecure_http)?;
    }
    if let Some(issuer) = &args.issuer {
        if issuer.trim().is_empty() {
            anyhow::bail!("--issuer is empty: give the issuer the application expects (its `iss`)");
        }
        crate::keys::check_scheme("issuer", issuer, args.allow_insecure_http)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(watch::watch(args))
}
