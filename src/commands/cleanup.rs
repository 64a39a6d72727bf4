//! `clear_expired_sessions` and `schedule`.

use crate::cli::ScheduleAction;
use crate::settings::Settings;

pub fn clear_expired_sessions(_settings: &Settings) -> anyhow::Result<()> {
    anyhow::bail!("`clear_expired_sessions` is not built yet")
}

pub fn schedule(_settings: &Settings, _action: ScheduleAction) -> anyhow::Result<()> {
    anyhow::bail!("`schedule` is not built yet")
}
