//! A JSON Web Key Set: usable keys indexed by `kid`, plus every key set aside and why.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, Reason};
use crate::jose::algorithm::Algorithm;
use crate::jose::jwk::{self, SetAsideKey, VerifyingKey};
use crate::jose::{json, pem_map};

/// Default bound on a JWKS document's size.
pub const DEFAULT_MAX_JWKS_BYTES: usize = 1024 * 1024;
/// Default bound on the number of keys in one set.
pub const DEFAULT_MAX_KEYS: usize = 256;
/// Without a `kid`, at most this many compatible keys are tried.
pub const MAX_KIDLESS_CANDIDATES: usize = 4;

/// Why a document could not be used as a key set at all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The document is larger than the bound.
    #[error("key set document is {size} bytes, above the {limit}-byte limit")]
    TooLarge {
        /// The document's size.
        size: usize,
        /// The bound it exceeded.
        limit: usize,
    },
    /// The document is not JSON (or has duplicate member names).
    #[error("key set document is not valid JSON: {0}")]
    NotJson(String),
    /// The document is JSON but not a JWKS (nor a `{kid: PEM certificate}` map).
    #[error("key set document is not a JWKS: {0}")]
    NotAKeySet(String),
    /// More keys than the bound.
    #[error("key set has {count} keys, above the limit of {limit}")]
    TooManyKeys {
        /// How many keys the document has.
        count: usize,
        /// The bound it exceeded.
        limit: usize,
    },
}

/// Something worth telling an operator about a key set that does not stop it from working.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySetWarning {
    /// A key was published with private members; they are ignored, and the key is compromised.
    PrivateKeyPublished {
        /// The key's `kid`.
        kid: Option<String>,
        /// Which private members were present.
        members: Vec<&'static str>,
    },
    /// Several keys share one `kid`; each compatible one is tried.
    DuplicateKid {
        /// The shared `kid`.
        kid: String,
        /// How many keys carry it.
        count: usize,
    },
    /// A usable key has no `kid`; only tokens without a `kid` can select it.
    KeyWithoutKid {
        /// Position in the `keys` array.
        index: usize,
    },
}

impl KeySetWarning {
    /// The stable snake_case name, matching doctor's warnings.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::PrivateKeyPublished { .. } => "private_key_published",
            Self::DuplicateKid { .. } => "duplicate_kid",
            Self::KeyWithoutKid { .. } => "key_without_kid",
        }
    }
}

impl std::fmt::Display for KeySetWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::PrivateKeyPublished { kid, members } => write!(
                f,
                "key {} was published with private members {members:?}: they are ignored, but anyone may hold this private key",
                kid.as_deref().unwrap_or("without kid")
            ),
            Self::DuplicateKid { kid, count } => write!(f, "{count} keys share kid {kid:?}"),
            Self::KeyWithoutKid { index } => write!(f, "key #{index} has no kid"),
        }
    }
}

/// Parsed keys, ready for verification: parse once, verify many.
#[derive(Debug, Default)]
pub struct JwkSet {
    keys: Vec<Arc<VerifyingKey>>,
    /// Keys by kid. Hashed with foldhash: the map is built from the configured key set (at most
    /// a few hundred entries) and only looked up with token kids, so a fast hasher is safe here.
    by_kid: HashMap<Arc<str>, Vec<usize>, foldhash::fast::RandomState>,
    set_aside: Vec<SetAsideKey>,
    warnings: Vec<KeySetWarning>,
}

impl JwkSet {
    /// Parses a JWKS document (or a `{kid: PEM certificate}` map) with the default bounds
    /// (1 MiB, 256 keys).
    pub fn from_json(bytes: &[u8]) -> Result<Self, JwksError> {
        Self::from_json_with_limits(bytes, DEFAULT_MAX_JWKS_BYTES, DEFAULT_MAX_KEYS)
    }

    /// Parses a JWKS document, rejecting it whole beyond `max_bytes` or `max_keys`.
    ///
    /// Individual bad keys never reject the document: they are set aside with a reason and
    /// the rest stays usable (RFC 7517 §5).
    pub fn from_json_with_limits(bytes: &[u8], max_bytes: usize, max_keys: usize) -> Result<Self, JwksError> {
        if bytes.len() > max_bytes {
            return Err(JwksError::TooLarge { size: bytes.len(), limit: max_bytes });
        }
        let document = json::parse_object(bytes).map_err(JwksError::NotJson)?;
        let keys = match document.get("keys") {
            Some(Value::Array(keys)) => keys,
            Some(other) => {
                return Err(JwksError::NotAKeySet(format!(
                    "\"keys\" is {}, not an array",
                    json::kind_of(other)
                )));
            }
            None if pem_map::looks_like_pem_map(&document) => {
                if document.len() > max_keys {
                    return Err(JwksError::TooManyKeys { count: document.len(), limit: max_keys });
                }
                return Ok(Self::from_entries(pem_map::parse_pem_map(&document)));
            }
            None => {
                // A discovery document where a key set was expected: name where the keys are.
                if let Some(jwks_uri) = document.get("jwks_uri").and_then(Value::as_str) {
                    return Err(JwksError::NotAKeySet(format!(
                        "this is an OpenID discovery document (it has \"jwks_uri\"), not a key set; the keys \
                         are at {jwks_uri}"
                    )));
                }
                return Err(JwksError::NotAKeySet(
                    "no \"keys\" member, and not a {kid: PEM certificate} map".to_owned(),
                ));
            }
        };
        if keys.len() > max_keys {
            return Err(JwksError::TooManyKeys { count: keys.len(), limit: max_keys });
        }
        Ok(Self::from_entries(keys.iter().map(jwk::parse_jwk)))
    }

    /// Builds a set from already-parsed keys (used by other key formats, such as PEM maps).
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = jwk::ParsedJwk>) -> Self {
        let mut set = Self::default();
        for (index, entry) in entries.into_iter().enumerate() {
            if !entry.private_members.is_empty() {
                set.warnings.push(KeySetWarning::PrivateKeyPublished {
                    kid: entry.kid.clone(),
                    members: entry.private_members.clone(),
                });
            }
            match entry.key {
                Ok(key) => set.push(key, index),
                Err((problem, detail)) => {
                    set.set_aside.push(SetAsideKey { index, kid: entry.kid, kty: entry.kty, problem, detail })
                }
            }
        }
        for (kid, indices) in &set.by_kid {
            if indices.len() > 1 {
                set.warnings.push(KeySetWarning::DuplicateKid { kid: kid.to_string(), count: indices.len() });
            }
        }
        set
    }

    fn push(&mut self, key: VerifyingKey, index: usize) {
        let position = self.keys.len();
        match key.kid_arc() {
            Some(kid) => self.by_kid.entry(Arc::clone(kid)).or_default().push(position),
            None => self.warnings.push(KeySetWarning::KeyWithoutKid { index }),
        }
        self.keys.push(Arc::new(key));
    }

    /// The usable keys, in document order.
    pub fn keys(&self) -> &[Arc<VerifyingKey>] {
        &self.keys
    }

    /// The keys that will never verify anything, with reasons.
    pub fn set_aside(&self) -> &[SetAsideKey] {
        &self.set_aside
    }

    /// Non-fatal findings: private members published, duplicate kids, keys without kid.
    pub fn warnings(&self) -> &[KeySetWarning] {
        &self.warnings
    }

    /// True when no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// The usable keys with this `kid`.
    pub fn keys_with_kid<'a>(&'a self, kid: &str) -> impl Iterator<Item = &'a Arc<VerifyingKey>> + 'a {
        self.by_kid.get(kid).into_iter().flatten().filter_map(|&i| self.keys.get(i))
    }

    /// True when a usable key has this `kid`.
    pub fn contains_kid(&self, kid: &str) -> bool {
        self.by_kid.contains_key(kid)
    }

    /// Chooses the keys a token with this `kid` and `alg` may be verified with.
    ///
    /// Errors say precisely why none qualifies: no key has the kid (`unknown_kid`), the kid's
    /// keys were set aside (their problem's reason), or they do not fit the algorithm.
    pub fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<&Arc<VerifyingKey>>, Error> {
        match kid {
            Some(kid) => {
                let with_kid: Vec<_> = self.keys_with_kid(kid).collect();
                if with_kid.is_empty() {
                    if let Some(aside) = self.set_aside.iter().find(|k| k.kid.as_deref() == Some(kid)) {
                        return Err(Error::new(
                            aside.problem.reason(),
                            format!("key {kid:?} was set aside: {}", aside.detail),
                        ));
                    }
                    return Err(Error::new(
                        Reason::UnknownKid,
                        format!("no key with kid {kid:?} among {}", usable_keys(self.keys.len())),
                    ));
                }
                let compatible: Vec<_> = with_kid.iter().copied().filter(|k| k.supports(alg)).collect();
                if compatible.is_empty() {
                    let described: Vec<String> = with_kid.iter().map(|k| k.describe()).collect();
                    return Err(Error::new(
                        Reason::KeyAlgorithmMismatch,
                        format!("token alg {alg} does not fit {}", described.join(", ")),
                    ));
                }
                Ok(compatible)
            }
            None => {
                let compatible: Vec<_> = self.keys.iter().filter(|k| k.supports(alg)).collect();
                if compatible.is_empty() {
                    return Err(Error::new(
                        Reason::NoMatchingKey,
                        format!(
                            "token has no kid and none of the {} supports {alg}",
                            usable_keys(self.keys.len())
                        ),
                    ));
                }
                if compatible.len() > MAX_KIDLESS_CANDIDATES {
                    return Err(Error::new(
                        Reason::NoMatchingKey,
                        format!(
                            "token has no kid and {} keys support {alg}; keyward tries at most {MAX_KIDLESS_CANDIDATES} without a kid",
                            compatible.len()
                        ),
                    ));
                }
                Ok(compatible)
            }
        }
    }

    /// Verifies a signature with the first candidate key that accepts it.
    pub(crate) fn verify_signature(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<&Arc<VerifyingKey>, Error> {
        // Hot path: a kid naming usable keys that fit the algorithm, tried without allocating.
        if let Some(indices) = kid.and_then(|kid| self.by_kid.get(kid)) {
            let compatible = indices.iter().filter_map(|&i| self.keys.get(i)).filter(|k| k.supports(alg));
            if let Some(outcome) = first_to_verify(compatible, alg, message, signature) {
                return outcome;
            }
        }
        // Everything else goes through `candidates` for its precise errors.
        let candidates = self.candidates(kid, alg)?;
        first_to_verify(candidates.into_iter(), alg, message, signature)
            .unwrap_or_else(|| Err(Error::new(Reason::NoMatchingKey, "no candidate key")))
    }
}

/// "1 usable key", "3 usable keys".
fn usable_keys(count: usize) -> String {
    format!("{count} usable key{}", if count == 1 { "" } else { "s" })
}

/// Tries `keys` in turn: the first that verifies, or the error after trying them all (the single
/// key's own error, or a summary); `None` when there was no key to try.
fn first_to_verify<'k>(
    keys: impl Iterator<Item = &'k Arc<VerifyingKey>>,
    alg: Algorithm,
    message: &[u8],
    signature: &[u8],
) -> Option<Result<&'k Arc<VerifyingKey>, Error>> {
    let mut tried = 0;
    let mut last = None;
    for key in keys {
        tried += 1;
        match key.verify_signature(alg, message, signature) {
            Ok(()) => return Some(Ok(key)),
            Err(e) => last = Some(e),
        }
    }
    let last = last?;
    Some(Err(if tried == 1 {
        last
    } else {
        Error::new(
            Reason::InvalidSignature,
            format!("signature does not verify under any of {tried} candidate keys"),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discovery_document_names_where_the_keys_are() {
        let discovery =
            br#"{"issuer": "https://idp.example.com", "jwks_uri": "https://idp.example.com/keys"}"#;
        match JwkSet::from_json(discovery) {
            Err(JwksError::NotAKeySet(why)) => {
                assert!(
                    why.contains("discovery document") && why.contains("https://idp.example.com/keys"),
                    "{why}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(JwkSet::from_json(br#"{"other": 1}"#), Err(JwksError::NotAKeySet(why)) if why.contains("no \"keys\""))
        );
    }
}
