//! `keyward drill`: rotation and failure scenarios against a verifier, judged.
//!
//! The drill drives an idp (a `keyward idp` over its admin API, or one started in process),
//! sends tokens to the target (keyward's verifier in process, or any HTTP endpoint taking
//! `Authorization: Bearer`), and checks each scenario's expectation. The scenario engine is
//! independent of how results are printed, so `keyward demo` can run on it too.

/// `println!` for drill output, through `cmd::say`: a closed stdout does not panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cmd::say(format_args!($($arg)*))
    };
}

pub(crate) mod engine;
mod fleet;
pub(crate) mod scenarios;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keyward::source::{JwksSource, SourceSettings};
use keyward::{Policy, Verifier};
use serde_json::{Value, json};

use self::engine::{Class, DrillIdp, Forger, Target};
use self::scenarios::{Ctx, Outcome, SCENARIOS, Scenario, Verdict};
use crate::cli::DrillArgs;

/// The whole drill gives up after this long (exit 1, never a hang).
const DRILL_LIMIT: Duration = Duration::from_secs(5 * 60);
/// How long a target answering 503 (or not yet listening) may take to become ready.
const READY_LIMIT: Duration = Duration::from_secs(60);

pub(crate) fn run(args: &DrillArgs) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if let Some(n) = args.fleet {
        return runtime.block_on(fleet::run(
            n,
            args.jwks_rate_limit.unwrap_or(fleet::DEFAULT_RATE_LIMIT),
            Duration::from_secs(args.window),
            args.json,
        ));
    }
    let selected = select(&args.scenarios)?;
    runtime.block_on(async {
        match tokio::time::timeout(DRILL_LIMIT, drill(args, &selected)).await {
            Ok(result) => result,
            Err(_) => {
                eprintln!(
                    "keyward: drill: gave up after {} s; the target is judged failed",
                    DRILL_LIMIT.as_secs()
                );
                Ok(ExitCode::from(1))
            }
        }
    })
}

/// The scenarios named on the command line (all when none), in the canonical order.
fn select(names: &[String]) -> Result<Vec<&'static Scenario>> {
    for name in names {
        if !SCENARIOS.iter().any(|s| s.name == name) {
            let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
            bail!("unknown scenario {name:?}; the scenarios are: {}", known.join(", "));
        }
    }
    Ok(SCENARIOS.iter().filter(|s| names.is_empty() || names.iter().any(|n| n == s.name)).collect())
}

/// keyward's key source as the in-process target uses it: default rules, with the fetch
/// budget's window scaled to the drill's window so a scenario sees several spaced fetches.
fn self_settings(window: Duration) -> SourceSettings {
    let mut settings = SourceSettings::default();
    settings.refresh_cooldown = window * 2;
    settings.negative_cache_ttl = window;
    settings
}

fn self_target(issuer: &str, audience: &str, settings: SourceSettings) -> Result<Target> {
    let source = JwksSource::from_issuer(issuer).settings(settings).build()?;
    let policy = Policy::builder().issuer(issuer).audience(audience).build()?;
    Ok(Target::Local(Verifier::builder().keys(source).policy(policy).build()?))
}

async fn drill(args: &DrillArgs, selected: &[&'static Scenario]) -> Result<ExitCode> {
    let window = Duration::from_secs(args.window);
    let idp = DrillIdp::connect(args.idp.as_deref()).await?;
    let issuer = idp.issuer().to_owned();
    let audience = args.audience.clone();
    let (target, target_name, short_stale) = match &args.target_url {
        Some(url) => (Target::http(url)?, url.clone(), None),
        None => {
            let target = self_target(&issuer, &audience, self_settings(window))?;
            let (iss, aud) = (issuer.clone(), audience.clone());
            let build: Box<dyn Fn() -> Result<Target> + Send + Sync> = Box::new(move || {
                let mut settings = self_settings(window);
                settings.min_ttl = Duration::from_secs(1);
                settings.max_ttl = Duration::from_secs(1);
                settings.default_ttl = Duration::from_secs(1);
                settings.refresh_ahead = Duration::ZERO;
                settings.max_stale = Duration::from_secs(1);
                settings.outage_backoff_min = Duration::from_millis(200);
                settings.outage_backoff_max = Duration::from_secs(1);
                self_target(&iss, &aud, settings)
            });
            (target, "keyward (in process)".to_owned(), Some(build))
        }
    };
    let first = idp.token(&audience).await.context("the idp minted no token")?;
    target.ready(&first, READY_LIMIT).await?;
    let forger = Forger::new(&issuer, &audience)?;
    let ctx = Ctx { idp, target, audience, window, forger, short_stale, trusted: true.into() };
    if !args.json {
        outln!("keyward drill: {} scenario(s), {} s window each", selected.len(), window.as_secs());
        outln!("  idp     {issuer}{}", if args.idp.is_some() { "" } else { " (in process)" });
        outln!("  target  {target_name}");
    }
    let mut outcomes = Vec::new();
    for scenario in selected {
        let outcome = ctx.run(scenario).await.with_context(|| format!("scenario {}", scenario.name))?;
        let stop = scenario.name == "steady" && matches!(outcome.verdict, Verdict::Fail { .. });
        outcomes.push(outcome);
        if stop {
            // Nothing else means anything while valid tokens of the current key are refused.
            break;
        }
    }
    let failed: Vec<&Outcome> =
        outcomes.iter().filter(|o| matches!(o.verdict, Verdict::Fail { .. })).collect();
    if args.json {
        let report = json!({
            "idp": issuer,
            "target": target_name,
            "window_s": window.as_secs(),
            "passed": failed.is_empty(),
            "scenarios": outcomes.iter().map(outcome_json).collect::<Vec<_>>(),
        });
        outln!("{report}");
    } else {
        print_table(&outcomes);
        if failed.is_empty() {
            outln!("\ndrill passed: the target behaved as a rotation-safe verifier in every scenario run");
        } else {
            let names: Vec<String> = failed
                .iter()
                .map(|o| match &o.verdict {
                    Verdict::Fail { cause, .. } => format!("{} ({cause})", o.name),
                    _ => o.name.to_owned(),
                })
                .collect();
            outln!("\ndrill FAILED: {}; see docs/runbook.md for each cause", names.join(", "));
        }
    }
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn rejected_summary(outcome: &Outcome) -> String {
    let mut parts = std::collections::BTreeMap::<String, u64>::new();
    for tally in outcome.probe.classes.values() {
        for (k, v) in &tally.rejected {
            *parts.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &tally.errors {
            *parts.entry(format!("error {k}")).or_default() += v;
        }
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    }
}

fn print_table(outcomes: &[Outcome]) {
    outln!(
        "\n{:<20} {:<7} {:>6} {:>8} {:>8}  {:<34} {:>5} {:>9}",
        "scenario",
        "result",
        "sent",
        "accepted",
        "rejected",
        "rejected by reason",
        "jwks",
        "new key"
    );
    for o in outcomes {
        let (sent, accepted) =
            o.probe.classes.values().fold((0, 0), |(s, a), t| (s + t.sent, a + t.accepted));
        let result = match &o.verdict {
            Verdict::Pass => "pass",
            Verdict::Fail { .. } => "FAIL",
            Verdict::Skipped(_) => "skipped",
        };
        let after = o.new_key_after.map_or_else(|| "-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64()));
        outln!(
            "{:<20} {:<7} {:>6} {:>8} {:>8}  {:<34} {:>5} {:>9}",
            o.name,
            result,
            sent,
            accepted,
            sent - accepted,
            rejected_summary(o),
            o.jwks_requests,
            after
        );
    }
    outln!("\n(jwks: JWKS requests the idp received during the scenario; new key: from the rotation, or the");
    outln!(" publication, to the first accepted new-key token; forged tokens count as sent and rejected)");
    for o in outcomes {
        outln!("\n{}: {}", o.name, o.expect);
        match &o.verdict {
            Verdict::Pass => outln!("  pass"),
            Verdict::Fail { cause, detail } => outln!("  FAIL, cause {cause}: {detail}"),
            Verdict::Skipped(why) => outln!("  skipped: {why}"),
        }
    }
}

fn outcome_json(o: &Outcome) -> Value {
    let classes: serde_json::Map<String, Value> = o
        .probe
        .classes
        .iter()
        .map(|(class, t)| {
            let name = match class {
                Class::Old => "old_key",
                Class::New => "new_key",
                Class::Forged => "forged",
            };
            (
                name.to_owned(),
                json!({"sent": t.sent, "accepted": t.accepted, "rejected": t.rejected, "errors": t.errors}),
            )
        })
        .collect();
    let (result, cause, detail) = match &o.verdict {
        Verdict::Pass => ("pass", None, None),
        Verdict::Fail { cause, detail } => ("fail", Some(*cause), Some(detail.clone())),
        Verdict::Skipped(why) => ("skipped", None, Some(why.clone())),
    };
    json!({
        "name": o.name,
        "expect": o.expect,
        "result": result,
        "cause": cause,
        "detail": detail,
        "tokens": classes,
        "jwks_requests": o.jwks_requests,
        "new_key_accepted_after_s": o.new_key_after.map(|d| d.as_secs_f64()),
    })
}
