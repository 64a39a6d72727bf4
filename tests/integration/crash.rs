//! Crash safety (SPEC 8): a real `sessiond serve` is killed with SIGKILL in
//! the middle of logins and revocations, restarted on the same file, and
//! everything it acknowledged is still so: the file passes
//! `PRAGMA integrity_check`, every login whose response arrived still works,
//! every revocation or logout whose response arrived still holds. A login
//! whose logout was sent but not answered may be either (see
//! [`Acknowledged`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Response, ServeProcess, parse_response, prepare_database};

const LOGIN: &str =
    "mutation ($u: String!, $p: String!) { login(username: $u, password: $p) { token } }";

/// One request that may fail (the server can die at any moment): `None`
/// when no whole response arrived.
fn try_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<Response> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(raw.as_bytes()).ok()?;
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).ok()?;
    let response = parse_response(&bytes)?;
    let length: usize = response.header("content-length")?.parse().ok()?;
    (response.body.len() == length).then_some(response)
}

fn graphql(
    addr: SocketAddr,
    query: &str,
    variables: serde_json::Value,
    token: Option<&str>,
) -> Option<Response> {
    let body = serde_json::json!({ "query": query, "variables": variables }).to_string();
    let authorization = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(authorization.iter().map(|value| ("Authorization", value.as_str())));
    try_request(addr, "POST", "/graphql", &headers, &body)
}

/// What the server acknowledged before it died.
///
/// A logout sent but not answered leaves its session in doubt: the server
/// may have committed the logout and died before its answer went out, so
/// the session is neither acknowledged live nor acknowledged ended, and is
/// checked only for an answer of one or the other.
#[derive(Default)]
struct Acknowledged {
    live_cookies: Vec<String>,
    ended_cookies: Vec<String>,
    live_tokens: Vec<String>,
    revoked_tokens: Vec<String>,
    in_doubt_cookies: Vec<String>,
    in_doubt_tokens: Vec<String>,
}

/// Web logins, every other one followed by a logout, until the server dies.
fn web_load(addr: SocketAddr, acknowledged: &Mutex<Acknowledged>) {
    let body = "username=alice&password=alice-password";
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    for round in 0.. {
        let Some(login) = try_request(addr, "POST", "/login", &form, body) else { return };
        assert_eq!(login.status, 303, "{}", login.body);
        let cookie = login.cookie_value("sessionid").expect("a cookie");
        acknowledged.lock().unwrap().live_cookies.push(cookie.clone());
        if round % 2 == 1 {
            let header = format!("sessionid={cookie}");
            let Some(logout) = try_request(addr, "POST", "/logout", &[("Cookie", &header)], "")
            else {
                let mut acknowledged = acknowledged.lock().unwrap();
                acknowledged.live_cookies.retain(|live| *live != cookie);
                acknowledged.in_doubt_cookies.push(cookie);
                return;
            };
            assert_eq!(logout.status, 303);
            let mut acknowledged = acknowledged.lock().unwrap();
            acknowledged.live_cookies.retain(|live| *live != cookie);
            acknowledged.ended_cookies.push(cookie);
        }
    }
}

/// API logins, every other token revoked by its `logout`, until the server
/// dies.
fn api_load(addr: SocketAddr, acknowledged: &Mutex<Acknowledged>) {
    for round in 0.. {
        let variables = serde_json::json!({ "u": "bob", "p": "bob-password" });
        let Some(login) = graphql(addr, LOGIN, variables, None) else { return };
        assert_eq!(login.status, 200, "{}", login.body);
        let token = login.json()["data"]["login"]["token"].as_str().expect("a token").to_owned();
        acknowledged.lock().unwrap().live_tokens.push(token.clone());
        if round % 2 == 1 {
            let Some(logout) =
                graphql(addr, "mutation { logout }", serde_json::json!({}), Some(&token))
            else {
                let mut acknowledged = acknowledged.lock().unwrap();
                acknowledged.live_tokens.retain(|live| *live != token);
                acknowledged.in_doubt_tokens.push(token);
                return;
            };
            assert_eq!(logout.json()["data"]["logout"], true, "{}", logout.body);
            let mut acknowledged = acknowledged.lock().unwrap();
            acknowledged.live_tokens.retain(|live| *live != token);
            acknowledged.revoked_tokens.push(token);
        }
    }
}

/// Starts the load threads against `addr`: two sign in and out through the
/// form, two through GraphQL.
fn start_load(
    addr: SocketAddr,
    acknowledged: &Arc<Mutex<Acknowledged>>,
) -> Vec<std::thread::JoinHandle<()>> {
    (0..4)
        .map(|number| {
            let acknowledged = Arc::clone(acknowledged);
            std::thread::spawn(move || {
                if number % 2 == 0 {
                    web_load(addr, &acknowledged)
                } else {
                    api_load(addr, &acknowledged)
                }
            })
        })
        .collect()
}

/// After a crash: the file is sound, and a restarted server honours every
/// acknowledged login, logout and revocation.
#[track_caller]
fn assert_nothing_acknowledged_was_lost(dir: &std::path::Path, acknowledged: &Acknowledged) {
    assert!(
        acknowledged.live_cookies.len()
            + acknowledged.ended_cookies.len()
            + acknowledged.in_doubt_cookies.len()
            >= 4,
        "too little load to mean anything"
    );
    assert!(
        acknowledged.live_tokens.len()
            + acknowledged.revoked_tokens.len()
            + acknowledged.in_doubt_tokens.len()
            >= 4,
        "too little load to mean anything"
    );
    // A SQLite file must pass its own check; PostgreSQL has no file of ours.
    if crate::support::engine() == crate::support::Engine::Sqlite {
        let conn = sessiond::db::connect(&dir.join("sessiond.sqlite3")).expect("the file opens");
        let integrity: String =
            conn.query_row("PRAGMA integrity_check", [], |row| row.get(0)).unwrap();
        assert_eq!(integrity, "ok");
    }

    let restarted = ServeProcess::start(dir, &[]);
    let whoami_cookie = |cookie: &str| {
        restarted.get("/api/whoami", &[("Cookie", &format!("sessionid={cookie}"))]).status
    };
    let whoami_token = |token: &str| {
        restarted.get("/api/whoami", &[("Authorization", &format!("Bearer {token}"))]).status
    };
    for cookie in &acknowledged.live_cookies {
        assert_eq!(whoami_cookie(cookie), 200, "an acknowledged web login was lost");
    }
    for cookie in &acknowledged.ended_cookies {
        assert_eq!(whoami_cookie(cookie), 401, "an acknowledged logout was undone");
    }
    for token in &acknowledged.live_tokens {
        assert_eq!(whoami_token(token), 200, "an acknowledged API login was lost");
    }
    for token in &acknowledged.revoked_tokens {
        assert_eq!(whoami_token(token), 401, "an acknowledged revocation was undone");
    }
    for cookie in &acknowledged.in_doubt_cookies {
        assert!(matches!(whoami_cookie(cookie), 200 | 401), "a web session in doubt");
    }
    for token in &acknowledged.in_doubt_tokens {
        assert!(matches!(whoami_token(token), 200 | 401), "an API login in doubt");
    }
}

#[test]
fn sigkill_under_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    prepare_database(dir.path());
    let mut server = ServeProcess::start(dir.path(), &[]);
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let load = start_load(server.addr, &acknowledged);
    // Let the load run for 2 s and until it has been acknowledged enough
    // to mean something (logins take their turn for a hash slot, so on a
    // busy machine 2 s may hold only a few), then kill in the middle of it.
    let started = Instant::now();
    let enough = |acknowledged: &Acknowledged| {
        acknowledged.live_cookies.len() + acknowledged.ended_cookies.len() >= 6
            && acknowledged.live_tokens.len() + acknowledged.revoked_tokens.len() >= 6
    };
    while started.elapsed() < Duration::from_secs(2)
        || (!enough(&acknowledged.lock().unwrap()) && started.elapsed() < Duration::from_secs(60))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    server.signal_and_wait("KILL");
    for thread in load {
        thread.join().expect("the load threads saw only well-formed answers");
    }
    assert_nothing_acknowledged_was_lost(dir.path(), &acknowledged.lock().unwrap());
}

/// Expired web sessions left in the database (a real clock is used by the
/// processes of this test).
fn expired_web_sessions(conn: &sessiond::db::Conn) -> i64 {
    let now = chrono::Utc::now().timestamp();
    conn.query_row("SELECT count(*) FROM web_sessions WHERE expire_date <= ?1", [now], |row| {
        row.get(0)
    })
    .unwrap()
}

/// Seeds `backlog` expired and `live` live web sessions, starts the load and
/// then `sessiond clear_expired_sessions` beside the server, kills both with
/// SIGKILL once `in_the_middle` says the cleanup is under way, checks that
/// nothing acknowledged was lost and that a second run finishes the job.
/// Returns how many expired sessions the kill left.
fn kill_during_a_cleanup(
    backlog: i64,
    live: i64,
    in_the_middle: impl Fn(&sessiond::db::Conn) -> bool,
) -> i64 {
    let dir = tempfile::tempdir().unwrap();
    let db_path = prepare_database(dir.path());
    {
        let conn = sessiond::db::open(&db_path).unwrap();
        let alice = sessiond::users::find_by_username(&conn, "alice").unwrap().unwrap();
        let now = chrono::Utc::now().timestamp();
        let tx = conn.transaction(sessiond::db::Behavior::Immediate).unwrap();
        for (count, saved, idle) in [(backlog, now - 100_000, 100), (live, now, 100_000)] {
            let lifetime = sessiond::web_sessions::Lifetime { idle, absolute: 0 };
            for _ in 0..count {
                sessiond::web_sessions::create(&tx, &alice, lifetime, saved, "127.0.0.1", "test")
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        assert_eq!(expired_web_sessions(&conn), backlog);
    }
    let mut server = ServeProcess::start(dir.path(), &[]);
    let acknowledged = Arc::new(Mutex::new(Acknowledged::default()));
    let load = start_load(server.addr, &acknowledged);
    // The load gets going first.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let so_far = acknowledged.lock().unwrap();
        let web = so_far.live_cookies.len() + so_far.ended_cookies.len();
        let api = so_far.live_tokens.len() + so_far.revoked_tokens.len();
        if web >= 4 && api >= 4 {
            break;
        }
        drop(so_far);
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut cleanup = std::process::Command::new(env!("CARGO_BIN_EXE_sessiond"))
        .current_dir(dir.path())
        .arg("--db")
        .arg(&db_path)
        .arg("clear_expired_sessions")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run clear_expired_sessions");
    let conn = sessiond::db::connect(&db_path).unwrap();
    let started = Instant::now();
    while !in_the_middle(&conn) && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(1));
    }
    for pid in [cleanup.id(), server.pid()] {
        let _ = std::process::Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
    }
    let _ = cleanup.wait();
    server.signal_and_wait("KILL");
    for thread in load {
        thread.join().expect("the load threads saw only well-formed answers");
    }
    let left = expired_web_sessions(&conn);
    drop(conn);

    assert_nothing_acknowledged_was_lost(dir.path(), &acknowledged.lock().unwrap());
    // A second run finishes the job.
    crate::support::Cli::new(dir.path())
        .args(&["--db", &db_path.display().to_string(), "clear_expired_sessions"])
        .run();
    let conn = sessiond::db::connect(&db_path).unwrap();
    assert_eq!(expired_web_sessions(&conn), 0);
    left
}

/// With more live rows than the cleanup empties a table with, it deletes in
/// batches: a kill lands between two of them.
#[test]
fn sigkill_during_a_batched_cleanup_loses_nothing_acknowledged() {
    crate::support::sqlite_only!("the SQLite file's integrity after a kill mid-cleanup");
    let backlog = 8 * sessiond::cleanup::BATCH_SIZE as i64;
    let live = sessiond::cleanup::KEEP_LIVE_MAX as i64 + 1;
    let left =
        kill_during_a_cleanup(backlog, live, |conn| expired_web_sessions(conn) <= backlog * 3 / 4);
    assert!(
        left > 0 && left < backlog,
        "the kill did not land mid-cleanup: {left} of {backlog} left"
    );
}

/// With few live rows the cleanup empties the table in one transaction: a
/// kill while it holds the write lock must leave every row as it was.
#[test]
fn sigkill_while_a_cleanup_empties_the_table_loses_nothing_acknowledged() {
    crate::support::sqlite_only!("SQLite's emptying of the table in one step");
    // Enough rows that emptying the table holds the lock for many polls (the
    // batch size has nothing to do with this way of cleaning).
    let backlog = 80_000;
    // The server's own writes hold the lock for well under a millisecond;
    // the cleanup's transaction holds it for longer than five polls.
    let busy_polls = std::cell::Cell::new(0);
    let left = kill_during_a_cleanup(backlog, 0, |conn| {
        let free =
            sessiond::db::unless_busy(conn, |conn| conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK"))
                .unwrap();
        busy_polls.set(if free.is_some() { 0 } else { busy_polls.get() + 1 });
        busy_polls.get() >= 5
    });
    assert_eq!(left, backlog, "a cleanup killed in its transaction deletes nothing");
}
