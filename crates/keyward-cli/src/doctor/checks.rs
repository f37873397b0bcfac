//! The checks shared by a diagnosis and an audit: the fetch facts (discovery, the JWKS
//! response, the server clock), the key-set warnings, and the checklist they are written to.

use keyward::clock::format_rfc3339;
use keyward::jwk::{JwkSet, KeyProblem, KeySetWarning};
use keyward::source::FetchStage;

use super::Settings;
use super::causes::{self, Cause};
use super::keyset::{self, Cached, Live, Origin};
use crate::when;
use crate::wire::{
    DoctorCached, DoctorCheck, DoctorDiscovery, DoctorHttp, DoctorJwks, DoctorWarning, FetchErrorReport,
};

/// A server `Date` further than this from the local clock is clock skew.
const DATE_SKEW_FAIL_SECS: u64 = 300;
/// A server `Date` further than this from the local clock is worth a note.
const DATE_SKEW_WARN_SECS: u64 = 60;
/// The cache guidance: a JWKS cached longer than this misses rotations.
pub(crate) const MAX_GOOD_TTL_SECS: u64 = 15 * 60;

/// `pass`, `fail` or `warn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    Pass,
    Fail,
    Warn,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Fail => "fail",
            Self::Warn => "warn",
        }
    }

    fn mark(self) -> &'static str {
        match self {
            Self::Pass => "✓",
            Self::Fail => "✗",
            Self::Warn => "⚠",
        }
    }
}

/// A checklist that records checks and warnings as they run.
#[derive(Debug, Default)]
pub(crate) struct Checklist {
    pub(crate) checks: Vec<DoctorCheck>,
    pub(crate) warnings: Vec<DoctorWarning>,
}

impl Checklist {
    pub(crate) fn check(&mut self, name: &'static str, status: Status, detail: impl Into<String>) {
        self.checks.push(DoctorCheck { name, status: status.as_str(), detail: detail.into() });
    }

    pub(crate) fn warn(&mut self, code: &'static str, detail: impl Into<String>) {
        self.warnings.push(DoctorWarning { code, detail: detail.into() });
    }

    /// The checks as text lines with their marks, and the warnings after them.
    pub(crate) fn human(&self) -> String {
        let mut out = String::new();
        for check in self.checks.iter().filter(|c| c.name != "cause") {
            let mark = match check.status {
                "pass" => Status::Pass.mark(),
                "fail" => Status::Fail.mark(),
                _ => Status::Warn.mark(),
            };
            let indent = if check.name == "key" { "  " } else { "" };
            out.push_str(&format!("{indent}{mark} {}: {}\n", check.name, check.detail));
        }
        if !self.warnings.is_empty() {
            out.push_str("warnings:\n");
            for w in &self.warnings {
                out.push_str(&format!("  ⚠ {}: {}\n", w.code, w.detail));
            }
        }
        out
    }
}

/// The key-set findings that do not decide a cause, as warnings.
pub(crate) fn set_warnings(list: &mut Checklist, set: &JwkSet, any_kid: bool, now: i64) {
    if set.len() == 1 && !any_kid {
        list.warn(
            "single_key",
            "the set publishes one usable key: a rotation cannot overlap old and new keys, so tokens signed \
             just before it fail until they expire",
        );
    }
    for w in set.warnings() {
        match w {
            KeySetWarning::KeyWithoutKid { .. } if any_kid => {}
            w => list.warn(w.as_str(), w.to_string()),
        }
    }
    for aside in set.set_aside() {
        let kid = aside.kid.as_deref().map_or_else(|| format!("#{}", aside.index), |k| format!("{k:?}"));
        match aside.problem {
            KeyProblem::Weak => list.warn("weak_key", format!("key {kid}: {}", aside.detail)),
            KeyProblem::NotForSigning if aside.kty.as_deref() == Some("oct") => list.warn(
                "private_key_published",
                format!("key {kid}: a kty oct key publishes a symmetric secret to anyone"),
            ),
            KeyProblem::NotForSigning
                if aside.detail.contains("\"enc\"") || aside.detail.contains("encryption") =>
            {
                list.warn("enc_key_in_set", format!("key {kid}: {} (never used to verify)", aside.detail))
            }
            _ => {}
        }
    }
    super::certs::warnings(list, set, now);
}

/// The fetch facts as checks (discovery, JWKS fetch, clock), proposing `wrong_key_set`,
/// `jwks_unreachable` and `clock_skew` where they apply. Shared with `--audit`.
pub(crate) fn fetch_checks(list: &mut Checklist, live: &Live, settings: &Settings) -> Vec<(Cause, String)> {
    let mut proposals = Vec::new();
    if let Some(issuer) = &settings.issuer {
        let lower = issuer.to_ascii_lowercase();
        if lower.contains("{tenantid}") || lower.contains("{tenant}") {
            let why =
                causes::near_miss(issuer, "the token's tid, or the tenant's ID from its discovery document");
            list.check("issuer", Status::Fail, why.clone());
            proposals.push((Cause::WrongKeySet, why));
        }
    }
    let Some(report) = &live.report else {
        if let Origin::File(path) = &live.origin {
            let detail = match &live.set {
                Some(set) => format!(
                    "read {path}: {} usable key{}, {} set aside",
                    set.len(),
                    if set.len() == 1 { "" } else { "s" },
                    set.set_aside().len()
                ),
                None => format!("read {path}"),
            };
            list.check("jwks_fetch", Status::Pass, detail);
        }
        return proposals;
    };
    let mut discovery_mismatch = false;
    if let (Some(d), Origin::Issuer(issuer)) = (&report.discovery, &live.origin) {
        let status = d.facts.as_ref().map(|f| format!("HTTP {} in {} ms", f.status, f.latency.as_millis()));
        match (&d.issuer, d.issuer_matches) {
            (Some(found), false) => {
                discovery_mismatch = true;
                let why = format!(
                    "the discovery document at {} names issuer {found:?}: {}",
                    d.url.as_deref().unwrap_or("?"),
                    causes::near_miss(issuer, found)
                );
                list.check("discovery", Status::Fail, why.clone());
                proposals.push((Cause::WrongKeySet, why));
            }
            (Some(found), true) => list.check(
                "discovery",
                Status::Pass,
                format!(
                    "{} ({}): issuer {found:?} equals the configured issuer; jwks_uri {}",
                    d.url.as_deref().unwrap_or("?"),
                    status.unwrap_or_default(),
                    d.jwks_uri.as_deref().unwrap_or("(none)")
                ),
            ),
            (None, _) => {
                let tried: Vec<String> = d.tried.iter().map(|(u, o)| format!("{u} ({o})")).collect();
                list.check(
                    "discovery",
                    Status::Fail,
                    format!("no usable discovery document; tried {}", tried.join(", ")),
                );
            }
        }
    }
    if let Some(f) = &report.facts {
        let mut detail = format!(
            "{} HTTP {} in {} ms, {}, {} bytes",
            report.jwks_uri.as_deref().unwrap_or(&f.url),
            f.status,
            f.latency.as_millis(),
            f.content_type.as_deref().unwrap_or("no Content-Type"),
            f.body_bytes
        );
        match &f.cache_control {
            Some(cc) => detail.push_str(&format!(", Cache-Control {cc:?}")),
            None => detail.push_str(", no Cache-Control"),
        }
        if let Some(expires) = &f.expires {
            detail.push_str(&format!(", Expires {expires}"));
        }
        if let Some(etag) = &f.etag {
            detail.push_str(&format!(", ETag {etag}"));
        }
        if let Some(date) = &f.date {
            detail.push_str(&format!(", Date {date}"));
        }
        if let Some(ttl) = report.requested_ttl {
            detail.push_str(&format!(", asks for a TTL of {}", when::span(ttl.as_secs())));
        }
        if let Some(set) = &live.set {
            detail.push_str(&format!("; {} usable keys, {} set aside", set.len(), set.set_aside().len()));
        }
        if let Some(e) = &report.error {
            detail.push_str(&format!("; failed at {}: {}", e.stage, e.detail));
        }
        let status = if report.error.is_some() { Status::Fail } else { Status::Pass };
        list.check("jwks_fetch", status, detail);
        if let Some(ttl) = report.requested_ttl
            && ttl.as_secs() > MAX_GOOD_TTL_SECS
        {
            list.warn(
                "cache_ttl_too_long",
                format!(
                    "the JWKS asks to be cached for {} (over 15 min): caches that obey miss rotations that long",
                    when::span(ttl.as_secs())
                ),
            );
        }
        if let (Some(date), Some(wall)) = (f.date.as_deref().and_then(parse_http_date), settings.wall_clock) {
            let skew = date.saturating_sub(wall);
            let direction = if skew >= 0 { "ahead of" } else { "behind" };
            let detail = format!(
                "the server Date {} is {} {direction} this host's clock",
                f.date.as_deref().unwrap_or_default(),
                when::span(skew.unsigned_abs())
            );
            if skew.unsigned_abs() > DATE_SKEW_FAIL_SECS {
                list.check("clock", Status::Fail, detail.clone());
                proposals.push((Cause::ClockSkew, detail));
            } else if skew.unsigned_abs() > DATE_SKEW_WARN_SECS {
                list.check("clock", Status::Warn, detail);
            } else {
                list.check("clock", Status::Pass, detail);
            }
        }
    }
    if let Some(e) = &report.error
        && !discovery_mismatch
    {
        let why = format!(
            "fetching {} failed at {}: {}{}",
            e.url,
            e.stage,
            e.detail,
            unreachable_hint(&e.url, e.stage)
        );
        if report.facts.is_none() {
            list.check("jwks_fetch", Status::Fail, why.clone());
        }
        proposals.push((Cause::JwksUnreachable, why));
    }
    proposals
}

/// Kubernetes and private-network hints for an unreachable JWKS.
fn unreachable_hint(url: &str, stage: FetchStage) -> &'static str {
    let host =
        url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase)).unwrap_or_default();
    let in_cluster =
        host.ends_with(".svc") || host.ends_with(".cluster.local") || host == "kubernetes.default";
    let private = host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_private() || ip.is_link_local());
    match stage {
        _ if in_cluster => {
            " (an in-cluster Kubernetes name: reachable only from inside the cluster; export the keys with \
             `kubectl get --raw /openid/v1/jwks > jwks.json` and use --jwks jwks.json)"
        }
        FetchStage::HttpStatus(401 | 403) => {
            " (the server wants credentials: Kubernetes API servers serve their JWKS only to authenticated \
             clients unless anonymous discovery is enabled; export it with `kubectl get --raw /openid/v1/jwks`)"
        }
        FetchStage::Tls => {
            " (the certificate is not trusted here: a private CA, such as a Kubernetes API server's, needs the \
             CA in the trust store, or export the keys to a file for --jwks)"
        }
        _ if private => " (a private address: reachable only from inside that network)",
        _ => "",
    }
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
pub(crate) fn parse_http_date(text: &str) -> Option<i64> {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, zone] = parts.as_slice() else { return None };
    if *zone != "GMT" {
        return None;
    }
    let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let month = months.iter().position(|m| m == month)? + 1;
    let stamp = format!("{year}-{month:02}-{day:0>2}T{time}Z");
    when::parse_time(&stamp).ok()
}

/// The `jwks` object of the JSON: what the fetch saw, every key, the cached copy.
pub(crate) fn jwks_wire(live: &Live, cached: Option<&Cached>, settings: &Settings) -> DoctorJwks {
    let report = live.report.as_ref();
    let date =
        report.and_then(|r| r.facts.as_ref()).and_then(|f| f.date.as_deref()).and_then(parse_http_date);
    DoctorJwks {
        source: live.origin.kind(),
        location: live.origin.text().to_owned(),
        url: report.and_then(|r| r.jwks_uri.clone()),
        discovery: report.and_then(|r| r.discovery.as_ref()).map(|d| DoctorDiscovery {
            url: d.url.clone(),
            status: d.facts.as_ref().map(|f| f.status),
            latency_ms: d.facts.as_ref().map(|f| u64::try_from(f.latency.as_millis()).unwrap_or(u64::MAX)),
            issuer: d.issuer.clone(),
            issuer_matches: d.issuer_matches,
            jwks_uri: d.jwks_uri.clone(),
            tried: d.tried.clone(),
        }),
        http: report.and_then(|r| r.facts.as_ref()).map(|f| DoctorHttp {
            status: f.status,
            latency_ms: u64::try_from(f.latency.as_millis()).unwrap_or(u64::MAX),
            content_type: f.content_type.clone(),
            bytes: f.body_bytes,
            cache_control: f.cache_control.clone(),
            expires: f.expires.clone(),
            etag: f.etag.clone(),
            date: f.date.clone(),
            age: f.age,
        }),
        requested_ttl_s: report.and_then(|r| r.requested_ttl).map(|d| d.as_secs()),
        date_skew_s: date.zip(settings.wall_clock).map(|(date, wall)| date.saturating_sub(wall)),
        fetch_error: report.and_then(|r| r.error.as_ref()).map(|e| FetchErrorReport {
            stage: e.stage.as_str(),
            status: match e.stage {
                FetchStage::HttpStatus(code) => Some(code),
                _ => None,
            },
            url: e.url.clone(),
            detail: e.detail.clone(),
        }),
        keys: live.set.as_ref().map(keyset::describe_set).unwrap_or_default(),
        cached: cached.map(|c| DoctorCached {
            path: c.path.display().to_string(),
            saved_at: c.saved_at.map(format_rfc3339),
            jwks_uri: c.jwks_uri.clone(),
            kids: keyset::kids(&c.set),
            keys: keyset::describe_set(&c.set),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Thu, 01 Jan 2026 00:00:00 GMT"), Some(1_767_225_600));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        for bad in ["", "Thu, 01 Jan 2026 00:00:00 UTC", "Thu, 01 Foo 2026 00:00:00 GMT", "yesterday"] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }
}
