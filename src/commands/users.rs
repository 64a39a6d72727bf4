//! The user commands: `createsuperuser`, `createuser`, `changepassword`,
//! `deactivateuser`, `activateuser`.
//!
//! A password comes from DJANGO_SUPERUSER_PASSWORD when set, else one line of
//! stdin when stdin is not a terminal, else a prompt without echo, asked
//! twice.

use std::io::{BufRead, IsTerminal};

use clap::ValueEnum;

use crate::accounts;
use crate::clock::{Clock, SystemClock};
use crate::commands::open_db;
use crate::settings::Settings;
use crate::users::{self, Role};

/// `--role` of `createuser`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    User,
    Manager,
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::User => Role::User,
            RoleArg::Manager => Role::Manager,
            RoleArg::Admin => Role::Admin,
        }
    }
}

pub fn create_superuser(
    settings: &Settings,
    username: Option<String>,
    email: &str,
) -> anyhow::Result<()> {
    let username = match username.or_else(|| std::env::var("DJANGO_SUPERUSER_USERNAME").ok()) {
        Some(username) => username,
        None if std::io::stdin().is_terminal() => prompt_line("Username: ")?,
        None => anyhow::bail!("missing `--username` (stdin is not a terminal to ask on)"),
    };
    create_user(settings, &username, email, Role::Admin)
}

pub fn create_user(
    settings: &Settings,
    username: &str,
    email: &str,
    role: Role,
) -> anyhow::Result<()> {
    users::validate_username(username)?;
    let conn = crate::commands::open_or_create_db(settings)?;
    if let Some(existing) = users::find_by_username(&conn, username)? {
        // Named as stored: `ALICE` is refused because `alice` exists.
        return Err(users::UserError::UsernameTaken(existing.username).into());
    }
    let password = read_new_password()?;
    let user = users::create(&conn, username, email, &password, role, SystemClock.now())?;
    say!("Created {} `{}`.", user.role, user.username);
    Ok(())
}

pub fn change_password(settings: &Settings, username: &str) -> anyhow::Result<()> {
    let conn = open_db(settings)?;
    let user = accounts::require_user(&conn, username)?;
    let password = read_new_password()?;
    let ended = accounts::change_password(&conn, &user, &password, SystemClock.now())?;
    say!(
        "Changed the password of `{}`; ended {} web session(s) and revoked {} GraphQL login session(s).",
        user.username,
        ended.web,
        ended.jwt
    );
    Ok(())
}

pub fn set_active(settings: &Settings, username: &str, active: bool) -> anyhow::Result<()> {
    let conn = open_db(settings)?;
    let user = accounts::require_user(&conn, username)?;
    let ended = accounts::set_active(&conn, &user, active, SystemClock.now())?;
    if active {
        say!("Activated `{}`.", user.username);
    } else {
        say!(
            "Deactivated `{}`; ended {} web session(s) and revoked {} GraphQL login session(s).",
            user.username,
            ended.web,
            ended.jwt
        );
    }
    Ok(())
}

/// Reads a new password from the first source that has one.
fn read_new_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("DJANGO_SUPERUSER_PASSWORD") {
        users::validate_password(&password)?;
        return Ok(password);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        let password = line.strip_suffix('\n').unwrap_or(&line);
        let password = password.strip_suffix('\r').unwrap_or(password).to_owned();
        if password.is_empty() {
            anyhow::bail!(
                "no password given: set DJANGO_SUPERUSER_PASSWORD or write one line to stdin"
            );
        }
        users::validate_password(&password)?;
        return Ok(password);
    }
    let first = rpassword::prompt_password("Password: ")?;
    users::validate_password(&first)?;
    let second = rpassword::prompt_password("Password (again): ")?;
    if first != second {
        anyhow::bail!("the two passwords do not match");
    }
    Ok(first)
}

fn prompt_line(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim().to_owned())
}
