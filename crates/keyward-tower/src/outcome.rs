//! What the layer leaves in the request's extensions for handlers and later layers.

use std::fmt;
use std::sync::Arc;

use keyward::Verified;

use crate::reject::Rejection;

/// A request whose bearer token verified: the verified token and the SHA-256 of the raw token.
/// The raw token itself is never stored.
#[derive(Clone)]
pub struct Authenticated {
    verified: Arc<Verified>,
    token_sha256: [u8; 32],
}

impl Authenticated {
    pub(crate) fn new(verified: Verified, token_sha256: [u8; 32]) -> Self {
        Self { verified: Arc::new(verified), token_sha256 }
    }

    /// The verified token: claims, header, key, issuer, key evidence.
    pub fn verified(&self) -> &Verified {
        &self.verified
    }

    /// SHA-256 of the raw token, to correlate requests in logs without the credential.
    pub fn token_sha256(&self) -> &[u8; 32] {
        &self.token_sha256
    }

    /// The first 8 bytes of [`Authenticated::token_sha256`] as hex: a short log field.
    pub fn token_id(&self) -> String {
        self.token_sha256.iter().take(8).map(|b| format!("{b:02x}")).collect()
    }
}

impl fmt::Debug for Authenticated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticated")
            .field("verified", &self.verified)
            .field("token_id", &self.token_id())
            .finish()
    }
}

/// What the layer decided for a request, in its extensions (every request that passed the layer
/// has one). Handlers of a [`crate::Mode::Passthrough`] layer read it to decide themselves.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AuthOutcome {
    /// The token verified.
    Verified(Authenticated),
    /// No bearer token was sent.
    Missing,
    /// A token was sent and rejected (only a passthrough layer lets such a request through).
    Rejected(Rejection),
}

impl AuthOutcome {
    /// The verified token, if there is one.
    pub fn authenticated(&self) -> Option<&Authenticated> {
        match self {
            Self::Verified(auth) => Some(auth),
            _ => None,
        }
    }

    /// `verified`, `missing`, or the rejection's reason code (`expired`, `keys_unavailable`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Verified(_) => "verified",
            Self::Missing => "missing",
            Self::Rejected(rejection) => rejection.code(),
        }
    }
}
