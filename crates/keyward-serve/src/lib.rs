//! `keyward serve`: a forward-auth gateway in front of services that cannot verify JWTs
//! themselves (nginx `auth_request`, Traefik ForwardAuth, Caddy `forward_auth`, Envoy
//! ext_authz HTTP), built on `keyward-tower` so the gateway and the layer never disagree.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod config;
pub mod ops;
