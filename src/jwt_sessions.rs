//! The `jwt_sessions` table: one row per GraphQL login, so that a token can
//! be revoked before its `exp`.
//!
//! The row's `jti` is the token's `jti`. A token is honoured only while its
//! row exists, is not revoked and has not expired (see `http::bearer`).
//! Revoking keeps the first `revoked_at`. Only this module touches
//! `jwt_sessions`; it takes `now` from its callers.

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::UnixTime;
use crate::users::{User, user_from_columns};

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
    conn: &Connection,
    jti: &str,
    user_id: i64,
    now: UnixTime,
    expires_at: UnixTime,
    client_addr: &str,
    user_agent: &str,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO jwt_sessions (jti, user_id, created, last_activity, expires_at, client_addr, user_agent)
         VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        jti,
        user_id,
        now,
        expires_at,
        client_addr,
        crate::web_sessions::truncate(user_agent, 512)
    ])?;
    Ok(())
}

/// The row and its user when the row exists, is not revoked, has not
/// expired, and its user is active.
pub fn find_live(
    conn: &Connection,
    jti: &str,
    now: UnixTime,
) -> rusqlite::Result<Option<(JwtSession, User)>> {
    conn.prepare_cached(
        "SELECT jwt_sessions.jti, jwt_sessions.user_id, jwt_sessions.created,
                jwt_sessions.last_activity, jwt_sessions.expires_at, jwt_sessions.revoked_at,
                jwt_sessions.client_addr, jwt_sessions.user_agent,
                users.id, users.username, users.email, users.is_superuser, users.is_staff,
                users.is_active
         FROM jwt_sessions JOIN users ON users.id = jwt_sessions.user_id
         WHERE jwt_sessions.jti = ?1 AND jwt_sessions.revoked_at IS NULL
           AND jwt_sessions.expires_at > ?2 AND users.is_active",
    )?
    .query_row(params![jti, now], |row| Ok((session_from_row(row)?, user_from_columns(row, 8)?)))
    .optional()
}

/// Revokes one session; a second revocation keeps the first time and actor.
/// Returns whether the row exists.
pub fn revoke(
    conn: &Connection,
    jti: &str,
    now: UnixTime,
    revoked_by: Option<i64>,
) -> rusqlite::Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE jwt_sessions SET revoked_at = coalesce(revoked_at, ?2),
                    revoked_by = CASE WHEN revoked_at IS NULL THEN ?3 ELSE revoked_by END
             WHERE jti = ?1",
        )?
        .execute(params![jti, now, revoked_by])?;
    Ok(changed == 1)
}

/// Revokes every live (unrevoked, unexpired) session of a user; returns how
/// many.
pub fn revoke_for_user(
    conn: &Connection,
    user_id: i64,
    now: UnixTime,
    revoked_by: Option<i64>,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE jwt_sessions SET revoked_at = ?2, revoked_by = ?3
         WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2",
    )?
    .execute(params![user_id, now, revoked_by])
}

/// Deletes one row. Returns whether it existed.
pub fn delete(conn: &Connection, jti: &str) -> rusqlite::Result<bool> {
    let deleted =
        conn.prepare_cached("DELETE FROM jwt_sessions WHERE jti = ?1")?.execute(params![jti])?;
    Ok(deleted == 1)
}

/// Deletes up to `limit` rows whose `expires_at` has passed (revoked or not);
/// returns how many.
pub fn delete_expired_batch(
    conn: &Connection,
    now: UnixTime,
    limit: usize,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "DELETE FROM jwt_sessions WHERE seq IN
           (SELECT seq FROM jwt_sessions WHERE expires_at <= ?1 LIMIT ?2)",
    )?
    .execute(params![now, limit as i64])
}

fn session_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JwtSession> {
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
