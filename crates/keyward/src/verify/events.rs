//! One stream of key events and health changes for every issuer of a verifier, for token caches
//! (forget what a removed key verified) and readiness probes (stop taking traffic when keys are
//! unavailable).

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::{KeysKind, Verifier};
use crate::source::{HealthState, JwksSource, KeyEvent};

/// Events a [`VerifierEvents`] holds before newer ones are dropped (and counted as lagged).
pub const EVENT_BACKLOG: usize = 256;

/// What [`Verifier::subscribe`] reports.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifierEvent {
    /// A key of `issuer`'s source was added, removed, retired, reappeared or changed material
    /// (the event carries the source name, kid and thumbprint).
    Key {
        /// The configured issuer (its `iss`, or its template).
        issuer: Arc<str>,
        /// What happened to which key.
        event: KeyEvent,
    },
    /// `issuer`'s key set changed health (reported once at subscription, then on each change
    /// of state: fresh, stale since, unavailable since).
    Health {
        /// The configured issuer.
        issuer: Arc<str>,
        /// The new state.
        state: HealthState,
    },
    /// The subscriber fell behind and `missed` events of `issuer` were dropped: a token cache
    /// should drop everything it holds for that issuer.
    Lagged {
        /// The configured issuer.
        issuer: Arc<str>,
        /// How many events were dropped.
        missed: u64,
    },
}

/// The receiving end of [`Verifier::subscribe`]. Dropping it stops the forwarding tasks.
#[derive(Debug)]
pub struct VerifierEvents {
    rx: mpsc::Receiver<VerifierEvent>,
}

impl VerifierEvents {
    /// The next event; `None` once no issuer can report anything more (a verifier with only
    /// static keys has nothing to report).
    pub async fn recv(&mut self) -> Option<VerifierEvent> {
        self.rx.recv().await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<VerifierEvent> {
        self.rx.try_recv().ok()
    }
}

impl Verifier {
    /// Key events of every issuer's remote source, merged, plus each issuer's health changes.
    ///
    /// The channel is bounded ([`EVENT_BACKLOG`]); a subscriber that falls behind gets
    /// [`VerifierEvent::Lagged`] instead of the events it missed. Starts one small task per
    /// remote issuer, so it must be called inside a tokio runtime (outside one, the stream ends
    /// at once). The tasks, and the sources they watch, live until the receiver is dropped.
    pub fn subscribe(&self) -> VerifierEvents {
        let (tx, rx) = mpsc::channel(EVENT_BACKLOG);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("Verifier::subscribe called outside a tokio runtime: no events will be reported");
            return VerifierEvents { rx };
        };
        for issuer in &self.inner.issuers {
            if let KeysKind::Remote(source) = &issuer.keys.0 {
                let forwarder =
                    Forwarder { issuer: Arc::clone(&issuer.label), tx: tx.clone(), lagged: 0, health: None };
                // Subscribed here, before this returns, so no event after it is missed.
                let keys = source.subscribe();
                runtime.spawn(forwarder.run(source.clone(), keys));
            }
        }
        VerifierEvents { rx }
    }
}

/// Forwards one source's events into a subscriber's channel without ever blocking on it.
struct Forwarder {
    issuer: Arc<str>,
    tx: mpsc::Sender<VerifierEvent>,
    /// Events dropped since the subscriber last had room, not yet reported.
    lagged: u64,
    /// The last health state reported (compared by kind: the `since` stays put within a state).
    health: Option<&'static str>,
}

impl Forwarder {
    async fn run(mut self, source: JwksSource, mut keys: broadcast::Receiver<KeyEvent>) {
        let mut fetches = source.completed_fetches();
        let tx = self.tx.clone();
        loop {
            let state = source.health().state;
            if self.health != Some(state.as_str()) {
                self.health = Some(state.as_str());
                self.send(VerifierEvent::Health { issuer: Arc::clone(&self.issuer), state });
            }
            let deadline = source.next_health_change();
            let woke = tokio::select! {
                () = tx.closed() => return,
                event = keys.recv() => match event {
                    Ok(event) => Woke::Key(event),
                    Err(broadcast::error::RecvError::Lagged(missed)) => Woke::Missed(missed),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                changed = fetches.changed() => match changed {
                    Ok(()) => Woke::Recheck,
                    Err(_) => return,
                },
                // What was dropped is reported as soon as the subscriber has room again.
                permit = tx.reserve(), if self.lagged > 0 => match permit {
                    Ok(permit) => {
                        permit.send(VerifierEvent::Lagged { issuer: Arc::clone(&self.issuer), missed: self.lagged });
                        Woke::Reported
                    }
                    Err(_) => return,
                },
                () = sleep_until(deadline), if deadline.is_some() => Woke::Recheck,
            };
            match woke {
                Woke::Key(event) => self.send(VerifierEvent::Key { issuer: Arc::clone(&self.issuer), event }),
                Woke::Missed(missed) => self.lagged = self.lagged.saturating_add(missed),
                Woke::Reported => self.lagged = 0,
                Woke::Recheck => {}
            }
        }
    }

    /// Sends `event`, first telling the subscriber what it missed; drops and counts when full.
    fn send(&mut self, event: VerifierEvent) {
        if self.lagged > 0 {
            let lagged = VerifierEvent::Lagged { issuer: Arc::clone(&self.issuer), missed: self.lagged };
            if self.tx.try_send(lagged).is_err() {
                self.lagged = self.lagged.saturating_add(1);
                return;
            }
            self.lagged = 0;
        }
        if self.tx.try_send(event).is_err() {
            self.lagged = self.lagged.saturating_add(1);
        }
    }
}

/// What woke a forwarder.
enum Woke {
    Key(KeyEvent),
    Missed(u64),
    Reported,
    Recheck,
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
