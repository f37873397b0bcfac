//! The keyward mock identity provider: signing keys, token minting and JWKS documents.
//!
//! Tests, drills and the demo use it to play the IdP side of a rotation. Keys are generated
//! fresh in memory; nothing here is meant to protect a real system.
#![forbid(unsafe_code)]

pub mod mint;
pub mod provider;
pub mod script;
pub mod server;

pub use crate::mint::{MintError, SigningAlg, SigningKey, jwks};
pub use crate::provider::{FaultMode, Provider, ProviderConfig, ProviderError, RotateMode};
pub use crate::script::Reply;
pub use crate::server::{Fault, MockIdp};
