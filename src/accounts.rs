//! Changes to a user that must end their sessions: a new password,
//! deactivation, or an explicit "end every session".
//!
//! Each runs in one immediate transaction, so the user change and the end of
//! the sessions land together or not at all, and the next request (from any
//! process) sees both.

use rusqlite::{Connection, TransactionBehavior};

use crate::clock::UnixTime;
use crate::jwt_sessions;
use crate::users::{self, User, UserError};
use crate::web_sessions;

/// How many sessions an action ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ended {
    pub web: usize,
    pub jwt: usize,
}

/// Finds a user by name or fails with a message naming them.
pub fn require_user(conn: &Connection, username: &str) -> anyhow::Result<User> {
    users::find_by_username(conn, username)?
        .ok_or_else(|| UserError::NoSuchUser(username.to_owned()).into())
}

/// Deletes every web session and revokes every JWT session of a user.
pub fn end_all_sessions(
    conn: &mut Connection,
    user_id: i64,
    now: UnixTime,
    revoked_by: Option<i64>,
) -> rusqlite::Result<Ended> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ended = end_all_in(&tx, user_id, now, revoked_by)?;
    tx.commit()?;
    Ok(ended)
}

/// Sets a new password and ends all the user's sessions.
pub fn change_password(
    conn: &mut Connection,
    user: &User,
    password: &str,
    now: UnixTime,
) -> anyhow::Result<Ended> {
    users::validate_password(password)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    users::set_password(&tx, user.id, password)?;
    let ended = end_all_in(&tx, user.id, now, None)?;
    tx.commit()?;
    Ok(ended)
}

/// Activates or deactivates a user; deactivation ends all their sessions.
pub fn set_active(
    conn: &mut Connection,
    user: &User,
    active: bool,
    now: UnixTime,
) -> anyhow::Result<Ended> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    users::set_active(&tx, user.id, active)?;
    let ended = if active { Ended::default() } else { end_all_in(&tx, user.id, now, None)? };
    tx.commit()?;
    Ok(ended)
}

fn end_all_in(
    conn: &Connection,
    user_id: i64,
    now: UnixTime,
    revoked_by: Option<i64>,
) -> rusqlite::Result<Ended> {
    Ok(Ended {
        web: web_sessions::delete_for_user(conn, user_id)?,
        jwt: jwt_sessions::revoke_for_user(conn, user_id, now, revoked_by)?,
    })
}
