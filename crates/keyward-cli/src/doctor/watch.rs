//! `keyward watch`: poll a JWKS and print each rotation event, debounced.
//!
//! A kid counts as added (or removed) only once `--confirm` consecutive polls agree; a kid that
//! appears in one response and is gone in the next (Entra ID's front ends serve different sets
//! for a while during a rotation) never produces an event. Fetch failures are printed once
//! when they start and once when they end.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use keyward::Clock;
use keyward::clock::format_rfc3339;
use keyward::source::{FetchTarget, SourceSettings, fetch};

use crate::cli::WatchArgs;
use crate::wire::{self, WatchEvent};

/// A kid watch has confirmed as published.
#[derive(Debug)]
struct Published {
    /// The key, described.
    key: String,
    /// When it was first seen in the poll that began its confirmation (Unix seconds).
    since: i64,
}

/// A change seen but not yet confirmed.
#[derive(Debug)]
struct Pending {
    /// Consecutive polls that showed it.
    polls: u32,
    /// When it was first seen.
    first_seen: i64,
    /// The key, described (for additions).
    key: String,
}

/// Polls until `--max-events` rotation events were printed (or forever).
pub(crate) async fn watch(args: &WatchArgs) -> Result<ExitCode> {
    let target = match (&args.jwks, &args.issuer) {
        (Some(url), _) => FetchTarget::JwksUri(url.clone()),
        (None, Some(issuer)) => FetchTarget::Issuer(issuer.clone()),
        (None, None) => anyhow::bail!("give --jwks URL or --issuer"),
    };
    let mut settings = SourceSettings::default();
    settings.http.allow_insecure_http = args.allow_insecure_http;
    let mut published: BTreeMap<String, Published> = BTreeMap::new();
    let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
    let mut started = false;
    let mut failing = false;
    let mut events = 0u64;
    loop {
        let report = fetch(&target, &settings).await?;
        let now = keyward::SystemClock.now_unix();
        match (report.set, report.error) {
            (Some(set), _) => {
                if failing {
                    failing = false;
                    print(args.json, event("fetch_recovered", now, None, None, None, &published, None))?;
                }
                let seen: BTreeMap<String, String> = set
                    .keys()
                    .iter()
                    .map(|k| {
                        (
                            k.kid().map_or_else(|| format!("(no kid) {}", k.thumbprint_b64()), str::to_owned),
                            k.describe(),
                        )
                    })
                    .collect();
                if !started {
                    started = true;
                    published =
                        seen.into_iter().map(|(kid, key)| (kid, Published { key, since: now })).collect();
                    print(args.json, event("initial", now, None, None, None, &published, None))?;
                } else {
                    for kid in published
                        .keys()
                        .chain(seen.keys())
                        .cloned()
                        .collect::<std::collections::BTreeSet<_>>()
                    {
                        let differs = seen.contains_key(&kid) != published.contains_key(&kid);
                        if !differs {
                            pending.remove(&kid);
                            continue;
                        }
                        let entry = pending.entry(kid.clone()).or_insert_with(|| Pending {
                            polls: 0,
                            first_seen: now,
                            key: seen.get(&kid).cloned().unwrap_or_default(),
                        });
                        entry.polls = entry.polls.saturating_add(1);
                        if entry.polls < args.confirm {
                            continue;
                        }
                        let Some(change) = pending.remove(&kid) else { continue };
                        if let Some(gone) = published.remove(&kid) {
                            // How long the removed key overlapped with the newest key still published.
                            let overlap = published
                                .values()
                                .filter(|p| p.since >= gone.since)
                                .map(|p| p.since)
                                .max()
                                .map(|newest| change.first_seen.saturating_sub(newest).max(0).unsigned_abs());
                            let detail = format!("published since {}", format_rfc3339(gone.since));
                            print(
                                args.json,
                                event(
                                    "removed",
                                    change.first_seen,
                                    Some(&kid),
                                    Some(gone.key),
                                    overlap,
                                    &published,
                                    Some(detail),
                                ),
                            )?;
                        } else {
                            let key = change.key.clone();
                            published
                                .insert(kid.clone(), Published { key: change.key, since: change.first_seen });
                            print(
                                args.json,
                                event(
                                    "added",
                                    change.first_seen,
                                    Some(&kid),
                                    Some(key),
                                    None,
                                    &published,
                                    None,
                                ),
                            )?;
                        }
                        events = events.saturating_add(1);
                        if args.max_events.is_some_and(|max| events >= max) {
                            return Ok(ExitCode::SUCCESS);
                        }
                    }
                }
            }
            (None, error) => {
                if !failing {
                    failing = true;
                    let detail = error.map_or_else(|| "no key set".to_owned(), |e| e.to_string());
                    print(args.json, event("fetch_failed", now, None, None, None, &published, Some(detail)))?;
                }
            }
        }
        tokio::time::sleep(args.interval).await;
    }
}

fn event(
    name: &'static str,
    at: i64,
    kid: Option<&str>,
    key: Option<String>,
    overlap_s: Option<u64>,
    published: &BTreeMap<String, Published>,
    detail: Option<String>,
) -> WatchEvent {
    WatchEvent {
        event: name,
        at: format_rfc3339(at),
        kid: kid.map(str::to_owned),
        key,
        overlap_s,
        kids: published.keys().cloned().collect(),
        detail,
    }
}

fn print(json: bool, e: WatchEvent) -> Result<()> {
    let mut out = Vec::new();
    if json {
        wire::write_line(&mut out, &e)?;
    } else {
        let mut line = format!("{} {}", e.at, e.event);
        if let Some(kid) = &e.kid {
            line.push_str(&format!(" kid {kid}"));
        }
        if let Some(key) = &e.key {
            line.push_str(&format!(": {key}"));
        }
        if let Some(detail) = &e.detail {
            line.push_str(&format!("; {detail}"));
        }
        if let Some(overlap) = e.overlap_s {
            line.push_str(&format!("; overlapped with the newest key for {}", crate::when::span(overlap)));
        }
        line.push_str(&format!(
            "; published: {}\n",
            if e.kids.is_empty() { "(none)".to_owned() } else { e.kids.join(", ") }
        ));
        out.extend_from_slice(line.as_bytes());
    }
    crate::cmd::emit(&out)?;
    Ok(())
}
