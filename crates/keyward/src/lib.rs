//! keyward: JWT verification that keeps working when the identity provider rotates its keys.
//!
//! Strict JOSE parsing (compact JWS only, canonical base64url, duplicate-free JSON), keys parsed
//! once from a JWKS into `aws-lc-rs` verification keys, one stable [`Reason`] per rejection, and
//! a rotation-aware remote key source ([`source::JwksSource`]) that keeps verifying through key
//! rotations and IdP outages.
//!
//! ```
//! use keyward::{Policy, Verifier};
//! use keyward::jwk::JwkSet;
//!
//! # async fn run(jwks: &[u8], token: &str) -> Result<(), Box<dyn std::error::Error>> {
//! let keys = JwkSet::from_json(jwks)?;
//! let policy = Policy::builder()
//!     .issuer("https://idp.example.com")
//!     .audience("orders-api")
//!     .build()?;
//! let verifier = Verifier::builder().keys(keys).policy(policy).build()?;
//! match verifier.verify(token).await {
//!     Ok(verified) => println!("hello {:?}", verified.registered().sub),
//!     Err(rejected) => println!("rejected: {} ({})", rejected.reason(), rejected),
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)
)]

pub mod clock;
pub mod danger;
mod error;
mod jose;
pub mod source;
pub mod telemetry;
mod verify;

pub use crate::clock::{Clock, FixedClock, SystemClock};
pub use crate::error::{ConfigError, Error, MAX_LEEWAY_SECS, Reason, TimeEvidence};
pub use crate::jose::compact::DEFAULT_MAX_TOKEN_LEN;
pub use crate::jose::{Algorithm, KeyFamily, UnknownAlgorithm};
pub use crate::source::KeyEvidence;
pub use crate::verify::{
    DEFAULT_LEEWAY_SECS, EVENT_BACKLOG, Issuer, Keys, Pending, Policy, PolicyBuilder, RegisteredClaims,
    Verified, Verifier, VerifierBuilder, VerifierEvent, VerifierEvents, VerifyFuture, verify_with_keys,
};

/// Parsing internals exposed for the fuzz targets, benchmarks and parser property tests.
/// Not a stable API: use the crate-root items and [`jwk`] instead.
#[doc(hidden)]
pub mod internal {
    pub use crate::jose::base64url;
    pub use crate::jose::compact::{DEFAULT_MAX_TOKEN_LEN, UnverifiedToken};
    pub use crate::jose::header::{Header, MAX_KID_LEN};
}

/// Key sets: JWKS parsing, parsed verification keys, and keys set aside with reasons.
pub mod jwk {
    pub use crate::jose::jwk::{KeyProblem, MAX_RSA_BITS, MIN_RSA_BITS, SetAsideKey, VerifyingKey};
    pub use crate::jose::jwks::{
        DEFAULT_MAX_JWKS_BYTES, DEFAULT_MAX_KEYS, JwkSet, JwksError, KeySetWarning, MAX_KIDLESS_CANDIDATES,
    };
    pub use crate::jose::pem_map::public_key_pem_to_jwk;
}
