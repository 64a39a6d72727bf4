//! `init`, `config`, `config get` and `config set`.

use std::path::Path;

use crate::settings::Settings;

pub fn init(_env_file: &Path, _force: bool) -> anyhow::Result<()> {
    anyhow::bail!("`init` is not built yet")
}

pub fn show(_settings: &Settings) -> anyhow::Result<()> {
    anyhow::bail!("`config` is not built yet")
}

pub fn get(_settings: &Settings, _keys: &[String]) -> anyhow::Result<()> {
    anyhow::bail!("`config get` is not built yet")
}

pub fn set(_env_file: &Path, _key: &str, _value: &str) -> anyhow::Result<()> {
    anyhow::bail!("`config set` is not built yet")
}
