//! The gateway's configuration: a TOML file (`--config`) or the quick-start flags, validated
//! at start and on every reload, with errors naming file, line and field.

mod model;

pub use self::model::{
    ClaimHeader, Config, IssuerConfig, IssuerMatcher, PathRule, PolicyConfig, ReloadConfig, SpikeConfig,
    TokenCacheConfig, TokenSources,
};
