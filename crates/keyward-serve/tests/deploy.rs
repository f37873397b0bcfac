//! What `deploy/` ships is checked here: the Prometheus rules (`promtool check rules`,
//! `promtool test rules`), the systemd unit (`systemd-analyze verify` and its exposure score)
//! and the Kubernetes manifests (`kubernetes-validate`, pip, pinned in
//! `deploy/kubernetes/requirements.txt`), plus data checks that hold whatever is installed.
//!
//! A `harness = false` test (libtest-mimic), so the summary says which tools ran: on a machine
//! without one, its trials are IGNORED with `SKIPPED: <tool> not installed` in their names;
//! under `CI=true` (where `.ci/run` installs them) a missing tool is a failure. Trials that
//! need only the files never skip.
#![allow(clippy::disallowed_methods)] // a child process is bounded by a real-time deadline

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use keyward_serve::config::Config;
use libtest_mimic::{Arguments, Failed, Trial};
use yaml_rust2::{Yaml, YamlLoader};

/// How long one tool run may take before the trial fails (promtool's tests take well under
/// a second; this only stops a hung tool from hanging the suite).
const TOOL_DEADLINE: Duration = Duration::from_secs(60);

/// The metric names `keyward serve` exposes (issue #11 and the library's telemetry): an alert
/// on any other name would never fire.
const METRICS: &[&str] = &[
    "keyward_decisions_total",
    "keyward_decision_duration_seconds",
    "keyward_token_cache_hits_total",
    "keyward_token_cache_misses_total",
    "keyward_issuer_ready",
    "keyward_config_reloads_total",
    "keyward_cors_preflight_bypassed_total",
    "keyward_claim_header_dropped_total",
    "keyward_verifications_total",
    "keyward_verify_duration_seconds",
    "keyward_jwks_fetches_total",
    "keyward_jwks_keys",
    "keyward_jwks_age_seconds",
    "keyward_jwks_last_success_timestamp_seconds",
    "keyward_jwks_removed_keys_verifying",
    "keyward_key_events_total",
];

/// The alerts issue #11 and the operations brief ask for; alerts.yml must hold each.
const REQUIRED_ALERTS: &[&str] = &[
    "KeywardUnknownKidSpike",
    "KeywardKeysUnavailable",
    "KeywardJwksStale",
    "KeywardJwksFetchFailures",
    "KeywardFailureRatioHigh",
    "KeywardIssuerNotReady",
    "KeywardConfigReloadFailed",
];

/// Hardening lines the unit must carry, exactly (issue #11 "Deployment", and every other
/// protection the unit has today, so none is dropped unnoticed).
const HARDENING: &[&str] = &[
    "DynamicUser=yes",
    "ProtectSystem=strict",
    "NoNewPrivileges=yes",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "CapabilityBoundingSet=",
    "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter=@system-service",
    "StateDirectory=keyward",
    "ExecReload=/bin/kill -HUP $MAINPID",
    "KillSignal=SIGTERM",
    "Restart=on-failure",
    "PrivateDevices=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectControlGroups=yes",
    "RestrictSUIDSGID=yes",
    "MemoryDenyWriteExecute=yes",
    "LockPersonality=yes",
    "ProtectKernelLogs=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "PrivateUsers=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=~@privileged @resources",
    "UMask=0077",
];

/// The highest `systemd-analyze security` exposure the unit may score, in tenths (its
/// `--threshold` scale: 0 = fully locked down, 100 = no protection; systemd calls a score
/// below 2.0 "OK").
const MAX_EXPOSURE_TENTHS: u32 = 20;

type Check = fn() -> Result<(), Failed>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> Result<String, Failed> {
    std::fs::read_to_string(root().join(relative)).map_err(|e| format!("{relative}: {e}").into())
}

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `tool <version>` from its `--version`, or `None` when it is not installed.
fn tool_version(tool: &str) -> Option<String> {
    let out = Command::new(tool).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit()));
    out.status.success().then(|| format!("{tool} {}", version.unwrap_or("(version unknown)")))
}

/// Runs a tool to completion within [`TOOL_DEADLINE`] (killed past it). Its output goes to
/// temporary files, not pipes, so a talkative tool cannot block on a full pipe while it is
/// polled.
fn run(cmd: &mut Command) -> Result<Output, Failed> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let io = |e: std::io::Error| Failed::from(format!("{program}: {e}"));
    let (mut out, mut err) = (tempfile::tempfile().map_err(io)?, tempfile::tempfile().map_err(io)?);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().map_err(io)?)
        .stderr(err.try_clone().map_err(io)?)
        .spawn()
        .map_err(io)?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(io)? {
            break status;
        }
        if started.elapsed() > TOOL_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{cmd:?} still running after {TOOL_DEADLINE:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read_back = |file: &mut std::fs::File| -> Result<Vec<u8>, Failed> {
        use std::io::{Read, Seek};
        let mut bytes = Vec::new();
        file.rewind().and_then(|()| file.read_to_end(&mut bytes)).map_err(io)?;
        Ok(bytes)
    };
    Ok(Output { status, stdout: read_back(&mut out)?, stderr: read_back(&mut err)? })
}

fn succeeded(what: &str, out: &Output) -> Result<String, Failed> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{what} failed ({}):\n{stdout}{stderr}", out.status).into())
    }
}

/// `path` walked through a YAML tree: `a.b.0.c` (numbers index arrays).
fn at<'a>(node: &'a Yaml, path: &str) -> &'a Yaml {
    path.split('.').fold(node, |node, key| match key.parse::<usize>() {
        Ok(i) if node.is_array() => &node[i],
        _ => &node[key],
    })
}

fn text<'a>(node: &'a Yaml, path: &str) -> Result<&'a str, Failed> {
    at(node, path).as_str().ok_or_else(|| format!("`{path}` is not a string: {:?}", at(node, path)).into())
}

fn items<'a>(node: &'a Yaml, path: &str) -> Result<&'a [Yaml], Failed> {
    at(node, path)
        .as_vec()
        .map(Vec::as_slice)
        .ok_or_else(|| format!("`{path}` is not a list: {:?}", at(node, path)).into())
}

/// A YAML mapping of strings, as `key -> value`.
fn string_map(node: &Yaml, path: &str) -> Result<BTreeMap<String, String>, Failed> {
    let hash = at(node, path).as_hash().ok_or_else(|| format!("`{path}` is not a mapping"))?;
    hash.iter()
        .map(|(k, v)| match (k.as_str(), v.as_str()) {
            (Some(k), Some(v)) => Ok((k.to_owned(), v.to_owned())),
            _ => Err(format!("`{path}` holds a non-string entry {k:?}: {v:?}").into()),
        })
        .collect()
}

fn yaml(relative: &str) -> Result<Vec<Yaml>, Failed> {
    YamlLoader::load_from_str(&read(relative)?).map_err(|e| format!("{relative}: {e}").into())
}

fn ensure(ok: bool, message: impl FnOnce() -> String) -> Result<(), Failed> {
    if ok { Ok(()) } else { Err(message().into()) }
}

// ------------------------------------------------------------------------------ Prometheus

const ALERTS: &str = "deploy/prometheus/alerts.yml";
const ALERTS_TEST: &str = "deploy/prometheus/alerts_test.yml";

fn alert_rules() -> Result<Vec<Yaml>, Failed> {
    let docs = yaml(ALERTS)?;
    let doc = docs.first().ok_or("alerts.yml is empty")?;
    let mut rules = Vec::new();
    for group in items(doc, "groups")? {
        rules.extend(items(group, "rules")?.iter().filter(|r| !at(r, "alert").is_badvalue()).cloned());
    }
    Ok(rules)
}

fn promtool_check_rules() -> Result<(), Failed> {
    let out = run(Command::new("promtool").args(["check", "rules", ALERTS]).current_dir(root()))?;
    let stdout = succeeded("promtool check rules", &out)?;
    let expected = format!("SUCCESS: {} rules found", alert_rules()?.len());
    ensure(stdout.contains(&expected), || format!("expected `{expected}`:\n{stdout}"))
}

fn promtool_test_rules() -> Result<(), Failed> {
    let dir = root().join("deploy/prometheus");
    let out = run(Command::new("promtool").args(["test", "rules", "alerts_test.yml"]).current_dir(dir))?;
    let stdout = succeeded("promtool test rules", &out)?;
    ensure(stdout.contains("SUCCESS"), || format!("no SUCCESS in:\n{stdout}"))
}

/// Every alert has a `for:`, a severity, a summary and description, and a runbook link to a
/// section of docs/deploy.md that exists.
fn alerts_are_documented() -> Result<(), Failed> {
    let deploy_md = read("docs/deploy.md")?;
    let headings: BTreeSet<&str> = deploy_md.lines().filter_map(|l| l.strip_prefix("### ")).collect();
    let rules = alert_rules()?;
    let names: BTreeSet<&str> = rules.iter().filter_map(|r| r["alert"].as_str()).collect();
    for required in REQUIRED_ALERTS {
        ensure(names.contains(required), || format!("alerts.yml lacks {required}"))?;
    }
    for rule in &rules {
        let name = text(rule, "alert")?;
        let context = |what: &str| format!("{name}: {what}");
        let duration = text(rule, "for").map_err(|_| context("no `for:`"))?;
        ensure(duration.ends_with('m') || duration.ends_with('s'), || context("`for:` is not a duration"))?;
        let severity = text(rule, "labels.severity").map_err(|_| context("no severity label"))?;
        ensure(["warning", "critical"].contains(&severity), || context("severity is not warning|critical"))?;
        for annotation in ["summary", "description"] {
            let value = text(rule, &format!("annotations.{annotation}")).map_err(|_| context(annotation))?;
            ensure(value.len() > 20, || context(&format!("{annotation} says too little")))?;
        }
        let url = text(rule, "annotations.runbook_url")?;
        let anchor = format!("docs/deploy.md#{}", name.to_lowercase());
        ensure(url == anchor, || context(&format!("runbook_url {url}, expected {anchor}")))?;
        ensure(headings.contains(name), || context("docs/deploy.md has no `### <alert name>` section"))?;
        let description = text(rule, "annotations.description")?;
        ensure(description.contains(&format!("section {name}")), || context("description names no section"))?;
    }
    Ok(())
}

/// Every alert has, in alerts_test.yml, a case where it fires and, in the same case, an
/// earlier evaluation where it does not yet (its `for:` holds it), plus at least one case
/// where it must stay silent throughout (the "just below the threshold" case).
fn every_alert_is_tested_firing_and_silent() -> Result<(), Failed> {
    let docs = yaml(ALERTS_TEST)?;
    let doc = docs.first().ok_or("alerts_test.yml is empty")?;
    let mut held_then_fired = BTreeSet::new();
    let mut silent_cases = BTreeSet::new();
    for case in items(doc, "tests")? {
        let mut by_alert: BTreeMap<&str, Vec<(u64, bool)>> = BTreeMap::new();
        for eval in items(case, "alert_rule_test")? {
            let name = text(eval, "alertname")?;
            let minutes = text(eval, "eval_time")?
                .strip_suffix('m')
                .and_then(|m| m.parse::<u64>().ok())
                .ok_or_else(|| format!("{name}: eval_time is not in whole minutes"))?;
            let fires = at(eval, "exp_alerts").as_vec().is_some_and(|v| !v.is_empty());
            by_alert.entry(name).or_default().push((minutes, fires));
        }
        for (name, evals) in by_alert {
            let first_fire = evals.iter().filter(|(_, f)| *f).map(|(t, _)| *t).min();
            match first_fire {
                Some(fire) if evals.iter().any(|(t, f)| !f && *t < fire) => {
                    held_then_fired.insert(name);
                }
                Some(_) => {}
                None => {
                    silent_cases.insert(name);
                }
            }
        }
    }
    for rule in alert_rules()? {
        let name = text(&rule, "alert")?;
        ensure(held_then_fired.contains(name), || {
            format!("{name}: no test case where it is held by `for:` and then fires")
        })?;
        ensure(silent_cases.contains(name), || format!("{name}: no test case where it must stay silent"))?;
    }
    Ok(())
}

/// Every `keyward_*` name in an expression is one the gateway exposes.
fn alerts_use_only_exposed_metrics() -> Result<(), Failed> {
    for rule in alert_rules()? {
        let name = text(&rule, "alert")?;
        let expr = text(&rule, "expr")?;
        let mut found = 0;
        for (start, _) in expr.match_indices("keyward_") {
            let metric: String =
                expr[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            ensure(METRICS.contains(&metric.as_str()), || {
                format!("{name}: `{metric}` is not a keyward metric")
            })?;
            found += 1;
        }
        ensure(found > 0, || format!("{name}: no keyward metric in its expression"))?;
    }
    Ok(())
}

/// The label values an expression compares `label` with (`label="a"`, `label!="a"`,
/// `label=~"a|b"`), alternatives split.
fn matcher_values<'e>(expr: &'e str, label: &str) -> Vec<&'e str> {
    let mut values = Vec::new();
    for (start, _) in expr.match_indices(label) {
        let before = expr[..start].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue; // part of a longer name
        }
        let rest = expr[start + label.len()..].trim_start();
        let Some(rest) = ["=~", "!~", "!=", "="].iter().find_map(|op| rest.strip_prefix(op)) else {
            continue;
        };
        let Some(quoted) = rest.trim_start().strip_prefix('"') else { continue };
        if let Some(end) = quoted.find('"') {
            values.extend(quoted[..end].split('|'));
        }
    }
    values
}

/// Every label value an alert matches on is one keyward records: a misspelt reason code or
/// result would make the alert silently never fire.
fn alerts_match_only_recorded_label_values() -> Result<(), Failed> {
    let gateway_reasons = [
        "allowed",
        "missing_token",
        "ambiguous_token",
        "invalid_request",
        "insufficient_scope",
        "no_rule",
        "issuer_not_allowed",
        "unknown_policy",
    ];
    let reasons: BTreeSet<&str> =
        gateway_reasons.into_iter().chain(keyward::Reason::ALL.iter().map(|r| r.as_str())).collect();
    let statuses = BTreeSet::from(["200", "401", "403", "500", "503"]);
    // keyward_jwks_fetches_total: the key source's results; keyward_config_reloads_total: ok|error.
    let results = BTreeSet::from(["success", "not_modified", "error", "rate_limited", "ok"]);
    for rule in alert_rules()? {
        let name = text(&rule, "alert")?;
        let expr = text(&rule, "expr")?;
        for (label, known) in [("reason", &reasons), ("status", &statuses), ("result", &results)] {
            for value in matcher_values(expr, label) {
                let value = value.trim_start_matches('^').trim_end_matches('$');
                ensure(known.contains(value), || format!("{name}: {label} \"{value}\" is never recorded"))?;
            }
        }
    }
    Ok(())
}

// --------------------------------------------------------------------------------- systemd

const UNIT: &str = "deploy/systemd/keyward.service";

/// The unit's `Key=value` lines (comments and section headers left out), in order.
fn unit_lines() -> Result<Vec<String>, Failed> {
    Ok(read(UNIT)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .map(str::to_owned)
        .collect())
}

fn unit_is_hardened() -> Result<(), Failed> {
    let lines = unit_lines()?;
    for directive in HARDENING {
        ensure(lines.iter().any(|l| l == directive), || format!("{UNIT} lacks `{directive}`"))?;
    }
    // Nothing may hand a capability back, or loosen what the lines above set.
    for line in &lines {
        for loosening in ["AmbientCapabilities=CAP", "User=root", "PrivateNetwork=yes", "ProtectSystem=false"]
        {
            ensure(!line.starts_with(loosening), || format!("{UNIT}: `{line}` undoes the hardening"))?;
        }
    }
    let exec = lines
        .iter()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .ok_or_else(|| format!("{UNIT} has no ExecStart"))?;
    let args: Vec<&str> = exec.split_whitespace().collect();
    ensure(args.get(1) == Some(&"serve"), || format!("ExecStart does not run `keyward serve`: {exec}"))?;
    let config =
        args.windows(2).find(|w| w[0] == "--config").map(|w| w[1]).ok_or("ExecStart has no --config")?;
    ensure(config.starts_with("/etc/keyward/"), || {
        format!("--config {config} is outside ConfigurationDirectory=keyward (/etc/keyward)")
    })?;
    ensure(lines.iter().any(|l| l == "ConfigurationDirectory=keyward"), || {
        "no ConfigurationDirectory=keyward".to_owned()
    })
}

/// The unit as `systemd-analyze` sees it, in a temporary directory, with ExecStart's binary
/// replaced by one that exists (verify refuses a missing executable; the keyward binary is
/// not installed at /usr/local/bin on a test machine). Everything else is the shipped file.
fn unit_for_analysis() -> Result<(tempfile::TempDir, PathBuf), Failed> {
    let unit = read(UNIT)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("keyward.service");
    let patched = unit.replace("ExecStart=/usr/local/bin/keyward", &format!("ExecStart={}", exe.display()));
    ensure(patched != unit, || "ExecStart is not /usr/local/bin/keyward".to_owned())?;
    std::fs::write(&path, patched).map_err(|e| e.to_string())?;
    Ok((dir, path))
}

fn systemd_analyze_verify() -> Result<(), Failed> {
    let (_dir, path) = unit_for_analysis()?;
    let out = run(Command::new("systemd-analyze").arg("verify").arg(&path))?;
    succeeded("systemd-analyze verify", &out)?;
    // Unknown or misspelt directives are only warnings ("Unknown key ..., ignoring"): any
    // output at all is a failure.
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure(said.trim().is_empty(), || format!("systemd-analyze verify complained:\n{said}"))
}

fn systemd_analyze_security() -> Result<(), Failed> {
    let (_dir, path) = unit_for_analysis()?;
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", &format!("--threshold={MAX_EXPOSURE_TENTHS}")])
        .arg(&path))?;
    let what = format!("systemd-analyze security (exposure above {MAX_EXPOSURE_TENTHS} tenths)");
    let stdout = succeeded(&what, &out)?;
    let level = stdout
        .lines()
        .find_map(|l| l.split("Overall exposure level for keyward.service: ").nth(1))
        .ok_or_else(|| format!("no exposure level in:\n{stdout}"))?;
    println!("systemd-analyze security: exposure {level}");
    Ok(())
}

// ------------------------------------------------------------------------------ Kubernetes

const K8S: &str = "deploy/kubernetes";

/// Every document of every `*.yaml` under deploy/kubernetes, by kind.
fn manifests() -> Result<BTreeMap<String, Vec<Yaml>>, Failed> {
    let dir = root().join(K8S);
    let mut by_kind: BTreeMap<String, Vec<Yaml>> = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{K8S}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    for file in files {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for doc in yaml(&format!("{K8S}/{name}"))? {
            let kind = text(&doc, "kind").map_err(|_| format!("{name}: a document without kind"))?.to_owned();
            text(&doc, "apiVersion").map_err(|_| format!("{name}: {kind} without apiVersion"))?;
            if kind != "Kustomization" {
                text(&doc, "metadata.name").map_err(|_| format!("{name}: {kind} without metadata.name"))?;
            }
            by_kind.entry(kind).or_default().push(doc);
        }
    }
    Ok(by_kind)
}

fn one<'a>(all: &'a BTreeMap<String, Vec<Yaml>>, kind: &str) -> Result<&'a Yaml, Failed> {
    match all.get(kind).map(Vec::as_slice) {
        Some([doc]) => Ok(doc),
        other => Err(format!("expected one {kind}, found {}", other.map_or(0, <[Yaml]>::len)).into()),
    }
}

/// The Deployment's single container.
fn container(deployment: &Yaml) -> Result<&Yaml, Failed> {
    match items(deployment, "spec.template.spec.containers")? {
        [c] => Ok(c),
        other => Err(format!("expected one container, found {}", other.len()).into()),
    }
}

/// The container port a probe or Service names (by name or number), as a number.
fn resolve_port(container: &Yaml, port: &Yaml) -> Result<i64, Failed> {
    let ports = items(container, "ports")?;
    let found = ports.iter().find(|p| match (port.as_str(), port.as_i64()) {
        (Some(name), _) => p["name"].as_str() == Some(name),
        (_, Some(number)) => p["containerPort"].as_i64() == Some(number),
        _ => false,
    });
    found
        .and_then(|p| p["containerPort"].as_i64())
        .ok_or_else(|| format!("port {port:?} is not a container port").into())
}

/// The path `--config` names in the container's command line.
fn config_flag(container: &Yaml) -> Result<String, Failed> {
    let args: Vec<&str> = items(container, "args")?.iter().filter_map(Yaml::as_str).collect();
    ensure(args.first() == Some(&"serve"), || {
        format!("the container does not run `keyward serve`: {args:?}")
    })?;
    args.windows(2)
        .find(|w| w[0] == "--config")
        .map(|w| w[1].to_owned())
        .ok_or_else(|| "no --config in args".into())
}

/// The ConfigMap's text for the file `--config` names: the volume mounted at its directory
/// must come from the ConfigMap, which must hold the file's name as a key (or map a key to it
/// through `items`).
fn mounted_config(all: &BTreeMap<String, Vec<Yaml>>) -> Result<(String, String), Failed> {
    let deployment = one(all, "Deployment")?;
    let container = container(deployment)?;
    let flag = config_flag(container)?;
    let path = Path::new(&flag);
    let (dir, file) = match (path.parent(), path.file_name()) {
        (Some(d), Some(f)) => (d.to_string_lossy().into_owned(), f.to_string_lossy().into_owned()),
        _ => return Err(format!("--config {flag} is not a file path").into()),
    };
    let mount = items(container, "volumeMounts")?
        .iter()
        .find(|m| m["mountPath"].as_str() == Some(dir.as_str()))
        .ok_or_else(|| format!("nothing is mounted at {dir}, where --config {flag} points"))?;
    ensure(mount["subPath"].is_badvalue(), || {
        "the config is mounted with subPath: ConfigMap updates would never reach the pod".to_owned()
    })?;
    let volume_name = text(mount, "name")?;
    let volume = items(deployment, "spec.template.spec.volumes")?
        .iter()
        .find(|v| v["name"].as_str() == Some(volume_name))
        .ok_or_else(|| format!("no volume {volume_name}"))?;
    let map_name =
        text(volume, "configMap.name").map_err(|_| format!("volume {volume_name} is not a ConfigMap"))?;
    let config_map = all
        .get("ConfigMap")
        .into_iter()
        .flatten()
        .find(|c| c["metadata"]["name"].as_str() == Some(map_name))
        .ok_or_else(|| format!("no ConfigMap {map_name}"))?;
    let key = match volume["configMap"]["items"].as_vec() {
        None => file,
        Some(list) => list
            .iter()
            .find(|i| i["path"].as_str() == Some(file.as_str()))
            .and_then(|i| i["key"].as_str())
            .ok_or_else(|| format!("the ConfigMap's items put nothing at {file}"))?
            .to_owned(),
    };
    // Not `text()`: the key holds a dot.
    let toml = config_map["data"][key.as_str()]
        .as_str()
        .ok_or_else(|| format!("ConfigMap {map_name} has no {key}"))?;
    Ok((flag, toml.to_owned()))
}

fn deployment_probes_and_port() -> Result<(), Failed> {
    let all = manifests()?;
    let deployment = one(&all, "Deployment")?;
    let container = container(deployment)?;
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let got = text(container, &format!("{probe}.httpGet.path"))?;
        ensure(got == path, || format!("{probe} asks {got}, not {path}"))?;
        let port = resolve_port(container, at(container, &format!("{probe}.httpGet.port")))?;
        ensure(port == 4190, || format!("{probe} probes port {port}"))?;
    }
    let service = one(&all, "Service")?;
    for port in items(service, "spec.ports")? {
        let target = resolve_port(container, &port["targetPort"])?;
        ensure(target == 4190, || format!("the Service targets port {target}"))?;
    }
    Ok(())
}

fn selectors_match_the_pods() -> Result<(), Failed> {
    let all = manifests()?;
    let deployment = one(&all, "Deployment")?;
    let selector = string_map(deployment, "spec.selector.matchLabels")?;
    let pod_labels = string_map(deployment, "spec.template.metadata.labels")?;
    ensure(!selector.is_empty(), || "the Deployment's selector is empty".to_owned())?;
    let selects =
        |labels: &BTreeMap<String, String>| labels.iter().all(|(k, v)| pod_labels.get(k) == Some(v));
    ensure(selects(&selector), || {
        format!("the Deployment selects {selector:?}, its pods carry {pod_labels:?}")
    })?;
    let pdb = one(&all, "PodDisruptionBudget")?;
    let pdb_selector = string_map(pdb, "spec.selector.matchLabels")?;
    ensure(pdb_selector == selector, || {
        format!("the PDB selects {pdb_selector:?}, the Deployment {selector:?}")
    })?;
    let budget = at(pdb, "spec.maxUnavailable").as_i64().or_else(|| at(pdb, "spec.minAvailable").as_i64());
    let replicas = at(deployment, "spec.replicas").as_i64().unwrap_or(1);
    ensure(budget.is_some_and(|b| b >= 1 && b < replicas), || {
        format!("the PDB allows {budget:?} of {replicas} replicas: a drain must leave some and may take one")
    })?;
    let service = one(&all, "Service")?;
    let service_selector = string_map(service, "spec.selector")?;
    ensure(!service_selector.is_empty() && selects(&service_selector), || {
        format!("the Service selects {service_selector:?}, the pods carry {pod_labels:?}")
    })?;
    for policy in all.get("NetworkPolicy").into_iter().flatten() {
        let selected = string_map(policy, "spec.podSelector.matchLabels")?;
        ensure(selected == selector, || format!("the NetworkPolicy selects {selected:?}"))?;
    }
    Ok(())
}

fn container_is_locked_down() -> Result<(), Failed> {
    let all = manifests()?;
    let deployment = one(&all, "Deployment")?;
    let container = container(deployment)?;
    let pod = at(deployment, "spec.template.spec");
    let flag = |node: &Yaml, path: &str| at(node, path).as_bool();
    ensure(flag(pod, "securityContext.runAsNonRoot") == Some(true), || {
        "runAsNonRoot is not true".to_owned()
    })?;
    let uid = at(pod, "securityContext.runAsUser").as_i64();
    ensure(uid.is_some_and(|u| u > 0), || format!("runAsUser {uid:?}"))?;
    ensure(text(pod, "securityContext.seccompProfile.type")? == "RuntimeDefault", || "seccomp".to_owned())?;
    ensure(flag(pod, "automountServiceAccountToken") == Some(false), || {
        "the pod mounts a service-account token it never uses".to_owned()
    })?;
    ensure(flag(container, "securityContext.readOnlyRootFilesystem") == Some(true), || {
        "the root file system is writable".to_owned()
    })?;
    ensure(flag(container, "securityContext.allowPrivilegeEscalation") == Some(false), || {
        "allowPrivilegeEscalation is not false".to_owned()
    })?;
    let dropped: Vec<&str> =
        items(container, "securityContext.capabilities.drop")?.iter().filter_map(Yaml::as_str).collect();
    ensure(dropped == ["ALL"], || format!("capabilities dropped: {dropped:?}"))?;
    for resource in ["requests.cpu", "requests.memory", "limits.memory"] {
        text(container, &format!("resources.{resource}")).map_err(|_| format!("no resources.{resource}"))?;
    }
    Ok(())
}

/// The ConfigMap's config is one `keyward serve` accepts (loaded by the gateway's own
/// loader), listens on the container port on every interface (a loopback listener would fail
/// every probe), believes proxy headers from somewhere other than loopback (in a cluster the
/// ingress controller is another pod), and keeps its warm-start cache on a mounted, writable
/// volume (the root file system is read-only).
fn configmap_config_fits_the_pod() -> Result<(), Failed> {
    let all = manifests()?;
    let (flag, text) = mounted_config(&all)?;
    let config =
        Config::from_toml_str(&text, Some(Path::new(&flag))).map_err(|e| format!("ConfigMap: {e}"))?;
    let listen = config.listen;
    ensure(listen.ip().is_unspecified(), || {
        format!("listen {listen}: the pod's probes and Service cannot reach it")
    })?;
    let container = container(one(&all, "Deployment")?)?;
    let port = resolve_port(container, &Yaml::String("http".to_owned()))?;
    ensure(i64::from(listen.port()) == port, || format!("listen {listen}, container port {port}"))?;
    ensure(config.trusted_proxies.iter().any(|net| !net.addr().is_loopback()), || {
        "trusted_proxies is loopback only: the ingress controller's X-Original-* headers would be ignored"
            .to_owned()
    })?;
    let mounts: Vec<(&str, bool)> = items(container, "volumeMounts")?
        .iter()
        .filter_map(|m| Some((m["mountPath"].as_str()?, m["readOnly"].as_bool() == Some(true))))
        .collect();
    for issuer in &config.issuers {
        let dir = issuer.source.cache_dir.as_deref().ok_or_else(|| {
            format!(
                "issuer {}: no cache_dir: a container restarted during an IdP outage would have no keys",
                issuer.name
            )
        })?;
        ensure(mounts.iter().any(|(m, ro)| Path::new(m) == dir && !ro), || {
            format!(
                "cache_dir {} is not a writable volume (the root file system is read-only)",
                dir.display()
            )
        })?;
    }
    Ok(())
}

/// The oldest Kubernetes the manifests support: the `preStop` sleep action is on by default
/// from 1.30.
const MIN_KUBERNETES: &str = "1.30.0";

/// Every manifest against the Kubernetes OpenAPI schema of [`MIN_KUBERNETES`], strictly (an
/// unknown or misspelt field is an error, where the cluster would drop it silently).
fn schema_valid() -> Result<(), Failed> {
    let dir = root().join(K8S);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{K8S}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml")
        .collect();
    files.sort();
    ensure(files.len() >= 4, || format!("only {files:?} in {K8S}"))?;
    let out = run(Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "--kubernetes-version", MIN_KUBERNETES])
        .args(&files)
        .current_dir(dir))?;
    succeeded("kubernetes-validate", &out)?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    ensure(!said.contains("ERROR") && !said.contains("WARN"), || format!("kubernetes-validate:\n{said}"))
}

// ------------------------------------------------------------------------------------ main

fn trial(name: &str, check: Check) -> Trial {
    Trial::test(name, check)
}

/// Trials that need `tool`: run when it is installed, ignored (named SKIPPED) when not,
/// failed under `CI=true` when not.
fn tool_trials(tool: &str, checks: &[(&str, Check)]) -> Vec<Trial> {
    match tool_version(tool) {
        Some(version) => {
            checks.iter().map(|(name, check)| trial(&format!("{name} [{version}]"), *check)).collect()
        }
        None => checks
            .iter()
            .map(|(name, _)| {
                let tool = tool.to_owned();
                let t = Trial::test(format!("{name} [SKIPPED: {tool} not installed]"), move || {
                    Err(format!("CI=true and {tool} is missing: .ci/run installs it").into())
                });
                if in_ci() { t } else { t.with_ignored_flag(true) }
            })
            .collect(),
    }
}

fn main() {
    let args = Arguments::from_args();
    let mut trials = vec![
        trial("prometheus::alerts_are_documented", alerts_are_documented),
        trial("prometheus::every_alert_is_tested_firing_and_silent", every_alert_is_tested_firing_and_silent),
        trial("prometheus::alerts_use_only_exposed_metrics", alerts_use_only_exposed_metrics),
        trial("prometheus::alerts_match_only_recorded_label_values", alerts_match_only_recorded_label_values),
        trial("systemd::unit_is_hardened", unit_is_hardened),
        trial("kubernetes::deployment_probes_and_port", deployment_probes_and_port),
        trial("kubernetes::selectors_match_the_pods", selectors_match_the_pods),
        trial("kubernetes::container_is_locked_down", container_is_locked_down),
        trial("kubernetes::configmap_config_fits_the_pod", configmap_config_fits_the_pod),
    ];
    trials.extend(tool_trials(
        "promtool",
        &[
            ("prometheus::promtool_check_rules", promtool_check_rules),
            ("prometheus::promtool_test_rules", promtool_test_rules),
        ],
    ));
    trials.extend(tool_trials(
        "systemd-analyze",
        &[
            ("systemd::systemd_analyze_verify", systemd_analyze_verify),
            ("systemd::systemd_analyze_security", systemd_analyze_security),
        ],
    ));
    // pip install -r deploy/kubernetes/requirements.txt
    trials.extend(tool_trials("kubernetes-validate", &[("kubernetes::schema_valid", schema_valid)]));
    libtest_mimic::run(&args, trials).exit();
}
