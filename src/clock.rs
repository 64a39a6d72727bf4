//! The clock, read only at the edges of the program.
//!
//! Everything below the HTTP handlers and CLI commands takes `now` as an
//! argument. The server holds an `Arc<dyn Clock>` so that tests can move time
//! forward with [`ManualClock`] instead of sleeping. Times are whole seconds
//! since the Unix epoch (UTC), which is also how they are stored.

use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since the Unix epoch, UTC.
pub type UnixTime = i64;

/// A source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> UnixTime;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> UnixTime {
        chrono::Utc::now().timestamp()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: AtomicI64,
}

impl ManualClock {
    pub fn new(now: UnixTime) -> ManualClock {
        ManualClock { now: AtomicI64::new(now) }
    }

    pub fn advance(&self, seconds: i64) {
        self.now.fetch_add(seconds, Ordering::SeqCst);
    }

    pub fn set(&self, now: UnixTime) {
        self.now.store(now, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        self.now.load(Ordering::SeqCst)
    }
}

/// Formats a stored time as RFC 3339 in UTC, e.g. `2026-11-27T05:15:00Z`.
pub fn rfc3339(time: UnixTime) -> String {
    match chrono::DateTime::from_timestamp(time, 0) {
        Some(datetime) => datetime.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => String::from("invalid-time"),
    }
}
