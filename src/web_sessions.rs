//! The `web_sessions` table: browser sessions, found by the row id the
//! cookie carries and checked against the hash of its key.
//!
//! A key is 32 bytes from the OS CSPRNG, sent to the browser as 64 hex
//! characters after the session's row id and a dot (`1234.9f3a…`); the
//! table keeps only the key's SHA-256, so a copy of the database cannot be
//! replayed as a cookie. The row id finds the row through the table's own
//! b-tree, so no index on the random hashes is kept: every delete (a
//! logout, the cleanup's batches) would rewrite a page of it at random. A
//! cookie of 64 hex characters alone (issued before migration 8, or of an
//! imported row) is found through the small partial index of the rows
//! marked `found_by_hash`. A row is created only by a successful
//! login; requests may slide its expiry but never create or revive one. Only
//! this module touches `web_sessions`; it takes `now` from its callers.

use crate::db::{Conn, OptionalExtension, params};
use sha2::{Digest, Sha256};

use crate::clock::UnixTime;
use crate::listing::{ListQuery, Status};
use crate::users::{Role, User, user_from_columns};

/// The `SELECT ... FROM` of every statement that reads sessions with their
/// users, in the column order `session_with_user` maps: one literal, joined
/// to each statement's own `WHERE` by `concat!` at compile time.
macro_rules! session_with_user_select {
    () => {
        "SELECT web_sessions.id, web_sessions.key_hash, web_sessions.created,
                web_sessions.last_activity, web_sessions.expire_date, web_sessions.client_addr,
                web_sessions.user_agent,
                users.id, users.username, users.email, users.is_superuser, users.is_staff,
                users.is_active
         FROM web_sessions JOIN users ON users.id = web_sessions.user_id"
    };
}

/// Length of a key as the cookie carries it, after the row id and its dot.
pub const KEY_TEXT_LEN: usize = 64;

/// The longest row id a cookie may carry: `i64::MAX` has 19 digits.
const ROW_ID_TEXT_MAX: usize = 19;

/// The session a cookie names: its row, and the hash its row must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookieKey {
    /// `None` for a cookie of the key alone (issued before migration 8, or
    /// of an imported row): found by its hash among the rows marked
    /// `found_by_hash`.
    pub row_id: Option<i64>,
    pub key_hash: KeyHash,
}

impl CookieKey {
    /// The cookie key of a stored session.
    pub fn of(session: &WebSession) -> CookieKey {
        CookieKey { row_id: Some(session.row_id), key_hash: session.key_hash }
    }
}

/// The SHA-256 of a session key; the only form of the key that is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    /// The public id of a web session: the hash in hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A short fingerprint for lists: the first 12 hex characters.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.0[..6])
    }

    pub fn from_hex(text: &str) -> Option<KeyHash> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(KeyHash(bytes))
    }
}

/// Makes a new key: the text for the cookie (without its row id) and its
/// hash for the table.
pub fn new_key() -> (String, KeyHash) {
    let key = crate::random::secret_bytes::<32>();
    (hex::encode(key), hash_key_bytes(&key))
}

/// Reads a cookie value, `ROW.KEY` or `KEY` alone, or `None` when it cannot
/// be one this server issued (a row id with a sign or a leading zero, a key
/// of the wrong length or characters).
pub fn parse_cookie_value(value: &str) -> Option<CookieKey> {
    let (row_text, key_text) = match value.split_once('.') {
        Some((row_text, key_text)) => (Some(row_text), key_text),
        None => (None, value),
    };
    let row_id = match row_text {
        None => None,
        Some(text) => Some(parse_row_id(text)?),
    };
    Some(CookieKey { row_id, key_hash: hash_key_text(key_text)? })
}

/// The hash of the key a cookie value carries, whichever its form; `None`
/// as for [`parse_cookie_value`].
pub fn hash_cookie_value(value: &str) -> Option<KeyHash> {
    parse_cookie_value(value).map(|cookie_key| cookie_key.key_hash)
}

/// A row id as [`cookie_value`] writes it: digits, no leading zero.
fn parse_row_id(text: &str) -> Option<i64> {
    let canonical = !text.is_empty()
        && text.len() <= ROW_ID_TEXT_MAX
        && text.bytes().all(|b| b.is_ascii_digit())
        && !text.starts_with('0');
    if !canonical {
        return None;
    }
    text.parse().ok()
}

/// The cookie value of a new session: its row id, a dot, its key.
fn cookie_value(row_id: i64, key: &str) -> String {
    format!("{row_id}.{key}")
}

fn hash_key_text(value: &str) -> Option<KeyHash> {
    if value.len() != KEY_TEXT_LEN {
        return None;
    }
    let mut key = [0u8; 32];
    hex::decode_to_slice(value, &mut key).ok()?;
    // Only the lowercase spelling is ever issued.
    if value.bytes().any(|b| b.is_ascii_uppercase()) {
        return None;
    }
    Some(hash_key_bytes(&key))
}

fn hash_key_bytes(key: &[u8; 32]) -> KeyHash {
    KeyHash(Sha256::digest(key).into())
}

/// How long sessions live, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Lifetime {
    /// Seconds after the last save (DJANGO_SESSION_COOKIE_AGE).
    pub idle: i64,
    /// Seconds after login, whatever the activity; 0 = no cap.
    pub absolute: i64,
}

impl Lifetime {
    /// The exact expiry of a session saved at `now` that began at `created`.
    pub fn expiry_after_save(&self, created: UnixTime, now: UnixTime) -> UnixTime {
        let sliding = now + self.idle;
        if self.absolute > 0 { sliding.min(created + self.absolute) } else { sliding }
    }

    /// How far the stored expiry may lag the exact one (1% of the idle age,
    /// at most 60 s), so that most requests need no write.
    pub fn allowed_lag(&self) -> i64 {
        (self.idle / 100).min(60)
    }
}

/// One stored web session with its user.
#[derive(Debug, Clone)]
pub struct WebSession {
    pub row_id: i64,
    pub key_hash: KeyHash,
    pub user: User,
    pub created: UnixTime,
    pub last_activity: UnixTime,
    pub expire_date: UnixTime,
    pub client_addr: String,
    pub user_agent: String,
}

/// The longest user agent kept (for both kinds of session); the rest is cut.
pub const MAX_USER_AGENT: usize = 512;

/// Stores a new session for `user` and returns the value for its cookie.
pub fn create(
    conn: &Conn,
    user: &User,
    lifetime: Lifetime,
    now: UnixTime,
    client_addr: &str,
    user_agent: &str,
) -> crate::db::Result<(String, WebSession)> {
    let (key, key_hash) = new_key();
    let expire_date = lifetime.expiry_after_save(now, now);
    let user_agent = truncate(user_agent, MAX_USER_AGENT);
    let row_id = conn
        .prepare_cached(
            "INSERT INTO web_sessions (key_hash, user_id, created, last_activity, expire_date, client_addr, user_agent)
             VALUES ($1, $2, $3, $3, $4, $5, $6) RETURNING id",
        )?
        .query_row(
            params![&key_hash.0[..], user.id, now, expire_date, client_addr, user_agent],
            |row| row.get(0),
        )?;
    let cookie = cookie_value(row_id, &key);
    let session = WebSession {
        row_id,
        key_hash,
        user: user.clone(),
        created: now,
        last_activity: now,
        expire_date,
        client_addr: client_addr.to_owned(),
        user_agent: user_agent.to_owned(),
    };
    Ok((cookie, session))
}

/// The session a cookie names when it exists, has not expired and belongs
/// to an active user.
pub fn find_live(
    conn: &Conn,
    cookie_key: &CookieKey,
    now: UnixTime,
) -> crate::db::Result<Option<WebSession>> {
    // `+expire_date`: the expiry is a filter, never the index to search.
    // When most stored rows have expired (before a cleanup), PostgreSQL's
    // statistics make "expiry after now" look like one row, and it walked
    // the expiry index through every live session instead of looking the key
    // up (SQLite keeps to the key either way).
    let hash = &cookie_key.key_hash.0[..];
    match cookie_key.row_id {
        Some(row_id) => conn
            .prepare_cached(concat!(
                session_with_user_select!(),
                " WHERE web_sessions.id = $1 AND web_sessions.key_hash = $2
                   AND +web_sessions.expire_date > $3 AND users.is_active <> 0"
            ))?
            .query_row(params![row_id, hash, now], session_with_user)
            .optional(),
        None => conn
            .prepare_cached(concat!(
                session_with_user_select!(),
                " WHERE web_sessions.key_hash = $1 AND web_sessions.found_by_hash = 1
                   AND +web_sessions.expire_date > $2 AND users.is_active <> 0"
            ))?
            .query_row(params![hash, now], session_with_user)
            .optional(),
    }
}

/// Records a save: sets the expiry and last activity of a session that still
/// exists. Returns false when the row is gone (a logout won the race): the
/// row is never brought back.
pub fn save(
    conn: &Conn,
    row_id: i64,
    key_hash: &KeyHash,
    expire_date: UnixTime,
    now: UnixTime,
) -> crate::db::Result<bool> {
    // The key hash too: a row id can be given to a new session once the
    // session read earlier is gone.
    let changed = conn
        .prepare_cached(
            "UPDATE web_sessions SET expire_date = $1, last_activity = $2
             WHERE id = $3 AND key_hash = $4",
        )?
        .execute(params![expire_date, now, row_id, &key_hash.0[..]])?;
    Ok(changed == 1)
}

/// The row ids of the sessions whose public ids (key hashes) these are,
/// with their hashes; a hash no row holds is left out. For the admin's and
/// the `sessions` command's deletes, which name sessions by hash: no index
/// holds every hash, so this reads the whole table once (about 0.1 s for
/// 1.1 M rows), before the caller's write transaction, whatever the number
/// of hashes.
pub fn find_by_hashes(conn: &Conn, hashes: &[KeyHash]) -> crate::db::Result<Vec<CookieKey>> {
    if hashes.is_empty() {
        return Ok(Vec::new());
    }
    let hex: Vec<String> = hashes.iter().map(KeyHash::to_hex).collect();
    let hex = serde_json::to_string(&hex).expect("strings serialize");
    let sql = conn.by_engine(
        "SELECT id, key_hash FROM web_sessions
         WHERE key_hash IN (SELECT unhex(value) FROM json_each($1))",
        "SELECT id, key_hash FROM web_sessions
         WHERE key_hash IN (SELECT decode(value, 'hex') FROM json_array_elements_text($1::json))",
    );
    conn.prepare(sql)?
        .query_map(params![hex], |row| {
            Ok(CookieKey { row_id: Some(row.get(0)?), key_hash: key_hash_from_column(row, 1)? })
        })?
        .collect()
}

/// The role of the user whose session this is, if the session exists.
pub fn owner_role(conn: &Conn, cookie_key: &CookieKey) -> crate::db::Result<Option<Role>> {
    let hash = &cookie_key.key_hash.0[..];
    let user = match cookie_key.row_id {
        Some(row_id) => conn
            .prepare_cached(
                "SELECT users.id, users.username, users.email, users.is_superuser, users.is_staff, users.is_active
                 FROM web_sessions JOIN users ON users.id = web_sessions.user_id
                 WHERE web_sessions.id = $1 AND web_sessions.key_hash = $2",
            )?
            .query_row(params![row_id, hash], |row| user_from_columns(row, 0)),
        None => conn
            .prepare_cached(
                "SELECT users.id, users.username, users.email, users.is_superuser, users.is_staff, users.is_active
                 FROM web_sessions JOIN users ON users.id = web_sessions.user_id
                 WHERE web_sessions.key_hash = $1 AND web_sessions.found_by_hash = 1",
            )?
            .query_row(params![hash], |row| user_from_columns(row, 0)),
    };
    user.optional().map(|user| user.map(|user| user.role))
}

/// Deletes the session a cookie key names. Returns whether a row went.
pub fn delete(conn: &Conn, cookie_key: &CookieKey) -> crate::db::Result<bool> {
    crate::db::ending_access(conn, "web_sessions::delete", |conn| {
        let hash = &cookie_key.key_hash.0[..];
        let deleted = match cookie_key.row_id {
            Some(row_id) => conn
                .prepare_cached("DELETE FROM web_sessions WHERE id = $1 AND key_hash = $2")?
                .execute(params![row_id, hash])?,
            // `found_by_hash = 1` as a literal: SQLite uses a partial index
            // only for a term its own condition matches word for word.
            None => conn
                .prepare_cached(
                    "DELETE FROM web_sessions WHERE key_hash = $1 AND found_by_hash = 1",
                )?
                .execute(params![hash])?,
        };
        Ok(deleted == 1)
    })
}

/// Deletes every session of a user; returns how many went.
pub fn delete_for_user(conn: &Conn, user_id: i64) -> crate::db::Result<usize> {
    crate::db::ending_access(conn, "web_sessions::delete_for_user", |conn| {
        conn.prepare_cached("DELETE FROM web_sessions WHERE user_id = $1")?
            .execute(params![user_id])
    })
}

/// Deletes every session of a user but one; returns how many went.
pub fn delete_for_user_except(
    conn: &Conn,
    user_id: i64,
    keep: &KeyHash,
) -> crate::db::Result<usize> {
    crate::db::ending_access(conn, "web_sessions::delete_for_user_except", |conn| {
        conn.prepare_cached("DELETE FROM web_sessions WHERE user_id = $1 AND key_hash <> $2")?
            .execute(params![user_id, &keep.0[..]])
    })
}

/// A user's sessions, live and expired, newest first.
pub fn list_for_user(conn: &Conn, user: &User) -> crate::db::Result<Vec<WebSession>> {
    let mut statement = conn.prepare_cached(concat!(
        session_with_user_select!(),
        " WHERE web_sessions.user_id = $1 ORDER BY web_sessions.id DESC LIMIT 500"
    ))?;
    let rows = statement.query_map(params![user.id], session_with_user)?;
    rows.collect()
}

/// SQLite: up to `limit` sessions whose expiry has passed, of users from
/// `from_user` on, in order of user: their row ids and user ids. The cleanup
/// reads a batch with this outside its write transaction and then deletes it
/// with [`delete_expired_rows`], starting the next batch at the largest user
/// id of this one.
///
/// In order of user, because deleting a row rewrites a page of each index:
/// rows of consecutive users share the pages of the two indexes that lead
/// with `user_id`, where rows in order of expiry are spread over all of
/// them. On the database of `cargo bench --bench http` (100,000 expired
/// beside 1,000,000 live), in batches of 1,000 with a checkpoint after
/// each, the sqlite3 shell took 7.8 s in order of expiry and 3.5 s in order
/// of user, when a key-hash index was still touched at random (until
/// migration 8).
pub fn expired_batch(
    conn: &Conn,
    now: UnixTime,
    from_user: i64,
    limit: usize,
) -> crate::db::Result<Vec<(i64, i64)>> {
    conn.prepare_cached(
        "SELECT id, user_id FROM web_sessions INDEXED BY web_sessions_user_expiry
         WHERE expire_date <= $1 AND user_id >= $2 ORDER BY user_id LIMIT $3",
    )?
    .query_map(params![now, from_user, limit as i64], |row| Ok((row.get(0)?, row.get(1)?)))?
    .collect()
}

/// Deletes the sessions of `row_ids` that have still expired by `now`;
/// returns how many went. For the cleanup, inside its transaction.
pub fn delete_expired_rows(
    conn: &Conn,
    now: UnixTime,
    row_ids: &[i64],
) -> crate::db::Result<usize> {
    let mut statement =
        conn.prepare_cached("DELETE FROM web_sessions WHERE id = $1 AND expire_date <= $2")?;
    let mut deleted = 0;
    for row_id in row_ids {
        deleted += statement.execute(params![row_id, now])?;
    }
    Ok(deleted)
}

/// PostgreSQL: how many pages the table holds now, the range that
/// [`delete_expired_in_pages`] goes through.
pub fn pages(conn: &Conn) -> crate::db::Result<i64> {
    conn.prepare_cached(
        "SELECT pg_relation_size('web_sessions') / current_setting('block_size')::bigint",
    )?
    .query_row([], |row| row.get(0))
}

/// PostgreSQL: deletes the sessions stored in pages `from` up to (not
/// including) `to` whose expiry has passed; returns how many. The
/// cleanup calls this page range after page range, each its own short
/// transaction (on SQLite it reads [`expired_batch`] instead).
pub fn delete_expired_in_pages(
    conn: &Conn,
    now: UnixTime,
    from: i64,
    to: i64,
) -> crate::db::Result<usize> {
    // A range of row addresses is a TID range scan: each batch reads its
    // own pages once, whatever the planner's statistics say. The form it
    // replaced (`ctid = ANY (ARRAY (SELECT ctid ... LIMIT n))`) scanned from
    // the table's start every batch, and right after a bulk insert, with
    // statistics that still said "empty", walked a whole index per batch:
    // one batch outlasted the 10 s statement timeout under load.
    conn.prepare_cached(
        "DELETE FROM web_sessions
         WHERE ctid >= ('(' || $1::bigint || ',0)')::tid
           AND ctid < ('(' || $2::bigint || ',0)')::tid
           AND expire_date <= $3",
    )?
    .execute(params![from, to, now])
}

/// How many sessions have expired by `now`, and how many have not.
pub fn count_expired_and_live(conn: &Conn, now: UnixTime) -> crate::db::Result<(usize, usize)> {
    let (expired, all) = count_expired_and_all(conn, now)?;
    Ok((expired as usize, (all - expired) as usize))
}

/// Deletes every expired session at once, for when most of the table has
/// expired: the live rows are copied aside, the table is emptied, and they
/// are copied back with their ids. Emptying frees the table's and its
/// indexes' pages without visiting each row, where deleting row by row would
/// rewrite every page of the indexes on random keys. Returns how many rows
/// were deleted.
///
/// The caller runs this inside a transaction, on a connection with foreign
/// keys off: SQLite empties a table at once only when no foreign key needs
/// checking, and rows that only leave and come back break none.
pub fn delete_expired_keeping_live(conn: &Conn, now: UnixTime) -> crate::db::Result<usize> {
    conn.execute(
        "CREATE TEMP TABLE cleanup_live_web_sessions AS
         SELECT * FROM web_sessions WHERE expire_date > $1 ORDER BY id",
        params![now],
    )?;
    let all = conn.execute("DELETE FROM web_sessions", [])?;
    let live =
        conn.execute("INSERT INTO web_sessions SELECT * FROM temp.cleanup_live_web_sessions", [])?;
    conn.execute("DROP TABLE temp.cleanup_live_web_sessions", [])?;
    Ok(all - live)
}

/// Reads a 32-byte key hash from a BLOB column.
pub fn key_hash_from_column(row: &crate::db::Row<'_>, index: usize) -> crate::db::Result<KeyHash> {
    let bytes: Vec<u8> = row.get(index)?;
    let array: [u8; 32] = bytes.try_into().map_err(|_| {
        crate::db::Error::Conversion(format!("column {index}: a key hash is 32 bytes"))
    })?;
    Ok(KeyHash(array))
}

/// Cuts text to at most `max` bytes on a character boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_lowercase_keys_hash() {
        let (key, hash) = new_key();
        assert_eq!(hash_cookie_value(&key), Some(hash));
        assert_eq!(hash_cookie_value(&key.to_uppercase()), None);
        assert_eq!(hash_cookie_value(&key[1..]), None);
        assert_eq!(hash_cookie_value(&format!("{key}0")), None);
        assert_eq!(hash_cookie_value(&"z".repeat(64)), None);
    }

    #[test]
    fn a_cookie_carries_its_row_id_before_the_key_or_the_key_alone() {
        let (key, hash) = new_key();
        let with_row = CookieKey { row_id: Some(1234), key_hash: hash };
        assert_eq!(parse_cookie_value(&cookie_value(1234, &key)), Some(with_row));
        assert_eq!(parse_cookie_value(&key), Some(CookieKey { row_id: None, key_hash: hash }));
        let max = i64::MAX;
        assert_eq!(parse_cookie_value(&format!("{max}.{key}")).unwrap().row_id, Some(max));
        for refused in ["", "0", "01234", "+1234", "-1", "12a", "9223372036854775808", "1.2"] {
            assert_eq!(parse_cookie_value(&format!("{refused}.{key}")), None, "{refused}");
        }
        assert_eq!(parse_cookie_value(&format!("1234.{}", key.to_uppercase())), None);
        assert_eq!(parse_cookie_value(&format!("1234.{}", &key[1..])), None);
        assert_eq!(parse_cookie_value(&format!("1234.{key}.")), None);
    }

    #[test]
    fn expiry_is_capped_by_the_absolute_age() {
        let lifetime = Lifetime { idle: 100, absolute: 1000 };
        assert_eq!(lifetime.expiry_after_save(0, 50), 150);
        assert_eq!(lifetime.expiry_after_save(0, 950), 1000);
        let uncapped = Lifetime { idle: 100, absolute: 0 };
        assert_eq!(uncapped.expiry_after_save(0, 950), 1050);
        assert_eq!(Lifetime { idle: 7200, absolute: 0 }.allowed_lag(), 60);
        assert_eq!(Lifetime { idle: 300, absolute: 0 }.allowed_lag(), 3);
    }
}

// ---------------------------------------------------------------------------
// Listing, counting and ending sessions for the admin pages, the user's own
// sessions page and the `sessions` commands.

/// Every session the database knows, expired ones included, newest first,
/// filtered and paged by `query`. Web sessions are never revoked, so that
/// filter finds nothing.
///
/// Paging is by keyset on the row id, never OFFSET. The plans are chosen in
/// the SQL: without a status filter the rowid (or `web_sessions_user`) index
/// gives the order directly; `expired` walks the covering
/// `web_sessions_user_expiry` over expired rows only (one user's range, or
/// each user's), which the cleanup keeps few, and keeps the top rows;
/// `active` walks the rows newest first (`+expire_date` keeps the planner
/// off the expiry index), since live sessions are the newest ones.
pub fn list(conn: &Conn, query: &ListQuery, now: UnixTime) -> crate::db::Result<Vec<WebSession>> {
    if query.status == Some(Status::Revoked) {
        return Ok(Vec::new());
    }
    let before = query.before.unwrap_or(i64::MAX);
    let limit = query.limit as i64;
    let ids = match (query.status, query.user_id) {
        (None, None) => ids(
            conn,
            "SELECT id FROM web_sessions WHERE id < $1 ORDER BY id DESC LIMIT $2",
            params![before, limit],
        )?,
        (None, Some(user_id)) => ids(
            conn,
            "SELECT id FROM web_sessions WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            params![user_id, before, limit],
        )?,
        (Some(Status::Expired), None) => list_expired(conn, before, limit, now)?,
        (Some(Status::Expired), Some(user_id)) => ids(
            conn,
            conn.by_engine(
                "SELECT id FROM web_sessions INDEXED BY web_sessions_user_expiry
                 WHERE user_id = $1 AND expire_date <= $2 AND id < $3 ORDER BY id DESC LIMIT $4",
                "SELECT id FROM web_sessions
                 WHERE user_id = $1 AND expire_date <= $2 AND id < $3 ORDER BY id DESC LIMIT $4",
            ),
            params![user_id, now, before, limit],
        )?,
        // `+expire_date` (on both engines) keeps the planner off the expiry
        // index.
        (_, None) => ids(
            conn,
            "SELECT id FROM web_sessions
             WHERE +expire_date > $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            params![now, before, limit],
        )?,
        (_, Some(user_id)) => ids(
            conn,
            "SELECT id FROM web_sessions
             WHERE user_id = $1 AND +expire_date > $2 AND id < $3 ORDER BY id DESC LIMIT $4",
            params![user_id, now, before, limit],
        )?,
    };
    find_all(conn, ids)
}

/// The first column of every row, as ids.
fn ids(conn: &Conn, sql: &str, params: impl crate::db::Params) -> crate::db::Result<Vec<i64>> {
    conn.prepare_cached(sql)?.query_map(params, |row| row.get(0))?.collect()
}

/// The ids of the newest expired sessions below `before`. There is no index
/// on the expiry alone (each would cost every slide an entry moved), so
/// the expired rows are read as one range of `web_sessions_user_expiry` per
/// user ([`count_expired_and_all`] counts them so): a seek per user, then
/// only expired rows, which the cleanup keeps few, sorted by id for the
/// page.
fn list_expired(
    conn: &Conn,
    before: i64,
    limit: i64,
    now: UnixTime,
) -> crate::db::Result<Vec<i64>> {
    ids(
        conn,
        conn.by_engine(
            "SELECT web_sessions.id FROM users
             CROSS JOIN web_sessions INDEXED BY web_sessions_user_expiry
                 ON web_sessions.user_id = users.id
             WHERE web_sessions.expire_date <= $1 AND web_sessions.id < $2
             ORDER BY web_sessions.id DESC LIMIT $3",
            "SELECT web_sessions.id FROM users
             JOIN web_sessions ON web_sessions.user_id = users.id
             WHERE web_sessions.expire_date <= $1 AND web_sessions.id < $2
             ORDER BY web_sessions.id DESC LIMIT $3",
        ),
        params![now, before, limit],
    )
}

/// How many sessions have expired by `now`, read as [`list_expired`] reads
/// them (a range of `web_sessions_user_expiry` per user; `CROSS JOIN`
/// makes `users` the outer loop on SQLite), and how many there are: one
/// statement, so both counts come from one snapshot.
fn count_expired_and_all(conn: &Conn, now: UnixTime) -> crate::db::Result<(i64, i64)> {
    conn.prepare_cached(conn.by_engine(
        "SELECT (SELECT count(*) FROM users
                 CROSS JOIN web_sessions INDEXED BY web_sessions_user_expiry
                     ON web_sessions.user_id = users.id
                 WHERE web_sessions.expire_date <= $1),
                (SELECT count(*) FROM web_sessions)",
        "SELECT (SELECT count(*) FROM users JOIN web_sessions ON web_sessions.user_id = users.id
                 WHERE web_sessions.expire_date <= $1),
                (SELECT count(*) FROM web_sessions)",
    ))?
    .query_row(params![now], |row| Ok((row.get(0)?, row.get(1)?)))
}

fn find_all(conn: &Conn, ids: Vec<i64>) -> crate::db::Result<Vec<WebSession>> {
    let mut sessions = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(session) = find_by_row_id(conn, id)? {
            sessions.push(session);
        }
    }
    Ok(sessions)
}

/// One session by its row id, live or not.
pub fn find_by_row_id(conn: &Conn, row_id: i64) -> crate::db::Result<Option<WebSession>> {
    conn.prepare_cached(concat!(session_with_user_select!(), " WHERE web_sessions.id = $1"))?
        .query_row(params![row_id], session_with_user)
        .optional()
}

/// A session and its user from the columns `id, key_hash, created,
/// last_activity, expire_date, client_addr, user_agent`, then those of
/// `users::user_from_columns`.
fn session_with_user(row: &crate::db::Row<'_>) -> crate::db::Result<WebSession> {
    Ok(WebSession {
        row_id: row.get(0)?,
        key_hash: key_hash_from_column(row, 1)?,
        created: row.get(2)?,
        last_activity: row.get(3)?,
        expire_date: row.get(4)?,
        client_addr: row.get(5)?,
        user_agent: row.get(6)?,
        user: user_from_columns(row, 7)?,
    })
}

/// How many web sessions are live and how many have expired.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub active: i64,
    pub expired: i64,
}

/// Counts the sessions without reading the table: the total from SQLite's
/// count of the smallest index, the expired ones from a range of the
/// covering `web_sessions_user_expiry` per user (the cleanup keeps them
/// few).
pub fn counts(conn: &Conn, now: UnixTime) -> crate::db::Result<Counts> {
    let (expired, all) = count_expired_and_all(conn, now)?;
    Ok(Counts { active: all - expired, expired })
}

/// Deletes one session of a given user by its key hash; a session of anyone
/// else is left alone. Returns whether a row went.
pub fn delete_for_user_by_hash(
    conn: &Conn,
    user_id: i64,
    key_hash: &KeyHash,
) -> crate::db::Result<bool> {
    crate::db::ending_access(conn, "web_sessions::delete_for_user_by_hash", |conn| {
        let deleted = conn
            .prepare_cached("DELETE FROM web_sessions WHERE key_hash = $1 AND user_id = $2")?
            .execute(params![&key_hash.0[..], user_id])?;
        Ok(deleted == 1)
    })
}

// ---------------------------------------------------------------------------
// Moving an installation (`sessiond export` / `sessiond import`): every
// column of every row, ids included, the key hash in hex (never a key: the
// database has none).

/// One `web_sessions` row as an export carries it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSessionRow {
    pub id: i64,
    /// The SHA-256 of the cookie's key, 64 hex characters.
    pub key_hash: String,
    pub user_id: i64,
    pub created: i64,
    pub last_activity: i64,
    pub expire_date: i64,
    pub client_addr: String,
    pub user_agent: String,
}

/// Every web session, by id.
pub fn export_rows(conn: &Conn) -> crate::db::Result<Vec<WebSessionRow>> {
    let mut statement = conn.prepare(
        "SELECT id, key_hash, user_id, created, last_activity, expire_date, client_addr, user_agent
         FROM web_sessions ORDER BY id",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(WebSessionRow {
            id: row.get(0)?,
            key_hash: key_hash_from_column(row, 1)?.to_hex(),
            user_id: row.get(2)?,
            created: row.get(3)?,
            last_activity: row.get(4)?,
            expire_date: row.get(5)?,
            client_addr: row.get(6)?,
            user_agent: row.get(7)?,
        })
    })?;
    rows.collect()
}

impl WebSessionRow {
    fn hash(&self) -> Result<KeyHash, String> {
        KeyHash::from_hex(&self.key_hash)
            .filter(|_| !self.key_hash.bytes().any(|b| b.is_ascii_uppercase()))
            .ok_or_else(|| String::from("`key_hash` is not 64 lowercase hex characters"))
    }

    /// What the program could not use: a key hash that is not one.
    pub fn check(&self) -> Result<(), String> {
        self.hash().map(|_| ())
    }
}

/// Inserts exported web sessions (each [`WebSessionRow::check`]ed) with
/// their ids; their users must be there already. The caller's transaction
/// makes a failure change nothing.
///
/// Each is marked `found_by_hash`: an export does not say whether a row's
/// cookie carries its row id (a row issued before migration 8 has a cookie
/// of its key alone), so either form of its cookie finds it.
pub fn import_rows(conn: &Conn, rows: &[WebSessionRow]) -> anyhow::Result<()> {
    let mut statement = conn.prepare(
        "INSERT INTO web_sessions (id, key_hash, user_id, created, last_activity, expire_date, client_addr, user_agent, found_by_hash)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)",
    )?;
    for (index, row) in rows.iter().enumerate() {
        let refuse =
            |what: String| anyhow::anyhow!("`web_sessions[{index}]` (id {}): {what}", row.id);
        let hash = row.hash().map_err(refuse)?;
        statement
            .execute(params![
                row.id,
                &hash.0[..],
                row.user_id,
                row.created,
                row.last_activity,
                row.expire_date,
                row.client_addr,
                truncate(&row.user_agent, MAX_USER_AGENT)
            ])
            .map_err(|error| refuse(error.to_string()))?;
    }
    if conn.engine() == crate::db::Engine::Postgres {
        // The rows came with their ids: the identity must go on after them.
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('web_sessions', 'id'), max(id)) FROM web_sessions",
            [],
        )?;
    }
    Ok(())
}

/// True when there is no web session at all.
pub fn none_exist(conn: &Conn) -> crate::db::Result<bool> {
    conn.prepare_cached("SELECT NOT EXISTS (SELECT 1 FROM web_sessions)")?
        .query_row([], |row| row.get(0))
}
