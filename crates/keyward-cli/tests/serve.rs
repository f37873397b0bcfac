//! `keyward serve` as an operator runs it: the quick start answers `/auth`, a bad configuration
//! is refused with file:line and exit 2, `--check` summarises, SIGHUP and a changed file reload
//! (and a quick start survives SIGHUP), SIGTERM stops it cleanly.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use keyward::{Clock, SystemClock};
use keyward_idp::{MockIdp, SigningAlg, SigningKey};

const AUD: &str = "orders-api";

fn keyward(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keyward"));
    cmd.args(args)
        .env_remove("KEYWARD_LOG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A mock IdP on a runtime of its own, publishing one ES256 key.
struct Idp {
    idp: MockIdp,
    key: Arc<SigningKey>,
    // Declared last: the IdP's server stops before its runtime goes.
    _runtime: tokio::runtime::Runtime,
}

impl Idp {
    fn start() -> Self {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let idp = runtime.block_on(MockIdp::start()).unwrap();
        let key = Arc::new(SigningKey::generate(SigningAlg::ES256, "k1").unwrap());
        idp.publish(&[&key]);
        Self { idp, key, _runtime: runtime }
    }

    fn token(&self) -> String {
        self.key.sign_jwt(&self.idp.claims("alice", AUD, SystemClock.now_unix(), 600)).unwrap()
    }
}

/// A running `keyward serve`; killed if a test fails before stopping it.
struct Serve {
    child: Child,
    addr: String,
    stderr: mpsc::Receiver<String>,
}

impl Serve {
    /// Starts `keyward serve ARGS --listen 127.0.0.1:0` (a file sets its own) and reads the
    /// bound address from its startup line.
    fn start(args: &[&str]) -> Self {
        // A configuration file names its own listen address.
        let listen: &[&str] = if args.contains(&"--config") { &[] } else { &["--listen", "127.0.0.1:0"] };
        let mut child = keyward(&[&["serve"], args, listen].concat()).spawn().unwrap();
        let (tx, stderr) = mpsc::channel();
        let reader = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut seen = Vec::new();
        loop {
            let Ok(line) = stderr.recv_timeout(Duration::from_secs(30)) else {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no startup line; stderr so far: {seen:#?}");
            };
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split('/').next().unwrap().to_owned();
                return Self { child, addr, stderr };
            }
            seen.push(line);
        }
    }

    /// One HTTP/1.1 request; the status line's code, the headers (lower-case names), the body.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<(String, String)>, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n", self.addr);
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        (status, headers, body.to_owned())
    }

    /// Sends SIGTERM and waits for the exit code.
    fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        let rest: Vec<String> = self.stderr.try_iter().collect();
        (status.code(), rest)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A configuration file with one issuer named `idp` and the given `[reload]` lines.
fn one_issuer_file(issuer: &str, reload: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\n[reload]\n{reload}\n\n[[issuer]]\nname = \"idp\"\nissuer = \"{issuer}\"\naudiences = [\"{AUD}\"]\n"
    )
}

/// A policy the reload tests add: `/auth/strict` answers 403 to a token without scope `admin`.
const STRICT_POLICY: &str = "\n[policy.strict]\nrequire = { scope = \"admin\" }\n";

/// Asks until the answer is no longer `before` (a reload took effect), at most 10 s.
fn until_changed(before: u16, ask: impl Fn() -> u16) -> u16 {
    let mut status = before;
    for _ in 0..400 {
        status = ask();
        if status != before {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    status
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn the_quick_start_answers_auth_and_stops_on_sigterm() {
    let idp = Idp::start();
    let serve = Serve::start(&["--issuer", idp.idp.issuer(), "--audience", AUD]);
    let token = idp.token();
    let bearer = format!("Bearer {token}");

    let (status, headers, body) =
        serve.get("/auth", &[("Authorization", &bearer), ("X-Auth-Subject", "mallory")]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-auth-subject"), Some("alice"));
    assert_eq!(header(&headers, "x-auth-issuer"), Some(idp.idp.issuer()));
    assert_eq!(body, "");

    let (status, headers, _) = serve.get("/auth", &[]);
    assert_eq!(status, 401);
    assert_eq!(header(&headers, "www-authenticate"), Some(r#"Bearer realm="default""#));

    let (status, headers, body) = serve.get("/auth", &[("Authorization", &format!("{bearer}x"))]);
    assert_eq!(status, 401);
    assert!(header(&headers, "x-keyward-reason").is_some());
    assert!(!body.contains(&token));

    let (status, _, body) = serve.get("/metrics", &[]);
    assert_eq!(status, 200);
    assert!(
        body.contains(r#"keyward_decisions_total{policy="default",status="200",reason="allowed"} 1"#),
        "{body}"
    );
    assert_eq!(serve.get("/healthz", &[]).0, 200);
    let (status, _, body) = serve.get("/readyz", &[]);
    assert_eq!(status, 200, "{body}");

    let (code, stderr) = serve.terminate();
    assert_eq!(code, Some(0), "{stderr:#?}");
    assert!(stderr.iter().any(|l| l.contains("keyward serve stopped")), "{stderr:#?}");
}

#[test]
fn a_bad_configuration_names_file_line_and_field_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.toml");
    std::fs::write(&path, "[[issuer]]\nissuer = \"https://idp.example.com\"\naudiences = []\n").unwrap();
    let output = keyward(&["serve", "--config", path.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let shown = format!("{}:3:", path.display());
    assert!(stderr.contains(&shown), "{stderr}");
    assert!(stderr.contains("audiences"), "{stderr}");

    // A quick start without an audience is a usage error too.
    let output = keyward(&["serve", "--issuer", "https://idp.example.com"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn check_validates_and_summarises_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.toml");
    let text = r#"
listen = "127.0.0.1:4190"
[[issuer]]
name = "corp"
issuer = "https://idp.example.com"
audiences = ["orders-api"]

[policy.admin]
require = { scope = "admin" }
"#;
    std::fs::write(&path, text).unwrap();
    let output = keyward(&["serve", "--config", path.to_str().unwrap(), "--check"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("configuration valid"), "{stdout}");
    assert!(stdout.contains("corp") && stdout.contains("admin") && stdout.contains("default"), "{stdout}");
}

#[test]
fn sighup_reloads_the_file_and_a_bad_file_keeps_the_old_configuration() {
    let idp = Idp::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.toml");
    let base = one_issuer_file(idp.idp.issuer(), "watch = false");
    std::fs::write(&path, &base).unwrap();
    let serve = Serve::start(&["--config", path.to_str().unwrap()]);
    let bearer = format!("Bearer {}", idp.token());
    let ask = |policy: &str| serve.get(&format!("/auth/{policy}"), &[("Authorization", &bearer)]).0;
    assert_eq!(ask("default"), 200);
    assert_eq!(ask("strict"), 500);
    let hup = || {
        let status = Command::new("kill").args(["-HUP", &serve.child.id().to_string()]).status().unwrap();
        assert!(status.success());
    };

    std::fs::write(&path, format!("{base}{STRICT_POLICY}")).unwrap();
    hup();
    assert_eq!(until_changed(500, || ask("strict")), 403, "the new policy serves after SIGHUP");

    // A broken file is refused; the configuration in service keeps answering.
    std::fs::write(&path, "[[issuer]]\naudiences = 7\n").unwrap();
    hup();
    let mut refused = false;
    for _ in 0..200 {
        if serve.stderr.try_iter().any(|l| l.contains("reload failed")) {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(refused, "the bad file was reported");
    assert_eq!(ask("strict"), 403);
    assert_eq!(ask("default"), 200);
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn a_quick_start_survives_sighup_and_counts_it_as_a_reload() {
    let idp = Idp::start();
    let serve = Serve::start(&["--issuer", idp.idp.issuer(), "--audience", AUD]);
    let reloads = |result: &str| {
        let (_, _, body) = serve.get("/metrics", &[]);
        let series = format!(r#"keyward_config_reloads_total{{result="{result}"}} "#);
        body.lines().find_map(|l| l.strip_prefix(series.as_str())?.parse::<f64>().ok())
    };
    // The series exist from the start, file or not.
    assert_eq!(reloads("ok"), Some(0.0));
    assert_eq!(reloads("error"), Some(0.0));

    let status = Command::new("kill").args(["-HUP", &serve.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut logged = false;
    for _ in 0..200 {
        if serve.stderr.try_iter().any(|l| l.contains("nothing to reload")) {
            logged = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(logged, "SIGHUP without a file is logged");
    assert_eq!(reloads("ok"), Some(1.0));
    let bearer = format!("Bearer {}", idp.token());
    assert_eq!(serve.get("/auth", &[("Authorization", &bearer)]).0, 200, "still serving after SIGHUP");
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn key_source_flags_are_named_when_wrong_and_refused_beside_a_file() {
    // Quick start: the error names the flag the operator typed.
    let output = keyward(&[
        "serve",
        "--issuer",
        "https://idp.example.com",
        "--audience",
        AUD,
        "--min-ttl",
        "20m",
        "--max-ttl",
        "15m",
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--min-ttl") || stderr.contains("--max-ttl"), "{stderr}");

    // With a file they would be ignored: refused instead, pointing at the file's [issuer.keys].
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.toml");
    std::fs::write(&path, "[[issuer]]\nissuer = \"https://idp.example.com\"\naudiences = [\"a\"]\n").unwrap();
    let output = keyward(&["serve", "--config", path.to_str().unwrap(), "--max-stale", "1h", "--check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--max-stale") && stderr.contains("keys"), "{stderr}");
    // Typed with its default value it would be just as ignored: refused too.
    let output = keyward(&["serve", "--config", path.to_str().unwrap(), "--min-ttl", "60s", "--check"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--min-ttl"), "{stderr}");
    // No key-source flag: no conflict.
    let output = keyward(&["serve", "--config", path.to_str().unwrap(), "--check"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_changed_file_is_reloaded_without_a_signal() {
    let idp = Idp::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keyward.toml");
    // The default: watched, changes debounced (shortened here).
    let base = one_issuer_file(idp.idp.issuer(), "debounce = \"100ms\"");
    std::fs::write(&path, &base).unwrap();
    let serve = Serve::start(&["--config", path.to_str().unwrap()]);
    let bearer = format!("Bearer {}", idp.token());
    let ask = |policy: &str| serve.get(&format!("/auth/{policy}"), &[("Authorization", &bearer)]).0;
    assert_eq!(ask("strict"), 500);

    // Written the way editors do: a new file renamed over the old one.
    let next = dir.path().join("keyward.toml.new");
    std::fs::write(&next, format!("{base}{STRICT_POLICY}")).unwrap();
    std::fs::rename(&next, &path).unwrap();
    assert_eq!(until_changed(500, || ask("strict")), 403, "the changed file serves without SIGHUP");
    assert_eq!(ask("default"), 200);
    let (code, _) = serve.terminate();
    assert_eq!(code, Some(0));
}
