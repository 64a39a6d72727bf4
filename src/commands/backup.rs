//! `sessiond backup FILE`: a consistent copy of the SQLite database, safe
//! while `serve` runs on it (SPEC 1).
//!
//! The copy is made by SQLite's online backup API in one step, which reads
//! the whole database inside one read transaction: in WAL mode writers go on
//! meanwhile, and the copy is the database as of one commit. It is written
//! to a temporary file (mode 0600: it holds password hashes and may hold the
//! generated secrets) in FILE's folder, checked, synced, and only then given
//! FILE's name, without ever replacing an existing file. A failure removes
//! the temporary file, so FILE is either a whole backup or absent. This
//! module must not write to the source database.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::Connection;
use rusqlite::backup::{Backup, StepResult};

use crate::settings::Settings;

pub fn run(settings: &Settings, target: &Path) -> anyhow::Result<()> {
    if target.symlink_metadata().is_ok() {
        anyhow::bail!(
            "`{}` already exists; a backup never replaces a file, so name a new one",
            target.display()
        );
    }
    let source = crate::commands::open_db(settings)?;
    let source = source.as_sqlite().ok_or_else(|| {
        anyhow::anyhow!(
            "`sessiond backup` copies a SQLite file; use `sessiond export FILE` or `pg_dump`"
        )
    })?;
    let pages = write_new_file(target, ".sessiond-backup.", |temporary| {
        copy_into(source, temporary.path())
            .with_context(|| format!("failed to back up `{}`", settings.db_shown()))
    })?;
    say!("Backed up `{}` to `{}` ({pages} pages).", settings.db_shown(), target.display());
    Ok(())
}

/// Writes a new private file (mode 0600) at `target`, never replacing an
/// existing one and never leaving a partial file: `fill` writes a temporary
/// file in `target`'s folder (named with `prefix`), which is synced and only
/// then linked to `target`. On any failure the temporary file is removed.
/// `backup` and `export` both write through it.
pub fn write_new_file<T>(
    target: &Path,
    prefix: &str,
    fill: impl FnOnce(&tempfile::NamedTempFile) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let folder = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let temporary = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".tmp")
        .permissions(crate::db::private_permissions())
        .tempfile_in(folder)
        .with_context(|| format!("failed to create a temporary file in `{}`", folder.display()))?;
    let value = fill(&temporary)?;
    temporary
        .as_file()
        .sync_all()
        .with_context(|| format!("failed to write `{}`", temporary.path().display()))?;
    temporary.persist_noclobber(target).map_err(|error| error.error).with_context(|| {
        format!("failed to name the new file `{}` (is it there already?)", target.display())
    })?;
    sync_folder(folder);
    Ok(value)
}

/// Copies the whole database into the (empty) file at `path` in one backup
/// step and checks the copy; returns its page count.
fn copy_into(source: &Connection, path: &Path) -> anyhow::Result<i64> {
    let mut destination = Connection::open(path)?;
    {
        let backup = Backup::new(source, &mut destination)?;
        let deadline = Instant::now() + crate::db::BUSY_TIMEOUT;
        loop {
            // -1: every page in one step, so one read transaction of the
            // source, never restarted by a write between two steps.
            match backup.step(-1)? {
                StepResult::Done => break,
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                StepResult::Busy | StepResult::Locked => {
                    anyhow::bail!("the database stayed locked for {:?}", crate::db::BUSY_TIMEOUT)
                }
                _ => {}
            }
        }
    }
    let check: String = destination.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
    if check != "ok" {
        anyhow::bail!("the copy failed its check: {check}");
    }
    let pages: i64 = destination.query_row("PRAGMA page_count", [], |row| row.get(0))?;
    destination.close().map_err(|(_, error)| error)?;
    Ok(pages)
}

/// Makes the new name itself durable; a folder that cannot be synced (not
/// every file system allows it) leaves the backup as good as any other file.
fn sync_folder(folder: &Path) {
    if let Ok(handle) = std::fs::File::open(folder) {
        let _ = handle.sync_all();
    }
}
