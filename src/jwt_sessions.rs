//! The `jwt_sessions` table: one row per GraphQL login, so that a token can
//! be revoked before its `exp`.
//!
//! The row's `jti` is the token's `jti`. A token is honoured only while its
//! row exists, is not revoked and has not expired (see `http::bearer`).
//! Revoking keeps the first `revoked_at`. Only this module touches
//! `jwt_sessions`; it takes `now` from its callers.

use crate::db::{Conn, OptionalExtension, params};

use crate::clock::UnixTime;
use crate::users::{Role, User, user_from_columns};

/// One stored JWT session.
#[derive(Debug, Clone)]
pub struct JwtSession {
    pub jti: String,
    pub user_id: i64,
    pub created: UnixTime,
    pub last_activity: UnixTime,
    pub expires_at: UnixTime,
    pub revoked_at: Option<UnixTime>,
    pub client_addr: String,
    pub user_agent: String,
}

/// Stores the row of a new login.
pub fn create(
    conn: &Conn,
    jti: &str,
    user_id: i64,
    now: UnixTime,
    expires_at: UnixTime,
    client_addr: &str,
    user_agent: &str,
) -> crate::db::Result<()> {
    conn.prepare_cached(
        "INSERT INTO jwt_sessions (jti, user_id, created, last_activity, expires_at, client_addr, user_agent)
         VALUES ($1, $2, $3, $3, $4, $5, $6)",
    )?
    .execute(params![
        jti,
        user_id,
        now,
        expires_at,
        client_addr,
        crate::web_sessions::truncate(user_agent, crate::web_sessions::MAX_USER_AGENT)
    ])?;
    Ok(())
}

/// The row and its user when the row exists, is not revoked, has not
/// expired, and its user is active.
pub fn find_live(
    conn: &Conn,
    jti: &str,
    now: UnixTime,
) -> crate::db::Result<Option<(JwtSession, User)>> {
    // `+expires_at`: a filter, never the index to search (see
    // `web_sessions::find_live`).
    conn.prepare_cached(
        "SELECT jwt_sessions.jti, jwt_sessions.user_id, jwt_sessions.created,
                jwt_sessions.last_activity, jwt_sessions.expires_at, jwt_sessions.revoked_at,
                jwt_sessions.client_addr, jwt_sessions.user_agent,
                users.id, users.username, users.email, users.is_superuser, users.is_staff,
                users.is_active
         FROM jwt_sessions JOIN users ON users.id = jwt_sessions.user_id
         WHERE jwt_sessions.jti = $1 AND jwt_sessions.revoked_at IS NULL
           AND +jwt_sessions.expires_at > $2 AND users.is_active <> 0",
    )?
    .query_row(params![jti, now], |row| Ok((session_from_row(row)?, user_from_columns(row, 8)?)))
    .optional()
}

/// The role of the user whose API login this is, if the row exists.
pub fn owner_role(conn: &Conn, jti: &str) -> crate::db::Result<Option<Role>> {
    conn.prepare_cached(
        "SELECT users.id, users.username, users.email, users.is_superuser, users.is_staff, users.is_active
         FROM jwt_sessions JOIN users ON users.id = jwt_sessions.user_id
         WHERE jwt_sessions.jti = $1",
    )?
    .query_row(params![jti], |row| user_from_columns(row, 0))
    .optional()
    .map(|user| user.map(|user| user.role))
}

/// Revokes one session; a second revocation keeps the first time and actor.
/// Returns whether the row exists.
pub fn revoke(
    conn: &Conn,
    jti: &str,
    now: UnixTime,
    revoked_by: Option<i64>,
) -> crate::db::Result<bool> {
    crate::db::ending_access(conn, "jwt_sessions::revoke", |conn| {
        let changed = conn
            .prepare_cached(
                "UPDATE jwt_sessions SET revoked_at = coalesce(revoked_at, $1),
                        revoked_by = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_by END
                 WHERE jti = $3",
            )?
            .execute(params![now, revoked_by, jti])?;
        Ok(changed == 1)
    })
}

/// Revokes every live (unrevoked, unexpired) session of a user; returns how
/// many.
pub fn revoke_for_user(
    conn: &Conn,
    user_id: i64,
    now: UnixTime,
    revoked_by: Option<i64>,
) -> crate::db::Result<usize> {
    crate::db::ending_access(conn, "jwt_sessions::revoke_for_user", |conn| {
        conn.prepare_cached(
            "UPDATE jwt_sessions SET revoked_at = $1, revoked_by = $2
             WHERE user_id = $3 AND revoked_at IS NULL AND expires_at > $1",
        )?
        .execute(params![now, revoked_by, user_id])
    })
}

/// Deletes one row. Returns whether it existed.
pub fn delete(conn: &Conn, jti: &str) -> crate::db::Result<bool> {
    crate::db::ending_access(conn, "jwt_sessions::delete", |conn| {
        let deleted = conn
            .prepare_cached("DELETE FROM jwt_sessions WHERE jti = $1")?
            .execute(params![jti])?;
        Ok(deleted == 1)
    })
}

/// SQLite: up to `limit` rows whose `expires_at` has passed (revoked or not), from
/// the expiry `from_expiry` on, in order of expiry: their `seq` and expiry.
/// The cleanup reads a batch with this outside its write transaction and
/// deletes it with [`delete_expired_rows`]; see
/// `web_sessions::expired_batch`.
pub fn expired_batch(
    conn: &Conn,
    now: UnixTime,
    from_expiry: i64,
    limit: usize,
) -> crate::db::Result<Vec<(i64, i64)>> {
    conn.prepare_cached(
        "SELECT seq, expires_at FROM jwt_sessions INDEXED BY jwt_sessions_expires_at
         WHERE expires_at <= $1 AND expires_at >= $2 ORDER BY expires_at LIMIT $3",
    )?
    .query_map(params![now, from_expiry, limit as i64], |row| Ok((row.get(0)?, row.get(1)?)))?
    .collect()
}

/// Deletes the rows of `seqs` that have still expired by `now`; returns how
/// many went. For the cleanup, inside its transaction.
pub fn delete_expired_rows(conn: &Conn, now: UnixTime, seqs: &[i64]) -> crate::db::Result<usize> {
    let mut statement =
        conn.prepare_cached("DELETE FROM jwt_sessions WHERE seq = $1 AND expires_at <= $2")?;
    let mut deleted = 0;
    for seq in seqs {
        deleted += statement.execute(params![seq, now])?;
    }
    Ok(deleted)
}

/// PostgreSQL: how many pages the table holds now.
pub fn pages(conn: &Conn) -> crate::db::Result<i64> {
    conn.prepare_cached(
        "SELECT pg_relation_size('jwt_sessions') / current_setting('block_size')::bigint",
    )?
    .query_row([], |row| row.get(0))
}

/// PostgreSQL: deletes the rows stored in pages `from` up to (not
/// including) `to` whose `expires_at` has passed (revoked or not); returns
/// how many. By page range: see `web_sessions::delete_expired_in_pages`.
pub fn delete_expired_in_pages(
    conn: &Conn,
    now: UnixTime,
    from: i64,
    to: i64,
) -> crate::db::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM jwt_sessions
         WHERE ctid >= ('(' || $1::bigint || ',0)')::tid
           AND ctid < ('(' || $2::bigint || ',0)')::tid
           AND expires_at <= $3",
    )?
    .execute(params![from, to, now])
}

/// How many rows have expired by `now`, and how many have not; both are
/// counted through the expiry index.
pub fn count_expired_and_live(conn: &Conn, now: UnixTime) -> crate::db::Result<(usize, usize)> {
    conn.prepare_cached(
        "SELECT (SELECT count(*) FROM jwt_sessions WHERE expires_at <= $1),
                (SELECT count(*) FROM jwt_sessions WHERE expires_at > $1)",
    )?
    .query_row(params![now], |row| {
        Ok((row.get::<_, i64>(0)? as usize, row.get::<_, i64>(1)? as usize))
    })
}

/// Deletes every expired row at once by copying the live ones aside,
/// emptying the table and copying them back; see
/// `web_sessions::delete_expired_keeping_live`, whose conditions (inside a
/// transaction, foreign keys off) hold here too. Returns how many rows were
/// deleted.
pub fn delete_expired_keeping_live(conn: &Conn, now: UnixTime) -> crate::db::Result<usize> {
    conn.execute(
        "CREATE TEMP TABLE cleanup_live_jwt_sessions AS
         SELECT * FROM jwt_sessions WHERE expires_at > $1 ORDER BY seq",
        params![now],
    )?;
    let all = conn.execute("DELETE FROM jwt_sessions", [])?;
    let live =
        conn.execute("INSERT INTO jwt_sessions SELECT * FROM temp.cleanup_live_jwt_sessions", [])?;
    conn.execute("DROP TABLE temp.cleanup_live_jwt_sessions", [])?;
    Ok(all - live)
}

fn session_from_row(row: &crate::db::Row<'_>) -> crate::db::Result<JwtSession> {
    Ok(JwtSession {
        jti: row.get(0)?,
        user_id: row.get(1)?,
        created: row.get(2)?,
        last_activity: row.get(3)?,
        expires_at: row.get(4)?,
        revoked_at: row.get(5)?,
        client_addr: row.get(6)?,
        user_agent: row.get(7)?,
    })
}

// ---------------------------------------------------------------------------
// Listing, counting and ending sessions for the admin pages, the user's own
// sessions page and the `sessions` commands.

use crate::listing::{ListQuery, Status};

/// A JWT session as the lists show it: the row, its user, and the username
/// of whoever revoked it (none when a command did, or nobody has).
#[derive(Debug, Clone)]
pub struct JwtSessionRow {
    pub seq: i64,
    pub session: JwtSession,
    pub user: User,
    pub revoked_by: Option<String>,
}

impl JwtSessionRow {
    pub fn status(&self, now: UnixTime) -> Status {
        Status::of(self.session.expires_at, self.session.revoked_at, now)
    }
}

/// Every JWT session the database knows, newest first, filtered and paged
/// by keyset on `seq` (never OFFSET). `revoked` and `expired` walk the
/// partial indexes of migration 2, which hold only those rows; `active`
/// walks the rows newest first, since live tokens are the newest ones.
pub fn list(
    conn: &Conn,
    query: &ListQuery,
    now: UnixTime,
) -> crate::db::Result<Vec<JwtSessionRow>> {
    let before = query.before.unwrap_or(i64::MAX);
    let limit = query.limit as i64;
    let seqs = match (query.status, query.user_id) {
        (None, None) => seqs(
            conn,
            "SELECT seq FROM jwt_sessions WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
            params![before, limit],
        )?,
        (None, Some(user_id)) => seqs(
            conn,
            "SELECT seq FROM jwt_sessions WHERE user_id = $1 AND seq < $2
             ORDER BY seq DESC LIMIT $3",
            params![user_id, before, limit],
        )?,
        (Some(Status::Revoked), None) => seqs(
            conn,
            conn.by_engine(
                "SELECT seq FROM jwt_sessions INDEXED BY jwt_sessions_revoked
                 WHERE revoked_at IS NOT NULL AND seq < $1 ORDER BY seq DESC LIMIT $2",
                "SELECT seq FROM jwt_sessions
                 WHERE revoked_at IS NOT NULL AND seq < $1 ORDER BY seq DESC LIMIT $2",
            ),
            params![before, limit],
        )?,
        (Some(Status::Revoked), Some(user_id)) => seqs(
            conn,
            conn.by_engine(
                "SELECT seq FROM jwt_sessions INDEXED BY jwt_sessions_user
                 WHERE user_id = $1 AND revoked_at IS NOT NULL AND seq < $2
                 ORDER BY seq DESC LIMIT $3",
                "SELECT seq FROM jwt_sessions
                 WHERE user_id = $1 AND revoked_at IS NOT NULL AND seq < $2
                 ORDER BY seq DESC LIMIT $3",
            ),
            params![user_id, before, limit],
        )?,
        (Some(Status::Expired), None) => list_expired(conn, before, limit, now)?,
        (Some(Status::Expired), Some(user_id)) => seqs(
            conn,
            conn.by_engine(
                "SELECT seq FROM jwt_sessions INDEXED BY jwt_sessions_user
                 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at <= $2 AND seq < $3
                 ORDER BY seq DESC LIMIT $4",
                "SELECT seq FROM jwt_sessions
                 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at <= $2 AND seq < $3
                 ORDER BY seq DESC LIMIT $4",
            ),
            params![user_id, now, before, limit],
        )?,
        (Some(Status::Active), None) => seqs(
            conn,
            conn.by_engine(
                "SELECT seq FROM jwt_sessions NOT INDEXED
                 WHERE revoked_at IS NULL AND expires_at > $1 AND seq < $2
                 ORDER BY seq DESC LIMIT $3",
                "SELECT seq FROM jwt_sessions
                 WHERE revoked_at IS NULL AND +expires_at > $1 AND seq < $2
                 ORDER BY seq DESC LIMIT $3",
            ),
            params![now, before, limit],
        )?,
        (Some(Status::Active), Some(user_id)) => seqs(
            conn,
            conn.by_engine(
                "SELECT seq FROM jwt_sessions INDEXED BY jwt_sessions_user
                 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND seq < $3
                 ORDER BY seq DESC LIMIT $4",
                "SELECT seq FROM jwt_sessions
                 WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2 AND seq < $3
                 ORDER BY seq DESC LIMIT $4",
            ),
            params![user_id, now, before, limit],
        )?,
    };
    find_all(conn, seqs)
}

/// The first column of every row, as `seq`s.
fn seqs(conn: &Conn, sql: &str, params: impl crate::db::Params) -> crate::db::Result<Vec<i64>> {
    conn.prepare_cached(sql)?.query_map(params, |row| row.get(0))?.collect()
}

/// The `seq`s of the newest expired, unrevoked sessions below `before`,
/// without sorting every expired row: a first walk down the expiry index
/// takes the `limit` most recently expired rows; the smallest `seq` among
/// them is a floor that the newest `limit` expired rows cannot be below.
/// Only rows above the floor are then sorted, and since `seq` and
/// `expires_at` grow together those are few.
fn list_expired(
    conn: &Conn,
    before: i64,
    limit: i64,
    now: UnixTime,
) -> crate::db::Result<Vec<i64>> {
    let recent = seqs(
        conn,
        conn.by_engine(
            "SELECT seq FROM jwt_sessions INDEXED BY jwt_sessions_unrevoked_expiry
             WHERE revoked_at IS NULL AND expires_at <= $1 AND seq < $2
             ORDER BY expires_at DESC LIMIT $3",
            "SELECT seq FROM jwt_sessions
             WHERE revoked_at IS NULL AND expires_at <= $1 AND seq < $2
             ORDER BY expires_at DESC LIMIT $3",
        ),
        params![now, before, limit],
    )?;
    let floor = match recent.iter().min() {
        Some(&smallest) if recent.len() as i64 == limit => smallest,
        _ => i64::MIN,
    };
    seqs(
        conn,
        conn.by_engine(
            "SELECT seq FROM jwt_sessions INDEXED BY jwt_sessions_unrevoked_expiry
             WHERE revoked_at IS NULL AND expires_at <= $1 AND seq < $2 AND seq >= $3
             ORDER BY seq DESC LIMIT $4",
            "SELECT seq FROM jwt_sessions
             WHERE revoked_at IS NULL AND expires_at <= $1 AND seq < $2 AND seq >= $3
             ORDER BY seq DESC LIMIT $4",
        ),
        params![now, before, floor, limit],
    )
}

fn find_all(conn: &Conn, seqs: Vec<i64>) -> crate::db::Result<Vec<JwtSessionRow>> {
    let mut rows = Vec::with_capacity(seqs.len());
    for seq in seqs {
        if let Some(row) = find_row_by_seq(conn, seq)? {
            rows.push(row);
        }
    }
    Ok(rows)
}

/// One row by `seq`, with its user and the name of whoever revoked it.
pub fn find_row_by_seq(conn: &Conn, seq: i64) -> crate::db::Result<Option<JwtSessionRow>> {
    conn.prepare_cached(
        "SELECT jwt_sessions.jti, jwt_sessions.user_id, jwt_sessions.created,
                jwt_sessions.last_activity, jwt_sessions.expires_at, jwt_sessions.revoked_at,
                jwt_sessions.client_addr, jwt_sessions.user_agent,
                users.id, users.username, users.email, users.is_superuser, users.is_staff,
                users.is_active, revoker.username, jwt_sessions.seq
         FROM jwt_sessions JOIN users ON users.id = jwt_sessions.user_id
              LEFT JOIN users AS revoker ON revoker.id = jwt_sessions.revoked_by
         WHERE jwt_sessions.seq = $1",
    )?
    .query_row(params![seq], |row| {
        Ok(JwtSessionRow {
            session: session_from_row(row)?,
            user: user_from_columns(row, 8)?,
            revoked_by: row.get(14)?,
            seq: row.get(15)?,
        })
    })
    .optional()
}

/// How many JWT sessions are live, revoked, and expired without having been
/// revoked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub active: i64,
    pub revoked: i64,
    pub expired: i64,
}

/// Counts the sessions from indexes only: the b-tree count of the table,
/// and the partial indexes of revoked rows and of unrevoked expiries.
pub fn counts(conn: &Conn, now: UnixTime) -> crate::db::Result<Counts> {
    let total: i64 = conn
        .prepare_cached("SELECT count(*) FROM jwt_sessions")?
        .query_row([], |row| row.get(0))?;
    let revoked: i64 = conn
        .prepare_cached(conn.by_engine(
            "SELECT count(*) FROM jwt_sessions INDEXED BY jwt_sessions_revoked
             WHERE revoked_at IS NOT NULL",
            "SELECT count(*) FROM jwt_sessions WHERE revoked_at IS NOT NULL",
        ))?
        .query_row([], |row| row.get(0))?;
    let expired: i64 = conn
        .prepare_cached(conn.by_engine(
            "SELECT count(*) FROM jwt_sessions INDEXED BY jwt_sessions_unrevoked_expiry
             WHERE revoked_at IS NULL AND expires_at <= $1",
            "SELECT count(*) FROM jwt_sessions WHERE revoked_at IS NULL AND expires_at <= $1",
        ))?
        .query_row(params![now], |row| row.get(0))?;
    Ok(Counts { active: total - revoked - expired, revoked, expired })
}

/// Revokes one session only when it belongs to `user_id` (a user ending
/// their own session). Returns whether such a row exists.
pub fn revoke_own(conn: &Conn, jti: &str, user_id: i64, now: UnixTime) -> crate::db::Result<bool> {
    crate::db::ending_access(conn, "jwt_sessions::revoke_own", |conn| {
        let changed = conn
            .prepare_cached(
                "UPDATE jwt_sessions SET revoked_at = coalesce(revoked_at, $1),
                        revoked_by = CASE WHEN revoked_at IS NULL THEN $2 ELSE revoked_by END
                 WHERE jti = $3 AND user_id = $2",
            )?
            .execute(params![now, user_id, jti])?;
        Ok(changed == 1)
    })
}

// ---------------------------------------------------------------------------
// Moving an installation (`sessiond export` / `sessiond import`): every
// column of every row, `seq` included.

/// One `jwt_sessions` row as an export carries it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSessionExportRow {
    pub seq: i64,
    pub jti: String,
    pub user_id: i64,
    pub created: i64,
    pub last_activity: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_by: Option<i64>,
    pub client_addr: String,
    pub user_agent: String,
}

/// Every JWT session, by `seq`.
pub fn export_rows(conn: &Conn) -> crate::db::Result<Vec<JwtSessionExportRow>> {
    let mut statement = conn.prepare(
        "SELECT seq, jti, user_id, created, last_activity, expires_at, revoked_at, revoked_by,
                client_addr, user_agent
         FROM jwt_sessions ORDER BY seq",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(JwtSessionExportRow {
            seq: row.get(0)?,
            jti: row.get(1)?,
            user_id: row.get(2)?,
            created: row.get(3)?,
            last_activity: row.get(4)?,
            expires_at: row.get(5)?,
            revoked_at: row.get(6)?,
            revoked_by: row.get(7)?,
            client_addr: row.get(8)?,
            user_agent: row.get(9)?,
        })
    })?;
    rows.collect()
}

impl JwtSessionExportRow {
    /// What the program could not use: a `jti` that is not a UUID.
    pub fn check(&self) -> Result<(), String> {
        match uuid::Uuid::try_parse(&self.jti) {
            Ok(_) => Ok(()),
            Err(_) => Err(String::from("`jti` is not a UUID")),
        }
    }
}

/// Inserts exported JWT sessions (each [`JwtSessionExportRow::check`]ed)
/// with their `seq`; their users must be there already. The caller's
/// transaction makes a failure change nothing.
pub fn import_rows(conn: &Conn, rows: &[JwtSessionExportRow]) -> anyhow::Result<()> {
    let mut statement = conn.prepare(
        "INSERT INTO jwt_sessions (seq, jti, user_id, created, last_activity, expires_at,
                                   revoked_at, revoked_by, client_addr, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )?;
    for (index, row) in rows.iter().enumerate() {
        let refuse =
            |what: String| anyhow::anyhow!("`jwt_sessions[{index}]` (seq {}): {what}", row.seq);
        row.check().map_err(refuse)?;
        statement
            .execute(params![
                row.seq,
                row.jti,
                row.user_id,
                row.created,
                row.last_activity,
                row.expires_at,
                row.revoked_at,
                row.revoked_by,
                row.client_addr,
                row.user_agent
            ])
            .map_err(|error| refuse(error.to_string()))?;
    }
    if conn.engine() == crate::db::Engine::Postgres {
        // The rows came with their ids: the identity must go on after them.
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('jwt_sessions', 'seq'), max(seq)) FROM jwt_sessions",
            [],
        )?;
    }
    Ok(())
}

/// True when there is no JWT session at all.
pub fn none_exist(conn: &Conn) -> crate::db::Result<bool> {
    conn.prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM jwt_sessions)")?
        .query_row([], |row| row.get(0))
}
