//! Operating the gateway: Prometheus metrics, readiness, failure-spike detection and config
//! reload (issue #11, "Operations").
//!
//! The runtime wires these in a few lines:
//! - at start, [`metrics::Metrics::install`] once, before building verifiers;
//! - per configuration, a [`metrics::DecisionMetrics`] (prebuilt handles) and a
//!   [`spike::SpikeDetector`]; per request, [`metrics::DecisionMetrics::record`] and
//!   [`spike::SpikeDetector::record`];
//! - `/metrics`: [`metrics::Metrics::refresh_issuers`] then [`metrics::Metrics::render`];
//! - `/readyz`: [`ready::Readiness`] from each issuer's `Health` and the spike detector;
//! - [`reload::Reloader`] around the runtime's "load and swap" function.

pub mod metrics;
pub mod ready;
pub mod reload;
pub mod spike;
