//! How fast the admin pages answer with a big database: 1,000,000 web
//! sessions and 100,000 JWT sessions in one SQLite file.
//!
//! Run with `cargo bench --bench admin`. It seeds a temporary database
//! through the session modules' own `create` functions (one transaction,
//! cached statements), starts the real server in-process on 127.0.0.1:0,
//! signs in as an admin over HTTP, and times each page: the first request
//! and the median of several more, printed as a table. It sends requests to
//! the loopback address only, a bounded number of times.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use sessiond::clock::{Clock, SystemClock};
use sessiond::settings::{Overrides, Settings};
use sessiond::startup::{self, StartOptions};
use sessiond::users::{self, Role};
use sessiond::{jwt_sessions, web_sessions};

const WEB_SESSIONS: usize = 1_000_000;
const JWT_SESSIONS: usize = 100_000;
const USERS: usize = 20;
/// Timed requests per page after the first.
const RUNS: usize = 9;

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db_path = dir.path().join("bench.sqlite3");
    let now = SystemClock.now();

    let started = Instant::now();
    seed(&db_path, now)?;
    eprintln!(
        "seeded {WEB_SESSIONS} web and {JWT_SESSIONS} JWT sessions in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let settings = settings_for(&db_path)?;
    let running = startup::start(settings, StartOptions { workers: 4, ..StartOptions::default() })?;
    let addr = running.addr();
    let key = login(addr, "root", "bench-password")?;

    let first_page = get(addr, "/admin/sessions/web", &key)?;
    let next = next_link(&first_page.1).unwrap_or_default();
    let pages = [
        "/admin/".to_owned(),
        "/admin/sessions/web".to_owned(),
        format!("/admin/sessions/web{next}"),
        "/admin/sessions/web?status=active".to_owned(),
        "/admin/sessions/web?status=expired".to_owned(),
        "/admin/sessions/web?user=user-7".to_owned(),
        "/admin/sessions/web?user=user-7&status=expired".to_owned(),
        "/admin/sessions/jwt".to_owned(),
        "/admin/sessions/jwt?status=active".to_owned(),
        "/admin/sessions/jwt?status=revoked".to_owned(),
        "/admin/sessions/jwt?status=expired".to_owned(),
        "/account/sessions".to_owned(),
    ];
    println!("{:<52} {:>7} {:>10} {:>10}", "page", "status", "first ms", "median ms");
    for page in &pages {
        let (status, _, first) = timed_get(addr, page, &key)?;
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            times.push(timed_get(addr, page, &key)?.2);
        }
        times.sort();
        let median = times[RUNS / 2];
        println!(
            "{:<52} {:>7} {:>10.1} {:>10.1}",
            page,
            status,
            first.as_secs_f64() * 1000.0,
            median.as_secs_f64() * 1000.0
        );
    }
    running.stop();
    Ok(())
}

/// Fills the database: users, web sessions created over the last 10 hours
/// with a 9-hour life (so about a tenth have expired), and JWT sessions of
/// the last day with a 15-minute life (most expired, one in a hundred
/// revoked), as a day between two cleanups looks.
fn seed(db_path: &Path, now: i64) -> anyhow::Result<()> {
    let conn = sessiond::db::open(db_path)?;
    users::create(&conn, "root", "", "bench-password", Role::Admin, now)?;
    let mut people = Vec::new();
    for n in 0..USERS {
        people.push(users::create(&conn, &format!("user-{n}"), "", "password", Role::User, now)?);
    }
    let tx = conn.transaction(sessiond::db::Behavior::Immediate)?;
    let lifetime = web_sessions::Lifetime { idle: 9 * 3600, absolute: 0 };
    for n in 0..WEB_SESSIONS {
        let created = now - 10 * 3600 + (n as i64 * 10 * 3600) / WEB_SESSIONS as i64;
        let agent = format!("Mozilla/5.0 (X11; Linux x86_64) Bench/{}", n % 97);
        web_sessions::create(&tx, &people[n % USERS], lifetime, created, "203.0.113.9", &agent)?;
    }
    for n in 0..JWT_SESSIONS {
        let created = now - 24 * 3600 + (n as i64 * 24 * 3600) / JWT_SESSIONS as i64;
        let jti = uuid::Uuid::new_v4().to_string();
        let user = &people[n % USERS];
        jwt_sessions::create(&tx, &jti, user.id, created, created + 900, "203.0.113.9", "curl/8")?;
        if n % 100 == 0 {
            jwt_sessions::revoke(&tx, &jti, created + 60, None)?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn settings_for(db_path: &Path) -> anyhow::Result<Settings> {
    // No access log: it would interleave with the report on stderr.
    let file = vec![
        ("SESSIOND_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("SESSIOND_ACCESS_LOG".to_owned(), "false".to_owned()),
    ];
    let overrides = Overrides { db: Some(db_path.to_path_buf()), bind: None };
    Settings::resolve(Path::new(".env"), &file, |_| None, &overrides)
}

fn login(addr: SocketAddr, username: &str, password: &str) -> anyhow::Result<String> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", username)
        .append_pair("password", password)
        .finish();
    let head = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let response = exchange(addr, head.as_bytes())?;
    let cookie = response
        .lines()
        .find_map(|line| line.strip_prefix("Set-Cookie: sessionid="))
        .and_then(|rest| rest.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("login failed"))?;
    Ok(cookie.to_owned())
}

fn timed_get(addr: SocketAddr, path: &str, key: &str) -> anyhow::Result<(u16, String, Duration)> {
    let started = Instant::now();
    let (status, body) = get(addr, path, key)?;
    Ok((status, body, started.elapsed()))
}

fn get(addr: SocketAddr, path: &str, key: &str) -> anyhow::Result<(u16, String)> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nCookie: sessionid={key}\r\n\r\n"
    );
    let response = exchange(addr, head.as_bytes())?;
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    Ok((status, body))
}

fn exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(request)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// The `?...` of the page's `Next` link.
fn next_link(body: &str) -> Option<String> {
    let end = body.find(r#"">Next</a>"#)?;
    let href = body[..end].rsplit("href=\"").next()?;
    let query = href.split_once('?')?.1;
    Some(format!("?{}", query.replace("&amp;", "&")))
}
