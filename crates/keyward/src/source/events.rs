//! Key events: what changed in a source's published set, for subscribers such as token caches.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use crate::jose::jwk::VerifyingKey;
use crate::telemetry;

/// Key events a slow subscriber may fall behind by before it misses some (it is told so).
pub(crate) const KEY_EVENT_BACKLOG: usize = 256;

/// What happened to a key in a source's published set.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyEventKind {
    /// The key appeared in a fetched set (not reported for the first fetch).
    Added,
    /// The key left the published set. It keeps verifying for at most `grace`: until a second
    /// fetch confirms the removal (by default), or for the opt-in removal grace; zero means it
    /// stopped at once.
    Removed {
        /// The longest it may keep verifying.
        grace: Duration,
    },
    /// A removed key came back before it stopped verifying (Entra ID flaps keys).
    Reappeared,
    /// A removed key stopped verifying: the removal was confirmed, or its grace ended.
    Retired,
    /// The key's kid now names different key material: the old material stopped verifying at
    /// once (reported for the old key; the new one gets `Added`).
    MaterialChanged,
}

impl KeyEventKind {
    /// The `event` label: `added`, `removed`, `reappeared`, `retired` or `material_changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "added",
            Self::Removed { .. } => "removed",
            Self::Reappeared => "reappeared",
            Self::Retired => "retired",
            Self::MaterialChanged => "material_changed",
        }
    }
}

/// A change in a source's key set, so caches of verified tokens can forget what a removed key
/// verified. Subscribe with [`crate::source::JwksSource::subscribe`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyEvent {
    /// The source's name (its issuer or URL).
    pub source: Arc<str>,
    /// The key's `kid`.
    pub kid: Option<String>,
    /// The RFC 7638 thumbprint of the key material.
    pub thumbprint: [u8; 32],
    /// What happened.
    pub kind: KeyEventKind,
}

/// Logs, counts and broadcasts key events of one source.
pub(crate) struct Events {
    name: Arc<str>,
    sender: broadcast::Sender<KeyEvent>,
}

impl Events {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self { name, sender: broadcast::Sender::new(KEY_EVENT_BACKLOG) }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<KeyEvent> {
        self.sender.subscribe()
    }

    pub(crate) fn emit(&self, key: &VerifyingKey, kind: KeyEventKind) {
        let kid = key.kid().unwrap_or("");
        match kind {
            KeyEventKind::Added => {
                tracing::info!(issuer = %self.name, kid, alg = ?key.alg(), "key added");
            }
            KeyEventKind::Removed { grace } => tracing::info!(
                issuer = %self.name,
                kid,
                grace_secs = grace.as_secs(),
                "key removed from the published set"
            ),
            KeyEventKind::Reappeared => {
                tracing::info!(issuer = %self.name, kid, "removed key reappeared in the key set");
            }
            KeyEventKind::Retired => {
                tracing::info!(issuer = %self.name, kid, "removed key no longer verifies");
            }
            KeyEventKind::MaterialChanged => tracing::warn!(
                issuer = %self.name,
                kid,
                "new key material under an existing kid; the old material no longer verifies"
            ),
        }
        metrics::counter!(telemetry::KEY_EVENTS_TOTAL, "issuer" => self.name.to_string(), "event" => kind.as_str())
            .increment(1);
        // No subscriber is not an error.
        let _ = self.sender.send(KeyEvent {
            source: Arc::clone(&self.name),
            kid: key.kid().map(str::to_owned),
            thumbprint: *key.thumbprint(),
            kind,
        });
    }
}
