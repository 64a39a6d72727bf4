//! `sessiond export FILE` and `sessiond import FILE` (SPEC 1 and 11): an
//! installation moved as one JSON object, every row of every table that
//! says who may sign in and what is signed in.
//!
//! This module orchestrates: it reads every table in one read transaction
//! (a consistent copy while `serve` runs), writes the file through
//! `backup::write_new_file` (mode 0600, never replacing a file, never
//! partial), and on import checks the whole file strictly before it opens
//! the database, then loads it into an empty database in one IMMEDIATE
//! transaction, so a failure changes nothing. It runs no SQL of its own:
//! each table's rows are read and written by the module that owns the table
//! (`export_rows` / `import_rows`). Ids and sequence numbers are kept, and
//! the generated secrets travel in `meta`, so cookies and tokens issued
//! before the move keep working after it.
//!
//! What does not move: `cleanup_claims` (which scheduled times servers on
//! the old database ran) and `login_failures` (the throttle's recent
//! failures): both are short-lived operational state of one database.
//! Configured secrets live in the `.env`, not the database: they move with
//! the `.env` file.

use std::io::Write as _;
use std::path::Path;

use crate::db::Behavior;
use anyhow::Context;
use serde_json::{Map, Value};

use crate::access_rules::{self, AccessRuleRow};
use crate::cleanup::{self, CleanupRunRow};
use crate::jwt_sessions::{self, JwtSessionExportRow};
use crate::settings::Settings;
use crate::users::{self, UserRow};
use crate::web_sessions::{self, WebSessionRow};

/// The value of `"format"` in every export.
pub const FORMAT: &str = "sessiond-export";

/// The version of the format this build writes and reads.
pub const VERSION: i64 = 1;

/// The keys of an export, in the order it writes them.
const KEYS: [&str; 8] = [
    "format",
    "version",
    "users",
    "web_sessions",
    "jwt_sessions",
    "access_rules",
    "cleanup_runs",
    "meta",
];

/// Everything an export holds, typed.
struct Export {
    users: Vec<UserRow>,
    web_sessions: Vec<WebSessionRow>,
    jwt_sessions: Vec<JwtSessionExportRow>,
    access_rules: Vec<AccessRuleRow>,
    cleanup_runs: Vec<CleanupRunRow>,
    meta: Vec<(String, String)>,
}

impl Export {
    fn summary(&self) -> String {
        format!(
            "{} user(s), {} web session(s), {} GraphQL login session(s), {} access rule(s), {} cleanup run record(s)",
            self.users.len(),
            self.web_sessions.len(),
            self.jwt_sessions.len(),
            self.access_rules.len(),
            self.cleanup_runs.len()
        )
    }
}

/// `sessiond export FILE`.
pub fn export(settings: &Settings, target: &Path) -> anyhow::Result<()> {
    if target.symlink_metadata().is_ok() {
        anyhow::bail!(
            "`{}` already exists; an export never replaces a file, so name a new one",
            target.display()
        );
    }
    let mut conn = crate::commands::open_db(settings)?;
    let export =
        read_all(&mut conn).with_context(|| format!("failed to read `{}`", settings.db_shown()))?;
    write_new(target, &export)?;
    say!("Exported {} to `{}`.", export.summary(), target.display());
    Ok(())
}

/// `sessiond import FILE`.
pub fn import(settings: &Settings, source: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read(source).with_context(|| format!("failed to read `{}`", source.display()))?;
    let export = parse(&text).with_context(|| {
        format!("`{}` is not a sessiond export this build can load", source.display())
    })?;
    let mut conn = crate::commands::open_or_create_db(settings)?;
    load(&mut conn, &export).with_context(|| {
        format!(
            "failed to import `{}` into `{}` (nothing was changed)",
            source.display(),
            settings.db_shown()
        )
    })?;
    say!(
        "Imported {} from `{}` into `{}`.",
        export.summary(),
        source.display(),
        settings.db_shown()
    );
    Ok(())
}

/// Reads every table in one read transaction: in WAL mode, writers go on
/// meanwhile and the rows are the database as of one commit.
fn read_all(conn: &mut crate::db::Conn) -> anyhow::Result<Export> {
    let tx = conn.transaction(Behavior::Deferred)?;
    let export = Export {
        users: users::export_rows(&tx)?,
        web_sessions: web_sessions::export_rows(&tx)?,
        jwt_sessions: jwt_sessions::export_rows(&tx)?,
        access_rules: access_rules::export_rows(&tx)?,
        cleanup_runs: cleanup::export_rows(&tx)?,
        meta: crate::meta::export_rows(&tx)?,
    };
    tx.commit()?;
    Ok(export)
}

/// Writes the export as one JSON object, one line per row, through
/// `backup::write_new_file`.
fn write_new(target: &Path, export: &Export) -> anyhow::Result<()> {
    crate::commands::backup::write_new_file(target, ".sessiond-export.", |temporary| {
        let mut out = std::io::BufWriter::new(temporary.as_file());
        write!(out, "{{\"format\": \"{FORMAT}\", \"version\": {VERSION}")?;
        write_rows(&mut out, "users", &export.users)?;
        write_rows(&mut out, "web_sessions", &export.web_sessions)?;
        write_rows(&mut out, "jwt_sessions", &export.jwt_sessions)?;
        write_rows(&mut out, "access_rules", &export.access_rules)?;
        write_rows(&mut out, "cleanup_runs", &export.cleanup_runs)?;
        let meta: Map<String, Value> = export
            .meta
            .iter()
            .map(|(key, value)| (key.clone(), Value::from(value.clone())))
            .collect();
        write!(out, ",\n\"meta\": {}\n}}\n", serde_json::to_string(&meta)?)?;
        out.flush()?;
        Ok(())
    })
    .with_context(|| format!("failed to write the export `{}`", target.display()))
}

fn write_rows<T: serde::Serialize>(
    out: &mut impl std::io::Write,
    key: &str,
    rows: &[T],
) -> anyhow::Result<()> {
    write!(out, ",\n\"{key}\": [")?;
    for (index, row) in rows.iter().enumerate() {
        out.write_all(if index == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *out, row)?;
    }
    out.write_all(b"]")?;
    Ok(())
}

/// Checks a whole file before anything is written: a JSON object with
/// `format` and `version` this build knows, every key there with the right
/// type, no unknown key or field. The error names what is wrong.
///
/// A good file is read straight into its row types (about the size of the
/// rows in memory); only a file that does not fit them is read again as a
/// JSON tree, to name the item at fault.
fn parse(text: &[u8]) -> anyhow::Result<Export> {
    match serde_json::from_slice::<TypedExport>(text) {
        Ok(typed) => {
            check_header(Some(&typed.format), Some(&typed.version))?;
            Ok(Export {
                users: checked(typed.users, "users", UserRow::check)?,
                web_sessions: checked(typed.web_sessions, "web_sessions", WebSessionRow::check)?,
                jwt_sessions: checked(
                    typed.jwt_sessions,
                    "jwt_sessions",
                    JwtSessionExportRow::check,
                )?,
                access_rules: checked(typed.access_rules, "access_rules", AccessRuleRow::check)?,
                cleanup_runs: checked(typed.cleanup_runs, "cleanup_runs", CleanupRunRow::check)?,
                meta: checked_meta(typed.meta)?,
            })
        }
        Err(typed_error) => match parse_tree(text) {
            Err(error) => Err(error),
            // Not expected: the tree accepts what the types do.
            Ok(_) => Err(anyhow::anyhow!("{typed_error}")),
        },
    }
}

/// The file as the row types read it, `format` and `version` left for
/// [`check_header`] to name.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TypedExport {
    format: Value,
    version: Value,
    users: Vec<UserRow>,
    web_sessions: Vec<WebSessionRow>,
    jwt_sessions: Vec<JwtSessionExportRow>,
    access_rules: Vec<AccessRuleRow>,
    cleanup_runs: Vec<CleanupRunRow>,
    meta: Map<String, Value>,
}

/// [`parse`] through a JSON tree, item by item, to name what is wrong.
fn parse_tree(text: &[u8]) -> anyhow::Result<Export> {
    let value: Value = serde_json::from_slice(text)
        .map_err(|error| anyhow::anyhow!("it is not JSON ({error})"))?;
    let Value::Object(mut object) = value else {
        anyhow::bail!("it is not a JSON object");
    };
    check_header(object.get("format"), object.get("version"))?;
    if let Some(unknown) = object.keys().find(|key| !KEYS.contains(&key.as_str())) {
        anyhow::bail!("unknown key `{}`", shorten(unknown));
    }
    let mut take = |key: &str| object.remove(key).ok_or_else(|| anyhow::anyhow!("no `{key}`"));
    let users = rows(take("users")?, "users", UserRow::check)?;
    let web_sessions = rows(take("web_sessions")?, "web_sessions", WebSessionRow::check)?;
    let jwt_sessions = rows(take("jwt_sessions")?, "jwt_sessions", JwtSessionExportRow::check)?;
    let access_rules = rows(take("access_rules")?, "access_rules", AccessRuleRow::check)?;
    let cleanup_runs = rows(take("cleanup_runs")?, "cleanup_runs", CleanupRunRow::check)?;
    let Value::Object(meta) = take("meta")? else {
        anyhow::bail!("`meta` is not an object");
    };
    let meta = checked_meta(meta)?;
    Ok(Export { users, web_sessions, jwt_sessions, access_rules, cleanup_runs, meta })
}

/// `format` and `version` are this build's.
fn check_header(format: Option<&Value>, version: Option<&Value>) -> anyhow::Result<()> {
    match format {
        Some(Value::String(format)) if format == FORMAT => {}
        Some(Value::String(other)) => {
            anyhow::bail!("`format` is `{}`, not `{FORMAT}`", shorten(other))
        }
        Some(_) => anyhow::bail!("`format` is not a string"),
        None => anyhow::bail!("it has no `format` (an export has `\"format\": \"{FORMAT}\"`)"),
    }
    match version {
        Some(Value::Number(number)) if number.as_i64() == Some(VERSION) => Ok(()),
        Some(Value::Number(number)) => anyhow::bail!(
            "`version` is {number}; this build reads version {VERSION} (a newer sessiond may read it)"
        ),
        Some(_) => anyhow::bail!("`version` is not a number"),
        None => anyhow::bail!("it has no `version`"),
    }
}

/// `meta` as text values, the schedule one that parses.
fn checked_meta(object: Map<String, Value>) -> anyhow::Result<Vec<(String, String)>> {
    let mut meta = Vec::with_capacity(object.len());
    for (key, value) in object {
        let Value::String(value) = value else {
            anyhow::bail!("`meta.{}` is not a string", shorten(&key));
        };
        if key == crate::schedule::SCHEDULE_KEY && value != "off" {
            crate::schedule::parse(&value)
                .map_err(|reason| anyhow::anyhow!("`meta.{key}`: {reason}"))?;
        }
        meta.push((key, value));
    }
    Ok(meta)
}

/// Rows already read, each checked by `check`; the error names the item.
fn checked<T>(
    rows: Vec<T>,
    key: &str,
    check: impl Fn(&T) -> Result<(), String>,
) -> anyhow::Result<Vec<T>> {
    for (index, row) in rows.iter().enumerate() {
        check(row).map_err(|reason| anyhow::anyhow!("`{key}[{index}]`: {reason}"))?;
    }
    Ok(rows)
}

/// The items of the array under `key`, each read as its row type and
/// checked by `check`; the error names the item.
fn rows<T: serde::de::DeserializeOwned>(
    value: Value,
    key: &str,
    check: impl Fn(&T) -> Result<(), String>,
) -> anyhow::Result<Vec<T>> {
    let Value::Array(items) = value else {
        anyhow::bail!("`{key}` is not an array");
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let row: T = serde_json::from_value(item)
                .map_err(|error| anyhow::anyhow!("`{key}[{index}]`: {error}"))?;
            check(&row).map_err(|reason| anyhow::anyhow!("`{key}[{index}]`: {reason}"))?;
            Ok(row)
        })
        .collect()
}

/// Loads a checked export into an empty database, all in one transaction.
fn load(conn: &mut crate::db::Conn, export: &Export) -> anyhow::Result<()> {
    let tx = conn.transaction(Behavior::Immediate)?;
    let empty =
        users::none_exist(&tx)? && web_sessions::none_exist(&tx)? && jwt_sessions::none_exist(&tx)?;
    if !empty {
        anyhow::bail!(
            "the database already has users or sessions; import only into a new database (before its first `sessiond serve`, which creates `admin`)"
        );
    }
    users::import_rows(&tx, &export.users)?;
    web_sessions::import_rows(&tx, &export.web_sessions)?;
    jwt_sessions::import_rows(&tx, &export.jwt_sessions)?;
    cleanup::import_rows(&tx, &export.cleanup_runs)?;
    crate::meta::import_rows(&tx, &export.meta)?;
    // After `meta`: loading the rules bumps their version past the exported
    // one, so a server that cached the target's (empty) rules reloads them.
    access_rules::import_rows(&tx, &export.access_rules)?;
    tx.commit()?;
    Ok(())
}

/// At most 40 characters of a value from the file, without control
/// characters, for an error line.
fn shorten(text: &str) -> String {
    let shown: String = text.chars().filter(|c| !c.is_control()).take(40).collect();
    if text.chars().count() > 40 { format!("{shown}…") } else { shown }
}
