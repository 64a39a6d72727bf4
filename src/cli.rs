//! The command line: clap's definition of every command and flag, and the
//! dispatch to `commands`.
//!
//! Invariant: the CLI parses and delegates; it holds no logic of its own.
//! The argument types of each command's actions live with the command
//! (`commands::*`), so that the commands never import this module.
//! Usage errors (unknown command or flag, missing argument) exit with
//! status 2 through clap; everything else returns an error to `main`,
//! including a value outside a fixed set (`--role superhero`), which SPEC 1
//! counts as a refused value (status 1), not a usage error.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::commands::access::AccessAction;
use crate::commands::cleanup::ScheduleAction;
use crate::commands::config::ConfigAction;
use crate::commands::sessions::SessionsAction;
use crate::commands::users::RoleArg;
use crate::settings::{Overrides, Settings};

#[derive(Debug, Parser)]
#[command(name = "sessiond", version, about = "A self-hosted session server on one SQLite file")]
pub struct Cli {
    /// The .env file to read (a missing file is fine)
    #[arg(long, global = true, value_name = "PATH", default_value = ".env")]
    pub env_file: PathBuf,
    /// The database file, or a postgres:// URL (overrides SESSIOND_DB)
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default command)
    Serve {
        /// The address to listen on (overrides SESSIOND_BIND)
        #[arg(long, value_name = "ADDR")]
        bind: Option<String>,
    },
    /// Write a new .env with fresh secrets and the provisioned defaults
    Init {
        /// Overwrite an existing .env
        #[arg(long)]
        force: bool,
    },
    /// Print every setting, or get or set some
    Config {
        #[command(subcommand)]
        action: Option<ConfigAction>,
    },
    /// Create a superuser (role admin)
    Createsuperuser {
        #[arg(long)]
        username: Option<String>,
        #[arg(long, default_value = "")]
        email: String,
    },
    /// Create a user
    Createuser {
        #[arg(long)]
        username: String,
        #[arg(long, default_value = "")]
        email: String,
        #[arg(long, value_enum, default_value_t = RoleArg::User)]
        role: RoleArg,
    },
    /// Set a user's password; ends all their sessions
    Changepassword { username: String },
    /// Stop a user from signing in; ends all their sessions
    Deactivateuser { username: String },
    /// Let a deactivated user sign in again
    Activateuser { username: String },
    /// Delete expired web sessions and expired JWT sessions
    #[command(name = "clear_expired_sessions")]
    ClearExpiredSessions,
    /// List and end sessions
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
    },
    /// Show or change the cleanup schedule
    Schedule {
        #[command(subcommand)]
        action: Option<ScheduleAction>,
    },
    /// Write a consistent copy of the SQLite database, safe while serve runs
    Backup {
        /// The new file (never an existing one); mode 0600
        file: PathBuf,
    },
    /// Write every row (users, sessions, schedule, runs, rules, secrets) as JSON
    Export {
        /// The new file (never an existing one); mode 0600
        file: PathBuf,
    },
    /// Load an export into an empty database
    Import {
        /// A file written by `sessiond export`
        file: PathBuf,
    },
    /// List, add or remove the forward-auth rules (default: list)
    Access {
        #[command(subcommand)]
        action: Option<AccessAction>,
    },
}

/// Parses the process's arguments and runs the command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::try_parse().map_err(refused_value_or_exit)?;
    let overrides = Overrides {
        db: cli.db.clone(),
        bind: match &cli.command {
            Some(Command::Serve { bind }) => bind.clone(),
            _ => None,
        },
    };
    // `init` and `config set` must work even when the current file holds a
    // bad value, so they load the settings themselves.
    match cli.command {
        Some(Command::Init { force }) => return commands::config::init(&cli.env_file, force),
        Some(Command::Config { action: Some(ConfigAction::Set { key, value }) }) => {
            return commands::config::set(&cli.env_file, &key, &value);
        }
        _ => {}
    }
    let settings = Settings::load(&cli.env_file, &overrides)?;
    // `backup` copies a SQLite file: on PostgreSQL there is none.
    if let (Some(Command::Backup { .. }), Some(url)) = (&cli.command, &settings.postgres) {
        anyhow::bail!(
            "`sessiond backup` copies a SQLite file; for the PostgreSQL database `{}` on `{}:{}` use `sessiond export FILE` or `pg_dump`",
            url.database,
            url.host,
            url.port
        );
    }
    match cli.command {
        None | Some(Command::Serve { .. }) => {
            commands::serve::warn_about_env_file(&cli.env_file);
            commands::serve::run(settings)
        }
        Some(Command::Init { .. }) => unreachable!("handled above"),
        Some(Command::Config { action: None }) => commands::config::show(&settings),
        Some(Command::Config { action: Some(ConfigAction::Get { keys }) }) => {
            commands::config::get(&settings, &keys)
        }
        Some(Command::Config { action: Some(ConfigAction::Set { .. }) }) => {
            unreachable!("handled above")
        }
        Some(Command::Createsuperuser { username, email }) => {
            commands::users::create_superuser(&settings, username, &email)
        }
        Some(Command::Createuser { username, email, role }) => {
            commands::users::create_user(&settings, &username, &email, role.into())
        }
        Some(Command::Changepassword { username }) => {
            commands::users::change_password(&settings, &username)
        }
        Some(Command::Deactivateuser { username }) => {
            commands::users::set_active(&settings, &username, false)
        }
        Some(Command::Activateuser { username }) => {
            commands::users::set_active(&settings, &username, true)
        }
        Some(Command::ClearExpiredSessions) => commands::cleanup::clear_expired_sessions(&settings),
        Some(Command::Sessions { action }) => commands::sessions::run(&settings, action),
        Some(Command::Schedule { action }) => {
            commands::cleanup::schedule(&settings, action.unwrap_or(ScheduleAction::Show))
        }
        Some(Command::Backup { file }) => commands::backup::run(&settings, &file),
        Some(Command::Export { file }) => commands::transfer::export(&settings, &file),
        Some(Command::Import { file }) => commands::transfer::import(&settings, &file),
        Some(Command::Access { action }) => {
            commands::access::run(&settings, action.unwrap_or(AccessAction::List { json: false }))
        }
    }
}

/// A value outside a fixed set (`--role superhero`, `--kind cookie`) becomes
/// a one-line error for `main` (status 1); any other parse error is clap's
/// to print, with its status (2 for usage errors, 0 for `--help`).
fn refused_value_or_exit(error: clap::Error) -> anyhow::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let value = match error.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) if !value.is_empty() => value.clone(),
        _ => error.exit(),
    };
    let allowed = match error.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(allowed)) if error.kind() == ErrorKind::InvalidValue => {
            allowed.clone()
        }
        _ => error.exit(),
    };
    let flag = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(flag)) => {
            flag.split_whitespace().next().unwrap_or(flag).to_owned()
        }
        _ => String::from("the argument"),
    };
    let shown: String = value.chars().filter(|c| !c.is_control()).take(40).collect();
    let ellipsis = if value.chars().count() > 40 { "…" } else { "" };
    let allowed: Vec<String> = allowed.iter().map(|value| format!("`{value}`")).collect();
    anyhow::anyhow!(
        "invalid value `{shown}{ellipsis}` for `{flag}`: expected one of {}",
        allowed.join(", ")
    )
}
