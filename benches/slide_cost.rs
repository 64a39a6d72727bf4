//! What a slide costs SQLite, and where: `cargo bench --bench slide_cost`.
//!
//! A slide (`web_sessions::save`) is a one-row `UPDATE` of `expire_date`
//! and `last_activity`, yet on the HTTP bench's slide passes it costs far
//! more than a look-up. This bench takes the HTTP stack away: one writer
//! thread, on a connection opened as the server opens its own, commits
//! slides of random sessions out of 10,000 as fast as it can, in groups of
//! 1, 4 and 16 per transaction (what `slides::SlideQueue` makes), for 3 s
//! each, and reports slides per second and the process's CPU per slide.
//!
//! It runs that on the schema as it is, then on copies of it with the
//! index on the expiry alone that migration 7 dropped
//! (`web_sessions_expire_date`), without the one index left that holds the
//! expiry (`web_sessions_user_expiry`, which the cleanup and the expired
//! listings need), and with `wal_autocheckpoint` at 10,000 pages instead
//! of SQLite's 1,000. Every index holding the expiry is a B-tree entry
//! moved on each slide: the rows show what each costs, and how much of a
//! slide is the checkpoints' writes and `fsync`s rather than the `UPDATE`.
//! Those variants are experiments, never the schema: this is the one bench
//! that writes its own SQL.
//!
//! It is not part of the HTTP bench's targets; the README's "Where a
//! slide's time goes" quotes a run of it.

use std::path::Path;
use std::time::{Duration, Instant};

use sessiond::db::{self, Behavior, Conn};
use sessiond::users::{self, Role};
use sessiond::web_sessions::{self, KeyHash, Lifetime};

const SESSIONS: usize = 10_000;
const GROUP_SIZES: [usize; 3] = [1, 4, 16];
const RUN: Duration = Duration::from_secs(3);
const NOW: i64 = 2_000_000_000;

/// A schema variant: SQL run on the seeded database, and the checkpoint
/// threshold.
struct Variant {
    name: &'static str,
    sql: &'static str,
    autocheckpoint_pages: Option<u32>,
}

const VARIANTS: [Variant; 4] = [
    Variant { name: "the schema as it is", sql: "", autocheckpoint_pages: None },
    Variant {
        name: "with web_sessions_expire_date (before migration 7)",
        sql: "CREATE INDEX web_sessions_expire_date ON web_sessions(expire_date)",
        autocheckpoint_pages: None,
    },
    Variant {
        name: "without web_sessions_user_expiry either",
        sql: "DROP INDEX web_sessions_user_expiry",
        autocheckpoint_pages: None,
    },
    Variant {
        name: "the schema as it is, wal_autocheckpoint=10000",
        sql: "",
        autocheckpoint_pages: Some(10_000),
    },
];

fn main() -> anyhow::Result<()> {
    println!(
        "slide cost: one writer, {SESSIONS} sessions (one per user), random rows, {} s per row\n",
        RUN.as_secs()
    );
    println!(
        "| variant | slides per commit | slides/s | CPU µs per slide | WAL at the end (KiB) |"
    );
    println!("|---|---:|---:|---:|---:|");
    for variant in &VARIANTS {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("db.sqlite3");
        let sessions = seed(&path)?;
        let conn = db::connect(&path)?;
        conn.execute_batch(variant.sql)?;
        if let Some(pages) = variant.autocheckpoint_pages {
            conn.execute_batch(&format!("PRAGMA wal_autocheckpoint = {pages}"))?;
        }
        let mut expiry = NOW + 7200;
        for group in GROUP_SIZES {
            let cpu_before = cpu_seconds()?;
            let started = Instant::now();
            let mut slides = 0usize;
            let mut next = 0usize;
            while started.elapsed() < RUN {
                expiry += 1;
                let transaction = conn.transaction(Behavior::Immediate)?;
                for _ in 0..group {
                    // A stride prime to the count: every row, in no order.
                    next = (next + 7919) % SESSIONS;
                    let (row_id, key_hash) = &sessions[next];
                    web_sessions::save(&transaction, *row_id, key_hash, expiry, NOW)?;
                }
                transaction.commit()?;
                slides += group;
            }
            let seconds = started.elapsed().as_secs_f64();
            let cpu = cpu_seconds()? - cpu_before;
            let wal = std::fs::metadata(dir.path().join("db.sqlite3-wal")).map_or(0, |m| m.len());
            println!(
                "| {} | {group} | {:.0} | {:.1} | {} |",
                variant.name,
                slides as f64 / seconds,
                cpu * 1e6 / slides as f64,
                wal / 1024
            );
        }
    }
    Ok(())
}

/// A database with one web session for each of `SESSIONS` users, made
/// through the modules that own the tables; the sessions' row ids and key
/// hashes.
fn seed(path: &Path) -> anyhow::Result<Vec<(i64, KeyHash)>> {
    let conn: Conn = db::open(path)?;
    let hash = users::hash_password("a-long-password");
    let lifetime = Lifetime { idle: 7200, absolute: 0 };
    let transaction = conn.transaction(Behavior::Immediate)?;
    let mut sessions = Vec::with_capacity(SESSIONS);
    for number in 0..SESSIONS {
        let name = format!("user-{number}");
        let user =
            users::create_with_password_hash(&transaction, &name, "", &hash, Role::User, NOW)?;
        let (_, session) = web_sessions::create(&transaction, &user, lifetime, NOW, "", "")?;
        sessions.push((session.row_id, session.key_hash));
    }
    transaction.commit()?;
    Ok(sessions)
}

/// The CPU time this process has used, user and system, in seconds.
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        let field = fields.get(index).ok_or_else(|| anyhow::anyhow!("short /proc/self/stat"))?;
        Ok(field.parse::<f64>()?)
    };
    // utime and stime, fields 14 and 15 of the line, 12 and 13 here.
    let clock_ticks_per_second = 100.0;
    Ok((ticks(11)? + ticks(12)?) / clock_ticks_per_second)
}
