//! Test helpers: an in-process server with a manual clock and a temporary
//! database, a small HTTP client, and [`Cli`], a run of the built binary
//! that fails the test on an unexpected exit status or stderr output.
//!
//! The engine: the suite runs on SQLite files, and with
//! `SESSIOND_TEST_ENGINE=postgres` on PostgreSQL (see [`engine`]). Tests
//! name their databases by path as ever; on PostgreSQL every such path
//! stands for a fresh database of its own on the shared throwaway cluster
//! ([`db_for`]), and support hands that database's URL wherever the path
//! went: the settings of [`TestServer`], `--db` and `SESSIOND_DB` of
//! [`Cli`] and [`ServeProcess`], [`open_db`] and [`TestServer::conn`]. A
//! test about SQLite itself (the file, WAL, backup, modes) opens with
//! [`sqlite_only!`]; a test about PostgreSQL itself with
//! [`postgres_only!`]. Support never reads or writes a table but through
//! sessiond's own functions and `db` connections.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use sessiond::clock::ManualClock;
use sessiond::settings::{Overrides, PostgresUrl, Settings};
use sessiond::startup::{self, Running, StartOptions};
use sessiond::users::{self, Role, User};

/// 2026-11-27T12:00:00Z; tests start their clocks here.
pub const START: i64 = 1_795_780_800;

/// The engine of the suite's databases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// `SESSIOND_TEST_ENGINE`: unset or `sqlite` for SQLite files, `postgres`
/// for databases on a throwaway PostgreSQL cluster (`pg_cluster`). Asked
/// for PostgreSQL where it is not installed: with CI=true the test fails,
/// on a developer's machine it says loudly (once) that the PostgreSQL half
/// did not run, and the tests run on SQLite.
pub fn engine() -> Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    *ENGINE.get_or_init(|| match std::env::var("SESSIOND_TEST_ENGINE").as_deref() {
        Err(_) | Ok("" | "sqlite") => Engine::Sqlite,
        Ok("postgres") => {
            let half = "the PostgreSQL half of the suite (SESSIOND_TEST_ENGINE=postgres; its \
                        tests ran on SQLite instead)";
            if crate::pg_cluster::installed(half) { Engine::Postgres } else { Engine::Sqlite }
        }
        Ok(other) => {
            panic!("`SESSIOND_TEST_ENGINE` is `{other}`: expected `sqlite` or `postgres`")
        }
    })
}

/// Where the database a test names by `path` is, as `--db` takes it: on
/// SQLite the path itself; on PostgreSQL the URL of a database of its own
/// on the shared cluster, made the first time the path is named, the same
/// URL ever after. A PostgreSQL URL is left as it is.
pub fn db_for(path: &Path) -> String {
    let text = path.to_str().expect("a UTF-8 database path");
    let a_url = !matches!(PostgresUrl::parse(text), Ok(None));
    if engine() == Engine::Sqlite || a_url {
        return text.to_owned();
    }
    static DATABASES: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let mut databases = DATABASES.get_or_init(Mutex::default).lock().unwrap();
    let url = databases
        .entry(path.to_path_buf())
        .or_insert_with(|| crate::pg_cluster::shared().new_database());
    url.clone()
}

/// Opens (creating and migrating) the database a test names by `path`,
/// on the suite's engine: what `sessiond::db::open` is to a file.
#[track_caller]
pub fn open_db(path: &Path) -> sessiond::db::Conn {
    sessiond::db::open(Path::new(&db_for(path))).expect("open the test database")
}

/// A new connection (not migrated) to the database a test names by `path`.
#[track_caller]
pub fn connect_db(path: &Path) -> sessiond::db::Conn {
    sessiond::db::connect(Path::new(&db_for(path))).expect("connect to the test database")
}

/// Whether a test about SQLite itself should stop here: on PostgreSQL it
/// says (one line, past the output capture) that it was skipped and why.
pub fn skipped_on_postgres(why: &str) -> bool {
    if engine() == Engine::Sqlite {
        return false;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(std::io::stderr(), "skipped on PostgreSQL: {test}: {why}");
    true
}

/// Whether a test about PostgreSQL itself should stop here: it runs in the
/// PostgreSQL half (`SESSIOND_TEST_ENGINE=postgres`), and says so in the
/// SQLite half.
pub fn skipped_on_sqlite() -> bool {
    if engine() == Engine::Postgres {
        return false;
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(
        std::io::stderr(),
        "runs in the PostgreSQL half only (SESSIOND_TEST_ENGINE=postgres): {test}"
    );
    true
}

/// The first line of a test about SQLite itself (its file, WAL, pragmas,
/// `backup`, file modes): on PostgreSQL it returns, saying so.
macro_rules! sqlite_only {
    ($why:literal) => {
        if crate::support::skipped_on_postgres($why) {
            return;
        }
    };
}
pub(crate) use sqlite_only;

/// The first line of a test about PostgreSQL itself: it runs only in the
/// PostgreSQL half of the suite.
macro_rules! postgres_only {
    () => {
        if crate::support::skipped_on_sqlite() {
            return;
        }
    };
}
pub(crate) use postgres_only;

/// A server started for one test; stopped on drop.
pub struct TestServer {
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    pub db_path: PathBuf,
    /// The database as the server was given it: [`db_for`] of `db_path`,
    /// or the location [`TestServer::start_at`] took as it is.
    pub db_location: String,
    pub addr: SocketAddr,
    pub settings: Settings,
    /// The metrics listener's address, when `SESSIOND_METRICS_BIND` is set.
    pub metrics_addr: Option<SocketAddr>,
    /// What the workers wrote to the access log (kept in memory so that
    /// servers of parallel tests do not write over one stderr).
    pub access_log: Arc<std::sync::Mutex<Vec<u8>>>,
    running: Option<Running>,
}

impl TestServer {
    /// A server with the fallback settings.
    #[track_caller]
    pub fn start() -> TestServer {
        TestServer::start_with(&[])
    }

    /// A server with these settings, as if from the `.env` file.
    #[track_caller]
    pub fn start_with(settings: &[(&str, &str)]) -> TestServer {
        TestServer::start_in(tempfile::tempdir().expect("temp dir"), settings)
    }

    /// A server whose database lives in `dir` (e.g. a folder on a small
    /// file system made for the test).
    #[track_caller]
    pub fn start_in(dir: tempfile::TempDir, settings: &[(&str, &str)]) -> TestServer {
        let db_path = dir.path().join("sessiond.sqlite3");
        // Create the schema and a superuser before start, so that no random
        // first-run admin is made.
        let conn = open_db(&db_path);
        users::create(&conn, "root", "root@example.com", "root-password", Role::Admin, START)
            .expect("create root");
        drop(conn);
        let settings = settings_for(&db_path, settings);
        let db_location = db_for(&db_path);
        TestServer::launch(dir, db_path, db_location, settings, START)
    }

    /// The access log lines written so far.
    pub fn access_log_lines(&self) -> Vec<String> {
        let bytes = self.access_log.lock().unwrap().clone();
        String::from_utf8(bytes).expect("UTF-8 log").lines().map(str::to_owned).collect()
    }

    /// Another server on this server's database file, with its own manual
    /// clock set to this one's time (several servers on one file, SPEC 11).
    #[track_caller]
    pub fn another_on_the_same_file(&self) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let (db_path, db_location) = (self.db_path.clone(), self.db_location.clone());
        TestServer::launch(dir, db_path, db_location, self.settings.clone(), self.clock_now())
    }

    /// A server on an existing database file as it is (no user is added),
    /// e.g. one that `sessiond import` filled; its clock starts at [`START`].
    #[track_caller]
    pub fn start_on_file(db_path: &Path, settings: &[(&str, &str)]) -> TestServer {
        let mut server = TestServer::start_at(&db_for(db_path), settings);
        server.db_path = db_path.to_path_buf();
        server
    }

    /// A server on the database at `location` taken as it is, never put on
    /// the suite's engine (a SQLite path stays a file, a URL a PostgreSQL
    /// database), with no user added; its clock starts at [`START`]. For
    /// the tests that move an installation from one engine to the other.
    #[track_caller]
    pub fn start_at(location: &str, settings: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = settings_at(location, settings);
        TestServer::launch(dir, PathBuf::from(location), location.to_owned(), settings, START)
    }

    /// Starts the server every constructor above describes: 4 workers, a
    /// manual clock at `clock_start`, the access log kept in memory.
    #[track_caller]
    fn launch(
        dir: tempfile::TempDir,
        db_path: PathBuf,
        db_location: String,
        settings: Settings,
        clock_start: i64,
    ) -> TestServer {
        let clock = Arc::new(ManualClock::new(clock_start));
        let access_log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let options = StartOptions {
            clock: clock.clone(),
            workers: 4,
            access_log: sessiond::http::access_log::Destination::Memory(access_log.clone()),
            ..StartOptions::default()
        };
        let running = startup::start(settings.clone(), options).expect("server starts");
        let (addr, metrics_addr) = (running.addr(), running.metrics_addr());
        TestServer {
            clock,
            dir,
            db_path,
            db_location,
            addr,
            settings,
            metrics_addr,
            access_log,
            running: Some(running),
        }
    }

    /// What the running server's threads share.
    pub fn app(&self) -> &Arc<sessiond::app::App> {
        self.running.as_ref().expect("a running server").app()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A new connection to the server's database.
    pub fn conn(&self) -> sessiond::db::Conn {
        sessiond::db::connect(Path::new(&self.db_location)).expect("connect to the database")
    }

    /// The server's database as `--db` takes it (see [`db_for`]).
    pub fn db(&self) -> String {
        self.db_location.clone()
    }

    /// Creates a user with this password.
    pub fn create_user(&self, username: &str, password: &str, role: Role) -> User {
        users::create(&self.conn(), username, "", password, role, self.clock_now())
            .expect("create user")
    }

    pub fn clock_now(&self) -> i64 {
        use sessiond::clock::Clock;
        self.clock.now()
    }

    /// Moves the server's clock.
    pub fn advance(&self, seconds: i64) {
        self.clock.advance(seconds);
    }

    /// Signs in through the form and returns the session cookie's value.
    #[track_caller]
    pub fn login(&self, username: &str, password: &str) -> String {
        let response =
            self.post_form("/login", &[("username", username), ("password", password)], &[]);
        assert_eq!(response.status, 303, "login of {username} failed: {}", response.body);
        response.cookie_value("sessionid").expect("login sets the session cookie")
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "GET", path, headers, b"")
    }

    pub fn get_with_cookie(&self, path: &str, cookie: &str) -> Response {
        let header = format!("sessionid={cookie}");
        request(self.addr, "GET", path, &[("Cookie", &header)], b"")
    }

    pub fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        post_form(self.addr, path, fields, headers)
    }

    pub fn post_json(
        &self,
        path: &str,
        json: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Response {
        let mut all = vec![("Content-Type", "application/json")];
        all.extend_from_slice(headers);
        request(self.addr, "POST", path, &all, json.to_string().as_bytes())
    }

    /// Stops the server now (it is also stopped on drop).
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Settings for a test database, from `.env`-style pairs.
pub fn settings_for(db_path: &Path, pairs: &[(&str, &str)]) -> Settings {
    settings_at(&db_for(db_path), pairs)
}

/// Settings for the database at `location` taken as it is (a path or a
/// URL), from `.env`-style pairs.
pub fn settings_at(location: &str, pairs: &[(&str, &str)]) -> Settings {
    let mut file: Vec<(String, String)> =
        pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
    file.push(("SESSIOND_BIND".into(), "127.0.0.1:0".into()));
    let overrides = Overrides { db: Some(PathBuf::from(location)), bind: None };
    Settings::resolve(Path::new(".env"), &file, |_| None, &overrides).expect("valid test settings")
}

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names in lowercase, every value in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(header, _)| *header == name).map(|(_, value)| value.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(header, _)| *header == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The `Set-Cookie` header for a cookie name, if any.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}=");
        self.headers_named("set-cookie").into_iter().find(|value| value.starts_with(&prefix))
    }

    /// The value a `Set-Cookie` gives a cookie, if any.
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        let header = self.set_cookie(name)?;
        let pair = header.split(';').next()?;
        Some(pair[name.len() + 1..].to_owned())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// POSTs an HTML form (`application/x-www-form-urlencoded`).
pub fn post_form(
    addr: SocketAddr,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> Response {
    let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(fields).finish();
    let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
    all.extend_from_slice(headers);
    request(addr, "POST", path, &all, body.as_bytes())
}

/// Sends one HTTP/1.1 request on a new connection and reads the response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    request_to_host(addr, &addr.to_string(), method, path, headers, body)
}

/// [`request`] with another `Host` header (a name a proxy routes on).
pub fn request_to_host(
    addr: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if method == "POST" || !body.is_empty() {
        raw.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    let response = send_raw(addr, &bytes);
    parse_response(&response)
        .unwrap_or_else(|| panic!("unparseable response: {:?}", String::from_utf8_lossy(&response)))
}

/// Whether a neighbour a test starts (chromium, nginx, caddy, promtool) is
/// installed. `.ci/run` installs them, so with CI=true a missing one fails
/// the test; on a developer's machine (where `cargo test` must work with
/// nothing installed by hand) the test does not run and says so on the
/// terminal, written to stderr past the harness's output capture.
#[track_caller]
pub fn installed(binary: &str, package: &str, test: &str) -> bool {
    if Path::new(binary).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{binary} is missing on CI: .ci/run must install it (`apt-get install -y {package}`)"
        );
    }
    let _ = writeln!(
        std::io::stderr(),
        "\nWARNING: {test} did NOT run: {binary} is missing. Install it with \
         `apt-get install -y {package}` (as root) to run it; CI always does.\n"
    );
    false
}

/// Writes raw bytes to the server and reads until it closes the connection.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = stream.write_all(bytes);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    response
}

/// Parses a raw HTTP/1.1 response: a Content-Length body, or a chunked
/// one (tiny_http chunks bodies over 32 KiB), decoded.
pub fn parse_response(raw: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(body.len());
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(body)?
    } else {
        body.get(..length.min(body.len())).unwrap_or(body).to_owned()
    };
    Some(Response { status, headers, body })
}

/// The payload of a chunked body: each chunk is `SIZE-IN-HEX\r\nDATA\r\n`,
/// and a chunk of size 0 ends it.
fn dechunk(mut rest: &str) -> Option<String> {
    let mut body = String::new();
    loop {
        let (size_line, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        body.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// One run of the built binary, described the way just's `tests/test.rs`
/// describes one: by default it must exit 0 and print nothing to stderr, so
/// that an unexpected warning fails the test. `.status(1)` expects SPEC 1's
/// single `error: ...` line, `.status(2)` a usage error (any stderr);
/// `.stderr_contains` and `.stderr_any` declare stderr output that is part of
/// the behaviour under test. No run may print a panic. The environment is
/// the test's minus every `DJANGO_*` and `SESSIOND_*` variable, plus
/// `.env(...)`; stdin is empty unless `.stdin(...)` gives it.
#[must_use = "a `Cli` does nothing until `.run()`"]
pub struct Cli {
    dir: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    stdout_closed: bool,
    status: i32,
    stderr_any: bool,
    stderr_needles: Vec<String>,
    db_as_given: bool,
}

/// What a [`Cli`] run printed.
#[derive(Debug, Clone)]
pub struct CliOutput {
    pub stdout: String,
    pub stderr: String,
}

impl Cli {
    /// A run of `sessiond` with `dir` as its working directory.
    pub fn new(dir: &Path) -> Cli {
        Cli {
            dir: dir.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            stdout_closed: false,
            status: 0,
            stderr_any: false,
            stderr_needles: Vec::new(),
            db_as_given: false,
        }
    }

    /// Takes `--db` and `SESSIOND_DB` as they are, never putting them on the
    /// suite's engine ([`db_for`]): a SQLite path stays a file.
    pub fn db_as_given(mut self) -> Cli {
        self.db_as_given = true;
        self
    }

    pub fn arg(mut self, arg: &str) -> Cli {
        self.args.push(arg.to_owned());
        self
    }

    pub fn args(mut self, args: &[&str]) -> Cli {
        self.args.extend(args.iter().map(|arg| arg.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Cli {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn envs(mut self, pairs: &[(&str, &str)]) -> Cli {
        self.env.extend(pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())));
        self
    }

    /// Text piped to the command's stdin (else stdin is `/dev/null`).
    pub fn stdin(mut self, text: &str) -> Cli {
        self.stdin = Some(text.to_owned());
        self
    }

    /// Runs the command with a stdout whose reading end is already closed,
    /// as when the reader of `sessiond config | head -1` has gone; the
    /// returned stdout is empty.
    pub fn stdout_closed(mut self) -> Cli {
        self.stdout_closed = true;
        self
    }

    /// The exit status expected instead of 0. With 1, stderr must be one
    /// line starting with `error: `; with any other, stderr may hold
    /// anything.
    pub fn status(mut self, status: i32) -> Cli {
        self.status = status;
        self
    }

    /// Stderr must contain `needle` (and, on exit 0, may hold more).
    pub fn stderr_contains(mut self, needle: &str) -> Cli {
        self.stderr_needles.push(needle.to_owned());
        self
    }

    /// Stderr may hold anything, even on exit 0 or 1.
    pub fn stderr_any(mut self) -> Cli {
        self.stderr_any = true;
        self
    }

    /// Runs the command, checks every expectation, and returns its stdout.
    #[track_caller]
    pub fn run(self) -> String {
        self.output().stdout
    }

    /// Runs the command, checks every expectation, and returns its stdout
    /// and stderr.
    #[track_caller]
    pub fn output(self) -> CliOutput {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
        if self.db_as_given {
            command.current_dir(&self.dir).args(&self.args);
        } else {
            command.current_dir(&self.dir).args(on_the_engine(&self.dir, &self.args, &self.env));
        }
        for (key, _) in std::env::vars() {
            if key.starts_with("DJANGO_") || key.starts_with("SESSIOND_") {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(key, value)| match key.as_str() {
            "SESSIOND_DB" if !self.db_as_given => (key.clone(), db_in(&self.dir, value)),
            _ => (key.clone(), value.clone()),
        }));
        command.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        if self.stdout_closed {
            let (reader, writer) = std::io::pipe().expect("a pipe");
            drop(reader);
            command.stdout(writer);
        } else {
            command.stdout(Stdio::piped());
        }
        command.stderr(Stdio::piped());
        let mut child = command.spawn().expect("run sessiond");
        if let Some(input) = &self.stdin {
            // A command that exits before reading its stdin closes the pipe;
            // its status then tells what happened.
            let _ = child.stdin.take().expect("piped stdin").write_all(input.as_bytes());
        }
        let output = child.wait_with_output().expect("sessiond finishes");
        self.check(&output)
    }

    #[track_caller]
    fn check(&self, output: &Output) -> CliOutput {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let mut failures = Vec::new();
        if output.status.code() != Some(self.status) {
            failures.push(format!("expected exit status {}, got {}", self.status, output.status));
        }
        if stderr.contains("panicked") {
            failures.push(String::from("it panicked"));
        }
        for needle in &self.stderr_needles {
            if !stderr.contains(needle.as_str()) {
                failures.push(format!("stderr does not contain {needle:?}"));
            }
        }
        if !self.stderr_any {
            match self.status {
                0 if self.stderr_needles.is_empty() && !stderr.is_empty() => {
                    failures.push(String::from("expected an empty stderr"));
                }
                1 if stderr.lines().count() != 1 || !stderr.starts_with("error: ") => {
                    failures.push(String::from("expected one line `error: ...` on stderr"));
                }
                _ => {}
            }
        }
        if !failures.is_empty() {
            let env: Vec<String> =
                self.env.iter().map(|(key, value)| format!("{key}={value}")).collect();
            panic!(
                "`sessiond {}` (in {}, env [{}]): {}\n--- status: {}\n--- stdout:\n{stdout}--- stderr:\n{stderr}---",
                self.args.join(" "),
                self.dir.display(),
                env.join(" "),
                failures.join("; "),
                output.status,
            );
        }
        CliOutput { stdout, stderr }
    }
}

/// The arguments with the value of `--db` (a path, relative to `dir` or
/// absolute) put on the suite's engine by [`db_for`]. On PostgreSQL a run
/// that names no database (no `--db`, no `SESSIOND_DB` in `env`) gets the
/// one that stands for the default `data/sessiond.sqlite3` in `dir`, except
/// `init` and `config`, which show where the database is.
pub fn on_the_engine(dir: &Path, args: &[String], env: &[(String, String)]) -> Vec<String> {
    if engine() == Engine::Sqlite {
        return args.to_vec();
    }
    let mut mapped = Vec::with_capacity(args.len() + 2);
    let mut after_db = false;
    let mut named = env.iter().any(|(key, _)| key == "SESSIOND_DB");
    for arg in args {
        if after_db {
            mapped.push(db_in(dir, arg));
        } else if let Some(value) = arg.strip_prefix("--db=") {
            mapped.push(format!("--db={}", db_in(dir, value)));
            named = true;
        } else {
            mapped.push(arg.clone());
        }
        after_db = arg == "--db";
        named |= after_db;
    }
    let shows_the_database = args.iter().any(|arg| arg == "init" || arg == "config");
    if !named && !shows_the_database {
        let default = db_for(&dir.join("data/sessiond.sqlite3"));
        mapped.splice(0..0, [String::from("--db"), default]);
    }
    mapped
}

/// [`db_for`] of a `--db` or `SESSIOND_DB` value given in `dir`: a path
/// relative to it or absolute, or a URL (left as it is).
fn db_in(dir: &Path, value: &str) -> String {
    if engine() == Engine::Sqlite || !matches!(PostgresUrl::parse(value), Ok(None)) {
        return value.to_owned();
    }
    db_for(&dir.join(value))
}

/// Counts rows in a table.
pub fn count(conn: &sessiond::db::Conn, table: &str) -> i64 {
    let tables: HashMap<&str, &str> = [
        ("web_sessions", "SELECT count(*) FROM web_sessions"),
        ("jwt_sessions", "SELECT count(*) FROM jwt_sessions"),
        ("users", "SELECT count(*) FROM users"),
        ("cleanup_runs", "SELECT count(*) FROM cleanup_runs"),
    ]
    .into_iter()
    .collect();
    conn.query_row(tables[table], [], |row| row.get(0)).expect("count")
}

/// Posts a GraphQL request to `/graphql`, with a bearer token when given.
pub fn post_graphql(
    server: &TestServer,
    query: &str,
    variables: serde_json::Value,
    token: Option<&str>,
) -> Response {
    graphql_request(server.addr, query, variables, token)
}

/// Posts a GraphQL request to `/graphql` at `addr`.
pub fn graphql_request(
    addr: SocketAddr,
    query: &str,
    variables: serde_json::Value,
    token: Option<&str>,
) -> Response {
    let body = serde_json::json!({ "query": query, "variables": variables }).to_string();
    let authorization = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend(authorization.iter().map(|value| ("Authorization", value.as_str())));
    request(addr, "POST", "/graphql", &headers, body.as_bytes())
}

/// Logs in through the GraphQL `login` mutation and returns the token.
#[track_caller]
pub fn jwt_login(server: &TestServer, username: &str, password: &str) -> String {
    let response = post_graphql(
        server,
        "mutation ($u: String!, $p: String!) { login(username: $u, password: $p) { token } }",
        serde_json::json!({ "u": username, "p": password }),
        None,
    );
    assert_eq!(response.status, 200, "GraphQL login of {username} failed: {}", response.body);
    let token = response.json()["data"]["login"]["token"].as_str().map(str::to_owned);
    token.unwrap_or_else(|| panic!("no token in {}", response.body))
}

/// A real `sessiond serve` process on `127.0.0.1:0` over a database in
/// `dir`, with its stdout and stderr collected; killed on drop.
pub struct ServeProcess {
    child: std::process::Child,
    pub addr: SocketAddr,
    output: Arc<std::sync::Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl ServeProcess {
    /// Starts `sessiond --db DIR/sessiond.sqlite3 serve --bind 127.0.0.1:0`
    /// and waits for its `listening on` line.
    #[track_caller]
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> ServeProcess {
        let db = dir.join("sessiond.sqlite3");
        let db = db.to_str().expect("a UTF-8 temp path");
        ServeProcess::start_with_args(dir, &["--db", db], env)
    }

    /// Starts `sessiond ARGS serve --bind 127.0.0.1:0` in `dir` (so without
    /// `--db` it uses the default `data/sessiond.sqlite3` there).
    #[track_caller]
    pub fn start_with_args(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> ServeProcess {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
        let named_env: Vec<(String, String)> =
            env.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect();
        command.current_dir(dir).args(on_the_engine(dir, &args, &named_env));
        command.args(["serve", "--bind", "127.0.0.1:0"]);
        for (key, _) in std::env::vars() {
            if key.starts_with("DJANGO_") || key.starts_with("SESSIOND_") {
                command.env_remove(key);
            }
        }
        command.envs(env.iter().map(|(key, value)| match *key {
            "SESSIOND_DB" => (key.to_string(), db_in(dir, value)),
            _ => (key.to_string(), value.to_string()),
        }));
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("run sessiond serve");
        let output = Arc::new(std::sync::Mutex::new(String::new()));
        let (addr_sender, addr_receiver) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let mut readers = Vec::new();
        for (stream, sender) in [
            (Box::new(stdout) as Box<dyn Read + Send>, None),
            (Box::new(stderr) as Box<dyn Read + Send>, Some(addr_sender)),
        ] {
            let output = Arc::clone(&output);
            readers.push(std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if let (Some(sender), Some(addr)) =
                        (&sender, line.strip_prefix("listening on http://"))
                    {
                        let _ = sender.send(addr.to_owned());
                    }
                    let mut output = output.lock().unwrap();
                    output.push_str(&line);
                    output.push('\n');
                }
            }));
        }
        let addr = match addr_receiver.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr.parse().expect("a socket address"),
            Err(_) => {
                let _ = Command::new("kill").arg("-KILL").arg(child.id().to_string()).status();
                let _ = child.wait();
                panic!("sessiond serve did not start: {}", output.lock().unwrap());
            }
        };
        ServeProcess { child, addr, output, readers }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and returns how the process exited.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.stop_with("TERM")
    }

    /// Sends a signal (`TERM`, `INT`) and returns how the process exited.
    pub fn stop_with(&mut self, signal: &str) -> std::process::ExitStatus {
        let _ = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status();
        let status = self.child.wait().expect("wait for sessiond");
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        status
    }

    /// The output once it contains `needle` (lines printed after
    /// `listening on` may still be on their way); panics after 10 s.
    #[track_caller]
    pub fn output_once_it_shows(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let output = self.output();
            if output.contains(needle) {
                return output;
            }
            assert!(std::time::Instant::now() < deadline, "never printed {needle:?}: {output}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the process printed so far, stdout and stderr.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Sends a signal (`KILL`, `TERM`) with `kill` and waits for the exit;
    /// returns all the output.
    pub fn signal_and_wait(&mut self, signal: &str) -> String {
        let _ = Command::new("kill").arg(format!("-{signal}")).arg(self.pid().to_string()).status();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.output()
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        request(self.addr, "GET", path, headers, b"")
    }

    pub fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Response {
        post_form(self.addr, path, fields, headers)
    }

    pub fn post_graphql(
        &self,
        query: &str,
        variables: serde_json::Value,
        token: Option<&str>,
    ) -> Response {
        graphql_request(self.addr, query, variables, token)
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill").arg("-KILL").arg(self.pid().to_string()).status();
            let _ = self.child.wait();
        }
    }
}

/// Makes a database in `dir` with users `alice` and `bob` (password
/// `<name>-password`, role user) and `root` (admin), as `ServeProcess`
/// expects it.
pub fn prepare_database(dir: &Path) -> PathBuf {
    let db_path = dir.join("sessiond.sqlite3");
    let conn = open_db(&db_path);
    let now = chrono::Utc::now().timestamp();
    users::create(&conn, "root", "", "root-password", Role::Admin, now).expect("create root");
    for name in ["alice", "bob"] {
        users::create(&conn, name, "", &format!("{name}-password"), Role::User, now)
            .expect("create user");
    }
    db_path
}

/// Asserts the fixed 401 body of SPEC 5.
#[track_caller]
pub fn assert_invalid_token(response: &Response) {
    assert_eq!(response.status, 401, "{}", response.body);
    assert_eq!(
        response.json(),
        serde_json::json!({"message":"Received invalid authentication token","extensions":{"code":"AuthenticationInvalid"}})
    );
}
