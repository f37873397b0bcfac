//! Fixtures for the `keyward idp` and `keyward drill` tests: the real binary running as a
//! server (killed on drop), and a minimal blocking HTTP/1.1 client with a deadline, so the
//! tests speak to the idp exactly as any outside service would.
#![allow(dead_code, clippy::disallowed_methods)] // shared by two test targets; real-time deadlines

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// No wait on a child or a socket may last longer than this.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// A running `keyward idp`.
pub(crate) struct RunningIdp {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    /// The issuer line of the banner.
    pub(crate) issuer: String,
    /// The banner (stdout up to its `ready` line).
    pub(crate) banner: String,
    stderr: Arc<Mutex<String>>,
}

impl RunningIdp {
    /// Starts `keyward idp --listen 127.0.0.1:0 ARGS` and waits for its banner.
    pub(crate) fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["idp", "--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn keyward idp");
        let stdout = child.stdout.take().expect("stdout");
        let rx = line_reader(stdout);
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        let mut banner = String::new();
        let deadline = Instant::now() + LIMIT;
        while !banner.contains("  ready ") {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => banner.push_str(&line),
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "keyward idp printed no banner; stdout {banner:?}, stderr {:?}",
                        stderr.lock().unwrap()
                    );
                }
            }
        }
        let field = |name: &str| -> String {
            banner
                .lines()
                .find_map(|l| l.trim_start().strip_prefix(name))
                .map(|rest| rest.trim().split(' ').next().unwrap_or_default().to_owned())
                .unwrap_or_else(|| panic!("no {name} line in the banner: {banner}"))
        };
        let issuer = field("issuer");
        let discovery = field("discovery");
        let base = discovery.trim_end_matches("/.well-known/openid-configuration").to_owned();
        Self { child, base, issuer, banner, stderr }
    }

    /// The URL of `path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the idp wrote to stderr so far.
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded) until stderr contains `needle`.
    #[track_caller]
    pub(crate) fn wait_stderr(&self, needle: &str) -> String {
        let deadline = Instant::now() + LIMIT;
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "stderr never showed {needle:?}: {text}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `GET /admin/state`.
    #[track_caller]
    pub(crate) fn state(&self) -> Value {
        let reply = get(&self.url("/admin/state")).expect("GET /admin/state");
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()
    }

    /// `POST path` with form `fields`, expecting 200; returns the JSON answer.
    #[track_caller]
    pub(crate) fn admin(&self, path: &str, fields: &[(&str, &str)]) -> Value {
        let reply = post(&self.url(path), fields).unwrap_or_else(|e| panic!("POST {path}: {e}"));
        assert_eq!(reply.status, 200, "POST {path} {fields:?}: {reply:?}");
        reply.json()
    }

    /// Stops the idp and waits for it.
    pub(crate) fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RunningIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as JSON; panics otherwise.
    #[track_caller]
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value (name case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// `GET url`.
pub(crate) fn get(url: &str) -> std::io::Result<Reply> {
    request("GET", url, &[], None)
}

/// `POST url` with a form body.
pub(crate) fn post(url: &str, fields: &[(&str, &str)]) -> std::io::Result<Reply> {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        form.append_pair(k, v);
    }
    request("POST", url, &[], Some(form.finish()))
}

/// `GET url` with `Authorization: Bearer token`.
pub(crate) fn get_bearer(url: &str, token: &str) -> std::io::Result<Reply> {
    request("GET", url, &[("authorization", &format!("Bearer {token}"))], None)
}

fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    form: Option<String>,
) -> std::io::Result<Reply> {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(LIMIT))?;
    stream.set_write_timeout(Some(LIMIT))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let body = form.unwrap_or_default();
    if method == "POST" {
        head.push_str("content-type: application/x-www-form-urlencoded\r\n");
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "no HTTP head"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status: u16 =
        lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")) {
        body = dechunk(&body);
    }
    Ok(Reply { status, headers, body })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else { return out };
        let size = usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = data.get(start + size + 2..).unwrap_or_default();
    }
}

/// The decoded header and payload of a compact JWS.
pub(crate) fn decode(token: &str) -> (Value, Value) {
    use base64::Engine as _;
    let part = |i: usize| -> Value {
        let text = token.split('.').nth(i).expect("three parts");
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).unwrap())
            .unwrap()
    };
    (part(0), part(1))
}

/// The kids of the JWKS the idp serves now.
#[track_caller]
pub(crate) fn jwks_kids(idp: &RunningIdp) -> Vec<String> {
    let reply = get(&idp.url("/jwks")).expect("GET /jwks");
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Runs `keyward ARGS` to completion (killed, and the test failed, after `limit`); returns the
/// exit code, stdout and stderr.
pub(crate) fn run_for(args: &[&str], limit: Duration) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_keyward"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn keyward");
    let mut out_pipe = child.stdout.take().expect("stdout");
    let mut err_pipe = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out_pipe.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err_pipe.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("keyward {args:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (status.code().expect("exited by a signal"), out.join().unwrap(), err.join().unwrap())
}

/// The lines a child writes to `stdout`, read on a thread of their own as they arrive (also
/// used by the CLI tests' `Interactive`).
pub(crate) fn line_reader(stdout: std::process::ChildStdout) -> Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    lines
}
