//! `doctor --audit`: an IdP's rotation hygiene, without a token.

use super::Settings;
use super::checks::{self, Checklist, MAX_GOOD_TTL_SECS, Status};
use super::keyset::{Live, Origin};
use crate::when;
use crate::wire::{AuditReport, DoctorJwks};

/// A finished audit.
#[derive(Debug)]
pub(crate) struct Audit {
    list: Checklist,
    jwks: DoctorJwks,
}

impl Audit {
    /// True when nothing was warned about and no check failed (exit 0).
    pub(crate) fn clean(&self) -> bool {
        self.list.warnings.is_empty() && self.list.checks.iter().all(|c| c.status != "fail")
    }

    /// The `--audit --json` object.
    pub(crate) fn wire(&self) -> AuditReport<'_> {
        AuditReport { warnings: &self.list.warnings, checks: &self.list.checks, jwks: &self.jwks }
    }

    /// The checklist and a closing line, for people.
    pub(crate) fn human(&self) -> String {
        let mut out = self.list.human();
        let failed = self.list.checks.iter().filter(|c| c.status == "fail").count();
        if self.clean() {
            out.push_str("audit: no findings\n");
        } else {
            out.push_str(&format!(
                "audit: {} warning{}, {failed} failed check{}\n",
                self.list.warnings.len(),
                if self.list.warnings.len() == 1 { "" } else { "s" },
                if failed == 1 { "" } else { "s" }
            ));
        }
        out
    }
}

/// Audits the live key set and, for a remote one, its caching headers and discovery.
pub(crate) fn audit(live: &Live, settings: &Settings) -> Audit {
    let mut list = Checklist::default();
    // Fetch failures and discovery mismatches show as failed checks; no token, so no cause.
    let _ = checks::fetch_checks(&mut list, live, settings);
    if let Some(report) = &live.report
        && let Some(facts) = &report.facts
        && report.error.is_none()
    {
        let lower = facts.cache_control.as_deref().unwrap_or_default().to_ascii_lowercase();
        if lower.contains("no-store") || lower.contains("no-cache") {
            // Against the guidance, like a max-age over 15 min: a finding (exit 1), not a remark.
            list.check(
                "cache_headers",
                Status::Fail,
                format!(
                    "Cache-Control {:?}: verifiers that obey refetch the JWKS for every token (or keep no copy for an outage); \
                     publish max-age of a few minutes, at most 15 min",
                    facts.cache_control.as_deref().unwrap_or_default()
                ),
            );
        } else if facts.cache_control.is_none() && facts.expires.is_none() {
            list.check(
                "cache_headers",
                Status::Warn,
                "no Cache-Control and no Expires: each verifier falls back to its own default TTL",
            );
        } else if let Some(ttl) = report.requested_ttl {
            let status = if ttl.as_secs() > MAX_GOOD_TTL_SECS { Status::Warn } else { Status::Pass };
            list.check(
                "cache_headers",
                status,
                format!(
                    "the JWKS asks to be cached {} (guidance: at most 15 min)",
                    when::span(ttl.as_secs())
                ),
            );
        }
        if let (Some(d), Origin::Issuer(issuer)) = (&report.discovery, &live.origin)
            && let Some(jwks_uri) = &d.jwks_uri
        {
            let host =
                |u: &str| url::Url::parse(u).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase));
            if host(jwks_uri) == host(issuer) {
                list.check(
                    "discovery_consistency",
                    Status::Pass,
                    format!("jwks_uri {jwks_uri} is on the issuer's host"),
                );
            } else {
                list.check(
                    "discovery_consistency",
                    Status::Warn,
                    format!("jwks_uri {jwks_uri} is on another host than the issuer {issuer} (allowed, but check it is intended)"),
                );
            }
        }
    }
    if let Some(set) = &live.set {
        let total = set.len() + set.set_aside().len();
        // No usable key verifies nothing: a finding. One key is `single_key`, warned below.
        let status = match set.len() {
            0 => Status::Fail,
            1 => Status::Warn,
            _ => Status::Pass,
        };
        list.check(
            "key_count",
            status,
            format!(
                "{total} published key{}: {} usable, {} set aside",
                if total == 1 { "" } else { "s" },
                set.len(),
                set.set_aside().len()
            ),
        );
        let dupes = set.warnings().iter().filter(|w| w.as_str() == "duplicate_kid").count();
        let kidless = set.warnings().iter().filter(|w| w.as_str() == "key_without_kid").count();
        list.check(
            "kids",
            if dupes + kidless == 0 { Status::Pass } else { Status::Warn },
            format!(
                "{dupes} kid{} shared by several keys, {kidless} usable key{} without kid",
                plural(dupes),
                plural(kidless)
            ),
        );
        for key in set.keys() {
            let jwk = key.public_jwk();
            let missing: Vec<&str> = ["alg", "use"].into_iter().filter(|m| !jwk.contains_key(*m)).collect();
            let kid = key.kid().map_or_else(|| "without kid".to_owned(), |k| format!("{k:?}"));
            if missing.is_empty() {
                list.check("key", Status::Pass, format!("{}: alg and use present", key.describe()));
            } else {
                list.check(
                    "key",
                    Status::Warn,
                    format!(
                        "key {kid} ({} bits) has no {}: verifiers must infer it",
                        key.bits(),
                        missing.join(" and ")
                    ),
                );
            }
        }
        for aside in set.set_aside() {
            let kid = aside.kid.as_deref().map_or_else(|| format!("#{}", aside.index), |k| format!("{k:?}"));
            list.check(
                "key",
                Status::Warn,
                format!("key {kid} set aside ({}): {}", aside.problem.as_str(), aside.detail),
            );
        }
        checks::set_warnings(&mut list, set, live.any_kid, settings.now);
    }
    let jwks = checks::jwks_wire(live, None, settings);
    Audit { list, jwks }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
