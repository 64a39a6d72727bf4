//! `sessions list`, `sessions revoke` and `sessions end-user`.
//!
//! `list` prints every session the database knows, expired ones too, newest
//! first: a table for people, or with `--json` one JSON array for programs.
//! A web session is named by the hex hash of its key, never by the key.
//! `revoke` takes a jti (revokes that JWT session) or a 64-hex web session
//! id (deletes that web session). Actions of a command record no
//! `revoked_by`: there is no signed-in user behind them.

use std::io::Write;

use clap::{Subcommand, ValueEnum};

use crate::accounts;
use crate::clock::{Clock, SystemClock, UnixTime, rfc3339};
use crate::commands::open_db;
use crate::jwt_sessions;
use crate::listing::{ListQuery, Status};
use crate::settings::Settings;
use crate::web_sessions::{self, KeyHash};

/// `sessiond sessions` actions.
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

/// Rows read per query while listing everything.
const BATCH: usize = 1000;

pub fn run(settings: &Settings, action: SessionsAction) -> anyhow::Result<()> {
    match action {
        SessionsAction::List { kind, status, user, json } => {
            list(settings, kind, status, user.as_deref(), json)
        }
        SessionsAction::Revoke { id } => revoke(settings, &id),
        SessionsAction::EndUser { username } => end_user(settings, &username),
    }
}

/// One session in the shape `list` prints.
#[derive(Debug, Clone, serde::Serialize)]
struct Item {
    id: String,
    kind: &'static str,
    user: String,
    created: String,
    last_activity: String,
    expires: String,
    status: &'static str,
    client_addr: String,
    user_agent: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_at: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revoked_by: Option<Option<String>>,
}

fn list(
    settings: &Settings,
    kind: Option<KindArg>,
    status: Option<StatusArg>,
    username: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let conn = open_db(settings)?;
    let now = SystemClock.now();
    let user_id = match username {
        Some(name) => Some(accounts::require_user(&conn, name)?.id),
        None => None,
    };
    let status = status.map(|status| match status {
        StatusArg::Active => Status::Active,
        StatusArg::Expired => Status::Expired,
        StatusArg::Revoked => Status::Revoked,
    });
    let mut items = Vec::new();
    if kind != Some(KindArg::Jwt) {
        let mut before = None;
        loop {
            let query = ListQuery { status, user_id, before, limit: BATCH };
            let page = web_sessions::list(&conn, &query, now)?;
            before = page.last().map(|session| session.row_id);
            items.extend(page.iter().map(|session| web_item(session, now)));
            if page.len() < BATCH {
                break;
            }
        }
    }
    if kind != Some(KindArg::Web) {
        let mut before = None;
        loop {
            let query = ListQuery { status, user_id, before, limit: BATCH };
            let page = jwt_sessions::list(&conn, &query, now)?;
            before = page.last().map(|row| row.seq);
            items.extend(page.iter().map(|row| jwt_item(row, now)));
            if page.len() < BATCH {
                break;
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &items)?;
        writeln!(out)?;
    } else {
        print_table(&mut out, &items)?;
    }
    Ok(())
}

fn web_item(session: &web_sessions::WebSession, now: UnixTime) -> Item {
    Item {
        id: session.key_hash.to_hex(),
        kind: "web",
        user: session.user.username.clone(),
        created: rfc3339(session.created),
        last_activity: rfc3339(session.last_activity),
        expires: rfc3339(session.expire_date),
        status: Status::of(session.expire_date, None, now).as_str(),
        client_addr: session.client_addr.clone(),
        user_agent: session.user_agent.clone(),
        revoked_at: None,
        revoked_by: None,
    }
}

fn jwt_item(row: &jwt_sessions::JwtSessionRow, now: UnixTime) -> Item {
    Item {
        id: row.session.jti.clone(),
        kind: "jwt",
        user: row.user.username.clone(),
        created: rfc3339(row.session.created),
        last_activity: rfc3339(row.session.last_activity),
        expires: rfc3339(row.session.expires_at),
        status: row.status(now).as_str(),
        client_addr: row.session.client_addr.clone(),
        user_agent: row.session.user_agent.clone(),
        revoked_at: Some(row.session.revoked_at.map(rfc3339)),
        revoked_by: Some(row.revoked_by.clone()),
    }
}

/// A plain table: web ids are cut to their fingerprint, user agents to a
/// readable width; `--json` has everything in full.
fn print_table(out: &mut impl Write, items: &[Item]) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<4} {:<36} {:<16} {:<8} {:<20} {:<20} {:<20} {:<15} USER AGENT",
        "KIND", "ID", "USER", "STATUS", "CREATED", "LAST ACTIVITY", "EXPIRES", "CLIENT"
    )?;
    for item in items {
        let id = if item.kind == "web" { &item.id[..12.min(item.id.len())] } else { &item.id };
        let agent: String = item.user_agent.chars().filter(|c| !c.is_control()).take(60).collect();
        writeln!(
            out,
            "{:<4} {:<36} {:<16} {:<8} {:<20} {:<20} {:<20} {:<15} {}",
            item.kind,
            id,
            item.user,
            item.status,
            item.created,
            item.last_activity,
            item.expires,
            item.client_addr,
            agent
        )?;
    }
    writeln!(out, "{} session(s).", items.len())
}

fn revoke(settings: &Settings, id: &str) -> anyhow::Result<()> {
    let conn = open_db(settings)?;
    if id.len() == web_sessions::KEY_TEXT_LEN
        && let Some(key_hash) = KeyHash::from_hex(id)
    {
        for session in web_sessions::find_by_hashes(&conn, &[key_hash])? {
            if web_sessions::delete(&conn, &session)? {
                say!("Deleted web session `{}`.", key_hash.fingerprint());
                return Ok(());
            }
        }
        // A 64-hex value might be a cookie's key pasted by mistake: name it
        // by its start only, so that a key is never printed whole.
        anyhow::bail!("no session with id `{}…`", &id[..12]);
    }
    if jwt_sessions::revoke(&conn, id, SystemClock.now(), None)? {
        say!("Revoked JWT session `{id}`.");
        return Ok(());
    }
    let shown: String = id.chars().filter(|c| !c.is_control()).take(80).collect();
    anyhow::bail!("no session with id `{shown}`")
}

fn end_user(settings: &Settings, username: &str) -> anyhow::Result<()> {
    let conn = open_db(settings)?;
    let user = accounts::require_user(&conn, username)?;
    let ended = accounts::end_all_sessions(&conn, user.id, SystemClock.now(), None)?;
    say!(
        "Ended all sessions of `{}`: deleted {} web session(s) and revoked {} GraphQL login session(s).",
        user.username,
        ended.web,
        ended.jwt
    );
    Ok(())
}
