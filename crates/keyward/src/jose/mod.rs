//! JOSE building blocks: algorithms, strict base64url and JSON, headers, compact JWS, JWK(S).

pub(crate) mod algorithm;
pub mod base64url;
pub(crate) mod buffer;
pub(crate) mod compact;
pub(crate) mod header;
pub(crate) mod json;
pub(crate) mod jwk;
pub(crate) mod jwks;
pub(crate) mod peek;
pub(crate) mod pem_map;
pub(crate) mod scan;

pub use self::algorithm::{Algorithm, KeyFamily, UnknownAlgorithm};
