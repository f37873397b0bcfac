//! `keyward serve`: a forward-auth gateway in front of services that cannot verify JWTs
//! themselves (nginx `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`, Envoy
//! ext_authz HTTP), built on `keyward-tower` so the gateway and the layer never disagree.
//!
//! [`Server::bind`] puts a validated [`config::Config`] into service; [`Gateway::check`]
//! decides one request. `docs/serve.md` is the endpoint contract.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod cache;
pub mod config;
mod gateway;
mod headers;
pub mod ops;
mod request;
mod respond;
mod server;

pub use crate::gateway::{BuildError, CacheStats, Gateway};
pub use crate::respond::REASON_HEADER;
pub use crate::server::{ServeError, Server, router, shutdown_signal};
