//! Shared fixtures: running the real `keyward` binary with bounded waits, keys and tokens in a
//! temp dir, and an in-process IdP (JWKS + discovery) that counts its requests.
#![allow(clippy::disallowed_methods)] // a child process is bounded by a real-time deadline

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use keyward_idp::{Provider, ProviderConfig, Reply, SigningAlg, SigningKey, jwks};
use serde_json::{Map, Value, json};

/// The pinned clock of most tests: 2026-01-01T00:00:00Z.
pub(crate) const NOW: i64 = 1_767_225_600;
/// [`NOW`] as a `--now` argument.
pub(crate) const NOW_ARG: &str = "1767225600";
/// The issuer of file-based tokens.
pub(crate) const ISS: &str = "https://idp.example.test";
/// The audience of every token.
pub(crate) const AUD: &str = "orders-api";
/// No child process may run longer than this; it is killed and the test fails.
pub(crate) const CHILD_LIMIT: Duration = Duration::from_secs(30);

/// The exact member names of the `verify --json` object: the eight original members (a
/// contract outside scripts depend on) and those added since (`notes`, `times`, `keys`).
pub(crate) const JSON_FIELDS: [&str; 11] = [
    "alg",
    "claims",
    "detail",
    "header",
    "keys",
    "kid",
    "notes",
    "reason",
    "signature_verified",
    "times",
    "valid",
];

/// What a finished `keyward` process left behind.
#[derive(Debug)]
pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    /// stdout as exactly one JSON object (one line); panics otherwise.
    #[track_caller]
    pub(crate) fn json(&self) -> Map<String, Value> {
        let lines: Vec<&str> = self.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "expected one JSON line on stdout: {self:?}");
        match serde_json::from_str(lines[0]) {
            Ok(Value::Object(map)) => map,
            other => panic!("stdout is not a JSON object ({other:?}): {self:?}"),
        }
    }

    /// stdout as one JSON object per line.
    #[track_caller]
    pub(crate) fn json_lines(&self) -> Vec<Map<String, Value>> {
        self.stdout.lines().map(|line| parse_object(line)).collect()
    }
}

/// Parses one line of `--json`/`--stream` output.
#[track_caller]
pub(crate) fn parse_object(line: &str) -> Map<String, Value> {
    match serde_json::from_str(line) {
        Ok(Value::Object(map)) => map,
        other => panic!("not a JSON object line ({other:?}): {line:?}"),
    }
}

fn command(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(args)
        .env_remove("KEYWARD_LOG")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `keyward ARGS` whose stdout reader has already gone away (like `keyward … | head -0`);
/// returns the exit code and stderr.
#[track_caller]
pub(crate) fn run_with_stdout_closed(args: &[&str]) -> (i32, String) {
    let mut child = command(args).spawn().expect("spawn keyward");
    drop(child.stdout.take());
    drop(child.stdin.take());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = rx.recv_timeout(CHILD_LIMIT).expect("keyward finished in time").expect("wait");
    (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// Runs `keyward ARGS` with `stdin` fed and closed; kills it after [`CHILD_LIMIT`].
#[track_caller]
pub(crate) fn run(args: &[&str], stdin: &str) -> Output {
    run_with(args, stdin.as_bytes(), &[])
}

/// [`run`] with raw stdin bytes (not necessarily UTF-8) and extra environment variables.
#[track_caller]
pub(crate) fn run_with(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = command(args);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let mut child = cmd.spawn().expect("spawn keyward");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_owned();
    // The process may exit without reading stdin (usage errors): a broken pipe is fine.
    std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let (tx, rx) = mpsc::channel();
    for (which, mut pipe) in [
        (0, Box::new(child.stdout.take().expect("stdout")) as Box<dyn Read + Send>),
        (1, Box::new(child.stderr.take().expect("stderr"))),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            let _ = tx.send((which, buf));
        });
    }
    let deadline = Instant::now() + CHILD_LIMIT;
    let mut streams = [Vec::new(), Vec::new()];
    for _ in 0..2 {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((which, buf)) => streams[which] = buf,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("keyward {args:?} did not finish within {CHILD_LIMIT:?}; killed");
            }
        }
    }
    // Both pipes are closed: the process has exited (or is exiting).
    let status = child.wait().expect("wait keyward");
    let [stdout, stderr] = streams;
    Output {
        code: status.code().expect("keyward exited by a signal"),
        stdout: String::from_utf8(stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(stderr).expect("stderr is UTF-8"),
    }
}

/// A running `keyward verify --stream`: write a line, read the answer line, repeat.
pub(crate) struct Interactive {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Receiver<Vec<u8>>,
}

impl Interactive {
    /// Spawns `keyward ARGS` with piped stdin and stdout, answers read line by line.
    pub(crate) fn spawn(args: &[&str]) -> Self {
        let mut child = command(args).spawn().expect("spawn keyward");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("stdout");
        let lines = super::idp_support::line_reader(stdout);
        let mut err_pipe = child.stderr.take().expect("stderr");
        let (err_tx, stderr) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err_pipe.read_to_end(&mut buf);
            let _ = err_tx.send(buf);
        });
        Self { child, stdin, lines, stderr }
    }

    /// Writes one token line (stdin stays open) and waits for exactly one answer line.
    #[track_caller]
    pub(crate) fn ask(&mut self, token: &str) -> Map<String, Value> {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        stdin.write_all(token.as_bytes()).expect("write token");
        stdin.write_all(b"\n").expect("write newline");
        stdin.flush().expect("flush stdin");
        match self.lines.recv_timeout(CHILD_LIMIT) {
            Ok(line) => {
                assert!(line.ends_with('\n'), "answer line is not terminated: {line:?}");
                parse_object(&line)
            }
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!(
                    "no answer line within {CHILD_LIMIT:?} while stdin is still open: not flushed per line?"
                );
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("keyward closed stdout before answering; stderr: {}", self.stderr_now());
            }
        }
    }

    fn stderr_now(&mut self) -> String {
        let _ = self.child.kill();
        let bytes = self.stderr.recv_timeout(CHILD_LIMIT).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Closes stdin, expects no further output, and returns the exit code.
    #[track_caller]
    pub(crate) fn finish(mut self) -> i32 {
        drop(self.stdin.take());
        match self.lines.recv_timeout(CHILD_LIMIT) {
            Err(RecvTimeoutError::Disconnected) => {}
            Ok(line) => panic!("unexpected output after the last answer: {line:?}"),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!("keyward did not exit within {CHILD_LIMIT:?} after stdin closed");
            }
        }
        let status = self.child.wait().expect("wait keyward");
        status.code().expect("keyward exited by a signal")
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        // Only reached with the child still running when a test failed midway.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A fresh signing key.
pub(crate) fn key(alg: SigningAlg, kid: &str) -> SigningKey {
    SigningKey::generate(alg, kid).unwrap()
}

/// Claims valid at [`NOW`] for issuer `iss`.
pub(crate) fn claims_for(iss: &str) -> Value {
    json!({"iss": iss, "sub": "alice", "aud": AUD, "iat": NOW - 10, "exp": NOW + 600})
}

/// Claims valid at [`NOW`] for [`ISS`].
pub(crate) fn claims() -> Value {
    claims_for(ISS)
}

/// `claims()` with `changes` merged in (a `null` removes the member).
pub(crate) fn claims_with(changes: Value) -> Value {
    let mut claims = claims();
    if let (Value::Object(base), Value::Object(changes)) = (&mut claims, changes) {
        for (name, value) in changes {
            if value.is_null() {
                base.remove(&name);
            } else {
                base.insert(name, value);
            }
        }
    }
    claims
}

/// A temp dir holding a JWKS file for one key.
pub(crate) struct Files {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) key: SigningKey,
}

impl Files {
    /// An ES256 key `kid` published in `jwks.json`.
    pub(crate) fn new(kid: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let key = key(SigningAlg::ES256, kid);
        std::fs::write(dir.path().join("jwks.json"), jwks([&key]).to_string()).unwrap();
        Self { dir, key }
    }

    /// The JWKS file path as a string.
    pub(crate) fn jwks(&self) -> String {
        self.path("jwks.json")
    }

    /// A path in the temp dir as a string.
    pub(crate) fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// Writes `contents` to `name` in the temp dir and returns its path.
    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// A token signed by the published key.
    pub(crate) fn token(&self, claims: &Value) -> String {
        self.key.sign_jwt(claims).unwrap()
    }
}

/// An in-process IdP on 127.0.0.1:PORT: keyward-idp's [`Provider`] with `/jwks` scripted to
/// serve a given document (issuer = the base URL), counting requests per path. The JWKS can be
/// replaced (rotation).
pub(crate) struct Idp {
    pub(crate) base: String,
    provider: Provider,
    // Declared last: the provider's server task is aborted before its runtime goes.
    _runtime: tokio::runtime::Runtime,
}

impl Idp {
    /// Starts serving `document` as the JWKS on a tokio runtime of its own.
    pub(crate) fn start(document: Value) -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let config = ProviderConfig { algs: vec![SigningAlg::ES256], ..ProviderConfig::default() };
        let provider = runtime
            .block_on(Provider::start(std::net::SocketAddr::from(([127, 0, 0, 1], 0)), config))
            .unwrap();
        let idp = Self { base: provider.base_url().to_owned(), provider, _runtime: runtime };
        idp.publish(document);
        idp
    }

    /// The JWKS URL.
    pub(crate) fn jwks_url(&self) -> String {
        format!("{}/jwks", self.base)
    }

    /// Replaces the published JWKS (a rotation).
    pub(crate) fn publish(&self, document: Value) {
        self.provider.set_reply("/jwks", Reply::json(&document));
    }

    /// JWKS requests served so far.
    pub(crate) fn jwks_hits(&self) -> usize {
        self.provider.hits("/jwks")
    }

    /// Discovery requests served so far.
    pub(crate) fn discovery_hits(&self) -> usize {
        self.provider.hits("/.well-known/openid-configuration")
    }
}

/// A loopback URL base on which nothing listens (the port was bound, then released).
pub(crate) fn dead_base() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

/// A string member of a JSON object.
#[track_caller]
pub(crate) fn str_of<'a>(object: &'a Map<String, Value>, name: &str) -> &'a str {
    object.get(name).and_then(Value::as_str).unwrap_or_else(|| panic!("{name} is not a string: {object:?}"))
}

/// Asserts the `verify --json` object has exactly the contract's members with their types.
#[track_caller]
pub(crate) fn assert_report_shape(report: &Map<String, Value>) {
    let mut names: Vec<&str> = report.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, JSON_FIELDS, "members of the --json object: {report:?}");
    assert!(report["valid"].is_boolean(), "{report:?}");
    assert!(report["signature_verified"].is_boolean(), "{report:?}");
    assert!(report["detail"].is_string(), "{report:?}");
    for nullable_string in ["reason", "kid", "alg"] {
        let value = &report[nullable_string];
        assert!(value.is_null() || value.is_string(), "{nullable_string}: {report:?}");
    }
    for nullable_object in ["header", "claims"] {
        let value = &report[nullable_object];
        assert!(value.is_null() || value.is_object(), "{nullable_object}: {report:?}");
    }
    assert!(report["notes"].as_array().is_some_and(|n| n.iter().all(Value::is_string)), "notes: {report:?}");
    assert!(report["times"].is_null() || report["times"].is_object(), "times: {report:?}");
    // valid and reason agree.
    assert_eq!(report["valid"].as_bool(), Some(report["reason"].is_null()), "{report:?}");
}

/// Asserts a usage error: exit 2, no verdict on stdout, and stderr saying `says`.
#[track_caller]
pub(crate) fn assert_usage_error(out: &Output, says: &str) {
    assert_eq!(out.code, 2, "{out:?}");
    assert_eq!(out.stdout, "", "a usage error prints no verdict: {out:?}");
    assert!(out.stderr.contains(says), "stderr should say {says:?}: {out:?}");
}

/// Asserts a rejected report with `reason` (and the shape).
#[track_caller]
pub(crate) fn assert_rejected(report: &Map<String, Value>, reason: &str) {
    assert_report_shape(report);
    assert_eq!(report["valid"], json!(false), "{report:?}");
    assert_eq!(report["reason"], json!(reason), "{report:?}");
}

/// Asserts a valid report (and the shape).
#[track_caller]
pub(crate) fn assert_valid(report: &Map<String, Value>) {
    assert_report_shape(report);
    assert_eq!(report["valid"], json!(true), "{report:?}");
    assert_eq!(report["signature_verified"], json!(true), "{report:?}");
}

/// `key`'s public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo) block.
pub(crate) fn public_key_pem(key: &SigningKey) -> String {
    let der = key.public_key_spki_der().unwrap();
    // Standard base64 from the url-safe unpadded alphabet.
    let mut b64: String = keyward_idp::mint::b64(&der)
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !b64.len().is_multiple_of(4) {
        b64.push('=');
    }
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", lines.join("\n"))
}
