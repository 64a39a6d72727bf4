//! Where users and sessions meet: the one login sequence (throttle, password
//! check, starting a session, and telling the throttle how it went), and the
//! user changes that must end sessions (a new password, deactivation, an
//! explicit "end every session").
//!
//! Each runs in one immediate transaction, so the user change and the end of
//! the sessions land together or not at all, and the next request (from any
//! process) sees both. Starting a session re-checks the password hash inside
//! its transaction, so a login racing a password change cannot survive it.

use crate::db::{Behavior, Conn};

use crate::clock::UnixTime;
use crate::jwt_sessions;
use crate::throttle::Throttle;
use crate::users::{self, DecoyHash, User, UserError, Verified};
use crate::web_sessions::{self, CookieKey, Lifetime, WebSession};

/// A sign-in attempt, from the form or from GraphQL.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

/// How a login went; each caller renders it its own way.
#[derive(Debug)]
pub enum Login<T> {
    /// Signed in: what `start` made (a cookie's key, a token's row).
    Started(T),
    /// Wrong username or password, or the user is inactive, or the password
    /// changed while the check ran. One answer for all, by SPEC 3.
    Refused,
    /// Too many failures for this username or client address.
    Throttled { retry_after: i64 },
}

/// The one login sequence, in the order that matters for security: the
/// throttle counts the attempt as a failure before the slow hash runs (so
/// parallel guesses cannot all pass), the password is checked (unknown users
/// cost the same time), `start` stores the session in a transaction that
/// re-checks the verified hash, and only then does the throttle forget the
/// attempt. A database error takes the attempt back: only wrong credentials
/// count as failures.
pub fn login<T>(
    conn: &Conn,
    guards: (&Throttle, &DecoyHash),
    credentials: Credentials<'_>,
    client: &Client<'_>,
    now: UnixTime,
    start: impl FnOnce(&Verified) -> crate::db::Result<Option<T>>,
) -> crate::db::Result<Login<T>> {
    let (throttle, decoy) = guards;
    let attempt = match throttle.begin_attempt(conn, credentials.username, client.addr, now)? {
        Ok(attempt) => attempt,
        Err(retry_after) => return Ok(Login::Throttled { retry_after: retry_after.0 }),
    };
    let checked = users::authenticate(conn, decoy, credentials.username, credentials.password)
        .and_then(|verified| match verified {
            Some(verified) => start(&verified),
            None => Ok(None),
        });
    match checked {
        Ok(Some(started)) => {
            // The session exists: a failure to forget the attempt must not
            // turn the answer into an error (the client would get no key
            // for it); the attempt then counts until its window passes.
            if let Err(error) = throttle.succeeded(conn, attempt) {
                eprintln!("error: the login throttle could not record a success: {error}");
            }
            Ok(Login::Started(started))
        }
        // The attempt is dropped: it stays counted as a failure.
        Ok(None) => Ok(Login::Refused),
        Err(error) => {
            // Likely to fail too when the database refused the login; then
            // the attempt counts until its window passes.
            let _ = throttle.abandoned(conn, attempt);
            Err(error)
        }
    }
}

/// How many sessions an action ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ended {
    pub web: usize,
    pub jwt: usize,
}

/// Starts a web session for a verified login, ending `replacing` (the
/// session the browser had) in the same transaction. `None` when the user's
/// password changed or the user was deactivated since the check.
pub fn start_web_session(
    conn: &Conn,
    verified: &Verified,
    replacing: Option<&CookieKey>,
    lifetime: Lifetime,
    now: UnixTime,
    client: &Client<'_>,
) -> crate::db::Result<Option<(String, WebSession)>> {
    // Ending the browser's old session must survive a power loss like any
    // other logout; a login alone need not (SPEC 8).
    let tx = match replacing {
        Some(_) => LoginTransaction::Durable(crate::db::durable_transaction(conn)?),
        None => LoginTransaction::Plain(conn.transaction(Behavior::Immediate)?),
    };
    if !users::still_valid(&tx, verified)? {
        return Ok(None);
    }
    if let Some(cookie_key) = replacing {
        web_sessions::delete(&tx, cookie_key)?;
    }
    let created =
        web_sessions::create(&tx, &verified.user, lifetime, now, client.addr, client.user_agent)?;
    tx.commit()?;
    Ok(Some(created))
}

/// Stores the row of a verified API login. False when the user's password
/// changed or the user was deactivated since the check.
pub fn start_jwt_session(
    conn: &Conn,
    verified: &Verified,
    jti: &str,
    now: UnixTime,
    expires_at: UnixTime,
    client: &Client<'_>,
) -> crate::db::Result<bool> {
    let tx = conn.transaction(Behavior::Immediate)?;
    if !users::still_valid(&tx, verified)? {
        return Ok(false);
    }
    jwt_sessions::create(
        &tx,
        jti,
        verified.user.id,
        now,
        expires_at,
        client.addr,
        client.user_agent,
    )?;
    tx.commit()?;
    Ok(true)
}

/// Where a login came from, as stored with its session.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    pub addr: &'a str,
    pub user_agent: &'a str,
}

/// Finds a user by name or fails with a message naming them.
pub fn require_user(conn: &Conn, username: &str) -> anyhow::Result<User> {
    users::find_by_username(conn, username)?
        .ok_or_else(|| UserError::NoSuchUser(username.to_owned()).into())
}

/// Deletes every web session and revokes every JWT session of a user.
pub fn end_all_sessions(
    conn: &Conn,
    user_id: i64,
    now: UnixTime,
    revoked_by: Option<i64>,
) -> crate::db::Result<Ended> {
    let tx = crate::db::durable_transaction(conn)?;
    let ended = end_all_in(&tx, user_id, now, revoked_by)?;
    tx.commit()?;
    Ok(ended)
}

/// Sets a new password and ends all the user's sessions.
pub fn change_password(
    conn: &Conn,
    user: &User,
    password: &str,
    now: UnixTime,
) -> anyhow::Result<Ended> {
    users::validate_password(password)?;
    let tx = crate::db::durable_transaction(conn)?;
    users::set_password(&tx, user.id, password)?;
    let ended = end_all_in(&tx, user.id, now, None)?;
    tx.commit()?;
    Ok(ended)
}

/// Activates or deactivates a user; deactivation ends all their sessions.
pub fn set_active(conn: &Conn, user: &User, active: bool, now: UnixTime) -> anyhow::Result<Ended> {
    let tx = crate::db::durable_transaction(conn)?;
    users::set_active(&tx, user.id, active)?;
    let ended = if active { Ended::default() } else { end_all_in(&tx, user.id, now, None)? };
    tx.commit()?;
    Ok(ended)
}

/// A login's transaction: durable when it ends an old session.
enum LoginTransaction<'conn> {
    Durable(crate::db::DurableTransaction<'conn>),
    Plain(crate::db::Transaction<'conn>),
}

impl LoginTransaction<'_> {
    fn commit(self) -> crate::db::Result<()> {
        match self {
            LoginTransaction::Durable(tx) => tx.commit(),
            LoginTransaction::Plain(tx) => tx.commit(),
        }
    }
}

impl std::ops::Deref for LoginTransaction<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        match self {
            LoginTransaction::Durable(tx) => tx,
            LoginTransaction::Plain(tx) => tx,
        }
    }
}

fn end_all_in(
    conn: &Conn,
    user_id: i64,
    now: UnixTime,
    revoked_by: Option<i64>,
) -> crate::db::Result<Ended> {
    Ok(Ended {
        web: web_sessions::delete_for_user(conn, user_id)?,
        jwt: jwt_sessions::revoke_for_user(conn, user_id, now, revoked_by)?,
    })
}
