//! The verified-token cache: a token already verified skips the signature check.
//!
//! Keyed by the SHA-256 of the exact token bytes; an entry holds what verification established
//! (the issuer, the key that verified it, the claims and the claim headers built from them),
//! never a decision: policies run on every request. An entry lives min(exp − now, `max_ttl`)
//! and is dropped when its key leaves the issuer's key set or changes material, when the
//! issuer's keys become unavailable, and (the whole cache) on reload. There is no negative
//! cache: a rejected token is verified again every time, so a key that appears later is found.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use keyward::Verified;

use crate::headers::ClaimValue;

/// Shards of the map: requests on different tokens rarely wait for each other.
const SHARDS: usize = 16;

/// SHA-256 of a token.
pub(crate) type TokenHash = [u8; 32];

/// The SHA-256 of `token`'s exact bytes.
pub(crate) fn token_hash(token: &[u8]) -> TokenHash {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// What a verification established about one token.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Index of the issuer (in the running configuration) that verified it.
    pub(crate) issuer: usize,
    /// The RFC 7638 thumbprint of the key that verified it: what key events name.
    pub(crate) thumbprint: [u8; 32],
    /// The verified token (claims parsed once, on insertion).
    pub(crate) verified: Verified,
    /// The claim headers' values, in configuration order, built once.
    pub(crate) headers: Vec<ClaimValue>,
    /// The headers of the 200 for this token, built once from `headers`.
    pub(crate) response: http::HeaderMap,
    /// Unix second after which the entry is not used: min(exp, inserted + max_ttl).
    pub(crate) until_unix: i64,
}

/// A hasher for keys that already are uniformly random (SHA-256 outputs): the first 8 bytes.
#[derive(Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its length then its bytes; keep the first 8 content bytes.
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
}

/// An entry as a shard holds it.
#[derive(Debug)]
struct Slot {
    entry: Arc<Entry>,
    /// Which insertion of this hash the slot is: tells a live queue position from a stale one.
    seq: u64,
    /// Served since the eviction hand last passed it: it gets a second chance.
    referenced: bool,
}

/// One shard: the entries, and their hashes in insertion order for eviction ("second chance",
/// an approximation of least-recently-used: a full shard evicts the oldest entry not served
/// since the hand last passed it). Tokens served over and over stay; a burst of tokens seen once
/// leaves in the order it came, instead of pushing out whichever entries the map happens to
/// list first (which were, under a unique-token burst, the hot tokens inserted last).
#[derive(Debug, Default)]
struct Shard {
    map: HashMap<TokenHash, Slot, BuildHasherDefault<DigestHasher>>,
    /// Hash and insertion number of every insertion not yet evicted; positions whose entry
    /// was removed (expired, dropped with its key) or replaced are skipped and, once they are
    /// half the queue, compacted away.
    order: VecDeque<(TokenHash, u64)>,
    next_seq: u64,
}

impl Shard {
    fn is_live(&self, hash: &TokenHash, seq: u64) -> bool {
        self.map.get(hash).is_some_and(|slot| slot.seq == seq)
    }

    fn insert(&mut self, hash: TokenHash, entry: Arc<Entry>) {
        let seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        self.map.insert(hash, Slot { entry, seq, referenced: false });
        self.order.push_back((hash, seq));
        if self.order.len() > self.map.len().saturating_mul(2).max(64) {
            let order = std::mem::take(&mut self.order);
            self.order = order.into_iter().filter(|(h, q)| self.is_live(h, *q)).collect();
        }
    }

    /// Evicts one entry: the oldest not served since the hand last passed; false when empty.
    fn evict_one(&mut self) -> bool {
        // Each live position is passed at most twice (its second chance, then eviction).
        let mut budget = self.order.len().saturating_mul(2);
        while budget > 0 {
            budget -= 1;
            let Some((hash, seq)) = self.order.pop_front() else { return false };
            let Some(slot) = self.map.get_mut(&hash).filter(|slot| slot.seq == seq) else { continue };
            if slot.referenced {
                slot.referenced = false;
                self.order.push_back((hash, seq));
                continue;
            }
            self.map.remove(&hash);
            return true;
        }
        false
    }
}

/// A bounded map from token hash to [`Entry`].
#[derive(Debug)]
pub(crate) struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    /// Per shard, the second its expired entries were last swept: a full shard is swept at
    /// most once a second, not on every insert (a scan of the whole shard per cache miss cost
    /// about as much CPU as the RSA arithmetic under unique-token load).
    swept_at: Vec<AtomicI64>,
    per_shard: usize,
    enabled: bool,
    /// Bumped by every removal: a verification that began before a key was dropped does not
    /// put its outcome back afterwards.
    epoch: AtomicU64,
}

impl TokenCache {
    /// A cache of at most `max_entries` entries (0 or `enabled == false`: nothing is kept).
    pub(crate) fn new(enabled: bool, max_entries: u64) -> Self {
        let max = usize::try_from(max_entries).unwrap_or(usize::MAX);
        let per_shard = max.div_ceil(SHARDS);
        let enabled = enabled && max > 0;
        let count = if enabled { SHARDS } else { 0 };
        let shards = (0..count).map(|_| Mutex::new(Shard::default())).collect();
        let swept_at = (0..count).map(|_| AtomicI64::new(i64::MIN)).collect();
        Self { shards, swept_at, per_shard, enabled, epoch: AtomicU64::new(0) }
    }

    /// The removal epoch, read before verifying; [`TokenCache::insert`] takes it back.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// True when entries are kept.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The last byte picks the shard; the hasher reads the first eight.
    fn index(hash: &TokenHash) -> usize {
        usize::from(hash[31]) % SHARDS
    }

    fn shard(&self, hash: &TokenHash) -> Option<MutexGuard<'_, Shard>> {
        self.shards.get(Self::index(hash)).map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The entry for `hash` if it is still valid at `now_unix` (an expired one is removed).
    pub(crate) fn get(&self, hash: &TokenHash, now_unix: i64) -> Option<Arc<Entry>> {
        let mut shard = self.shard(hash)?;
        let slot = shard.map.get_mut(hash)?;
        if slot.entry.until_unix > now_unix {
            slot.referenced = true;
            return Some(Arc::clone(&slot.entry));
        }
        shard.map.remove(hash);
        None
    }

    /// Keeps `entry` under `hash`, unless entries were removed since `epoch` (the key that
    /// verified it may be one of those removed). When the shard is full, expired entries go
    /// first, then the oldest entry not served since the eviction hand last passed it.
    pub(crate) fn insert(&self, hash: TokenHash, entry: Arc<Entry>, now_unix: i64, epoch: u64) {
        if entry.until_unix <= now_unix {
            return;
        }
        let per_shard = self.per_shard;
        let Some(mut shard) = self.shard(&hash) else { return };
        // Checked under the shard lock: a removal bumps the epoch before it sweeps the shards,
        // so either this sees the bump or the sweep sees this entry.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if shard.map.len() >= per_shard && !shard.map.contains_key(&hash) {
            let swept_at = self.swept_at.get(Self::index(&hash));
            // Under the shard's lock, so one insert per shard and second does the sweep.
            if swept_at.is_some_and(|at| at.fetch_max(now_unix, Ordering::Relaxed) < now_unix) {
                shard.map.retain(|_, slot| slot.entry.until_unix > now_unix);
            }
            while shard.map.len() >= per_shard && shard.evict_one() {}
        }
        shard.insert(hash, entry);
    }

    /// Drops every entry `drop` selects; returns how many.
    pub(crate) fn remove_where(&self, drop: impl Fn(&Entry) -> bool) -> usize {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut removed = 0;
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let before = shard.map.len();
            shard.map.retain(|_, slot| !drop(&slot.entry));
            removed += before - shard.map.len();
        }
        removed
    }

    /// Entries held (expired ones not yet swept included).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).map.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use keyward::jwk::JwkSet;
    use keyward::{Policy, verify_with_keys};
    use keyward_idp::{SigningAlg, SigningKey, jwks};
    use serde_json::json;

    use super::*;

    const NOW: i64 = 1_767_225_600;

    /// A genuinely verified token (the cache never looks inside it).
    fn entry(issuer: usize, thumbprint: u8, until_unix: i64) -> Arc<Entry> {
        let key = SigningKey::generate(SigningAlg::ES256, "k").unwrap();
        let set = JwkSet::from_json(jwks([&key]).to_string().as_bytes()).unwrap();
        let token = key.sign_jwt(&json!({"sub": "a", "aud": "api", "exp": NOW + 600})).unwrap();
        let policy = Policy::builder().audience("api").build().unwrap();
        let verified = verify_with_keys(&set, &policy, &token, NOW).unwrap();
        Arc::new(Entry {
            issuer,
            thumbprint: [thumbprint; 32],
            verified,
            headers: Vec::new(),
            response: http::HeaderMap::new(),
            until_unix,
        })
    }

    fn hash(n: u8) -> TokenHash {
        let mut h = [0u8; 32];
        h[0] = n;
        h[31] = n;
        h
    }

    #[test]
    fn entries_live_until_their_deadline_and_the_bound_holds() {
        let cache = TokenCache::new(true, 32);
        let e = entry(0, 1, NOW + 10);
        for n in 0..200u8 {
            cache.insert(hash(n), Arc::clone(&e), NOW, cache.epoch());
        }
        assert!(cache.len() <= 32, "{}", cache.len());
        cache.insert(hash(250), entry(0, 1, NOW + 10), NOW, cache.epoch());
        assert!(cache.get(&hash(250), NOW + 9).is_some());
        assert!(cache.get(&hash(250), NOW + 10).is_none(), "expired at its deadline");
        assert!(cache.get(&hash(250), NOW).is_none(), "an expired entry is removed");
        // Already expired: never kept.
        cache.insert(hash(251), entry(0, 1, NOW), NOW, cache.epoch());
        assert!(cache.get(&hash(251), NOW - 1).is_none());
    }

    /// A hash in shard 0 (the shard is picked by the last byte), distinct per `n`.
    fn in_shard_0(n: u32) -> TokenHash {
        let mut h = [0u8; 32];
        h[..4].copy_from_slice(&n.to_be_bytes());
        h
    }

    #[test]
    fn tokens_served_again_and_again_survive_a_burst_of_tokens_seen_once() {
        // One shard of 40 entries (640 / 16), full of tokens seen once, as after a burst.
        let cache = TokenCache::new(true, 640);
        let e = entry(0, 1, NOW + 300);
        for n in 0..40 {
            cache.insert(in_shard_0(1_000 + n), Arc::clone(&e), NOW, cache.epoch());
        }
        // A hot set of 8 tokens arrives, each served every round, while one-off tokens keep
        // coming: the hot tokens must miss only on their first request.
        let (mut hits, mut misses) = (0, 0);
        for round in 0..200u32 {
            for hot in 0..8 {
                if cache.get(&in_shard_0(hot), NOW).is_some() {
                    hits += 1;
                } else {
                    misses += 1;
                    cache.insert(in_shard_0(hot), Arc::clone(&e), NOW, cache.epoch());
                }
            }
            for one_off in 0..4 {
                cache.insert(in_shard_0(100_000 + round * 4 + one_off), Arc::clone(&e), NOW, cache.epoch());
            }
        }
        assert_eq!(misses, 8, "{hits} hits, {misses} misses");
        assert!(cache.len() <= 40, "{}", cache.len());
    }

    #[test]
    fn the_eviction_queue_stays_bounded_when_entries_leave_by_other_ways() {
        let cache = TokenCache::new(true, 160);
        let e = entry(0, 1, NOW + 300);
        for n in 0..10_000 {
            // Inserted, then dropped with its key or replaced: the queue must not keep them all.
            cache.insert(in_shard_0(n % 50), Arc::clone(&e), NOW, cache.epoch());
            if n % 3 == 0 {
                cache.remove_where(|_| true);
            }
        }
        let shard = cache.shards[0].lock().unwrap();
        assert!(shard.order.len() <= 2 * shard.map.len().max(32) + 1, "{} positions", shard.order.len());
    }

    #[test]
    fn removal_drops_matching_entries_and_stale_inserts() {
        let cache = TokenCache::new(true, 100);
        cache.insert(hash(1), entry(0, 1, NOW + 60), NOW, cache.epoch());
        cache.insert(hash(2), entry(0, 2, NOW + 60), NOW, cache.epoch());
        cache.insert(hash(3), entry(1, 1, NOW + 60), NOW, cache.epoch());
        let before = cache.epoch();
        assert_eq!(cache.remove_where(|e| e.issuer == 0 && e.thumbprint == [1; 32]), 1);
        assert!(cache.get(&hash(1), NOW).is_none());
        assert!(cache.get(&hash(2), NOW).is_some() && cache.get(&hash(3), NOW).is_some());
        // A verification that started before the removal does not put its outcome back.
        cache.insert(hash(4), entry(0, 1, NOW + 60), NOW, before);
        assert!(cache.get(&hash(4), NOW).is_none());
    }

    #[test]
    fn a_disabled_cache_keeps_nothing() {
        let cache = TokenCache::new(false, 100);
        cache.insert(hash(1), entry(0, 1, NOW + 60), NOW, cache.epoch());
        assert!(!cache.enabled());
        assert_eq!(cache.len(), 0);
        assert!(cache.get(&hash(1), NOW).is_none());
    }
}
