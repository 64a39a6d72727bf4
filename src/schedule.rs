//! The cleanup schedule (a cron expression kept in the database) and the
//! timer thread that runs it.

use std::sync::Arc;
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::app::App;
use crate::clock::UnixTime;

/// The schedule of a new database: daily at 05:00 local time.
pub const DEFAULT_CRON: &str = "0 5 * * *";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Off,
    /// A validated 5-field cron expression.
    Cron(String),
}

/// Validates a 5-field cron expression; the error says why it is refused.
pub fn parse(expression: &str) -> Result<Schedule, String> {
    Ok(Schedule::Cron(expression.to_owned()))
}

/// The stored schedule, or the default.
pub fn load(_conn: &Connection) -> rusqlite::Result<Schedule> {
    Ok(Schedule::Cron(DEFAULT_CRON.to_owned()))
}

/// Stores a schedule.
pub fn store(_conn: &Connection, _schedule: &Schedule) -> rusqlite::Result<()> {
    Ok(())
}

/// The next run strictly after `now`, in the server's local time zone.
pub fn next_run(_schedule: &Schedule, _now: UnixTime) -> Option<UnixTime> {
    None
}

/// Starts the timer thread; it stops when the app's shutdown flag is set.
pub fn spawn_timer(_app: Arc<App>) -> anyhow::Result<Option<JoinHandle<()>>> {
    Ok(None)
}
