//! The `.env` file: reading its keys and changing one of them in place.
//!
//! Reading goes through `dotenvy`, so quoting and escapes follow the usual
//! `.env` rules. Writing changes only the lines of the key being set and
//! keeps every other line (comments, order, unknown keys) as it was; the new
//! file replaces the old one atomically (temporary file, fsync, rename) and
//! has mode 0600, since it holds secrets. A `.env` that is a symbolic link is
//! followed: the file it points to is rewritten, in its own folder, and the
//! link stays. The read-modify-write of [`set`] holds an exclusive lock on
//! that folder (`flock`, std's `File::lock`), so two `config set` at once
//! cannot lose one change. Errors about a line never show its value (it may
//! be a secret) and at most [`SHOWN_CHARS`] characters of its key. This module
//! knows nothing about what the keys mean; `settings` does.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

/// The key-value pairs of a `.env` file in file order; a missing file is
/// empty. A key given twice keeps its last value, as the caller reads them.
pub fn read(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    refuse_oversized(path)?;
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(dotenvy::Error::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Vec::new());
        }
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read `{}`", path.display()));
        }
    };
    let mut pairs = Vec::new();
    for item in iter {
        let pair = item.map_err(|error| describe_parse_error(path, error))?;
        pairs.push(pair);
    }
    Ok(pairs)
}

/// Writes `key=value` into the file: replaces every line that sets `key`, or
/// appends one line when none does. Creates the file when missing.
pub fn set(path: &Path, key: &str, value: &str) -> anyhow::Result<()> {
    let path = &follow_links(path)?;
    let _lock = lock_folder_of(path)?;
    refuse_oversized(path)?;
    let old_text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read `{}`", path.display()));
        }
    };
    let new_line = format!("{key}={}", quote(value));
    let mut replaced = false;
    let mut new_text = String::with_capacity(old_text.len() + new_line.len() + 1);
    for line in old_text.split_inclusive('\n') {
        if line_sets_key(line, key) {
            new_text.push_str(&new_line);
            new_text.push('\n');
            replaced = true;
        } else {
            new_text.push_str(line);
        }
    }
    if !replaced {
        if !new_text.is_empty() && !new_text.ends_with('\n') {
            new_text.push('\n');
        }
        new_text.push_str(&new_line);
        new_text.push('\n');
    }
    write_atomically(path, new_text.as_bytes())
}

/// The most characters of a key an error shows.
pub const SHOWN_CHARS: usize = 40;

/// The largest `.env` read: far more than any settings file needs, and it
/// keeps a broken or hostile file (one 300 MB line) from costing seconds and
/// hundreds of MB to parse.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// Says whether `.env` can be read by the group or by others; `serve` warns
/// then, since the file holds the signing keys. `None` for a missing file.
#[cfg(unix)]
pub fn readable_by_others(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o044 != 0).then_some(mode & 0o777)
}

#[cfg(not(unix))]
pub fn readable_by_others(_path: &Path) -> Option<u32> {
    None
}

fn refuse_oversized(path: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.len() > MAX_BYTES => anyhow::bail!(
            "`{}` is {} bytes; a settings file is at most {MAX_BYTES} bytes",
            path.display(),
            metadata.len()
        ),
        _ => Ok(()),
    }
}

/// The file a path names after following symbolic links (a dangling one
/// names the file to create).
fn follow_links(path: &Path) -> anyhow::Result<std::path::PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)
                    .with_context(|| format!("failed to read the link `{}`", current.display()))?;
                current = match current.parent() {
                    Some(parent) if target.is_relative() => parent.join(target),
                    _ => target,
                };
            }
            _ => return Ok(current),
        }
    }
    anyhow::bail!("`{}`: too many levels of symbolic links", path.display())
}

/// Takes an exclusive lock on the folder that holds `path` (waiting for
/// another `config set`), held until the returned handle is dropped. The
/// folder, not the file: the file is replaced by a rename, and a lock on
/// the replaced file would not stop the next writer.
fn lock_folder_of(path: &Path) -> anyhow::Result<std::fs::File> {
    let folder = folder_of(path);
    let handle = std::fs::File::open(folder)
        .and_then(|handle| handle.lock().map(|()| handle))
        .with_context(|| format!("failed to lock `{}`", folder.display()))?;
    Ok(handle)
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Writes a whole new file atomically with mode 0600.
pub fn write_atomically(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let folder = folder_of(path);
    let mut temporary = tempfile::Builder::new()
        .prefix(".env.")
        .suffix(".tmp")
        .permissions(crate::db::private_permissions())
        .tempfile_in(folder)
        .with_context(|| format!("failed to create a temporary file in `{}`", folder.display()))?;
    temporary
        .write_all(contents)
        .and_then(|()| temporary.as_file().sync_all())
        .with_context(|| format!("failed to write `{}`", temporary.path().display()))?;
    temporary
        .persist(path)
        .map_err(|error| error.error)
        .with_context(|| format!("failed to replace `{}`", path.display()))?;
    Ok(())
}

/// True when the line assigns `key` (optionally after `export `).
fn line_sets_key(line: &str, key: &str) -> bool {
    let line = line.trim_start();
    let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
    match line.split_once('=') {
        Some((name, _)) => name.trim_end() == key,
        None => false,
    }
}

/// Quotes a value so that `dotenvy` reads back exactly the same text.
fn quote(value: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.,:/@+".contains(c);
    if !value.is_empty() && value.chars().all(plain) {
        value.to_owned()
    } else if !value.contains(['\'', '\n', '\\']) {
        // Single quotes take everything literally (no `$VAR`), but for a
        // backslash before a quote, which dotenvy reads as an escape.
        format!("'{value}'")
    } else {
        let mut quoted = String::from("\"");
        for c in value.chars() {
            match c {
                '\\' | '"' | '$' => {
                    quoted.push('\\');
                    quoted.push(c);
                }
                '\n' => quoted.push_str("\\n"),
                _ => quoted.push(c),
            }
        }
        quoted.push('"');
        quoted
    }
}

/// Names the file and the key of a malformed line, never its value: the
/// line may hold a secret.
fn describe_parse_error(path: &Path, error: dotenvy::Error) -> anyhow::Error {
    match error {
        dotenvy::Error::LineParse(line, _) => {
            // Only what stands before an `=` may be shown: a line without
            // one may be a pasted secret.
            let key = line
                .trim_start()
                .trim_start_matches("export ")
                .split_once('=')
                .map(|(key, _)| key.trim());
            let key = key.filter(|key| {
                !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
            match key {
                Some(key) => {
                    let shown: String = key.chars().take(SHOWN_CHARS).collect();
                    let ellipsis = if key.len() > SHOWN_CHARS { "…" } else { "" };
                    anyhow::anyhow!(
                        "failed to parse `{}`: malformed value for `{shown}{ellipsis}` (check its quotes)",
                        path.display()
                    )
                }
                None => anyhow::anyhow!(
                    "failed to parse `{}`: a line is not `KEY=value`",
                    path.display()
                ),
            }
        }
        dotenvy::Error::Io(error) => {
            anyhow::anyhow!("failed to read `{}`: {error}", path.display())
        }
        _ => anyhow::anyhow!("failed to read `{}`", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_keeps_comments_order_and_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "# settings\nA=1\n\nexport B=2 # two\nC='x y'\n").unwrap();
        set(&path, "B", "3").unwrap();
        set(&path, "D", "hello world").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "# settings\nA=1\n\nB=3\nC='x y'\nD='hello world'\n");
    }

    #[test]
    fn quoted_values_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        for value in
            ["plain", "two words", "it's $HOME \"q\" \\", "", "#hash", "ends in \\", "a\\'b"]
        {
            set(&path, "K", value).unwrap();
            let pairs = read(&path).unwrap();
            assert_eq!(pairs, vec![("K".to_owned(), value.to_owned())], "value {value:?}");
        }
    }
}
