//! The command line: clap's definition of every command and flag, and the
//! dispatch to `commands`.
//!
//! Invariant: the CLI parses and delegates; it holds no logic of its own.
//! Usage errors (unknown command or flag, missing argument) exit with
//! status 2 through clap; everything else returns an error to `main`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::commands;
use crate::settings::{Overrides, Settings};

#[derive(Debug, Parser)]
#[command(name = "sessiond", version, about = "A self-hosted session server on one SQLite file")]
pub struct Cli {
    /// The .env file to read (a missing file is fine)
    #[arg(long, global = true, value_name = "PATH", default_value = ".env")]
    pub env_file: PathBuf,
    /// The database file (overrides SESSIOND_DB)
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
    /// List, add or remove the forward-auth rules (default: list)
    Access {
        #[command(subcommand)]
        action: Option<AccessAction>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccessAction {
    /// Print the rules in order, one a line
    List {
        /// Print one JSON array
        #[arg(long)]
        json: bool,
    },
    /// Append a rule: a host pattern and a policy (bypass, deny, user, manager, admin)
    Add {
        pattern: String,
        // Words are checked by `access_rules`, so that a bad one is a
        // refused value (status 1), not a usage error.
        policy: String,
        /// Only paths under this prefix (whole segments)
        #[arg(long, value_name = "PREFIX", allow_hyphen_values = true)]
        path: Option<String>,
    },
    /// Remove the rule with this number (as `access list` numbers them)
    Remove {
        #[arg(allow_hyphen_values = true)]
        number: String,
    },
}

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

#[derive(Debug, Subcommand)]
pub enum SessionsAction {
    /// List sessions, expired ones too
    List {
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        #[arg(long, value_enum)]
        status: Option<StatusArg>,
        #[arg(long, value_name = "USERNAME")]
        user: Option<String>,
        /// Print one JSON array
        #[arg(long)]
        json: bool,
    },
    /// Revoke a JWT session (by jti) or delete a web session (by id)
    Revoke { id: String },
    /// End every session of a user
    EndUser { username: String },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleAction {
    /// Show the schedule, the next run and the last runs
    Show,
    /// Set the schedule to a 5-field cron expression
    Set { cron: String },
    /// Turn the scheduled cleanup off
    Off,
    /// Run the cleanup now
    Run,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    User,
    Manager,
    Admin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Web,
    Jwt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Active,
    Expired,
    Revoked,
}

/// Parses the process's arguments and runs the command.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
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
    match cli.command {
        None | Some(Command::Serve { .. }) => commands::serve::run(settings),
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
            let role = match role {
                RoleArg::User => crate::users::Role::User,
                RoleArg::Manager => crate::users::Role::Manager,
                RoleArg::Admin => crate::users::Role::Admin,
            };
            commands::users::create_user(&settings, &username, &email, role)
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
        Some(Command::Access { action }) => {
            commands::access::run(&settings, action.unwrap_or(AccessAction::List { json: false }))
        }
    }
}
