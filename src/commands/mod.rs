//! The commands of the CLI, one module per area. Each takes the loaded
//! settings, opens what it needs, prints its result and returns an
//! `anyhow` error that names the problem.
//!
//! Output goes through [`say!`], which returns the write's error instead of
//! panicking as `println!` does: `sessiond config | head -1` closes stdout
//! early, and `main` then exits quietly on the `BrokenPipe` it gets back.

/// `println!` that returns its `io::Error` (with `?`) instead of panicking.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?;
    }};
}

pub mod access;
pub mod backup;
pub mod cleanup;
pub mod config;
pub mod serve;
pub mod sessions;
pub mod transfer;
pub mod users;

/// Opens (and migrates) the database named by the settings, which must
/// exist: a missing one is an error naming the path, never a new empty file.
pub fn open_db(settings: &crate::settings::Settings) -> anyhow::Result<crate::db::Conn> {
    crate::db::open_existing(&settings.db)
}

/// Opens the database named by the settings, creating it when missing: for
/// `createuser` and `createsuperuser`, which may set up a new installation.
pub fn open_or_create_db(settings: &crate::settings::Settings) -> anyhow::Result<crate::db::Conn> {
    crate::db::open(&settings.db)
}
