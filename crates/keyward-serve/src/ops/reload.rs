//! Configuration reload on SIGHUP and when the file changes.
//!
//! The runtime supplies "load and swap" (`Fn() -> Result<Summary, String>`): it reads and
//! validates the file and, only when that succeeds, swaps the new configuration in. The
//! [`Reloader`] decides when to call it, counts `keyward_config_reloads_total{result}`, logs the
//! outcome (an error with its `file:line` text; the previous configuration keeps serving) and
//! never stops: not on a bad file, not on a panicking loader.
//!
//! The file is watched by polling its metadata and a hash of its content (no inotify
//! dependency; a config is a few kilobytes). Writes within `debounce` of each other become one
//! reload, and an editor's write-to-temp-then-rename is one change like any other.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use metrics::Counter;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::metrics::CONFIG_RELOADS_TOTAL;
use crate::config::Config;

/// How often the file is looked at, by default.
pub const DEFAULT_POLL: Duration = Duration::from_millis(250);

/// A file that keeps changing is reloaded at the latest this many debounce periods after its
/// first change.
pub const MAX_DEBOUNCE_PERIODS: u32 = 4;

/// Bytes of the file hashed: the loader's limit (1 MiB); a larger file is rejected by the
/// loader anyway, and its size is part of the fingerprint.
pub const MAX_HASHED_BYTES: u64 = 1024 * 1024;

/// What asked for a reload (the `trigger` field of the log line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadTrigger {
    /// SIGHUP.
    Signal,
    /// The watched file changed.
    FileChanged,
    /// [`ReloadHandle::request`].
    Requested,
}

impl ReloadTrigger {
    /// `signal`, `file_changed` or `requested`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signal => "signal",
            Self::FileChanged => "file_changed",
            Self::Requested => "requested",
        }
    }
}

/// When to reload besides on request: the watched file and its timings. Fixed for the
/// reloader's life: a reload that changes `[reload]` takes effect at the next start.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReloadOptions {
    /// The file to watch; `None` reloads on SIGHUP and requests only.
    pub watch: Option<PathBuf>,
    /// How often the file is looked at. Default [`DEFAULT_POLL`].
    pub poll: Duration,
    /// Changes within this period become one reload.
    pub debounce: Duration,
    /// Whether SIGHUP triggers a reload (Unix only). Default true.
    pub sighup: bool,
}

impl ReloadOptions {
    /// Watch `config.path` when `config.reload.watch` (and the config came from a file), with
    /// its debounce; SIGHUP on.
    pub fn from_config(config: &Config) -> Self {
        Self {
            watch: config.path.clone().filter(|_| config.reload.watch),
            poll: DEFAULT_POLL,
            debounce: config.reload.debounce,
            sighup: true,
        }
    }

    /// Watch `path` (or nothing) with `debounce`, polling every [`DEFAULT_POLL`], SIGHUP on.
    pub fn new(watch: Option<PathBuf>, debounce: Duration) -> Self {
        Self { watch, poll: DEFAULT_POLL, debounce, sighup: true }
    }

    /// The same, polling every `poll` (at least 10 ms).
    pub fn poll_every(mut self, poll: Duration) -> Self {
        self.poll = poll.max(Duration::from_millis(10));
        self
    }

    /// The same, with or without SIGHUP.
    pub fn sighup(mut self, on: bool) -> Self {
        self.sighup = on;
        self
    }
}

/// Asks a running [`Reloader`] to reload; requests made while one is pending become one.
#[derive(Clone, Debug)]
pub struct ReloadHandle {
    tx: mpsc::Sender<ReloadTrigger>,
}

impl ReloadHandle {
    /// Requests a reload; false once the reloader has stopped.
    pub fn request(&self) -> bool {
        match self.tx.try_send(ReloadTrigger::Requested) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Calls the runtime's "load and swap" on SIGHUP, on file change and on request; counts and
/// logs each outcome.
pub struct Reloader<F> {
    load: Arc<F>,
    ok: Counter,
    error: Counter,
}

impl<F> fmt::Debug for Reloader<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader").finish_non_exhaustive()
    }
}

impl<F, S> Reloader<F>
where
    F: Fn() -> Result<S, String> + Send + Sync + 'static,
    S: fmt::Display + Send + 'static,
{
    /// A reloader around `load`: read, validate and swap in the configuration, returning a
    /// summary to log, or the error text (with file and line) leaving the old one serving.
    /// Build it after [`super::metrics::Metrics::install`].
    pub fn new(load: F) -> Self {
        Self {
            load: Arc::new(load),
            ok: metrics::counter!(CONFIG_RELOADS_TOTAL, "result" => "ok"),
            error: metrics::counter!(CONFIG_RELOADS_TOTAL, "result" => "error"),
        }
    }

    /// Reloads now: runs `load` on the blocking pool (it reads a file and builds verifiers),
    /// counts and logs the outcome. A panicking `load` counts as an error.
    pub async fn reload(&self, trigger: ReloadTrigger) -> Result<S, String> {
        let load = Arc::clone(&self.load);
        let outcome = match tokio::task::spawn_blocking(move || load()).await {
            Ok(outcome) => outcome,
            Err(e) => Err(format!("the configuration loader failed: {e}")),
        };
        match &outcome {
            Ok(summary) => {
                self.ok.increment(1);
                tracing::info!(trigger = trigger.as_str(), "configuration reloaded: {summary}");
            }
            Err(error) => {
                self.error.increment(1);
                tracing::error!(
                    trigger = trigger.as_str(),
                    "configuration reload failed; the previous configuration keeps serving: {error}"
                );
            }
        }
        outcome
    }

    /// Starts reloading on the current tokio runtime (SIGHUP is listened to before this
    /// returns) and returns the handle to request reloads. Runs until the runtime shuts down
    /// or the task is aborted. Spawn one per process: every spawned reloader answers SIGHUP.
    pub fn spawn(self, options: ReloadOptions) -> (ReloadHandle, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(1);
        if options.sighup {
            forward_sighup(tx.clone());
        }
        let handle = ReloadHandle { tx: tx.clone() };
        let task = tokio::spawn(self.run(options, tx, rx));
        (handle, task)
    }

    async fn run(
        self,
        options: ReloadOptions,
        _keep_open: mpsc::Sender<ReloadTrigger>,
        mut rx: mpsc::Receiver<ReloadTrigger>,
    ) {
        let mut watch = options.watch.map(|path| FileWatch::new(path, options.debounce));
        let mut ticks = tokio::time::interval(options.poll.max(Duration::from_millis(10)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let trigger = tokio::select! {
                Some(trigger) = rx.recv() => trigger,
                _ = ticks.tick(), if watch.is_some() => {
                    if watch.as_mut().is_some_and(|w| w.poll(Instant::now())) {
                        ReloadTrigger::FileChanged
                    } else {
                        continue;
                    }
                }
                else => return,
            };
            // What the loader is about to read: a change made while it runs is seen next poll.
            let seen = watch.as_ref().map(|w| fingerprint(w.path()));
            let _ = self.reload(trigger).await;
            if let (Some(w), Some(seen)) = (watch.as_mut(), seen) {
                w.settle(seen);
            }
        }
    }
}

/// Forwards SIGHUP into the reload channel (registered before returning).
#[cfg(unix)]
fn forward_sighup(tx: mpsc::Sender<ReloadTrigger>) {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(ReloadTrigger::Signal) {
                        return;
                    }
                }
            });
        }
        Err(e) => tracing::warn!("cannot listen for SIGHUP, reload on file change only: {e}"),
    }
}

#[cfg(not(unix))]
fn forward_sighup(_tx: mpsc::Sender<ReloadTrigger>) {}

/// What identifies a version of the file: `None` when it cannot be read.
type Fingerprint = Option<(u64, Option<SystemTime>, u64, u64)>;

/// Size, modification time, inode (a rename puts a new one in place) and a hash of the first
/// [`MAX_HASHED_BYTES`] of content.
fn fingerprint(path: &Path) -> Fingerprint {
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    let mut content = Vec::new();
    file.take(MAX_HASHED_BYTES).read_to_end(&mut content).ok()?;
    let mut hasher = DefaultHasher::new();
    content.hash(&mut hasher);
    Some((meta.len(), meta.modified().ok(), inode, hasher.finish()))
}

/// Polls one file and says when a (debounced) change is due for a reload. Driven by explicit
/// instants, so tests step it without sleeping.
#[derive(Debug)]
pub struct FileWatch {
    path: PathBuf,
    debounce: Duration,
    seen: Fingerprint,
    /// When the first change not yet reloaded was seen.
    pending_since: Option<Instant>,
    /// When the file last changed.
    last_change: Option<Instant>,
    /// The file is missing and that was logged.
    missing_logged: bool,
}

impl FileWatch {
    /// Watches `path` as it is now.
    pub fn new(path: PathBuf, debounce: Duration) -> Self {
        let seen = fingerprint(&path);
        Self { path, debounce, seen, pending_since: None, last_change: None, missing_logged: false }
    }

    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Looks at the file at `now`; true when it changed and has been quiet for `debounce`
    /// (or kept changing for [`MAX_DEBOUNCE_PERIODS`] × `debounce`). A missing file is never
    /// reloaded (the running configuration stays); its return is a change.
    pub fn poll(&mut self, now: Instant) -> bool {
        let current = fingerprint(&self.path);
        if current != self.seen {
            self.seen = current;
            self.last_change = Some(now);
            self.pending_since.get_or_insert(now);
        }
        let (Some(since), Some(last)) = (self.pending_since, self.last_change) else { return false };
        let quiet = now.saturating_duration_since(last) >= self.debounce;
        let overdue =
            now.saturating_duration_since(since) >= self.debounce.saturating_mul(MAX_DEBOUNCE_PERIODS);
        if !(quiet || overdue) {
            return false;
        }
        self.pending_since = None;
        self.last_change = None;
        if self.seen.is_none() {
            // Nothing to load; its return is a change of its own, debounced afresh.
            if !self.missing_logged {
                self.missing_logged = true;
                tracing::warn!(
                    path = %self.path.display(),
                    "the configuration file is gone or unreadable; the running configuration stays"
                );
            }
            return false;
        }
        self.missing_logged = false;
        true
    }

    /// Records that the file as `seen` was just loaded: changes up to it need no reload.
    fn settle(&mut self, seen: Fingerprint) {
        self.seen = seen;
        self.pending_since = None;
        self.last_change = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn several_writes_within_the_debounce_are_one_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(&path, "a = 1\n").unwrap();
        let t0 = Instant::now();
        let mut w = FileWatch::new(path.clone(), ms(500));
        assert!(!w.poll(t0 + ms(100)), "unchanged");

        std::fs::write(&path, "a = 2\n").unwrap();
        assert!(!w.poll(t0 + ms(200)), "changed, not yet quiet");
        std::fs::write(&path, "a = 3\n").unwrap();
        assert!(!w.poll(t0 + ms(400)));
        assert!(!w.poll(t0 + ms(800)), "quiet for 400 ms only");
        assert!(w.poll(t0 + ms(900)), "quiet for 500 ms: one reload");
        assert!(!w.poll(t0 + ms(1000)), "and only one");
        assert!(!w.poll(t0 + ms(5000)));
    }

    #[test]
    fn a_same_size_rewrite_and_an_editor_rename_are_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(&path, "a = 1\n").unwrap();
        let t0 = Instant::now();
        let mut w = FileWatch::new(path.clone(), ms(100));
        // Same size, possibly the same mtime tick: the content hash tells.
        std::fs::write(&path, "a = 9\n").unwrap();
        assert!(!w.poll(t0));
        assert!(w.poll(t0 + ms(100)));

        // vim-style: write a temporary file, rename it over the config.
        let tmp = dir.path().join(".keyward.toml.swp");
        std::fs::write(&tmp, "a = 10\n").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(!w.poll(t0 + ms(200)));
        assert!(w.poll(t0 + ms(300)));
    }

    #[test]
    fn a_missing_file_is_not_reloaded_and_its_return_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(&path, "a = 1\n").unwrap();
        let t0 = Instant::now();
        let mut w = FileWatch::new(path.clone(), ms(100));
        std::fs::remove_file(&path).unwrap();
        assert!(!w.poll(t0));
        assert!(!w.poll(t0 + ms(1000)), "gone: the running config stays");
        std::fs::write(&path, "a = 2\n").unwrap();
        assert!(!w.poll(t0 + ms(1100)));
        assert!(w.poll(t0 + ms(1200)));
    }

    #[test]
    fn a_file_that_never_stops_changing_is_reloaded_after_four_periods() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keyward.toml");
        std::fs::write(&path, "n = 0\n").unwrap();
        let t0 = Instant::now();
        let mut w = FileWatch::new(path.clone(), ms(100));
        let mut reloads = Vec::new();
        for step in 1..=10u64 {
            std::fs::write(&path, format!("n = {step}\n")).unwrap();
            if w.poll(t0 + ms(50 * step)) {
                reloads.push(50 * step);
            }
        }
        assert_eq!(reloads, [450], "first change at 50 ms, due by 450 ms");
    }
}
