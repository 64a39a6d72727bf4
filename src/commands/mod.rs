//! The commands of the CLI, one module per area. Each takes the loaded
//! settings, opens what it needs, prints its result and returns an
//! `anyhow` error that names the problem.

pub mod access;
pub mod cleanup;
pub mod config;
pub mod serve;
pub mod sessions;
pub mod users;

/// Opens (and migrates) the database named by the settings.
pub fn open_db(settings: &crate::settings::Settings) -> anyhow::Result<rusqlite::Connection> {
    crate::db::open(&settings.db)
}
