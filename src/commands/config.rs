//! `init`, `config`, `config get` and `config set`.
//!
//! `init` writes a whole new `.env`; `config set` changes one key of it and
//! keeps everything else. Both write through `env_file` (atomically, mode
//! 0600) and validate through `settings`, so a refused value leaves the file
//! as it was. A secret's value is printed only by `config get`, which names
//! it; `config` masks it and a refused secret is named by its key only.

use std::fmt::Write as _;
use std::path::Path;

use clap::Subcommand;

use crate::env_file;
use crate::settings::{self, InitValue, Settings};

/// `sessiond config` actions.
#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the values of the named keys (secrets too)
    Get {
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Validate a value and store it in the .env file
    Set {
        key: String,
        // May start with `-`, so that a value such as `-5` is refused as a
        // value (status 1) rather than taken for an unknown flag.
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
}

pub fn init(env_file: &Path, force: bool) -> anyhow::Result<()> {
    let exists = env_file.symlink_metadata().is_ok();
    if exists && !force {
        anyhow::bail!(
            "`{}` already exists; use `sessiond init --force` to replace it (this makes new secrets and ends every GraphQL login)",
            env_file.display()
        );
    }
    env_file::write_atomically(env_file, new_env_text().as_bytes())?;
    let verb = if exists { "Replaced" } else { "Wrote" };
    say!("{verb} `{}` with fresh secrets and the provisioned settings.", env_file.display());
    Ok(())
}

pub fn show(settings: &Settings) -> anyhow::Result<()> {
    let rows: Vec<(&str, String, String)> = settings
        .resolved
        .iter()
        .map(|resolved| {
            let value = match &resolved.value {
                Some(value) if value.is_empty() => String::from("(empty)"),
                _ => resolved.display_value(),
            };
            (resolved.key.name, value, resolved.source.to_string())
        })
        .collect();
    let key_width = rows.iter().map(|(key, _, _)| key.len()).max().unwrap_or(0);
    let value_width = rows.iter().map(|(_, value, _)| value.chars().count()).max().unwrap_or(0);
    say!("{:key_width$}  {:value_width$}  SOURCE", "KEY", "VALUE");
    for (key, value, source) in rows {
        say!("{key:key_width$}  {value:value_width$}  {source}");
    }
    Ok(())
}

pub fn get(settings: &Settings, keys: &[String]) -> anyhow::Result<()> {
    // Every name is checked before anything is printed.
    let mut wanted = Vec::with_capacity(keys.len());
    for name in keys {
        match settings::find_key(name) {
            Some(key) => wanted.push(key),
            None => anyhow::bail!("unknown setting `{name}`"),
        }
    }
    let mut values = Vec::with_capacity(wanted.len());
    let mut generated = None;
    for key in wanted {
        let resolved = settings
            .resolved
            .iter()
            .find(|resolved| resolved.key.name == key.name)
            .expect("settings resolve every key");
        let value = match &resolved.value {
            // A PostgreSQL URL's password is never printed, even when named.
            Some(_) if key.kind == settings::Kind::Database => resolved.display_value(),
            Some(value) => value.clone(),
            None => {
                // A secret that is not configured: the one kept in the
                // database, as the server would use it.
                if generated.is_none() {
                    let conn = crate::commands::open_db(settings)?;
                    generated = Some(crate::secrets::resolve(&conn, settings)?);
                }
                let secrets = generated.as_ref().expect("resolved above");
                match key.name {
                    "DJANGO_JWT_SECRET_KEY" => secrets.jwt_secret_key.clone(),
                    _ => secrets.secret_key.clone(),
                }
            }
        };
        values.push(value);
    }
    for value in values {
        say!("{value}");
    }
    Ok(())
}

pub fn set(env_file: &Path, key: &str, value: &str) -> anyhow::Result<()> {
    let Some(key) = settings::find_key(key) else {
        anyhow::bail!("unknown setting `{key}`");
    };
    settings::validate(key, value).map_err(anyhow::Error::msg)?;
    env_file::set(env_file, key.name, value)?;
    say!("Set `{}` in `{}`.", key.name, env_file.display());
    if std::env::var_os(key.name).is_some() {
        eprintln!(
            "note: `{}` is also set in the environment, which takes precedence over the file",
            key.name
        );
    }
    Ok(())
}

/// The text of a new `.env`: a comment and a line for every key, fresh
/// secrets, and the keys `init` does not write left as comments with their
/// fallback.
fn new_env_text() -> String {
    let mut text = String::from(
        "# sessiond settings, written by `sessiond init`.\n\
         # The process environment wins over this file; `sessiond config` shows what is in force.\n\
         # Keep this file private (mode 0600): it holds the signing keys.\n",
    );
    for key in settings::KEYS {
        let _ = writeln!(text, "\n# {}", key.meaning);
        match key.init {
            InitValue::Value(value) => {
                let _ = writeln!(text, "{}={value}", key.name);
            }
            InitValue::FreshSecret => {
                // 32 random bytes as 64 hex characters: more than any
                // minimum length a key asks for.
                let _ = writeln!(text, "{}={}", key.name, crate::random::secret_hex::<32>());
            }
            InitValue::NotWritten => {
                let _ = writeln!(text, "# {}={}", key.name, key.fallback.unwrap_or(""));
            }
        }
    }
    text
}
