//! The `meta` table: small named values the program keeps in the database,
//! such as generated secrets and the cleanup schedule.
//!
//! Only this module touches `meta`. Values are plain text; callers decide
//! what they mean.

use crate::db::{Conn, OptionalExtension, params};

/// Reads one value.
pub fn get(conn: &Conn, key: &str) -> crate::db::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = $1")?
        .query_row(params![key], |row| row.get(0))
        .optional()
}

/// Writes one value, replacing any earlier one.
pub fn set(conn: &Conn, key: &str, value: &str) -> crate::db::Result<()> {
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![key, value])?;
    Ok(())
}

/// Reads a value, or stores the one `make` returns when there is none yet.
/// Safe against another process doing the same at once: the first writer wins
/// and everyone reads its value.
pub fn get_or_insert_with(
    conn: &Conn,
    key: &str,
    make: impl FnOnce() -> String,
) -> crate::db::Result<String> {
    if let Some(value) = get(conn, key)? {
        return Ok(value);
    }
    conn.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
    )?
    .execute(params![key, make()])?;
    conn.prepare_cached("SELECT value FROM meta WHERE key = $1")?
        .query_row(params![key], |row| row.get(0))
}

/// Every value, by key, for `sessiond export` (it holds the generated
/// secrets: the export file is private).
pub fn export_rows(conn: &Conn) -> crate::db::Result<Vec<(String, String)>> {
    let mut statement = conn.prepare("SELECT key, value FROM meta ORDER BY key")?;
    let rows = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    rows.collect()
}

/// Stores exported values, replacing the target's own (an empty database
/// may have generated secrets of its own already: the exported ones win, so
/// that tokens signed before the move keep verifying).
pub fn import_rows(conn: &Conn, rows: &[(String, String)]) -> crate::db::Result<()> {
    for (key, value) in rows {
        set(conn, key, value)?;
    }
    Ok(())
}
