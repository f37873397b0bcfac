//! What an operator reads during a failure spike: one WARN naming issuer, ratio and dominant
//! reason; one INFO when it is over; nothing in between.
//!
//! A test binary of its own: tracing caches each log call site's interest process-wide, so a
//! capture next to parallel tests that reach the same call sites without a subscriber can lose
//! lines (it did, once in CI).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keyward::Reason;
use keyward_serve::config::Config;
use keyward_serve::ops::spike::SpikeDetector;
use tokio::time::Instant;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_spike_is_logged_once_with_issuer_ratio_and_dominant_reason() {
    // The default detector: 60 s window, 20 %, at least 20 tokens.
    let config = Config::from_toml_str(
        "[[issuer]]\nname = \"corp-idp\"\nissuer = \"https://idp.example.com\"\naudiences = [\"api\"]\n",
        None,
    )
    .unwrap();
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let t0 = Instant::now();
    tracing::subscriber::with_default(subscriber, || {
        let d = SpikeDetector::starting_at(&config.failure_spike, ["corp-idp"], t0);
        let idp = d.issuer("corp-idp").unwrap();
        for _ in 0..70 {
            d.record(idp, Ok(()), t0);
        }
        for _ in 0..20 {
            d.record(idp, Err(Reason::UnknownKid), t0 + Duration::from_secs(1));
        }
        for _ in 0..10 {
            d.record(idp, Err(Reason::Expired), t0 + Duration::from_secs(2));
        }
        // Recovery: valid tokens bring the share of failures under 20 %.
        for _ in 0..100 {
            d.record(idp, Ok(()), t0 + Duration::from_secs(3));
        }
    });
    let text = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let warns: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ")).collect();
    let infos: Vec<&str> = text.lines().filter(|l| l.contains(" INFO ")).collect();
    assert_eq!(warns.len(), 1, "{text}");
    assert_eq!(infos.len(), 1, "{text}");
    // Starts at the 18th unknown_kid: 18 of 88 is 20.5 %.
    assert!(warns[0].contains("issuer=corp-idp"), "{}", warns[0]);
    assert!(warns[0].contains("dominant_reason=\"unknown_kid\""), "{}", warns[0]);
    assert!(warns[0].contains("ratio=0.205"), "{}", warns[0]);
    assert!(infos[0].contains("failure spike over for issuer corp-idp"), "{}", infos[0]);
}
