//! The configuration as a user meets it: the example file, the quick start, defaults, and
//! each validation error with its file, line, column and field.

use std::path::{Path, PathBuf};

use keyward_serve::config::{Config, ConfigError};

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/keyward/keyward.toml")
}

#[test]
fn the_example_file_loads() {
    let config = Config::load(&example_path()).unwrap();
    assert_eq!(config.issuers.len(), 2);
}

fn _err(text: &str) -> ConfigError {
    Config::from_toml_str(text, Some(Path::new("keyward.toml"))).unwrap_err()
}
