//! `sessions list`, `sessions revoke` and `sessions end-user`.

use crate::cli::SessionsAction;
use crate::settings::Settings;

pub fn run(_settings: &Settings, _action: SessionsAction) -> anyhow::Result<()> {
    anyhow::bail!("`sessions` is not built yet")
}
