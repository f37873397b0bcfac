//! An open-loop HTTP load generator for the `keyward serve` benchmark (`bench/run.py`): requests
//! leave at a constant rate whatever the server does, and each one's latency is measured from the
//! moment it was due, not from when it was sent.
//!
//! ```text
//! cargo run --release -p keyward-serve --example openloop -- URL TOKENS_FILE RATE SECONDS [CONNECTIONS [WARMUP]]
//! ```
//!
//! wrk (the closed loop of the peak runs) sends a connection's next request only once the previous
//! answer is in, so a stall holds back the requests that would have queued behind it and its
//! percentiles hide the stall ("coordinated omission"); wrk2, which fixes that, is not in Debian.
//! Here request `i` is due at `start + i / RATE`. A pacer thread sleeps until the next request
//! is due, at least 100 µs, and releases every request due by then (tokio's timers tick in whole
//! milliseconds, which would send requests in bursts ten times larger). CONNECTIONS keep-alive
//! connections (default 64) on one event-loop thread take the released requests in order, send
//! each (`GET` with `Authorization: Bearer <token>`, the tokens taken round-robin from the file,
//! one a line) and read the whole answer. When every connection is busy, the next request waits,
//! and that wait counts in its latency. Requests due in the first WARMUP seconds (default 1) are
//! sent but not recorded. Two threads in all, so the generator takes little of the machine it
//! shares with the server.
//!
//! The generator's own lateness (the pacer's tick, and its waking up to ~60 µs late on Linux)
//! counts against the server; `send_lag` reports it so a reader can tell the two apart, and
//! `service` the time from sending to the answer (what a closed-loop tool reports). The last
//! line is `OPENLOOP {json}` with the counts and percentiles in microseconds.
#![allow(clippy::disallowed_methods)] // measures real elapsed time, which is the point here
#![allow(missing_docs)]

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The pacer's shortest sleep: at high rates it releases the requests that fell due meanwhile
/// together, at most this late (and charged for it).
const PACER_TICK: Duration = Duration::from_micros(100);

/// What the connections saw, in microseconds per recorded request.
#[derive(Default)]
struct Tally {
    /// From due to the end of the answer.
    latency_us: Vec<u32>,
    /// From due to sending.
    send_lag_us: Vec<u32>,
    /// From sending to the end of the answer: what a closed-loop tool such as wrk reports.
    service_us: Vec<u32>,
    non2xx: u64,
    errors: u64,
}

/// The request numbers the pacer has released and no connection has taken yet; a connection
/// waits its turn on the lock, then for the next release (the receiver wakes one waiter only).
type Released = Rc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<u64>>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: openloop URL TOKENS_FILE RATE SECONDS [CONNECTIONS [WARMUP]]");
        std::process::exit(2);
    }
    let (addr, path) = split_url(&args[0]);
    let tokens: Vec<String> = std::fs::read_to_string(&args[1])
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", args[1])))
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if tokens.is_empty() {
        fail("no tokens in the file");
    }
    let rate: f64 = args[2].parse().unwrap_or_else(|_| fail("RATE is requests per second"));
    let seconds: f64 = args[3].parse().unwrap_or_else(|_| fail("SECONDS is a number"));
    let connections: usize = args.get(4).map_or(64, |c| c.parse().unwrap_or_else(|_| fail("CONNECTIONS")));
    let warmup: f64 = args.get(5).map_or(1.0, |w| w.parse().unwrap_or_else(|_| fail("WARMUP")));
    if !(rate > 0.0 && seconds > 0.0 && warmup >= 0.0 && connections > 0) {
        fail("RATE, SECONDS and CONNECTIONS must be positive");
    }
    let total = ((warmup + seconds) * rate) as u64;
    let recorded_from = (warmup * rate) as u64;
    let requests: Rc<Vec<Vec<u8>>> = Rc::new(
        tokens
            .iter()
            .map(|t| {
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {t}\r\n\r\n")
                    .into_bytes()
            })
            .collect(),
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start the event loop: {e}")));
    let local = tokio::task::LocalSet::new();
    let (tally, start, end) = local.block_on(&runtime, async move {
        let mut streams = Vec::with_capacity(connections);
        for _ in 0..connections {
            streams.push(connect(&addr).await);
        }
        let (release, released) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let released: Released = Rc::new(tokio::sync::Mutex::new(released));
        let start = Instant::now() + Duration::from_millis(20);
        let due = move |i: u64| start + Duration::from_secs_f64(i as f64 / rate);
        // The pacer: wakes at most every PACER_TICK and releases every request due by then, so
        // its wake-ups (and the event loop's) do not grow with the rate.
        std::thread::spawn(move || {
            let mut next = 0u64;
            let mut woke = Instant::now();
            while next < total {
                let at = due(next).max(woke + PACER_TICK);
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
                woke = Instant::now();
                while next < total && due(next) <= woke {
                    if release.send(next).is_err() {
                        return;
                    }
                    next += 1;
                }
            }
        });
        let tally = Rc::new(RefCell::new(Tally::default()));
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|stream| {
                let (released, requests, tally, addr) =
                    (Rc::clone(&released), Rc::clone(&requests), Rc::clone(&tally), addr.clone());
                tokio::task::spawn_local(async move {
                    connection(stream, &addr, &released, &requests, &tally, due, recorded_from).await;
                })
            })
            .collect();
        for task in tasks {
            task.await.ok();
        }
        let tally = tally.take();
        (tally, start, Instant::now())
    });

    let Tally { latency_us: mut latency, send_lag_us: mut lag, service_us: mut service, non2xx, errors } =
        tally;
    latency.sort_unstable();
    lag.sort_unstable();
    service.sort_unstable();
    let recorded = latency.len() as u64;
    let from = start + Duration::from_secs_f64(recorded_from as f64 / rate);
    let span = end.saturating_duration_since(from).as_secs_f64();
    let pct = |v: &[u32], p: f64| {
        v.get(((v.len() as f64 * p / 100.0) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    println!(
        "OPENLOOP {{\"target_rps\":{rate:.0},\"requests\":{recorded},\"achieved_rps\":{:.0},\"connections\":{connections},\
\"non2xx\":{non2xx},\"errors\":{errors},\"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\
\"send_lag_p50_us\":{},\"send_lag_p99_us\":{},\"service_p50_us\":{},\"service_p99_us\":{}}}",
        recorded as f64 / span.max(1e-9),
        pct(&latency, 50.0),
        pct(&latency, 90.0),
        pct(&latency, 99.0),
        pct(&latency, 99.9),
        latency.last().copied().unwrap_or(0),
        pct(&lag, 50.0),
        pct(&lag, 99.0),
        pct(&service, 50.0),
        pct(&service, 99.0),
    );
}

/// One keep-alive connection: takes released requests in order until the pacer is done.
async fn connection(
    mut stream: TcpStream,
    addr: &str,
    released: &Released,
    requests: &[Vec<u8>],
    tally: &RefCell<Tally>,
    due: impl Fn(u64) -> Instant,
    recorded_from: u64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let next = released.lock().await.recv().await;
        let Some(i) = next else { return };
        let due = due(i);
        let sent = Instant::now();
        let request = &requests[(i % requests.len() as u64) as usize];
        let mut status = exchange(&mut stream, request, &mut buf).await;
        if status.is_err() {
            // A keep-alive connection the server closed while idle: one fresh try.
            stream = connect(addr).await;
            status = exchange(&mut stream, request, &mut buf).await;
        }
        let done = Instant::now();
        if matches!(status, Ok((_, Reuse::No)) | Err(_)) {
            stream = connect(addr).await;
        }
        if i < recorded_from {
            continue;
        }
        let mut tally = tally.borrow_mut();
        match status {
            Ok((code, _)) if (200..300).contains(&code) => {}
            Ok(_) => tally.non2xx += 1,
            Err(_) => tally.errors += 1,
        }
        tally.latency_us.push(micros(done.saturating_duration_since(due)));
        tally.send_lag_us.push(micros(sent.saturating_duration_since(due)));
        tally.service_us.push(micros(done.saturating_duration_since(sent)));
    }
}

async fn connect(addr: &str) -> TcpStream {
    let stream =
        TcpStream::connect(addr).await.unwrap_or_else(|e| fail(&format!("cannot connect to {addr}: {e}")));
    stream.set_nodelay(true).ok();
    stream
}

fn fail(message: &str) -> ! {
    eprintln!("openloop: {message}");
    std::process::exit(2);
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| fail("only http:// URLs"));
    match rest.find('/') {
        Some(at) => (rest[..at].to_owned(), rest[at..].to_owned()),
        None => (rest.to_owned(), "/".to_owned()),
    }
}

/// Whether a connection may carry the next request.
enum Reuse {
    Yes,
    No,
}

/// Sends one request and reads its whole answer (Content-Length or chunked body): its status, and
/// whether the server keeps the connection open.
async fn exchange(stream: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> std::io::Result<(u16, Reuse)> {
    stream.write_all(request).await?;
    let mut len = 0usize;
    let head_end = loop {
        if let Some(at) = find(&buf[..len], b"\r\n\r\n") {
            break at + 4;
        }
        len += read_more(stream, buf, len).await?;
    };
    let (status, chunked, body, closing) = {
        let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| bad("answer head is not UTF-8"))?;
        let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status"))?;
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
        };
        let chunked = header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        let body: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let closing = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        (status, chunked, body, closing)
    };
    if chunked {
        while find(&buf[head_end..len], b"0\r\n\r\n").is_none() {
            len += read_more(stream, buf, len).await?;
        }
    } else {
        let want = head_end.saturating_add(body);
        if want > buf.len() {
            return Err(bad("answer larger than the buffer"));
        }
        while len < want {
            len += read_more(stream, buf, len).await?;
        }
    }
    Ok((status, if closing { Reuse::No } else { Reuse::Yes }))
}

async fn read_more(stream: &mut TcpStream, buf: &mut [u8], len: usize) -> std::io::Result<usize> {
    if len == buf.len() {
        return Err(bad("answer larger than the buffer"));
    }
    match stream.read(&mut buf[len..]).await? {
        0 => Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed")),
        n => Ok(n),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn bad(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}
