//! Rotation-proof JWT authentication for tower services: axum, hyper, tonic.
//!
//! ```no_run
//! # #[cfg(feature = "axum")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use axum::{Router, routing::get};
//! use keyward::{Policy, Verifier, source::JwksSource};
//! use keyward_tower::{Claims, KeywardLayer, require, scope};
//!
//! let keys = JwksSource::from_issuer("https://idp.example.com").build()?;
//! let policy = Policy::builder().issuer("https://idp.example.com").audience("orders-api").build()?;
//! let verifier = Verifier::builder().keys(keys).policy(policy).build()?;
//!
//! async fn orders(Claims(claims): Claims) -> String {
//!     format!("orders of {:?}", claims.sub)
//! }
//! let app: Router = Router::new()
//!     .route("/orders", get(orders).route_layer(require(scope("orders:read"))))
//!     .layer(KeywardLayer::new(verifier));
//! # Ok(()) }
//! ```
//!
//! - The token comes from exactly one `Authorization: Bearer` header, which is marked
//!   sensitive. The verified token ([`Authenticated`]: claims, issuer, key, the token's SHA-256)
//!   goes into the request's extensions as an [`AuthOutcome`]; the raw token never does.
//! - Verification is synchronous whenever no key fetch is needed ([`keyward::Verifier::verify_now`]):
//!   the response future is a named type that boxes nothing on that path. Only a request whose
//!   token needs a fetch (a rotated-in kid) waits, and only for the one fetch in flight; other
//!   requests are not slowed meanwhile.
//! - Rejections ([`Rejection`]) become responses in one place ([`Reject`], default
//!   [`DefaultReject`]): 401 `WWW-Authenticate: Bearer` for no token, 401
//!   `error="invalid_token"` with the reason code, 403 `error="insufficient_scope"` with
//!   `scope=`, and 503 with `Retry-After` when keys are unavailable, never 401. gRPC requests
//!   (`content-type: application/grpc*`) get `grpc-status` 16, 7 or 14 instead.
//!
//! # gRPC (tonic)
//!
//! Put [`KeywardLayer`] in the server's tower stack (`Server::builder().layer(..)`); with the
//! `tonic` feature, handlers call `request.authenticated()` or `request.claims::<C>()`
//! (`TonicAuth`), which answer a `tonic::Status` when there is no verified token. There is deliberately no synchronous
//! `tonic::service::Interceptor`: an interceptor must answer without awaiting, so a token
//! signed by a key the IdP just rotated in (whose kid is not yet fetched) could only be
//! rejected, turning every key rotation into a burst of `UNAUTHENTICATED` errors. The layer
//! answers synchronously in the same common case and waits for the fetch only when one is
//! needed.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod authorize;
mod body;
#[cfg(feature = "axum")]
mod extract;
mod outcome;
mod reject;
mod require;
mod service;
mod token;
#[cfg(feature = "tonic")]
mod tonic;

pub use crate::authorize::{AuthorizeFuture, KeywardAuthorizer};
pub use crate::body::RejectionBody;
#[cfg(feature = "axum")]
pub use crate::extract::{Claims, StandardClaims};
pub use crate::outcome::{AuthOutcome, Authenticated};
pub use crate::reject::{DefaultReject, Reject, Rejection, grpc, grpc_response, http_response};
pub use crate::require::{
    ClaimTest, ClaimValue, Pattern, PatternError, Require, RequireFuture, RequireLayer, Requirement, Unmet,
    claim_at, claim_contains, claim_equals, claim_matches, group, not, require, role, scope,
};
pub use crate::service::{Keyward, KeywardLayer, Mode, ResponseFuture};
#[cfg(feature = "tonic")]
pub use crate::tonic::TonicAuth;
