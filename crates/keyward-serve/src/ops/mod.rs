//! Operating the gateway: Prometheus metrics, readiness, failure-spike detection and config
//! reload (issue #11, "Operations").
//!
//! The runtime wires these in a few lines:
//! - at start, [`metrics::Metrics::install`] once, before building verifiers (their handles
//!   bind to the recorder installed when they are taken), and [`metrics::Metrics::spawn_upkeep`];
//! - per configuration (start and each reload), a [`metrics::DecisionMetrics::from_config`]
//!   and a [`spike::SpikeDetector::new`]; keep each policy's [`metrics::PolicyId`] and each
//!   issuer's [`spike::IssuerId`] next to the policy and issuer they belong to;
//! - per request, [`metrics::DecisionMetrics::record`] (plus `cache_hit`/`cache_miss`,
//!   `cors_preflight_bypassed`, `claim_header_dropped`), and for each token matched to an
//!   issuer [`spike::SpikeDetector::record`] (`Ok(())` or `Err(reason)`; no token, no outcome);
//! - `/metrics`: [`metrics::Metrics::refresh_issuers`] with each issuer's `Health`, then
//!   [`metrics::Metrics::render`];
//! - `/readyz`: a [`ready::Readiness`] of [`ready::IssuerReadiness::new`] per issuer (needed
//!   ones from [`ready::needed_issuers`], spike from [`spike::SpikeDetector::degraded`]);
//!   `/healthz`: 200 [`ready::HEALTHZ_BODY`];
//! - [`reload::Reloader::new`] around the runtime's "load and swap", spawned with
//!   [`reload::ReloadOptions::from_config`].
//!
//! ```no_run
//! # use std::time::Duration;
//! # use keyward::Reason;
//! # use keyward_serve::ops::metrics::{DecisionMetrics, DecisionReason, Metrics};
//! # use keyward_serve::ops::spike::SpikeDetector;
//! # fn wiring(config: &keyward_serve::config::Config) -> Result<(), Box<dyn std::error::Error>> {
//! let metrics = Metrics::install()?;
//! let decisions = DecisionMetrics::from_config(config);
//! let spikes = SpikeDetector::new(&config.failure_spike, config.issuers.iter().map(|i| i.name.as_str()));
//! let policy = decisions.policy(&config.default_policy).ok_or("no default policy")?;
//! let issuer = spikes.issuer(&config.issuers[0].name).ok_or("no issuer")?;
//! // One request: an expired token.
//! spikes.record(issuer, Err(Reason::Expired), tokio::time::Instant::now());
//! decisions.record(policy, DecisionReason::Token(Reason::Expired), 401, Duration::from_micros(40));
//! let body = metrics.render();
//! # let _ = body; Ok(()) }
//! ```

pub mod metrics;
pub mod ready;
pub mod reload;
pub mod spike;
