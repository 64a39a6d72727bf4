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
pub mod cleanup;
pub mod config;
pub mod serve;
pub mod sessions;
pub mod users;

/// Opens (and migrates) the database named by the settings.
pub fn open_db(settings: &crate::settings::Settings) -> anyhow::Result<rusqlite::Connection> {
    crate::db::open(&settings.db)
}
