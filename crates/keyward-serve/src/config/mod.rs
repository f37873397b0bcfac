//! The gateway's configuration: a TOML file (`--config`) or the quick-start flags, validated
//! at start and on every reload, with errors naming file, line and field.

mod duration;
mod error;
mod load;
mod model;

pub use self::duration::{DurationError, parse_duration_units};
pub use self::error::ConfigError;
pub use self::load::{
    DEFAULT_LISTEN, DEFAULT_POLICY, MAX_CONFIG_BYTES, MAX_REQUIRE_DEPTH, MAX_TOKEN_CACHE_ENTRIES, QuickStart,
};
pub use self::model::{
    ClaimHeader, Config, IssuerConfig, IssuerMatcher, PathRule, PolicyConfig, ReloadConfig, SpikeConfig,
    TokenCacheConfig, TokenSources,
};
