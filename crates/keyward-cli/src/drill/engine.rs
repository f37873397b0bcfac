//! The drill's moving parts: the idp it drives (in process or over the admin API), the target
//! it sends tokens to (keyward's verifier in process, or any HTTP endpoint), and the probe that
//! sends tokens for a bounded time and tallies the verdicts.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use keyward::Verifier;
use keyward_idp::{Provider, ProviderConfig, SigningAlg, SigningKey};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Every request to the idp or the target gives up after this long.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer read from the idp's admin API or token endpoint.
const MAX_ANSWER: usize = 1024 * 1024;
/// Time between probe rounds.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// The idp the drill drives.
pub(crate) enum DrillIdp {
    /// Started by the drill, in this process.
    Local(Provider),
    /// A running `keyward idp`, driven through its admin API.
    Remote { base: String, issuer: String, http: reqwest::Client },
}

fn http_client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

fn encode(fields: &[(&str, &str)]) -> String {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        form.append_pair(k, v);
    }
    form.finish()
}

async fn read_json(response: reqwest::Response) -> Result<(u16, Value)> {
    let status = response.status().as_u16();
    let mut body = Vec::new();
    let mut response = response;
    while let Some(chunk) = response.chunk().await? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ANSWER {
            bail!("answer larger than {MAX_ANSWER} bytes");
        }
    }
    let value =
        serde_json::from_slice(&body).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&body)}));
    Ok((status, value))
}

impl DrillIdp {
    /// Starts an ES256 idp in process on a loopback port, or connects to `url`.
    pub(crate) async fn connect(url: Option<&str>) -> Result<Self> {
        let Some(url) = url else {
            let config = ProviderConfig { algs: vec![SigningAlg::ES256], ..ProviderConfig::default() };
            let provider = Provider::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), config)
                .await
                .context("cannot start the in-process idp on 127.0.0.1")?;
            return Ok(Self::Local(provider));
        };
        let base = url.trim_end_matches('/').to_owned();
        let http = http_client()?;
        let response = http
            .get(format!("{base}/admin/state"))
            .send()
            .await
            .with_context(|| format!("cannot reach the idp's admin API at {base}/admin/state"))?;
        let (status, state) = read_json(response).await?;
        if status != 200 {
            bail!(
                "{base}/admin/state answered {status}: is it a `keyward idp`, reached from loopback? {state}"
            );
        }
        let issuer =
            state["issuer"].as_str().ok_or_else(|| anyhow!("{base}/admin/state names no issuer"))?.to_owned();
        Ok(Self::Remote { base, issuer, http })
    }

    /// The issuer the target must trust.
    pub(crate) fn issuer(&self) -> &str {
        match self {
            Self::Local(p) => p.issuer(),
            Self::Remote { issuer, .. } => issuer,
        }
    }

    /// One admin API request; the JSON answer.
    pub(crate) async fn admin(&self, path: &str, fields: &[(&str, &str)]) -> Result<Value> {
        match self {
            Self::Local(p) => {
                let owned: Vec<(String, String)> =
                    fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
                Ok(p.admin(path, &owned)?)
            }
            Self::Remote { base, http, .. } => {
                let request = if path == "/admin/state" {
                    http.get(format!("{base}{path}"))
                } else {
                    http.post(format!("{base}{path}"))
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(encode(fields))
                };
                let (status, value) =
                    read_json(request.send().await.with_context(|| format!("{base}{path}"))?).await?;
                if status != 200 {
                    bail!("{base}{path} answered {status}: {value}");
                }
                Ok(value)
            }
        }
    }

    /// Ends every fault; an idp that is `down` cannot answer, so this retries for `patience`.
    pub(crate) async fn clear_faults(&self, patience: Duration) -> Result<()> {
        let deadline = Instant::now() + patience;
        loop {
            match self.admin("/admin/fault", &[("mode", "none")]).await {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context("cannot clear the idp's faults"));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// A token from the current signing key, for `audience`.
    pub(crate) async fn token(&self, audience: &str) -> Result<String> {
        let answer = match self {
            Self::Local(p) => p.mint_from_form(&[
                ("aud".to_owned(), audience.to_owned()),
                ("sub".to_owned(), "keyward-drill".to_owned()),
            ])?,
            Self::Remote { base, http, .. } => {
                let request = http
                    .post(format!("{base}/token"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(encode(&[("aud", audience), ("sub", "keyward-drill")]));
                let (status, value) = read_json(request.send().await?).await?;
                if status != 200 {
                    bail!("{base}/token answered {status}: {value}");
                }
                value
            }
        };
        answer["access_token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no access_token in {answer}"))
    }

    /// JWKS requests the idp has received so far.
    pub(crate) async fn jwks_requests(&self) -> Result<u64> {
        match self {
            Self::Local(p) => Ok(p.jwks_requests()),
            Self::Remote { .. } => {
                let state = self.admin("/admin/state", &[]).await?;
                state["jwks_requests"].as_u64().ok_or_else(|| anyhow!("no jwks_requests in the idp's state"))
            }
        }
    }
}

/// What the target said about one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accepted,
    /// A rejection: keyward's reason code, or `http 401` and the like.
    Rejected(String),
    /// No verdict: the request failed or the answer was neither 2xx nor 401/403.
    Error(String),
}

/// The verifier under test.
#[derive(Clone)]
pub(crate) enum Target {
    /// keyward's verifier, in process.
    Local(Verifier),
    /// Any HTTP endpoint checking `Authorization: Bearer`.
    Http { url: String, http: reqwest::Client },
}

impl Target {
    /// An HTTP target.
    pub(crate) fn http(url: &str) -> Result<Self> {
        Ok(Self::Http { url: url.to_owned(), http: http_client()? })
    }

    /// Sends one token.
    pub(crate) async fn check(&self, token: &str) -> Verdict {
        match self {
            Self::Local(verifier) => match verifier.verify(token).await {
                Ok(_) => Verdict::Accepted,
                Err(e) => Verdict::Rejected(e.reason().as_str().to_owned()),
            },
            Self::Http { url, http } => match http.get(url).bearer_auth(token).send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match status {
                        200..=299 => Verdict::Accepted,
                        401 | 403 => Verdict::Rejected(format!("http {status}")),
                        _ => Verdict::Error(format!("http {status}")),
                    }
                }
                Err(e) if e.is_timeout() => Verdict::Error("timeout".to_owned()),
                Err(_) => Verdict::Error("connect".to_owned()),
            },
        }
    }

    /// Waits (at most `limit`) until the target answers something other than 503 or a failed
    /// connection: a service that is still warming up is not judged yet.
    pub(crate) async fn ready(&self, token: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            match self.check(token).await {
                Verdict::Error(what) if what == "http 503" || what == "connect" || what == "timeout" => {
                    if Instant::now() >= deadline {
                        bail!("the target was not ready within {} s (last answer: {what})", limit.as_secs());
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                _ => return Ok(()),
            }
        }
    }
}

/// Which kind of token a probe sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Class {
    /// Signed by a key that was signing before the scenario's change.
    Old,
    /// Signed by the key the change introduced.
    New,
    /// Signed by an attacker's key under a random kid.
    Forged,
}

/// The verdicts of one class of tokens.
#[derive(Clone, Debug, Default)]
pub(crate) struct ClassTally {
    pub(crate) sent: u64,
    pub(crate) accepted: u64,
    pub(crate) rejected: BTreeMap<String, u64>,
    pub(crate) errors: BTreeMap<String, u64>,
    /// When a token of the class was first accepted.
    pub(crate) first_accepted: Option<Instant>,
    /// When a token of the class was last accepted.
    pub(crate) last_accepted: Option<Instant>,
    /// A rejection (or error) after the first acceptance.
    pub(crate) lost_after_accept: bool,
    /// Rejections (or errors) after the first acceptance.
    pub(crate) rejected_after_accept: u64,
}

impl ClassTally {
    fn record(&mut self, verdict: &Verdict, at: Instant) {
        self.sent += 1;
        match verdict {
            Verdict::Accepted => {
                self.accepted += 1;
                self.first_accepted.get_or_insert(at);
                self.last_accepted = Some(at);
            }
            Verdict::Rejected(reason) => {
                *self.rejected.entry(reason.clone()).or_default() += 1;
                self.note_loss();
            }
            Verdict::Error(what) => {
                *self.errors.entry(what.clone()).or_default() += 1;
                self.note_loss();
            }
        }
    }

    fn note_loss(&mut self) {
        if self.first_accepted.is_some() {
            self.lost_after_accept = true;
            self.rejected_after_accept += 1;
        }
    }

    /// Rejections and errors.
    pub(crate) fn refused(&self) -> u64 {
        self.sent - self.accepted
    }
}

/// Everything a probe saw, by class.
#[derive(Clone, Debug, Default)]
pub(crate) struct Probe {
    pub(crate) classes: BTreeMap<Class, ClassTally>,
}

impl Probe {
    /// The tally of `class` (empty if none was sent).
    pub(crate) fn of(&self, class: Class) -> ClassTally {
        self.classes.get(&class).cloned().unwrap_or_default()
    }

    /// Adds another probe's counts (a scenario in phases).
    pub(crate) fn absorb(&mut self, other: Probe) {
        for (class, tally) in other.classes {
            let mine = self.classes.entry(class).or_default();
            mine.sent += tally.sent;
            mine.accepted += tally.accepted;
            for (k, v) in tally.rejected {
                *mine.rejected.entry(k).or_default() += v;
            }
            for (k, v) in tally.errors {
                *mine.errors.entry(k).or_default() += v;
            }
            if mine.first_accepted.is_none() {
                mine.first_accepted = tally.first_accepted;
            }
            if tally.last_accepted.is_some() {
                mine.last_accepted = tally.last_accepted;
            }
            mine.lost_after_accept |= tally.lost_after_accept;
            mine.rejected_after_accept += tally.rejected_after_accept;
        }
    }
}

/// Forges tokens an attacker can make: valid claims, a random kid, the attacker's key.
pub(crate) struct Forger {
    key: SigningKey,
    issuer: String,
    audience: String,
    counter: std::sync::atomic::AtomicU64,
    started: i64,
}

impl Forger {
    pub(crate) fn new(issuer: &str, audience: &str) -> Result<Self> {
        Ok(Self {
            key: SigningKey::generate(SigningAlg::ES256, "attacker")?,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            counter: std::sync::atomic::AtomicU64::new(0),
            started: keyward::Clock::now_unix(&keyward::SystemClock),
        })
    }

    /// A token under a kid never seen before.
    pub(crate) fn token(&self) -> Result<String> {
        let n = self.counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = keyward::Clock::now_unix(&keyward::SystemClock);
        // Unique across drills too (process id and start time), so no target has seen it.
        let kid = format!("drill-random-{}-{}-{n}", std::process::id(), self.started);
        let claims = json!({"iss": self.issuer, "sub": "mallory", "aud": self.audience, "iat": now, "nbf": now,
                            "exp": now.saturating_add(3600)});
        Ok(self.key.sign_with_header(&json!({"alg": "ES256", "kid": kid, "typ": "JWT"}), &claims)?)
    }
}

/// Sends `tokens` every [`TICK`] for `duration`, plus `forged_per_tick` forged tokens, and
/// tallies the verdicts.
pub(crate) async fn probe(
    target: &Target,
    tokens: &[(Class, String)],
    forger: &Forger,
    forged_per_tick: usize,
    duration: Duration,
) -> Result<Probe> {
    let mut result = Probe::default();
    let end = Instant::now() + duration;
    while Instant::now() < end {
        let round = Instant::now();
        for (class, token) in tokens {
            let verdict = target.check(token).await;
            result.classes.entry(*class).or_default().record(&verdict, Instant::now());
        }
        for _ in 0..forged_per_tick {
            let token = forger.token()?;
            let verdict = target.check(&token).await;
            result.classes.entry(Class::Forged).or_default().record(&verdict, Instant::now());
        }
        let next = round + TICK;
        if next > Instant::now() {
            tokio::time::sleep_until(next.min(end)).await;
        }
    }
    Ok(result)
}

/// Sends `count` forged tokens, `parallel` at a time; returns their tally.
pub(crate) async fn flood(
    target: &Target,
    forger: &Forger,
    count: usize,
    parallel: usize,
) -> Result<ClassTally> {
    let mut tally = ClassTally::default();
    let mut left = count;
    while left > 0 {
        let batch = left.min(parallel.max(1));
        left -= batch;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..batch {
            let token = forger.token()?;
            let target = target.clone();
            tasks.spawn(async move { target.check(&token).await });
        }
        for verdict in tasks.join_all().await {
            tally.record(&verdict, Instant::now());
        }
    }
    Ok(tally)
}
