//! `keyward serve` behind real proxies, verifying tokens of a real OpenID provider.
//!
//! Starts, all on 127.0.0.1: the npm `oidc-provider` (pinned in `tests/interop/`, keys
//! generated now), `keyward serve` (this build), a node upstream echoing what it received,
//! Debian's nginx (`auth_request`) and Caddy (`forward_auth`) configured with the snippets of
//! `deploy/` as they are (only their addresses changed), and a second `keyward serve` whose
//! issuer never answers. It then checks, through nginx AND Caddy, what a client and the
//! protected service see; stages a key rotation by restarting the IdP with [old], [new, old],
//! [new], counting every request; stops the IdP; runs `promtool check metrics` on `/metrics`;
//! and parses the Traefik and Envoy snippets (not run here: no Debian package), replaying the
//! request each would send against `keyward serve`.
//!
//! A `harness = false` test (libtest-mimic): on a machine without a component, each trial that
//! needs it is IGNORED with `SKIPPED: <what is missing>` in its name; under `CI=true` that is a
//! failure (`scripts/ci-serve-deps.sh` installs them). Trials that need only data never skip.
//! Every child is killed on every path (`Proc`'s Drop), every wait has a deadline.
#![allow(clippy::disallowed_methods)] // real children and sockets are bounded by real-time deadlines

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

/// No single wait (a start, a request, a poll) may last longer than this.
const LIMIT: Duration = Duration::from_secs(15);
/// The audience of the IdP's resource server, and the one keyward requires.
const AUDIENCE: &str = "orders-api";
/// The IdP's client allowed `client_credentials`; oidc-provider makes it the tokens' `sub`.
const CLIENT_ID: &str = "keyward-interop";
const CLIENT_SECRET: &str = "interop-secret-not-for-production";
/// What a client sends to try to pass as someone else.
const FORGED: &str = "forged-admin";
/// keyward's --refresh-cooldown here: token-driven fetches are spaced an eighth of it apart.
const REFRESH_COOLDOWN: Duration = Duration::from_secs(8);
/// The whole scenario's budget: past it the watchdog kills every child and fails the run.
const WHOLE: Duration = Duration::from_secs(90);
/// The largest answer this test reads.
const MAX_REPLY: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------------
// The checks, by name. Each is one trial; the scenario records a result for each.

const PROXIES: [&str; 2] = ["nginx", "caddy"];
const PROXY_CHECKS: [&str; 9] = [
    "valid_token_reaches_upstream_with_claim_headers",
    "forged_x_auth_subject_is_overwritten",
    "missing_token_gets_401",
    "invalid_token_gets_401",
    "never_fetched_issuer_gets_503_with_retry_after",
    "idp_down_valid_tokens_keep_flowing",
    "keyward_unreachable_gets_503_with_retry_after",
    "named_policy_refusal_gets_403",
    "client_cannot_pick_the_request_keyward_judges",
];
const ROTATION_CHECKS: [&str; 4] = [
    "rotation::new_key_accepted_at_once",
    "rotation::old_key_accepted_while_published",
    "rotation::old_key_rejected_once_removal_confirmed",
    "rotation::no_valid_request_lost",
];
const PROMTOOL_CHECK: &str = "promtool::check_metrics_accepts_metrics";
const REPLAY_CHECKS: [&str; 2] =
    ["traefik::forward_auth_request_replayed", "envoy::ext_authz_request_replayed"];
const DATA_CHECKS: [&str; 3] =
    ["traefik::snippet_parses", "envoy::snippet_parses", "docs::proxies_md_shows_the_tested_snippets"];

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn interop_dir() -> PathBuf {
    repo_root().join("tests/interop")
}

// ---------------------------------------------------------------------------------------------
// Components.

/// What is missing on this machine for each component, `None` when present.
struct Missing {
    node: Option<String>,
    nginx: Option<String>,
    caddy: Option<String>,
    promtool: Option<String>,
}

fn runs(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).stdin(Stdio::null()).output().ok()?;
    out.status.success().then(|| {
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text
    })
}

fn detect() -> Missing {
    let node = if runs("node", &["--version"]).is_none() {
        Some("node not installed".to_owned())
    } else if !interop_dir().join("node_modules/oidc-provider/package.json").is_file() {
        Some("oidc-provider not installed; run npm ci in tests/interop".to_owned())
    } else {
        None
    };
    let nginx = match runs("nginx", &["-V"]) {
        None => Some("nginx not installed".to_owned()),
        Some(v) if !v.contains("http_auth_request_module") => Some("nginx lacks auth_request".to_owned()),
        Some(_) => None,
    };
    let caddy = runs("caddy", &["version"]).is_none().then(|| "caddy not installed".to_owned());
    let promtool = runs("promtool", &["--version"]).is_none().then(|| "promtool not installed".to_owned());
    Missing { node, nginx, caddy, promtool }
}

/// The ids of the running children, for the watchdog.
static RUNNING: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Sends `signal` to `pid` (the `kill` command: std has only SIGKILL, for its own `Child`).
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .args([signal, &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Bounds the whole run: if the scenario is not over within `WHOLE`, every child still
/// running is stopped (SIGTERM, then SIGKILL) and the process exits with a failure.
fn watchdog(done: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let deadline = Instant::now() + WHOLE;
        while Instant::now() < deadline {
            if done.load(Ordering::Relaxed) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let pids = RUNNING.lock().map(|p| p.clone()).unwrap_or_default();
        eprintln!("serve_proxies: the scenario took over {} s; stopping {pids:?}", WHOLE.as_secs());
        for pid in &pids {
            signal(*pid, "-TERM");
        }
        std::thread::sleep(Duration::from_secs(2));
        for pid in &pids {
            signal(*pid, "-KILL");
        }
        std::process::exit(1);
    });
}

/// A child process killed (and reaped) when dropped, whatever path the test takes.
struct Proc {
    name: String,
    child: Child,
    /// Stopped with SIGTERM first: nginx's master, killed outright, leaves its workers behind
    /// (still holding the port).
    graceful: bool,
    output: Arc<Mutex<String>>,
    lines: Option<Receiver<String>>,
}

impl Proc {
    /// Spawns `cmd` with piped stdin (node children exit when it closes), stdout and stderr
    /// collected (bounded) for error messages; stdout lines also go to `lines`.
    fn spawn(name: &str, cmd: &mut Command) -> Result<Self, String> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{name}: cannot start: {e}"))?;
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            let sink = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    append(&sink, &line);
                    let _ = tx.send(line);
                }
            });
        }
        if let Some(stderr) = child.stderr.take() {
            let sink = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    append(&sink, &line);
                }
            });
        }
        if let Ok(mut running) = RUNNING.lock() {
            running.push(child.id());
        }
        Ok(Self { name: name.to_owned(), child, graceful: false, output, lines: Some(rx) })
    }

    /// Waits (bounded) for a stdout line starting with `prefix`; returns the rest of it.
    fn wait_line(&mut self, prefix: &str) -> Result<String, String> {
        let deadline = Instant::now() + LIMIT;
        let rx = self.lines.as_ref().ok_or("no stdout")?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return Ok(rest.trim().to_owned());
                    }
                }
                Err(_) => return Err(format!("{} never printed {prefix:?}: {}", self.name, self.output())),
            }
        }
    }

    /// Waits (bounded) until `url` answers `want`, failing early if the child exits.
    fn wait_http(&mut self, url: &str, want: u16) -> Result<(), String> {
        let deadline = Instant::now() + LIMIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("{} exited ({status}): {}", self.name, self.output()));
            }
            match http("GET", url, &[]) {
                Ok(r) if r.status == want => return Ok(()),
                Ok(r) if Instant::now() >= deadline => {
                    return Err(format!(
                        "{url} answered {} (want {want}); {}: {}",
                        r.status,
                        self.name,
                        self.output()
                    ));
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("{url}: {e}; {}: {}", self.name, self.output()));
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn output(&self) -> String {
        self.output.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Kills and reaps it now.
    fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        if self.graceful && matches!(self.child.try_wait(), Ok(None)) {
            // SIGTERM: nginx's fast shutdown, the master stops its workers; bounded wait.
            signal(self.child.id(), "-TERM");
            let deadline = Instant::now() + Duration::from_secs(5);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let id = self.child.id();
        if let Ok(mut running) = RUNNING.lock() {
            running.retain(|p| *p != id);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Keeps the last 64 KiB a child wrote.
fn append(sink: &Mutex<String>, line: &str) {
    if let Ok(mut text) = sink.lock() {
        text.push_str(line);
        text.push('\n');
        if text.len() > 64 * 1024 {
            let cut = text.len() - 32 * 1024;
            let cut = (cut..text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            text.drain(..cut);
        }
    }
}

/// A port free now on 127.0.0.1 (the listener is dropped; the component binds it next).
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: one request per connection, deadlines on every socket operation.

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Status, headers and body in one line for failure messages (the body shortened).
    fn show(&self) -> String {
        let body = String::from_utf8_lossy(&self.body);
        let body: String = body.chars().take(400).collect();
        format!("{} {:?} {body:?}", self.status, self.headers)
    }
}

fn http(method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Reply, String> {
    send(method, url, headers, None)
}

fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Result<Reply, String> {
    let rest = url.strip_prefix("http://").ok_or_else(|| format!("not an http URL: {url}"))?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let addr: SocketAddr = host.parse().map_err(|e| format!("{host}: {e}"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|e| format!("{url}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        head.push_str("content-type: application/x-www-form-urlencoded\r\n");
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    head.push_str(body.unwrap_or_default());
    stream.write_all(head.as_bytes()).map_err(|e| format!("{url}: {e}"))?;
    let mut raw = Vec::new();
    stream.take(MAX_REPLY).read_to_end(&mut raw).map_err(|e| format!("{url}: {e}"))?;
    parse_reply(&raw).ok_or_else(|| format!("{url}: not an HTTP answer: {:?}", String::from_utf8_lossy(&raw)))
}

fn parse_reply(raw: &[u8]) -> Option<Reply> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    if headers.iter().any(|(k, v)| k == "transfer-encoding" && v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    }
    Some(Reply { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// ---------------------------------------------------------------------------------------------
// The IdP (oidc-provider), its keys and tokens.

struct Keys {
    dir: PathBuf,
    old: Value,
    new: Value,
}

impl Keys {
    /// Generates `old` and `new` RS256 keys with tests/interop/genkeys.mjs.
    fn generate(dir: &Path) -> Result<Self, String> {
        let out = Command::new("node")
            .arg(interop_dir().join("genkeys.mjs"))
            .arg(dir)
            .args(["old", "new"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("node genkeys.mjs: {e}"))?;
        if !out.status.success() {
            return Err(format!("genkeys.mjs failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let read = |kid: &str| -> Result<Value, String> {
            let text =
                std::fs::read_to_string(dir.join(format!("{kid}.jwk.json"))).map_err(|e| e.to_string())?;
            serde_json::from_str(&text).map_err(|e| e.to_string())
        };
        Ok(Self { dir: dir.to_owned(), old: read("old")?, new: read("new")? })
    }

    /// Writes a JWKS of these private keys, in this order (the IdP signs with the first).
    fn jwks(&self, name: &str, keys: &[&Value]) -> Result<PathBuf, String> {
        let path = self.dir.join(format!("{name}.jwks.json"));
        let body = serde_json::json!({ "keys": keys });
        std::fs::write(&path, body.to_string()).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

struct Idp {
    port: u16,
    issuer: String,
    proc: Option<Proc>,
}

impl Idp {
    /// Starts oidc-provider on 127.0.0.1:`port` with the keys of `jwks`.
    fn start(port: u16, jwks: &Path) -> Result<Self, String> {
        let mut idp = Self { port, issuer: format!("http://127.0.0.1:{port}"), proc: None };
        idp.restart(jwks)?;
        Ok(idp)
    }

    /// Stops it (if running) and starts it again on the same port with `jwks`.
    fn restart(&mut self, jwks: &Path) -> Result<(), String> {
        self.stop();
        let mut proc = Proc::spawn(
            "oidc-provider",
            Command::new("node")
                .arg(interop_dir().join("idp.mjs"))
                .args(["--port", &self.port.to_string(), "--audience", AUDIENCE])
                .arg("--jwks")
                .arg(jwks),
        )?;
        let issuer = proc.wait_line("ready ")?;
        if issuer != self.issuer {
            return Err(format!("oidc-provider says issuer {issuer}, expected {}", self.issuer));
        }
        self.proc = Some(proc);
        Ok(())
    }

    fn stop(&mut self) {
        if let Some(proc) = self.proc.take() {
            proc.stop();
        }
    }

    /// An access token from the client_credentials grant.
    fn token(&self) -> Result<String, String> {
        let form =
            format!("grant_type=client_credentials&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}");
        let reply = send("POST", &format!("{}/token", self.issuer), &[], Some(&form))?;
        if reply.status != 200 {
            return Err(format!("token endpoint: {}", reply.show()));
        }
        let token = reply.json()?["access_token"].as_str().map(str::to_owned);
        token.ok_or_else(|| format!("no access_token: {}", reply.show()))
    }
}

/// The JOSE header of a token.
fn jose_header(token: &str) -> Value {
    use base64::Engine as _;
    let first = token.split('.').next().unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(first)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
}

/// The token with its signature's first character changed (six whole bits, so the decoded
/// bytes change).
fn tampered(token: &str) -> String {
    let mut bytes = token.as_bytes().to_vec();
    let at = token.rfind('.').map_or(0, |dot| dot + 1);
    if let Some(c) = bytes.get_mut(at) {
        *c = if *c == b'A' { b'B' } else { b'A' };
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

// ---------------------------------------------------------------------------------------------
// keyward serve, the upstream and the proxies.

fn keyward_serve(name: &str, issuer: &str, port: u16, extra: &[&str]) -> Result<Proc, String> {
    let mut proc = Proc::spawn(
        name,
        Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["serve", "--issuer", issuer, "--audience", AUDIENCE, "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .env("RUST_LOG", "warn"),
    )?;
    proc.wait_http(&format!("http://127.0.0.1:{port}/healthz"), 200)?;
    Ok(proc)
}

/// `keyward serve --config`: the live IdP's issuer as `live` (policy `default`) and one whose
/// keys can never be fetched as `legacy` (policy `legacy`): a second issuer/policy pointing at
/// a dead port.
fn keyward_config(work: &Path, port: u16, live: &str, dead: &str) -> Result<Proc, String> {
    let toml = format!(
        "listen = \"127.0.0.1:{port}\"\ndefault_policy = \"default\"\n\n\
         [[issuer]]\nname = \"live\"\nissuer = \"{live}\"\naudiences = [\"{AUDIENCE}\"]\n\n\
         [[issuer]]\nname = \"legacy\"\nissuer = \"{dead}\"\naudiences = [\"{AUDIENCE}\"]\n\n\
         [policy.default]\nissuers = [\"live\"]\n\n[policy.legacy]\nissuers = [\"legacy\"]\n"
    );
    let file = work.join("keyward.toml");
    std::fs::write(&file, toml).map_err(|e| e.to_string())?;
    let mut proc = Proc::spawn(
        "keyward serve --config",
        Command::new(env!("CARGO_BIN_EXE_keyward"))
            .arg("serve")
            .arg("--config")
            .arg(&file)
            .env("RUST_LOG", "warn"),
    )?;
    proc.wait_http(&format!("http://127.0.0.1:{port}/healthz"), 200)?;
    Ok(proc)
}

/// A token of `issuer` that parses and names a plausible key, with a signature nobody made:
/// enough for keyward to need `issuer`'s keys (it never gets that far with this one).
fn unverifiable_token(issuer: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let header = serde_json::json!({"alg": "RS256", "typ": "at+jwt", "kid": "legacy-1"});
    let claims = serde_json::json!({
        "iss": issuer, "aud": AUDIENCE, "sub": "someone", "iat": now, "exp": now + 600,
    });
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(&[7u8; 256])
    )
}

/// The snippet at `deploy/<rel>` with its example addresses replaced.
fn render(rel: &str, replace: &[(&str, String)]) -> Result<String, String> {
    let path = repo_root().join("deploy").join(rel);
    let mut text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    for (from, to) in replace {
        if !text.contains(from) {
            return Err(format!("deploy/{rel} no longer contains {from}"));
        }
        text = text.replace(from, to);
    }
    Ok(text)
}

/// nginx (foreground, as this user, its own prefix) running deploy/nginx/keyward.conf.
/// With `policy`, the snippet's `/auth` becomes `/auth/<policy>` as its README says.
fn start_nginx(dir: &Path, keyward: u16, upstream: u16, policy: Option<&str>) -> Result<(Proc, u16), String> {
    let port = free_port()?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut changes = vec![
        ("127.0.0.1:4190", format!("127.0.0.1:{keyward}")),
        ("127.0.0.1:9000", format!("127.0.0.1:{upstream}")),
        ("127.0.0.1:8080", format!("127.0.0.1:{port}")),
    ];
    if let Some(policy) = policy {
        changes
            .push(("proxy_pass http://keyward/auth;", format!("proxy_pass http://keyward/auth/{policy};")));
    }
    let site = render("nginx/keyward.conf", &changes)?;
    std::fs::write(dir.join("keyward.conf"), site).map_err(|e| e.to_string())?;
    let d = dir.display();
    let main = format!(
        "worker_processes 1;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 512; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {d}/keyward.conf;\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), main).map_err(|e| e.to_string())?;
    let mut proc = Proc::spawn(
        "nginx",
        Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log")),
    )?;
    proc.graceful = true;
    // No auth header: keyward answers 401 once the whole chain is up.
    proc.wait_http(&format!("http://127.0.0.1:{port}/"), 401).map_err(|e| {
        format!("{e}; error.log: {}", std::fs::read_to_string(dir.join("error.log")).unwrap_or_default())
    })?;
    Ok((proc, port))
}

/// Caddy (foreground, as this user, its own data dirs) running deploy/caddy/Caddyfile.
/// With `policy`, the snippet's `uri /auth` becomes `uri /auth/<policy>` as its README says.
fn start_caddy(dir: &Path, keyward: u16, upstream: u16, policy: Option<&str>) -> Result<(Proc, u16), String> {
    let port = free_port()?;
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut changes = vec![
        ("127.0.0.1:4190", format!("127.0.0.1:{keyward}")),
        ("127.0.0.1:9000", format!("127.0.0.1:{upstream}")),
        ("127.0.0.1:8081", format!("127.0.0.1:{port}")),
    ];
    if let Some(policy) = policy {
        changes.push(("uri /auth\n", format!("uri /auth/{policy}\n")));
    }
    let text = render("caddy/Caddyfile", &changes)?;
    let file = dir.join("Caddyfile");
    std::fs::write(&file, text).map_err(|e| e.to_string())?;
    let mut proc = Proc::spawn(
        "caddy",
        Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            .env("HOME", dir)
            .env("XDG_DATA_HOME", dir.join("data"))
            .env("XDG_CONFIG_HOME", dir.join("config")),
    )?;
    proc.wait_http(&format!("http://127.0.0.1:{port}/"), 401)?;
    Ok((proc, port))
}

// ---------------------------------------------------------------------------------------------
// The scenario.

type Results = BTreeMap<String, Result<(), String>>;

fn record(results: &mut Results, name: &str, outcome: Result<(), String>) {
    results.insert(name.to_owned(), outcome);
}

fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond { Ok(()) } else { Err(msg()) }
}

/// The echo of the upstream: every (name, value) it received.
fn echoed(reply: &Reply) -> Result<Vec<(String, String)>, String> {
    let json = reply.json()?;
    let pairs = json["headers"].as_array().ok_or_else(|| format!("no headers in the echo: {json}"))?;
    Ok(pairs
        .iter()
        .filter_map(|p| Some((p.get(0)?.as_str()?.to_owned(), p.get(1)?.as_str()?.to_owned())))
        .collect())
}

fn values_of<'a>(pairs: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    pairs.iter().filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).collect()
}

/// A valid token through a proxy reaches the upstream with exactly keyward's claim headers.
fn check_valid(url: &str, token: &str, issuer: &str) -> Result<(), String> {
    let reply = http("GET", &format!("{url}/orders/42?view=full"), &[("authorization", &bearer(token))])?;
    ensure(reply.status == 200, || format!("want 200 from the upstream: {}", reply.show()))?;
    let got = echoed(&reply)?;
    ensure(values_of(&got, "x-auth-subject") == [CLIENT_ID], || {
        format!("X-Auth-Subject at the upstream: {got:?}")
    })?;
    ensure(values_of(&got, "x-auth-issuer") == [issuer], || {
        format!("X-Auth-Issuer at the upstream: {got:?}")
    })?;
    let json = reply.json()?;
    ensure(json["url"] == "/orders/42?view=full", || format!("the upstream saw {json}"))
}

/// A client's own X-Auth-Subject (and X-Auth-Issuer) never reach the upstream.
fn check_forged(url: &str, token: &str) -> Result<(), String> {
    let headers = [
        ("authorization", bearer(token)),
        ("x-auth-subject", FORGED.to_owned()),
        ("x-auth-issuer", "https://forged.example".to_owned()),
    ];
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let reply = http("GET", &format!("{url}/orders/42"), &headers)?;
    ensure(reply.status == 200, || format!("want 200: {}", reply.show()))?;
    let got = echoed(&reply)?;
    ensure(values_of(&got, "x-auth-subject") == [CLIENT_ID], || {
        format!("X-Auth-Subject at the upstream: {got:?}")
    })?;
    ensure(!got.iter().any(|(_, v)| v.contains(FORGED) || v.contains("forged.example")), || {
        format!("a forged value reached the upstream: {got:?}")
    })?;
    // Without a token the forged header gets nowhere either.
    let reply = http("GET", &format!("{url}/orders/42"), &[("x-auth-subject", FORGED)])?;
    ensure(reply.status == 401, || format!("forged header, no token: want 401: {}", reply.show()))
}

/// A client's own X-Original-* / X-Forwarded-* headers are not what keyward judges: a GET
/// without a token dressed as a CORS preflight (which keyward lets through) is refused, while a
/// real preflight still passes unauthenticated.
fn check_forged_original(url: &str) -> Result<(), String> {
    let preflight = [("origin", "https://app.example"), ("access-control-request-method", "GET")];
    let mut dressed = vec![
        ("x-original-method", "OPTIONS"),
        ("x-original-uri", "/health"),
        ("x-forwarded-method", "OPTIONS"),
        ("x-forwarded-uri", "/health"),
    ];
    dressed.extend(preflight);
    let reply = http("GET", &format!("{url}/orders/42"), &dressed)?;
    ensure(reply.status == 401, || {
        format!("a GET without a token, dressed as a preflight: want 401: {}", reply.show())
    })?;
    let reply = http("OPTIONS", &format!("{url}/orders/42"), &preflight)?;
    ensure(!matches!(reply.status, 401 | 403 | 500..), || {
        format!("a real CORS preflight is let through unauthenticated: {}", reply.show())
    })
}

fn check_missing(url: &str) -> Result<(), String> {
    for (method, path) in [("GET", "/orders/42"), ("POST", "/orders"), ("DELETE", "/")] {
        let reply = http(method, &format!("{url}{path}"), &[])?;
        ensure(reply.status == 401, || {
            format!("{method} {path} without a token: want 401: {}", reply.show())
        })?;
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        ensure(challenge.starts_with("Bearer") && challenge.contains("realm="), || {
            format!("{method} {path}: WWW-Authenticate {challenge:?}")
        })?;
        ensure(!String::from_utf8_lossy(&reply.body).contains("orders-api"), || "body leaks".to_owned())?;
    }
    Ok(())
}

fn check_invalid(url: &str, token: &str) -> Result<(), String> {
    let bad = tampered(token);
    for (what, token) in [("tampered signature", bad.as_str()), ("not a JWT", "not.a.jwt"), ("garbage", "x")]
    {
        let reply = http("GET", &format!("{url}/orders/42"), &[("authorization", &bearer(token))])?;
        ensure(reply.status == 401, || format!("{what}: want 401: {}", reply.show()))?;
        let challenge = reply.header("www-authenticate").unwrap_or_default();
        ensure(challenge.starts_with("Bearer") && challenge.contains("error=\"invalid_token\""), || {
            format!("{what}: WWW-Authenticate {challenge:?}")
        })?;
        // (Only tokens long enough not to occur in any page by chance.)
        let echoed = token.len() >= 16 && String::from_utf8_lossy(&reply.body).contains(token);
        ensure(!echoed, || format!("{what}: the body echoes the token"))?;
    }
    Ok(())
}

fn check_unavailable(url: &str, token: &str) -> Result<(), String> {
    let reply = http("GET", &format!("{url}/orders/42"), &[("authorization", &bearer(token))])?;
    ensure(reply.status == 503, || format!("want 503: {}", reply.show()))?;
    let retry = reply.header("retry-after").unwrap_or_default();
    ensure(retry.parse::<u64>().is_ok_and(|s| s >= 1), || format!("Retry-After {retry:?}: {}", reply.show()))
}

/// A valid token of an issuer the policy does not allow: 403, and the service never sees it.
fn check_refused(url: &str, token: &str) -> Result<(), String> {
    let reply = http("GET", &format!("{url}/orders/42"), &[("authorization", &bearer(token))])?;
    ensure(reply.status == 403, || format!("policy legacy, issuer live: want 403: {}", reply.show()))?;
    let echo = reply.json().ok().is_some_and(|j| j.get("headers").is_some());
    ensure(!echo, || format!("the upstream answered: {}", reply.show()))
}

fn check_flowing(url: &str, tokens: &[&str]) -> Result<(), String> {
    for token in tokens {
        let reply = http("GET", &format!("{url}/orders/42"), &[("authorization", &bearer(token))])?;
        ensure(reply.status == 200, || format!("IdP down, valid token: want 200: {}", reply.show()))?;
    }
    Ok(())
}

/// Requests sent in the background during the rotation: (token label, status or error).
type Tally = Arc<Mutex<Vec<(&'static str, Result<u16, String>)>>>;

fn run_load(
    url: String,
    tokens: Vec<(&'static str, String)>,
    stop: Arc<AtomicBool>,
    tally: Tally,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            for (label, token) in &tokens {
                let outcome = http("GET", &format!("{url}/orders/1"), &[("authorization", &bearer(token))]);
                if let Ok(mut t) = tally.lock() {
                    t.push((label, outcome.map(|r| r.status)));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
}

fn summarize(tally: &Tally, label: &str) -> (usize, Vec<String>) {
    let t = tally.lock().map(|t| t.clone()).unwrap_or_default();
    let mine: Vec<_> = t.iter().filter(|(l, _)| *l == label).collect();
    let bad = mine
        .iter()
        .filter(|(_, o)| o.as_ref().map_or(true, |s| *s != 200))
        .map(|(_, o)| format!("{o:?}"))
        .collect();
    (mine.len(), bad)
}

fn scenario(results: &mut Results, missing: &Missing, work: &Path) -> Result<(), String> {
    let keys = Keys::generate(&work.join("keys"))?;
    let only_old = keys.jwks("old", &[&keys.old])?;
    let both = keys.jwks("new-old", &[&keys.new, &keys.old])?;
    let only_new = keys.jwks("new", &[&keys.new])?;

    let mut upstream = Proc::spawn("upstream", Command::new("node").arg(interop_dir().join("upstream.mjs")))?;
    let upstream_port: u16 =
        upstream.wait_line("ready ")?.parse().map_err(|e| format!("upstream port: {e}"))?;

    let mut idp = Idp::start(free_port()?, &only_old)?;
    let token_old = idp.token()?;
    ensure(jose_header(&token_old)["typ"] == "at+jwt" && jose_header(&token_old)["kid"] == "old", || {
        format!("oidc-provider's token header: {}", jose_header(&token_old))
    })?;

    // Short TTLs so that a removal is seen within seconds; the removal itself is confirmed
    // the default way (a second fetch about 5 s later).
    let kw_port = free_port()?;
    let serve = keyward_serve(
        "keyward serve",
        &idp.issuer,
        kw_port,
        &[
            "--min-ttl",
            "1s",
            "--max-ttl",
            "2s",
            "--refresh-cooldown",
            &format!("{}s", REFRESH_COOLDOWN.as_secs()),
        ],
    )?;
    let kw = format!("http://127.0.0.1:{kw_port}");
    // An issuer that never answers: nothing listens on its port.
    let dead_issuer = format!("http://127.0.0.1:{}", free_port()?);
    let dead_port = free_port()?;
    let dead = keyward_config(work, dead_port, &idp.issuer, &dead_issuer)?;
    let token_dead = unverifiable_token(&dead_issuer);

    let mut fronts: Vec<(&str, String, String, Proc, Proc)> = Vec::new();
    for proxy in PROXIES {
        let skip = if proxy == "nginx" { &missing.nginx } else { &missing.caddy };
        if skip.is_some() {
            continue;
        }
        let start = if proxy == "nginx" { start_nginx } else { start_caddy };
        let (main, port) = start(&work.join(proxy), kw_port, upstream_port, None)?;
        let (down, down_port) =
            start(&work.join(format!("{proxy}-legacy")), dead_port, upstream_port, Some("legacy"))?;
        fronts.push((
            proxy,
            format!("http://127.0.0.1:{port}"),
            format!("http://127.0.0.1:{down_port}"),
            main,
            down,
        ));
    }

    for (proxy, url, down_url, _, _) in &fronts {
        record(results, &format!("{proxy}::{}", PROXY_CHECKS[0]), check_valid(url, &token_old, &idp.issuer));
        record(results, &format!("{proxy}::{}", PROXY_CHECKS[1]), check_forged(url, &token_old));
        record(results, &format!("{proxy}::{}", PROXY_CHECKS[2]), check_missing(url));
        record(results, &format!("{proxy}::{}", PROXY_CHECKS[3]), check_invalid(url, &token_old));
        record(results, &format!("{proxy}::{}", PROXY_CHECKS[4]), check_unavailable(down_url, &token_dead));
        record(results, &format!("{proxy}::{}", PROXY_CHECKS[7]), check_refused(down_url, &token_old));
        record(results, &format!("{proxy}::{}", PROXY_CHECKS[8]), check_forged_original(url));
    }

    // Traefik and Envoy: the request each would send, replayed against keyward serve.
    record(results, REPLAY_CHECKS[0], replay_traefik(&kw, &token_old, &idp.issuer));
    record(results, REPLAY_CHECKS[1], replay_envoy(&kw, &token_old, &idp.issuer));

    // Rotation, through nginx when it runs (else Caddy, else keyward directly), counting every
    // request.
    // (Without a proxy: keyward's own `/auth/<policy>/<original path>` form, as Envoy sends.)
    let front = fronts.first().map_or_else(|| format!("{kw}/auth/default"), |f| f.1.clone());
    let tally: Tally = Arc::default();
    let stop_old = Arc::new(AtomicBool::new(false));
    let load_old =
        run_load(front.clone(), vec![("old", token_old.clone())], Arc::clone(&stop_old), Arc::clone(&tally));

    // The tampered-token probes above each caused a token-driven fetch (a signature retry),
    // the last one moments ago: signature retries have their own budget, so the new kid's
    // fetch is not put off by them and its first token is accepted at once (no wait here).
    idp.restart(&both)?;
    let token_new = idp.token()?;
    ensure(jose_header(&token_new)["kid"] == "new", || {
        format!("[new, old] signs with {}", jose_header(&token_new))
    })?;
    let first = http("GET", &format!("{front}/orders/1"), &[("authorization", &bearer(&token_new))])?;
    record(
        results,
        ROTATION_CHECKS[0],
        ensure(first.status == 200, || format!("first request with the new key: {}", first.show())),
    );
    let stop_new = Arc::new(AtomicBool::new(false));
    let load_new =
        run_load(front.clone(), vec![("new", token_new.clone())], Arc::clone(&stop_new), Arc::clone(&tally));
    // Let keyward refetch [new, old] on its short TTL while both tokens flow.
    std::thread::sleep(Duration::from_secs(3));
    stop_old.store(true, Ordering::Relaxed);
    let _ = load_old.join();
    let (old_sent, old_failed) = summarize(&tally, "old");
    record(
        results,
        ROTATION_CHECKS[1],
        ensure(old_sent > 0 && old_failed.is_empty(), || {
            format!(
                "{} of {old_sent} requests with the old key failed while it was published: {old_failed:?}",
                old_failed.len()
            )
        }),
    );

    idp.restart(&only_new)?;
    let removed_at = Instant::now();
    let deadline = removed_at + Duration::from_secs(30);
    let mut last = None;
    let rejected = loop {
        let reply = http("GET", &format!("{front}/orders/1"), &[("authorization", &bearer(&token_old))])?;
        if reply.status == 401 {
            break Ok(reply);
        }
        if Instant::now() >= deadline {
            break Err(format!("the old key still verifies 30 s after its removal: {}", reply.show()));
        }
        last = Some(reply.status);
        std::thread::sleep(Duration::from_millis(200));
    };
    let took = removed_at.elapsed();
    eprintln!(
        "rotation: the old key was refused {:.1} s after its removal (last status before: {last:?})",
        took.as_secs_f64()
    );
    record(
        results,
        ROTATION_CHECKS[2],
        rejected.and_then(|reply| {
            let challenge = reply.header("www-authenticate").unwrap_or_default().to_owned();
            ensure(challenge.contains("invalid_token"), || format!("WWW-Authenticate {challenge:?}"))
        }),
    );

    // The IdP goes down: valid tokens keep flowing, including one keyward has never seen.
    let token_unseen = idp.token()?;
    idp.stop();
    // Past keyward's 2 s TTL: its refreshes now fail, the last good keys keep serving.
    std::thread::sleep(Duration::from_secs(3));
    stop_new.store(true, Ordering::Relaxed);
    let _ = load_new.join();
    let (new_sent, new_failed) = summarize(&tally, "new");
    eprintln!("rotation: {old_sent} requests with the old key, {new_sent} with the new one, through {front}");
    record(
        results,
        ROTATION_CHECKS[3],
        ensure(new_sent > 0 && new_failed.is_empty(), || {
            format!("{} of {new_sent} requests with the new key failed: {new_failed:?}", new_failed.len())
        }),
    );
    for (proxy, url, _, _, _) in &fronts {
        record(
            results,
            &format!("{proxy}::{}", PROXY_CHECKS[5]),
            check_flowing(url, &[&token_new, &token_unseen]),
        );
    }

    if missing.promtool.is_none() {
        record(results, PROMTOOL_CHECK, promtool_check(&kw, work));
    }
    // keyward itself gone: the proxies' own error (502/504) must still reach the client as a
    // 503 with Retry-After, never as a 401 or a bare 500/502.
    dead.stop();
    for (proxy, _, down_url, _, _) in &fronts {
        record(results, &format!("{proxy}::{}", PROXY_CHECKS[6]), check_unavailable(down_url, &token_new));
    }
    drop(fronts);
    serve.stop();
    upstream.stop();
    Ok(())
}

fn promtool_check(kw: &str, work: &Path) -> Result<(), String> {
    let reply = http("GET", &format!("{kw}/metrics"), &[])?;
    ensure(reply.status == 200, || format!("/metrics: {}", reply.show()))?;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    ensure(text.contains("keyward_decisions_total"), || {
        format!("no keyward_decisions_total in /metrics:\n{text}")
    })?;
    let file = work.join("metrics.txt");
    std::fs::write(&file, &reply.body).map_err(|e| e.to_string())?;
    let input = std::fs::File::open(&file).map_err(|e| e.to_string())?;
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(input)
        .output()
        .map_err(|e| format!("promtool: {e}"))?;
    ensure(out.status.success(), || {
        format!(
            "promtool check metrics refused /metrics: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Traefik and Envoy: not run (no Debian package); their snippets are parsed and the request
// each would send is replayed.

fn read_deploy(rel: &str) -> Result<String, String> {
    let path = repo_root().join("deploy").join(rel);
    std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The ForwardAuth middleware of deploy/traefik/dynamic.toml.
struct TraefikAuth {
    address: String,
    response_headers: Vec<String>,
    trust_forward_header: bool,
}

fn traefik_auth() -> Result<TraefikAuth, String> {
    let doc: toml::Value =
        toml::from_str(&read_deploy("traefik/dynamic.toml")?).map_err(|e| format!("dynamic.toml: {e}"))?;
    let fa = doc
        .get("http")
        .and_then(|h| h.get("middlewares"))
        .and_then(|m| m.get("keyward"))
        .and_then(|k| k.get("forwardAuth"))
        .ok_or("no http.middlewares.keyward.forwardAuth")?;
    let address = fa.get("address").and_then(toml::Value::as_str).ok_or("forwardAuth.address")?.to_owned();
    let response_headers = fa
        .get("authResponseHeaders")
        .and_then(toml::Value::as_array)
        .ok_or("forwardAuth.authResponseHeaders")?
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let trust_forward_header = fa.get("trustForwardHeader").and_then(toml::Value::as_bool).unwrap_or(false);
    // The router must use the middleware, and a service must exist for it.
    let routers = doc
        .get("http")
        .and_then(|h| h.get("routers"))
        .and_then(toml::Value::as_table)
        .ok_or("no http.routers")?;
    let uses = routers.values().any(|r| {
        r.get("middlewares")
            .and_then(toml::Value::as_array)
            .is_some_and(|m| m.iter().any(|v| v.as_str().is_some_and(|s| s.starts_with("keyward"))))
    });
    ensure(uses, || "no router uses the keyward middleware".to_owned())?;
    Ok(TraefikAuth { address, response_headers, trust_forward_header })
}

fn check_traefik_parses() -> Result<(), String> {
    let auth = traefik_auth()?;
    ensure(auth.address.starts_with("http://127.0.0.1:4190/auth"), || format!("address {}", auth.address))?;
    for h in ["X-Auth-Subject", "X-Auth-Issuer"] {
        ensure(auth.response_headers.iter().any(|x| x == h), || format!("authResponseHeaders lacks {h}"))?;
    }
    ensure(!auth.trust_forward_header, || "trustForwardHeader must stay false".to_owned())
}

/// The request Traefik's ForwardAuth sends: the client's headers, plus X-Forwarded-Method,
/// -Proto, -Host, -Uri and -For set by Traefik, to `address`, as GET.
fn replay_traefik(kw: &str, token: &str, issuer: &str) -> Result<(), String> {
    let auth = traefik_auth()?;
    let path = auth.address.strip_prefix("http://127.0.0.1:4190").ok_or("address not on 127.0.0.1:4190")?;
    let url = format!("{kw}{path}");
    let sent = |token: Option<&str>| -> Result<Reply, String> {
        let authz = token.map(bearer);
        let mut headers = vec![
            ("x-forwarded-method", "POST"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "orders.example"),
            ("x-forwarded-uri", "/orders/42?view=full"),
            ("x-forwarded-for", "203.0.113.7"),
            ("x-auth-subject", FORGED),
        ];
        if let Some(a) = authz.as_deref() {
            headers.push(("authorization", a));
        }
        http("GET", &url, &headers)
    };
    let ok = sent(Some(token))?;
    ensure(ok.status == 200, || format!("valid token: {}", ok.show()))?;
    // Traefik copies exactly authResponseHeaders onto the request to the service.
    for h in &auth.response_headers {
        ensure(ok.header(h).is_some(), || {
            format!("keyward's 200 lacks {h}, which Traefik would copy: {}", ok.show())
        })?;
    }
    ensure(
        ok.header("x-auth-subject") == Some(CLIENT_ID) && ok.header("x-auth-issuer") == Some(issuer),
        || format!("claim headers: {}", ok.show()),
    )?;
    let no = sent(None)?;
    ensure(no.status == 401 && no.header("www-authenticate").is_some(), || {
        format!("no token: {}", no.show())
    })?;
    let bad = sent(Some(&tampered(token)))?;
    ensure(bad.status == 401, || format!("tampered token: {}", bad.show()))
}

/// The ext_authz HTTP service of deploy/envoy/envoy.yaml.
struct EnvoyAuthz {
    path_prefix: String,
    status_on_error: u64,
    timeout_secs: f64,
    cluster_port: u64,
    allowed_headers: Vec<String>,
    allowed_upstream: Vec<String>,
}

fn envoy_authz() -> Result<EnvoyAuthz, String> {
    let docs = yaml_rust2::YamlLoader::load_from_str(&read_deploy("envoy/envoy.yaml")?)
        .map_err(|e| format!("envoy.yaml: {e}"))?;
    let doc = docs.first().ok_or("envoy.yaml: no document")?;
    let listeners = doc["static_resources"]["listeners"].as_vec().ok_or("no static_resources.listeners")?;
    let mut filter = None;
    for l in listeners {
        for chain in l["filter_chains"].as_vec().into_iter().flatten() {
            for f in chain["filters"].as_vec().into_iter().flatten() {
                for hf in f["typed_config"]["http_filters"].as_vec().into_iter().flatten() {
                    if hf["name"].as_str() == Some("envoy.filters.http.ext_authz") {
                        filter = Some(hf["typed_config"].clone());
                    }
                }
            }
        }
    }
    let cfg = filter.ok_or("no envoy.filters.http.ext_authz filter")?;
    let svc = &cfg["http_service"];
    let strings = |v: &yaml_rust2::Yaml| -> Vec<String> {
        v["patterns"]
            .as_vec()
            .into_iter()
            .flatten()
            .filter_map(|p| p["exact"].as_str().or_else(|| p["prefix"].as_str()).map(str::to_owned))
            .collect()
    };
    let timeout = svc["server_uri"]["timeout"].as_str().ok_or("http_service.server_uri.timeout")?;
    let timeout_secs =
        timeout.strip_suffix('s').and_then(|s| s.parse::<f64>().ok()).ok_or("timeout is not N s")?;
    let cluster = svc["server_uri"]["cluster"].as_str().ok_or("server_uri.cluster")?;
    let clusters = doc["static_resources"]["clusters"].as_vec().ok_or("no clusters")?;
    let c = clusters
        .iter()
        .find(|c| c["name"].as_str() == Some(cluster))
        .ok_or("the ext_authz cluster is not defined")?;
    let cluster_port = c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
        ["port_value"]
        .as_i64()
        .and_then(|p| u64::try_from(p).ok())
        .ok_or("cluster port_value")?;
    Ok(EnvoyAuthz {
        path_prefix: svc["path_prefix"].as_str().ok_or("http_service.path_prefix")?.to_owned(),
        status_on_error: cfg["status_on_error"]["code"]
            .as_i64()
            .and_then(|c| u64::try_from(c).ok())
            .ok_or("status_on_error.code")?,
        timeout_secs,
        cluster_port,
        allowed_headers: strings(&svc["authorization_request"]["allowed_headers"]),
        allowed_upstream: strings(&svc["authorization_response"]["allowed_upstream_headers"]),
    })
}

fn check_envoy_parses() -> Result<(), String> {
    let a = envoy_authz()?;
    ensure(a.path_prefix.starts_with("/auth/"), || {
        format!("path_prefix {} (want /auth/<policy>)", a.path_prefix)
    })?;
    ensure(a.status_on_error == 503, || format!("status_on_error {}", a.status_on_error))?;
    ensure(a.timeout_secs > 1.0, || {
        format!("timeout {} s is not above the 1 s decision deadline", a.timeout_secs)
    })?;
    ensure(a.cluster_port == 4190, || format!("cluster port {}", a.cluster_port))?;
    for h in ["authorization", "origin", "access-control-request-method"] {
        ensure(a.allowed_headers.iter().any(|p| p.eq_ignore_ascii_case(h)), || {
            format!("allowed_headers lacks {h}")
        })?;
    }
    for h in ["x-auth-subject", "x-auth-issuer"] {
        ensure(a.allowed_upstream.iter().any(|p| h.starts_with(&p.to_ascii_lowercase())), || {
            format!("allowed_upstream_headers lacks {h}")
        })?;
    }
    Ok(())
}

/// The request Envoy's ext_authz HTTP service sends: the original method, path_prefix + the
/// original path, and only allowed_headers (plus Host, Content-Length: 0).
fn replay_envoy(kw: &str, token: &str, issuer: &str) -> Result<(), String> {
    let a = envoy_authz()?;
    let url = format!("{kw}{}/orders/42?view=full", a.path_prefix.trim_end_matches('/'));
    let authz = bearer(token);
    for method in ["GET", "POST"] {
        let ok = http(method, &url, &[("authorization", &authz), ("content-length", "0")])?;
        ensure(ok.status == 200, || format!("{method} valid token: {}", ok.show()))?;
        ensure(
            ok.header("x-auth-subject") == Some(CLIENT_ID) && ok.header("x-auth-issuer") == Some(issuer),
            || format!("claim headers: {}", ok.show()),
        )?;
    }
    let no = http("GET", &url, &[])?;
    ensure(no.status == 401 && no.header("www-authenticate").is_some(), || {
        format!("no token: {}", no.show())
    })?;
    // A CORS preflight: Envoy sends the OPTIONS with the two headers allowed_headers lets through.
    let preflight = [("origin", "https://app.example"), ("access-control-request-method", "GET")];
    let pre = http("OPTIONS", &url, &preflight)?;
    ensure(pre.status == 200, || format!("CORS preflight: want 200: {}", pre.show()))?;
    Ok(())
}

/// docs/proxies.md shows each snippet exactly as deploy/ has it (and so as tested).
fn check_docs_embed_snippets() -> Result<(), String> {
    let path = repo_root().join("docs/proxies.md");
    let doc = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    for rel in ["nginx/keyward.conf", "caddy/Caddyfile", "traefik/dynamic.toml", "envoy/envoy.yaml"] {
        let snippet = read_deploy(rel)?;
        ensure(doc.contains(snippet.trim_end()), || {
            format!("docs/proxies.md does not show deploy/{rel} as it is")
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------

fn main() {
    let args = Arguments::from_args();
    let missing = detect();
    let started = Instant::now();

    // Which components each trial needs.
    let mut plan: Vec<(String, Vec<Option<String>>)> = Vec::new();
    for proxy in PROXIES {
        let own = if proxy == "nginx" { &missing.nginx } else { &missing.caddy };
        for check in PROXY_CHECKS {
            plan.push((format!("{proxy}::{check}"), vec![missing.node.clone(), own.clone()]));
        }
    }
    for check in ROTATION_CHECKS {
        plan.push((check.to_owned(), vec![missing.node.clone()]));
    }
    plan.push((PROMTOOL_CHECK.to_owned(), vec![missing.node.clone(), missing.promtool.clone()]));
    for check in REPLAY_CHECKS {
        plan.push((check.to_owned(), vec![missing.node.clone()]));
    }

    let mut results = Results::new();
    let runnable = plan.iter().any(|(_, needs)| needs.iter().all(Option::is_none));
    if runnable {
        let done = Arc::new(AtomicBool::new(false));
        watchdog(Arc::clone(&done));
        let outcome = tempfile::tempdir()
            .map_err(|e| format!("temp dir: {e}"))
            .and_then(|work| scenario(&mut results, &missing, work.path()));
        if let Err(e) = outcome {
            for (name, _) in &plan {
                results.entry(name.clone()).or_insert_with(|| Err(format!("not reached: {e}")));
            }
        }
        done.store(true, Ordering::Relaxed);
        eprintln!("serve_proxies: scenario took {:.1} s", started.elapsed().as_secs_f64());
    }

    let mut trials = Vec::new();
    for (name, needs) in plan {
        let why: Vec<String> = needs.into_iter().flatten().collect();
        if why.is_empty() {
            let outcome = results.remove(&name).unwrap_or_else(|| Err("no result recorded".to_owned()));
            trials.push(Trial::test(name, move || outcome.map_err(Failed::from)));
        } else {
            let why = why.join("; ");
            let label = format!("{name} [SKIPPED: {why}]");
            let trial = Trial::test(label, move || {
                Err(Failed::from(format!(
                    "CI=true and a component is missing ({why}): run scripts/ci-serve-deps.sh"
                )))
            });
            trials.push(if in_ci() { trial } else { trial.with_ignored_flag(true) });
        }
    }
    trials.push(Trial::test(DATA_CHECKS[0], || check_traefik_parses().map_err(Failed::from)));
    trials.push(Trial::test(DATA_CHECKS[1], || check_envoy_parses().map_err(Failed::from)));
    trials.push(Trial::test(DATA_CHECKS[2], || check_docs_embed_snippets().map_err(Failed::from)));
    libtest_mimic::run(&args, trials).exit();
}
