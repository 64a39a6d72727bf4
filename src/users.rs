//! The `users` table: accounts, their roles and their password hashes.
//!
//! Passwords are hashed with Argon2id using OWASP's parameters (19 MiB,
//! 2 iterations, 1 lane) by `password_hash`, which bounds how many hashes
//! run at once and the memory they hold. Checking a password costs the same whether or not
//! the user exists or is active, so that timing does not tell which part of
//! a failed login was wrong. Only this module touches `users`; ending a
//! user's sessions is the caller's job (see `accounts`).

use std::fmt;

use crate::db::{Conn, OptionalExtension, params};
use argon2::password_hash::PasswordHash;

use crate::clock::UnixTime;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A superuser (Django's `is_superuser`).
    Admin,
    /// Staff (Django's `is_staff`).
    Manager,
    User,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Role::Admin),
            "manager" => Some(Role::Manager),
            "user" => Some(Role::User),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::User => "user",
        }
    }

    fn from_flags(is_superuser: bool, is_staff: bool) -> Role {
        if is_superuser {
            Role::Admin
        } else if is_staff {
            Role::Manager
        } else {
            Role::User
        }
    }

    fn flags(self) -> (bool, bool) {
        match self {
            Role::Admin => (true, true),
            Role::Manager => (false, true),
            Role::User => (false, false),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user as the rest of the program sees it (never the hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub role: Role,
    pub is_active: bool,
}

impl User {
    /// Staff and superusers may use the admin pages.
    pub fn is_staff(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Manager)
    }

    /// Superusers (role `admin`) alone may act on superusers' sessions and
    /// change what governs everyone: the cleanup schedule, the access rules.
    pub fn is_superuser(&self) -> bool {
        self.role == Role::Admin
    }

    /// Whether this user may end the sessions of a user with role `target`:
    /// staff manage users and managers, superusers everyone.
    pub fn may_end_sessions_of(&self, target: Role) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Manager => target != Role::Admin,
            Role::User => false,
        }
    }
}

/// Why a new user or password was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum UserError {
    InvalidUsername(String),
    UsernameTaken(String),
    InvalidEmail(String),
    InvalidPassword(&'static str),
    NoSuchUser(String),
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserError::InvalidUsername(name) => {
                write!(f, "invalid username `{name}`: use 1 to 150 letters, digits and `@.+-_`")
            }
            UserError::UsernameTaken(name) => write!(
                f,
                "a user named `{name}` already exists (usernames are unique regardless of case)"
            ),
            UserError::InvalidEmail(email) => write!(f, "invalid email `{email}`"),
            UserError::InvalidPassword(reason) => write!(f, "invalid password: {reason}"),
            UserError::NoSuchUser(name) => write!(f, "no user named `{name}`"),
        }
    }
}

impl std::error::Error for UserError {}

/// The longest password accepted; hashing is the expensive part, and nobody
/// types more than this.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Checks a username the way Django does: 1 to 150 of `[A-Za-z0-9@.+-_]`.
pub fn validate_username(username: &str) -> Result<(), UserError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "@.+-_".contains(c);
    if username.is_empty() || username.len() > 150 || !username.chars().all(allowed) {
        return Err(UserError::InvalidUsername(username.chars().take(160).collect()));
    }
    Ok(())
}

pub fn validate_password(password: &str) -> Result<(), UserError> {
    if password.is_empty() {
        return Err(UserError::InvalidPassword("it is empty"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(UserError::InvalidPassword("it is longer than 1024 bytes"));
    }
    Ok(())
}

fn validate_email(email: &str) -> Result<(), UserError> {
    let plausible = email.is_empty()
        || (email.len() <= 254
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !email.contains(char::is_whitespace)
            }));
    if plausible { Ok(()) } else { Err(UserError::InvalidEmail(email.to_owned())) }
}

/// Hashes a password into a PHC string.
pub fn hash_password(password: &str) -> String {
    crate::password_hash::hash(password)
}

fn verify_password(password: &str, phc: &str) -> bool {
    crate::password_hash::verify(password, phc)
}

/// A hash to check against when the user does not exist, so that a failed
/// login takes the same time either way. Made once at start-up.
#[derive(Debug, Clone)]
pub struct DecoyHash(String);

impl DecoyHash {
    pub fn new() -> DecoyHash {
        DecoyHash(hash_password(&crate::random::password()))
    }
}

impl Default for DecoyHash {
    fn default() -> DecoyHash {
        DecoyHash::new()
    }
}

/// A user whose password matched the hash stored at the time of the check.
/// Starting a session with it re-checks, in the same transaction as the
/// insert, that the hash has not changed since (see [`still_valid`]), so a
/// login that overlaps a password change cannot outlive it.
#[derive(Debug, Clone)]
pub struct Verified {
    pub user: User,
    password_hash: String,
}

/// Checks a username (in any case: see [`find_by_username`]) and password;
/// `Some` only for an active user whose password matches. Always runs one
/// Argon2 verification.
pub fn authenticate(
    conn: &Conn,
    decoy: &DecoyHash,
    username: &str,
    password: &str,
) -> crate::db::Result<Option<Verified>> {
    if password.len() > MAX_PASSWORD_BYTES {
        // Still spend the time of one verification.
        verify_password("", &decoy.0);
        return Ok(None);
    }
    let found = conn
        .prepare_cached(conn.by_engine(
            "SELECT id, username, email, is_superuser, is_staff, is_active, password_hash
             FROM users WHERE username = $1 COLLATE NOCASE",
            "SELECT id, username, email, is_superuser, is_staff, is_active, password_hash
             FROM users WHERE lower(username) = lower($1)",
        ))?
        .query_row(params![username], |row| Ok((user_from_row(row)?, row.get::<_, String>(6)?)))
        .optional()?;
    match found {
        Some((user, phc)) => {
            let matches = verify_password(password, &phc);
            Ok((matches && user.is_active).then_some(Verified { user, password_hash: phc }))
        }
        None => {
            verify_password(password, &decoy.0);
            Ok(None)
        }
    }
}

/// True when the user is still active with the same password hash as when
/// they were verified.
pub fn still_valid(conn: &Conn, verified: &Verified) -> crate::db::Result<bool> {
    conn.prepare_cached(
        "SELECT EXISTS (SELECT 1 FROM users WHERE id = $1 AND password_hash = $2 AND is_active <> 0)",
    )?
    .query_row(params![verified.user.id, verified.password_hash], |row| row.get(0))
}

/// Creates a user. The password is hashed here.
pub fn create(
    conn: &Conn,
    username: &str,
    email: &str,
    password: &str,
    role: Role,
    now: UnixTime,
) -> Result<User, anyhow::Error> {
    // Refuse a bad username or email before paying for the hash.
    validate_username(username)?;
    validate_email(email)?;
    validate_password(password)?;
    create_with_password_hash(conn, username, email, &hash_password(password), role, now)
}

/// Creates a user with an already computed Argon2 hash (a PHC string from
/// [`hash_password`]), so that tools seeding many users (the benchmark) pay
/// for one hash, not one per user. The username and email are checked as
/// in [`create`].
pub fn create_with_password_hash(
    conn: &Conn,
    username: &str,
    email: &str,
    password_hash: &str,
    role: Role,
    now: UnixTime,
) -> Result<User, anyhow::Error> {
    validate_username(username)?;
    validate_email(email)?;
    PasswordHash::new(password_hash)
        .map_err(|error| anyhow::anyhow!("invalid password hash: {error}"))?;
    let (is_superuser, is_staff) = role.flags();
    let inserted: Option<i64> = conn
        .prepare_cached(
            "INSERT INTO users (username, email, password_hash, is_superuser, is_staff, is_active, date_joined)
             VALUES ($1, $2, $3, $4, $5, 1, $6) ON CONFLICT DO NOTHING RETURNING id",
        )?
        .query_row(params![username, email, password_hash, is_superuser, is_staff, now], |row| {
            row.get(0)
        })
        .optional()?;
    let Some(id) = inserted else {
        // Named as stored: `ALICE` is refused because `alice` exists.
        let taken = find_by_username(conn, username)?.map_or(username.to_owned(), |u| u.username);
        return Err(UserError::UsernameTaken(taken).into());
    };
    Ok(User { id, username: username.to_owned(), email: email.to_owned(), role, is_active: true })
}

/// The usernames that differ only in case, in groups (each sorted), for the
/// migration that makes them unique regardless of case. Usernames are ASCII
/// (see [`validate_username`]), which is what `COLLATE NOCASE` folds.
pub fn case_duplicates(conn: &Conn) -> crate::db::Result<Vec<Vec<String>>> {
    let mut statement = conn.prepare_cached(conn.by_engine(
        "SELECT a.username, b.username FROM users a JOIN users b
           ON a.username = b.username COLLATE NOCASE AND a.username < b.username
         ORDER BY a.username COLLATE NOCASE, a.username, b.username",
        "SELECT a.username, b.username FROM users a JOIN users b
           ON lower(a.username) = lower(b.username) AND a.username < b.username
         ORDER BY lower(a.username), a.username, b.username",
    ))?;
    let pairs = statement.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get(1)?)))?;
    let mut groups: Vec<Vec<String>> = Vec::new();
    for pair in pairs {
        let (first, second): (String, String) = pair?;
        match groups.last_mut() {
            Some(group) if group[0].eq_ignore_ascii_case(&first) => {
                for name in [first, second] {
                    if !group.contains(&name) {
                        group.push(name);
                    }
                }
                group.sort();
            }
            _ => groups.push(vec![first, second]),
        }
    }
    Ok(groups)
}

/// Finds a user by name, in any case: usernames are unique regardless of
/// case, so `ALICE` finds `alice`.
pub fn find_by_username(conn: &Conn, username: &str) -> crate::db::Result<Option<User>> {
    conn.prepare_cached(conn.by_engine(
        "SELECT id, username, email, is_superuser, is_staff, is_active FROM users
         WHERE username = $1 COLLATE NOCASE",
        "SELECT id, username, email, is_superuser, is_staff, is_active FROM users
         WHERE lower(username) = lower($1)",
    ))?
    .query_row(params![username], user_from_row)
    .optional()
}

/// Finds a user by id.
pub fn find_by_id(conn: &Conn, id: i64) -> crate::db::Result<Option<User>> {
    conn.prepare_cached(
        "SELECT id, username, email, is_superuser, is_staff, is_active FROM users WHERE id = $1",
    )?
    .query_row(params![id], user_from_row)
    .optional()
}

/// True when there is no user at all (a new database).
pub fn none_exist(conn: &Conn) -> crate::db::Result<bool> {
    conn.prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM users)")?.query_row([], |row| row.get(0))
}

/// Replaces a user's password hash. Returns false when there is no such user.
pub fn set_password(conn: &Conn, user_id: i64, password: &str) -> anyhow::Result<bool> {
    validate_password(password)?;
    let password_hash = hash_password(password);
    let changed = conn
        .prepare_cached("UPDATE users SET password_hash = $1 WHERE id = $2")?
        .execute(params![password_hash, user_id])?;
    Ok(changed == 1)
}

/// Marks a user active or inactive. Returns false when there is no such user.
pub fn set_active(conn: &Conn, user_id: i64, active: bool) -> crate::db::Result<bool> {
    let changed = conn
        .prepare_cached("UPDATE users SET is_active = $1 WHERE id = $2")?
        .execute(params![active, user_id])?;
    Ok(changed == 1)
}

fn user_from_row(row: &crate::db::Row<'_>) -> crate::db::Result<User> {
    user_from_columns(row, 0)
}

/// Builds a `User` from six columns starting at `first`: `users.id,
/// users.username, users.email, users.is_superuser, users.is_staff,
/// users.is_active`, the order other modules select them in when they join
/// `users`.
pub fn user_from_columns(row: &crate::db::Row<'_>, first: usize) -> crate::db::Result<User> {
    Ok(User {
        id: row.get(first)?,
        username: row.get(first + 1)?,
        email: row.get(first + 2)?,
        role: Role::from_flags(row.get(first + 3)?, row.get(first + 4)?),
        is_active: row.get(first + 5)?,
    })
}

// ---------------------------------------------------------------------------
// Moving an installation (`sessiond export` / `sessiond import`): every
// column of every row, as it is stored, ids included.

/// One `users` row as an export carries it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub is_superuser: bool,
    pub is_staff: bool,
    pub is_active: bool,
    pub date_joined: i64,
}

/// Every user, by id.
pub fn export_rows(conn: &Conn) -> crate::db::Result<Vec<UserRow>> {
    let mut statement = conn.prepare(
        "SELECT id, username, email, password_hash, is_superuser, is_staff, is_active, date_joined
         FROM users ORDER BY id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(UserRow {
            id: row.get(0)?,
            username: row.get(1)?,
            email: row.get(2)?,
            password_hash: row.get(3)?,
            is_superuser: row.get(4)?,
            is_staff: row.get(5)?,
            is_active: row.get(6)?,
            date_joined: row.get(7)?,
        })
    })?;
    rows.collect()
}

impl UserRow {
    /// What the table would refuse or the program could not use: a bad
    /// username or email, a hash that is not a PHC string.
    pub fn check(&self) -> Result<(), String> {
        validate_username(&self.username).map_err(|error| error.to_string())?;
        validate_email(&self.email).map_err(|error| error.to_string())?;
        PasswordHash::new(&self.password_hash)
            .map_err(|_| String::from("`password_hash` is not a PHC string"))?;
        Ok(())
    }
}

/// Inserts exported users (each [`UserRow::check`]ed) with their ids and
/// hashes; the caller's transaction makes a failure change nothing.
pub fn import_rows(conn: &Conn, rows: &[UserRow]) -> anyhow::Result<()> {
    let mut statement = conn.prepare(
        "INSERT INTO users (id, username, email, password_hash, is_superuser, is_staff, is_active, date_joined)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )?;
    for (index, row) in rows.iter().enumerate() {
        let refuse = |what: String| anyhow::anyhow!("`users[{index}]` (id {}): {what}", row.id);
        row.check().map_err(refuse)?;
        statement
            .execute(params![
                row.id,
                row.username,
                row.email,
                row.password_hash,
                row.is_superuser,
                row.is_staff,
                row.is_active,
                row.date_joined
            ])
            .map_err(|error| refuse(error.to_string()))?;
    }
    if conn.engine() == crate::db::Engine::Postgres {
        // The rows came with their ids: the identity must go on after them.
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('users', 'id'), max(id)) FROM users",
            [],
        )?;
    }
    Ok(())
}
