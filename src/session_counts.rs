//! How many sessions of each kind and status there are, as `/admin/` shows
//! them (and the metrics export them), kept for a few seconds.
//!
//! Counting reads indexes only (see `web_sessions::counts`), but with a
//! million rows that is still some milliseconds, so the counts are kept in
//! the app, shared by the workers, for [`COUNTS_TTL_SECONDS`] of the
//! request's `now`. An admin action forgets them at once, so what an admin
//! did shows on the next view; logins and expiries elsewhere show within the
//! TTL. Moving the clock (tests) by more than that, either way, also forgets
//! them. The clock is never read here: callers pass `now`.

use std::sync::{Mutex, PoisonError};

use crate::db::Conn;

use crate::clock::UnixTime;
use crate::jwt_sessions;
use crate::web_sessions;

/// How long counts are reused, in seconds of the request's clock.
pub const COUNTS_TTL_SECONDS: i64 = 5;

/// The counts of both tables.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounts {
    pub web: web_sessions::Counts,
    pub jwt: jwt_sessions::Counts,
}

/// The last counts taken and when.
#[derive(Debug, Default)]
pub struct CountsCache(Mutex<Option<(UnixTime, SessionCounts)>>);

impl CountsCache {
    /// The counts at `now`, counted again when the kept ones are older than
    /// the TTL.
    pub fn get(&self, conn: &Conn, now: UnixTime) -> crate::db::Result<SessionCounts> {
        let kept = *self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((taken, counts)) = kept
            && (0..COUNTS_TTL_SECONDS).contains(&(now - taken))
        {
            return Ok(counts);
        }
        let counts = SessionCounts {
            web: web_sessions::counts(conn, now)?,
            jwt: jwt_sessions::counts(conn, now)?,
        };
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((now, counts));
        Ok(counts)
    }

    /// Sessions changed: the next `get` counts again.
    pub fn forget(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}
