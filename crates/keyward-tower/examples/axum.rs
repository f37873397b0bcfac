//! An axum service protected by keyward-tower.
//!
//! With no configuration it starts the mock IdP in-process, mints tokens and prints `curl`
//! commands to try:
//!
//! ```text
//! cargo run -p keyward-tower --example axum
//! ```
//!
//! Against a real issuer (discovery through `/.well-known/openid-configuration`):
//!
//! ```text
//! KEYWARD_ISSUER=https://login.example.com KEYWARD_AUDIENCE=orders-api \
//!     cargo run -p keyward-tower --example axum
//! ```
//!
//! `KEYWARD_LISTEN` sets the address (default `127.0.0.1:3000`).

use std::error::Error;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use keyward::source::JwksSource;
use keyward::{Clock, Policy, Verifier};
use keyward_idp::{MockIdp, SigningAlg, SigningKey};
use keyward_tower::{AuthOutcome, Claims, KeywardLayer, Mode, StandardClaims, require, role, scope};
use serde_json::json;

/// Any verified caller.
async fn me(Claims(claims): Claims<StandardClaims>) -> String {
    format!("hello {}\n", claims.sub.unwrap_or_default())
}

/// Callers with `orders:read` and the `admin` role.
async fn orders() -> &'static str {
    "[\"order-1\", \"order-2\"]\n"
}

/// Anyone; the handler says what it saw.
async fn whoami(outcome: AuthOutcome) -> String {
    format!("{}\n", outcome.as_str())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt().with_env_filter("info,keyward=debug,keyward_tower=debug").init();
    let listen = std::env::var("KEYWARD_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let audience = std::env::var("KEYWARD_AUDIENCE").unwrap_or_else(|_| "orders-api".to_owned());

    // Either a real issuer, or the mock IdP kept alive for the life of the example.
    let (issuer, idp) = match std::env::var("KEYWARD_ISSUER") {
        Ok(issuer) => (issuer, None),
        Err(_) => {
            let idp = MockIdp::start().await?;
            let key = Arc::new(SigningKey::generate(SigningAlg::RS256, "demo-1")?);
            idp.publish(&[&key]);
            let now = keyward::SystemClock.now_unix();
            let mut admin = idp.claims("alice", &audience, now, 3600);
            admin["scope"] = json!("orders:read");
            admin["roles"] = json!(["admin"]);
            let reader = idp.claims("bob", &audience, now, 3600);
            println!("mock IdP at {}", idp.issuer());
            println!("try:");
            println!("  curl -i http://{listen}/me -H 'Authorization: Bearer {}'", key.sign_jwt(&admin)?);
            println!(
                "  curl -i http://{listen}/orders -H 'Authorization: Bearer {}'   # 403",
                key.sign_jwt(&reader)?
            );
            println!("  curl -i http://{listen}/me   # 401");
            println!("  curl -i http://{listen}/whoami");
            (idp.issuer().to_owned(), Some(idp))
        }
    };

    let keys = match &idp {
        Some(idp) => JwksSource::from_url(idp.jwks_uri()).build()?,
        None => JwksSource::from_issuer(&issuer).build()?,
    };
    let policy = Policy::builder().issuer(&issuer).audience(&audience).build()?;
    let verifier = Verifier::builder().keys(keys).policy(policy).build()?;

    let app = Router::new()
        .route("/me", get(me))
        .route("/orders", get(orders).route_layer(require(scope("orders:read").and(role("admin")))))
        .layer(KeywardLayer::new(verifier.clone()))
        .merge(
            Router::new()
                .route("/whoami", get(whoami))
                .layer(KeywardLayer::new(verifier).mode(Mode::Passthrough)),
        );

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{listen}");
    axum::serve(listener, app).await?;
    Ok(())
}
