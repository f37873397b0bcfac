//! JOSE building blocks: algorithms, strict base64url and JSON, headers, compact JWS, JWK(S).

pub(crate) mod algorithm;
pub mod base64url;
pub(crate) mod buffer;
pub mod compact;
pub mod header;
pub(crate) mod json;
pub mod jwk;
pub mod jwks;
pub(crate) mod pem_map;
pub(crate) mod scan;

pub use self::algorithm::{Algorithm, KeyFamily, UnknownAlgorithm};
