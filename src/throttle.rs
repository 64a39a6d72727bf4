//! The login throttle: too many failed logins for one username, or from one
//! client address, and every further attempt is refused for a while.
//!
//! The rule (SPEC 3): after 5 failures for one username within 15 minutes,
//! or 50 from one client address, further attempts, correct or not, get 429
//! with `Retry-After` until the window passes. The web form and the GraphQL
//! `login` share one throttle. Its counts live in the database, in the
//! `login_failures` table that only this module touches (SPEC 11): every
//! server and process on the file shares them, and a restart keeps them.
//!
//! An attempt counts as a failure from the moment it begins, written in the
//! same IMMEDIATE transaction as the check, and is taken back only when it
//! succeeds (or could not be decided because the database failed). So
//! parallel guesses, on one server or several, cannot all pass the check
//! while the slow password hashes run. Usernames are keyed folded the way
//! the `users` table compares them (ASCII case), so `ALICE` and `alice`, one
//! account, share one count.

use crate::db::{Behavior, Conn, OptionalExtension, params};

use crate::clock::UnixTime;

pub const WINDOW_SECONDS: i64 = 15 * 60;
pub const USERNAME_LIMIT: usize = 5;
pub const ADDRESS_LIMIT: usize = 50;

/// Refused: try again after this many seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub i64);

/// The throttle's handle; its state is the `login_failures` table of the
/// connection each call is given.
#[derive(Debug, Default)]
pub struct Throttle {}

/// `login_failures.kind`.
const BY_USERNAME: i64 = 0;
const BY_ADDRESS: i64 = 1;

impl Throttle {
    pub fn new() -> Throttle {
        Throttle::default()
    }

    /// Begins a login attempt: refused while the username or the address is
    /// locked, otherwise counted as a failure until [`Throttle::succeeded`].
    pub fn begin_attempt(
        &self,
        conn: &Conn,
        username: &str,
        address: &str,
        now: UnixTime,
    ) -> crate::db::Result<Result<Attempt, RetryAfter>> {
        let username = username_key(username);
        let tx = conn.transaction(Behavior::Immediate)?;
        let by_username = retry_after(&tx, BY_USERNAME, &username, USERNAME_LIMIT, now)?;
        let by_address = retry_after(&tx, BY_ADDRESS, address, ADDRESS_LIMIT, now)?;
        if let Some(seconds) = by_username.max(by_address) {
            return Ok(Err(RetryAfter(seconds)));
        }
        let id = crate::random::secret_hex::<16>();
        let mut insert = tx.prepare_cached(
            "INSERT INTO login_failures (kind, key, at, attempt) VALUES ($1, $2, $3, $4)",
        )?;
        insert.execute(params![BY_USERNAME, username, now, id])?;
        insert.execute(params![BY_ADDRESS, address, now, id])?;
        drop(insert);
        // Failures that have left the window decide nothing any more.
        tx.prepare_cached("DELETE FROM login_failures WHERE at <= $1")?
            .execute(params![now - WINDOW_SECONDS])?;
        tx.commit()?;
        Ok(Ok(Attempt { username, id }))
    }

    /// The attempt signed in: it is not a failure, and the username's earlier
    /// failures are forgotten (the address's are not).
    pub fn succeeded(&self, conn: &Conn, attempt: Attempt) -> crate::db::Result<()> {
        let tx = conn.transaction(Behavior::Immediate)?;
        tx.prepare_cached("DELETE FROM login_failures WHERE kind = $1 AND key = $2")?
            .execute(params![BY_USERNAME, attempt.username])?;
        tx.prepare_cached("DELETE FROM login_failures WHERE attempt = $1")?
            .execute(params![attempt.id])?;
        tx.commit()
    }

    /// The attempt could not be decided (the database failed): it is not a
    /// failure, and the earlier failures stay as they were. When even this
    /// cannot be written, the attempt stays counted until its window passes.
    pub fn abandoned(&self, conn: &Conn, attempt: Attempt) -> crate::db::Result<()> {
        conn.prepare_cached("DELETE FROM login_failures WHERE attempt = $1")?
            .execute(params![attempt.id])
            .map(|_| ())
    }
}

/// A login attempt under way; see [`Throttle::begin_attempt`].
#[derive(Debug)]
#[must_use = "an attempt that is dropped counts as a failure"]
pub struct Attempt {
    username: String,
    /// Names this attempt's rows.
    id: String,
}

/// The throttle's key for a username: folded the way the users table
/// compares names (`COLLATE NOCASE`, ASCII only), so that `ALICE` and
/// `alice`, one account, share one count. Usernames are at most 150
/// characters (see `users`); a longer one is cut so that the throttle never
/// keeps more than that per name.
fn username_key(username: &str) -> String {
    username.chars().take(150).collect::<String>().to_ascii_lowercase()
}

/// Seconds until the failures in the window fall below `limit`, if they
/// have reached it: the `limit`-th most recent one must leave the window
/// before one more attempt is allowed.
fn retry_after(
    conn: &Conn,
    kind: i64,
    key: &str,
    limit: usize,
    now: UnixTime,
) -> crate::db::Result<Option<i64>> {
    let gate: Option<UnixTime> = conn
        .prepare_cached(
            "SELECT at FROM login_failures WHERE kind = $1 AND key = $2 AND at > $3
             ORDER BY at DESC LIMIT 1 OFFSET $4",
        )?
        .query_row(
            params![kind, key, now - WINDOW_SECONDS, i64::try_from(limit).unwrap_or(i64::MAX) - 1],
            |row| row.get(0),
        )
        .optional()?;
    Ok(gate.map(|gate| (gate + WINDOW_SECONDS - now).max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> (tempfile::TempDir, Conn) {
        let dir = tempfile::tempdir().unwrap();
        let conn = crate::db::open(&dir.path().join("db.sqlite3")).unwrap();
        (dir, conn)
    }

    fn begin(conn: &Conn, username: &str, address: &str, now: i64) -> Result<Attempt, RetryAfter> {
        Throttle::new().begin_attempt(conn, username, address, now).unwrap()
    }

    #[test]
    fn fifth_failure_blocks_until_the_window_passes() {
        let (_dir, conn) = database();
        for second in 0..5 {
            let _failed = begin(&conn, "alice", "a", 1000 + second).unwrap();
        }
        assert_eq!(begin(&conn, "Alice", "b", 1010).unwrap_err(), RetryAfter(890));
        assert!(begin(&conn, "bob", "a", 1010).is_ok());
        assert!(begin(&conn, "alice", "a", 1000 + WINDOW_SECONDS).is_ok());
    }

    #[test]
    fn attempts_in_flight_count_until_they_succeed() {
        let (_dir, conn) = database();
        let throttle = Throttle::new();
        let in_flight: Vec<Attempt> =
            (0..5).map(|_| begin(&conn, "alice", "a", 1000).unwrap()).collect();
        assert!(begin(&conn, "alice", "a", 1000).is_err(), "a sixth parallel guess");
        for attempt in in_flight {
            throttle.succeeded(&conn, attempt).unwrap();
        }
        assert!(begin(&conn, "alice", "a", 1000).is_ok());
    }

    #[test]
    fn an_abandoned_attempt_is_not_a_failure() {
        let (_dir, conn) = database();
        let throttle = Throttle::new();
        for _ in 0..4 {
            let _failed = begin(&conn, "alice", "a", 1000).unwrap();
        }
        for _ in 0..3 {
            throttle.abandoned(&conn, begin(&conn, "alice", "a", 1000).unwrap()).unwrap();
        }
        let _fifth = begin(&conn, "alice", "a", 1000).unwrap();
        assert!(begin(&conn, "alice", "a", 1000).is_err());
    }

    #[test]
    fn fifty_failures_from_one_address_block_it() {
        let (_dir, conn) = database();
        for n in 0..50 {
            let _failed = begin(&conn, &format!("user{n}"), "10.0.0.1", 5000).unwrap();
        }
        assert!(begin(&conn, "someone", "10.0.0.1", 5001).is_err());
        assert!(begin(&conn, "someone", "10.0.0.2", 5001).is_ok());
    }
}
