//! `cargo bench --bench http`: sessiond's "who is this?" answer measured
//! side by side with the ceiling of its HTTP stack, in one run (issue 6).
//!
//! The bench starts a bare tiny_http server with sessiond's worker-pool
//! shape (the ceiling), then sessiond itself in-process on a temporary
//! database file, seeded with 10,000 users that each hold one web session and
//! one JWT session, and drives both with `wrk` (2 threads, 32 keep-alive
//! connections, 10 s) through a Lua script that rotates over all 10,000
//! cookies or tokens: ceiling, cookie, bearer, twice, and the ceiling a third
//! time; the table shows the means. It then times `sessiond
//! clear_expired_sessions` (run beside the server, as an operator would) over
//! 1,000,000 expired web sessions and 100,000 expired JWT rows on the idle
//! server, and runs the cookie scenario again with that cleanup started five
//! seconds into it. Before any timing,
//! every cookie and token is checked to answer 200, and the stored expiry is
//! checked to have slid; after the cookie run it is checked again.
//!
//! Seeding and the ceiling run in child processes (this binary, re-executed
//! with a `__seed-*` or `__ceiling` argument), and the cleanup is the real
//! command, so that none of them counts in the peak RSS of the process that
//! hosts sessiond. That peak is the `VmHWM` of this process, reset
//! (`/proc/self/clear_refs`) before each sessiond load phase: it covers the
//! server plus this bench's own small footprint, never wrk. The stored
//! expiries are made to lag before a cookie run by moving the server's clock
//! (the system clock plus an offset) two minutes forward, so that every
//! cookie of the run must be written once. Nothing here writes SQL: rows are
//! made and read through the modules that own their tables.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use sessiond::clock::{Clock, SystemClock, UnixTime};
use sessiond::settings::{Overrides, Settings};
use sessiond::startup::{self, StartOptions};
use sessiond::users::{self, Role, User};
use sessiond::web_sessions::{self, Lifetime};
use sessiond::{db, jwt, jwt_sessions, secrets};

/// Users, each with one live web session and one live JWT session.
const USERS: usize = 10_000;
/// Expired rows for the cleanup scenarios.
const EXPIRED_WEB: usize = 1_000_000;
const EXPIRED_JWT: usize = 100_000;
/// DJANGO_SESSION_COOKIE_AGE and SESSIOND_SESSION_ABSOLUTE_AGE for the run.
const COOKIE_AGE: i64 = 7200;
const ABSOLUTE_AGE: i64 = 2_592_000;
/// How far in the past the live web sessions were last saved: far more than
/// the 60 s the stored expiry may lag, so the first request of each cookie
/// must write.
const SEED_SAVE_AGE: i64 = 600;
/// How far the server's clock jumps before a cookie run, for the same
/// reason: every cookie's stored expiry then lags and must be written again.
const CLOCK_JUMP: i64 = 120;
const JWT_LIFETIME: i64 = 86_400;

const WRK_THREADS: u32 = 2;
const WRK_CONNECTIONS: u32 = 32;
const WRK_SECONDS: u32 = 10;
/// Rounds of the ceiling, cookie and bearer scenarios; the table shows the
/// means.
const ROUNDS: usize = 2;
/// When the cleanup starts in the "during cleanup" scenario, which is the
/// cookie scenario again: half-way through its ten seconds, after the burst
/// of writes that the clock jump causes at its start. The cleanup must end
/// before the run does, so that the run holds all of it; a cleanup that
/// outlasts it fails the bench.
const CLEANUP_START: Duration = Duration::from_secs(5);
/// How far the clock jumps as the cleanup starts: every stored expiry then
/// lags by 45 s, past half of the allowed 60 s, so every session's next
/// request writes (or puts its write off) while the cleanup holds the lock,
/// as sessions in use keep doing all day.
const CLEANUP_CLOCK_JUMP: i64 = 45;
const PATH: &str = "/api/whoami";
const CEILING_BODY: &str =
    r#"{"username":"user00000","role":"user","auth":"session","expires":"2026-11-27T14:00:00Z"}"#;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let outcome = match args.get(1).map(String::as_str) {
        Some("__seed-live") => seed_live(&args[2..]),
        Some("__seed-expired") => seed_expired(&args[2..]),
        Some("__ceiling") => serve_ceiling(&args[2..]),
        _ => run(),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// One wrk run, as the Lua `done()` hook reports it.
#[derive(Debug, Clone, Copy, Default)]
struct WrkResult {
    requests: u64,
    duration_us: u64,
    p50_us: u64,
    p99_us: u64,
    max_us: u64,
    /// Connect, read, write and timeout errors, and responses with a status
    /// of 400 or more (whoami answers only 200 or 4xx/5xx).
    errors: u64,
    /// CPU time of this process (the server) and of wrk, per request.
    server_cpu_us: f64,
    wrk_cpu_us: f64,
}

impl WrkResult {
    fn requests_per_second(&self) -> f64 {
        self.requests as f64 / (self.duration_us as f64 / 1e6)
    }
}

struct Row {
    scenario: &'static str,
    result: Option<WrkResult>,
    note: String,
}

fn run() -> anyhow::Result<ExitCode> {
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!(
            "error: `wrk` is not installed; it drives the load of this benchmark.\n\
             Install it with `sudo apt-get install wrk` (Debian/Ubuntu), `brew install wrk` \
             (macOS) or from https://github.com/wg/wrk, then run `cargo bench --bench http` again."
        );
        return Ok(ExitCode::FAILURE);
    }
    let started_at = chrono::Utc::now();
    let dir = tempfile::tempdir().context("failed to make a temp dir")?;
    let db_path = dir.path().join("sessiond.sqlite3");
    let cookies_path = dir.path().join("cookies.txt");
    let tokens_path = dir.path().join("tokens.txt");
    // The worker count of `sessiond serve`; SESSIOND_BENCH_WORKERS overrides
    // it (for both servers) to compare pool sizes.
    let workers = match std::env::var("SESSIOND_BENCH_WORKERS") {
        Ok(text) => text.parse().context("SESSIOND_BENCH_WORKERS must be a number")?,
        Err(_) => startup::default_workers(),
    };

    eprintln!("seeding {USERS} users, each with one web and one JWT session...");
    let seed_started = Instant::now();
    run_child(&["__seed-live", &path_text(&db_path), &path_text(dir.path())])?;
    eprintln!("  done in {:.1} s", seed_started.elapsed().as_secs_f64());

    let mut rows = Vec::new();
    let mut failures = Vec::new();

    // The ceiling: tiny_http alone, with sessiond's worker-pool shape, in a
    // child process so that it shares nothing with the measured one. It is
    // measured before, between and after [`ROUNDS`] rounds of the sessiond
    // scenarios; the table uses the means, so that the machine's speed,
    // which drifts by 15% within a run here, counts against both sides
    // alike.
    let ceiling = Ceiling::spawn(workers)?;
    eprintln!("ceiling listening on http://{}", ceiling.addr);
    verify_all(ceiling.addr, &cookies_path, "Cookie", "sessionid=", |status, _, _| {
        ensure!(status == 200, "the ceiling answered {status}");
        Ok(())
    })?;
    let cookie_script = write_script(dir.path(), "cookie", &cookies_path, "Cookie", "sessionid=")?;
    let bearer_script =
        write_script(dir.path(), "bearer", &tokens_path, "Authorization", "Bearer ")?;
    eprintln!("running: ceiling (1)");
    let mut ceiling_runs = vec![wrk(ceiling.addr, &cookie_script, ceiling.pid)?];

    // sessiond, in-process, on the seeded file.
    let clock = Arc::new(OffsetClock::default());
    let settings = bench_settings(&db_path);
    let options = StartOptions { clock: clock.clone(), workers, ..StartOptions::default() };
    let running = startup::start(settings, options).context("sessiond did not start")?;
    let addr = running.addr();
    eprintln!("sessiond listening on http://{addr}");
    let lifetime = running.app().lifetime;

    // Every cookie answers 200 and slides its expiry.
    let pass_time = clock.now();
    verify_all(addr, &cookies_path, "Cookie", "sessionid=", |status, headers, body| {
        ensure!(status == 200, "a cookie got {status}");
        ensure!(body.contains(r#""auth":"session""#), "a cookie got `{body}`");
        ensure!(
            headers.iter().any(|h| h.to_ascii_lowercase().starts_with("set-cookie: sessionid=")),
            "a cookie request got no Set-Cookie"
        );
        Ok(())
    })?;
    check_expiry_slid(&db_path, &cookies_path, lifetime, pass_time)?;
    eprintln!("checked: every cookie answers 200 and its stored expiry slid");
    verify_all(addr, &tokens_path, "Authorization", "Bearer ", |status, _, body| {
        ensure!(status == 200, "a bearer token got {status}");
        ensure!(body.contains(r#""auth":"jwt""#), "a token got `{body}`");
        Ok(())
    })?;
    eprintln!("checked: every bearer token answers 200");

    let mut cookie_runs = Vec::new();
    let mut bearer_runs = Vec::new();
    let mut peak_rss = Vec::new();
    for round in 1..=ROUNDS {
        // Cookie whoami: the jump makes every stored expiry lag again, so
        // the run writes each of the 10,000 sessions at least once.
        clock.jump(CLOCK_JUMP);
        let run_time = clock.now();
        eprintln!("running: cookie whoami ({round})");
        let (result, rss) = with_peak_rss(|| wrk(addr, &cookie_script, std::process::id()))?;
        cookie_runs.push(result?);
        peak_rss.push(rss);
        check_expiry_slid(&db_path, &cookies_path, lifetime, run_time)
            .context("the cookie run did not slide every stored expiry")?;

        eprintln!("running: bearer whoami ({round})");
        let (result, rss) = with_peak_rss(|| wrk(addr, &bearer_script, std::process::id()))?;
        bearer_runs.push(result?);
        peak_rss.push(rss);

        eprintln!("running: ceiling ({})", round + 1);
        ceiling_runs.push(wrk(ceiling.addr, &cookie_script, ceiling.pid)?);
    }
    ceiling.stop()?;
    let mut forward_auth = forward_auth_scenarios(
        addr,
        dir.path(),
        &db_path,
        &cookies_path,
        &clock,
        workers,
        &mut failures,
    )?;
    let ceiling_result = mean(&ceiling_runs);
    let cookie_result = mean(&cookie_runs);
    let bearer_result = mean(&bearer_runs);
    rows.push(Row {
        scenario: "ceiling (bare tiny_http)",
        result: Some(ceiling_result),
        note: format!("mean of {}, before, between and after", each_rate(&ceiling_runs)),
    });
    rows.push(Row {
        scenario: "cookie whoami (sliding expiry)",
        result: Some(cookie_result),
        note: format!(
            "mean of {}; all 10,000 stored expiries slid in each",
            each_rate(&cookie_runs)
        ),
    });
    rows.push(Row {
        scenario: "bearer whoami",
        result: Some(bearer_result),
        note: format!("mean of {}", each_rate(&bearer_runs)),
    });
    rows.append(&mut forward_auth.rows);

    // Cleanup of 1.1 M expired rows on the idle server.
    let mut cleanup_idle = None;
    let mut during = None;
    // SESSIOND_BENCH_QUICK=1 skips the cleanup scenarios while tuning the
    // request path; a run for the README never sets it.
    let quick = std::env::var_os("SESSIOND_BENCH_QUICK").is_some();
    if !quick {
        eprintln!("seeding {EXPIRED_WEB} expired web and {EXPIRED_JWT} expired JWT sessions...");
        run_child(&["__seed-expired", &path_text(&db_path), &clock.now().to_string()])?;
        eprintln!("running: cleanup on the idle server");
    }
    let cleanup_outcome = if quick {
        Err(anyhow::anyhow!("skipped (SESSIOND_BENCH_QUICK)"))
    } else {
        timed_cleanup(&db_path)
    };
    match cleanup_outcome {
        Ok((seconds, run)) => {
            cleanup_idle = Some(seconds);
            rows.push(Row {
                scenario: "cleanup, idle (1.1 M rows)",
                result: None,
                note: format!("{seconds:.2} s; cleared {} web + {} JWT", run.web, run.jwt),
            });
            ensure!(
                run.web == EXPIRED_WEB && run.jwt == EXPIRED_JWT,
                "the cleanup cleared {} web and {} JWT rows, not {EXPIRED_WEB} and {EXPIRED_JWT}",
                run.web,
                run.jwt
            );

            // The cookie scenario again, with a cleanup of the same rows
            // started half-way through it.
            eprintln!("seeding the expired rows again...");
            run_child(&["__seed-expired", &path_text(&db_path), &clock.now().to_string()])?;
            clock.jump(CLOCK_JUMP);
            eprintln!("running: cookie whoami during cleanup");
            let (outcome, rss) =
                with_peak_rss(|| cookie_during_cleanup(addr, &cookie_script, &db_path, &clock))?;
            let (result, seconds, run) = outcome?;
            peak_rss.push(rss);
            let covered = CLEANUP_START.as_secs_f64() + seconds < f64::from(WRK_SECONDS);
            if covered {
                during = Some(result);
            } else {
                failures.push(format!(
                    "the cleanup ({seconds:.2} s) outlasted the cookie run it was started in"
                ));
            }
            rows.push(Row {
                scenario: "cookie whoami during cleanup",
                result: Some(result),
                note: format!(
                    "the cleanup started {:.0} s into the run, as the clock moved {} s so \
                     that every session's slide fell due, and took {seconds:.2} s under \
                     load{}, clearing {} web + {} JWT; the wrk CPU figure includes the \
                     cleanup process",
                    CLEANUP_START.as_secs_f64(),
                    CLEANUP_CLOCK_JUMP,
                    if covered { "" } else { " (OUTLASTED the run)" },
                    run.web,
                    run.jwt,
                ),
            });
        }
        Err(error) => {
            failures.push(format!("the cleanup failed: {error:#}"));
            rows.push(Row {
                scenario: "cleanup, idle (1.1 M rows)",
                result: None,
                note: format!("MISSING: {error:#}"),
            });
            rows.push(Row {
                scenario: "cookie whoami during cleanup",
                result: None,
                note: String::from("MISSING: needs the cleanup"),
            });
        }
    }
    running.stop();

    let peak_rss_kib = peak_rss.into_iter().max();
    print_report(&Report {
        started_at,
        workers,
        ceiling: ceiling_result,
        cookie: cookie_result,
        bearer: bearer_result,
        cleanup_idle,
        during,
        peak_rss_kib,
        rows: &rows,
    });
    print_forward_auth(&forward_auth, ceiling_result);
    for failure in &failures {
        eprintln!("error: {failure}");
    }
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The cookie scenario (wrk for [`WRK_SECONDS`]) with a cleanup of the
/// seeded expired rows started [`CLEANUP_START`] into it, right after the
/// clock jumps [`CLEANUP_CLOCK_JUMP`]; returns wrk's figures, the cleanup's
/// wall time and what it cleared.
fn cookie_during_cleanup(
    addr: SocketAddr,
    script: &Path,
    db_path: &Path,
    clock: &OffsetClock,
) -> anyhow::Result<(WrkResult, f64, Cleared)> {
    let cpu_before = Cpu::now(std::process::id())?;
    let child = spawn_wrk(addr, script, WRK_SECONDS)?;
    std::thread::sleep(CLEANUP_START);
    clock.jump(CLEANUP_CLOCK_JUMP);
    let cleanup = timed_cleanup(db_path);
    let result = finish_wrk(child, std::process::id(), cpu_before)?;
    let (seconds, run) = cleanup?;
    Ok((result, seconds, run))
}

/// Runs `sessiond clear_expired_sessions` on the file, as an operator would
/// beside the running server, and returns its wall time and the counts it
/// printed. A separate process, so that the server's peak RSS is the
/// server's alone.
fn timed_cleanup(db_path: &Path) -> anyhow::Result<(f64, Cleared)> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    command.arg("--db").arg(db_path).arg("clear_expired_sessions");
    command.current_dir(db_path.parent().context("the database has a folder")?);
    for (key, _) in std::env::vars() {
        if key.starts_with("DJANGO_") || key.starts_with("SESSIOND_") {
            command.env_remove(key);
        }
    }
    let started = Instant::now();
    let output = command.output().context("failed to run `sessiond clear_expired_sessions`")?;
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "`sessiond clear_expired_sessions` failed: {}{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    // `Cleared N expired web session(s).` then `Cleared M expired GraphQL
    // login session(s).`
    let mut counts = stdout.lines().map(|line| {
        line.strip_prefix("Cleared ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|number| number.parse().ok())
            .with_context(|| format!("unexpected output line `{line}`"))
    });
    let web = counts.next().context("no output from the cleanup")??;
    let jwt = counts.next().context("no second line from the cleanup")??;
    Ok((seconds, Cleared { web, jwt }))
}

/// What a cleanup printed it cleared.
#[derive(Debug, Clone, Copy)]
struct Cleared {
    web: usize,
    jwt: usize,
}

/// The settings of the run, as if from a `.env` file.
fn bench_settings(db_path: &Path) -> Settings {
    let pairs: Vec<(String, String)> = [
        ("DJANGO_SESSION_SAVE_EVERY_REQUEST", "true".to_owned()),
        ("DJANGO_SESSION_EXPIRE_AT_BROWSER_CLOSE", "true".to_owned()),
        ("DJANGO_SESSION_COOKIE_AGE", COOKIE_AGE.to_string()),
        ("SESSIOND_SESSION_ABSOLUTE_AGE", ABSOLUTE_AGE.to_string()),
        ("SESSIOND_JWT_LIFETIME", JWT_LIFETIME.to_string()),
        ("SESSIOND_BIND", "127.0.0.1:0".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let overrides = Overrides { db: Some(db_path.to_path_buf()), bind: None };
    Settings::resolve(Path::new(".env"), &pairs, |_| None, &overrides)
        .expect("the bench settings are valid")
}

fn bench_lifetime() -> Lifetime {
    Lifetime { idle: COOKIE_AGE, absolute: ABSOLUTE_AGE }
}

// ---------------------------------------------------------------------------
// Seeding (child processes)

/// `__seed-live DB DIR`: the users and their live sessions; writes the
/// cookie keys to DIR/cookies.txt and the tokens to DIR/tokens.txt.
fn seed_live(args: &[String]) -> anyhow::Result<ExitCode> {
    let [db_path, dir] = args else { bail!("usage: __seed-live DB DIR") };
    let mut conn = db::open(Path::new(db_path))?;
    let settings = bench_settings(Path::new(db_path));
    let secrets = secrets::resolve(&conn, &settings)?;
    let jwt_key = jwt_simple::algorithms::HS256Key::from_bytes(secrets.jwt_secret_key.as_bytes());
    let now = SystemClock.now();
    // One Argon2 hash for all: the bench never signs in with a password.
    let password_hash = users::hash_password("bench-password-not-used");
    let mut cookies = String::new();
    let mut tokens = String::new();
    let tx = conn.transaction()?;
    for number in 0..USERS {
        let username = format!("user{number:05}");
        let user = users::create_with_password_hash(
            &tx,
            &username,
            "",
            &password_hash,
            Role::User,
            now - SEED_SAVE_AGE,
        )?;
        let (key, _) = web_sessions::create(
            &tx,
            &user,
            bench_lifetime(),
            now - SEED_SAVE_AGE,
            "127.0.0.1",
            "sessiond-bench",
        )?;
        let jti = uuid::Uuid::new_v4().to_string();
        let token = jwt::issue(&jwt_key, &user, &jti, now, now + JWT_LIFETIME)?;
        jwt_sessions::create(
            &tx,
            &jti,
            user.id,
            now,
            now + JWT_LIFETIME,
            "127.0.0.1",
            "sessiond-bench",
        )?;
        writeln!(cookies, "{key}")?;
        writeln!(tokens, "{token}")?;
    }
    tx.commit()?;
    std::fs::write(Path::new(dir).join("cookies.txt"), cookies)?;
    std::fs::write(Path::new(dir).join("tokens.txt"), tokens)?;
    Ok(ExitCode::SUCCESS)
}

/// `__seed-expired DB NOW`: 1,000,000 expired web sessions and 100,000
/// expired JWT rows, spread over the seeded users.
fn seed_expired(args: &[String]) -> anyhow::Result<ExitCode> {
    let [db_path, now] = args else { bail!("usage: __seed-expired DB NOW") };
    let now: UnixTime = now.parse()?;
    let mut conn = db::connect(Path::new(db_path))?;
    // A big page cache only in this short-lived child: the random key hashes
    // make the unique index the slow part of a million inserts.
    conn.pragma_update(None, "cache_size", -512 * 1024)?;
    let mut seeded_users: Vec<User> = Vec::with_capacity(USERS);
    for number in 0..USERS {
        let username = format!("user{number:05}");
        let user = users::find_by_username(&conn, &username)?
            .with_context(|| format!("no seeded user `{username}`"))?;
        seeded_users.push(user);
    }
    // Web sessions last saved 40 days ago: expired by the idle age.
    let saved = now - 40 * 86_400;
    for chunk in 0..EXPIRED_WEB / 100_000 {
        let tx = conn.transaction()?;
        for number in 0..100_000 {
            let user = &seeded_users[(chunk * 100_000 + number) % USERS];
            web_sessions::create(
                &tx,
                user,
                bench_lifetime(),
                saved,
                "127.0.0.1",
                "sessiond-bench",
            )?;
        }
        tx.commit()?;
    }
    let tx = conn.transaction()?;
    for number in 0..EXPIRED_JWT {
        let user = &seeded_users[number % USERS];
        let jti = uuid::Uuid::new_v4().to_string();
        let issued = now - 2 * 86_400;
        jwt_sessions::create(
            &tx,
            &jti,
            user.id,
            issued,
            issued + 900,
            "127.0.0.1",
            "sessiond-bench",
        )?;
    }
    tx.commit()?;
    Ok(ExitCode::SUCCESS)
}

fn run_child(args: &[&str]) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("failed to find the bench binary")?;
    let status =
        Command::new(exe).args(args).status().context("failed to run the seeding child")?;
    ensure!(status.success(), "seeding (`{}`) failed: {status}", args[0]);
    Ok(())
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("temp paths are UTF-8").to_owned()
}

// ---------------------------------------------------------------------------
// The clock and the checks

/// The system clock plus an offset the bench can move forward, so that the
/// stored expiries lag again before a run without waiting a minute.
#[derive(Debug, Default)]
struct OffsetClock {
    offset: AtomicI64,
}

impl OffsetClock {
    fn jump(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> UnixTime {
        SystemClock.now() + self.offset.load(Ordering::SeqCst)
    }
}

/// Every cookie's stored expiry is within the allowed lag of a save at
/// `saved_at` or later.
fn check_expiry_slid(
    db_path: &Path,
    cookies_path: &Path,
    lifetime: Lifetime,
    saved_at: UnixTime,
) -> anyhow::Result<()> {
    let conn = db::connect(db_path)?;
    let wanted = lifetime.expiry_after_save(saved_at - SEED_SAVE_AGE, saved_at);
    let file = std::fs::File::open(cookies_path)?;
    let mut checked = 0;
    for line in BufReader::new(file).lines() {
        let key = line?;
        let hash = web_sessions::hash_cookie_value(&key).context("a seeded key is malformed")?;
        let session =
            web_sessions::find_live(&conn, &hash, saved_at)?.context("a seeded session is gone")?;
        ensure!(
            session.expire_date >= wanted - lifetime.allowed_lag(),
            "a stored expiry did not slide: {} < {}",
            session.expire_date,
            wanted - lifetime.allowed_lag()
        );
        checked += 1;
    }
    ensure!(checked == USERS, "checked {checked} sessions, not {USERS}");
    Ok(())
}

/// Sends one request per line of `values_path` on one keep-alive
/// connection and lets `check` judge each response.
fn verify_all(
    addr: SocketAddr,
    values_path: &Path,
    header: &str,
    prefix: &str,
    check: impl Fn(u16, &[String], &str) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let file = std::fs::File::open(values_path)?;
    for line in BufReader::new(file).lines() {
        let value = line?;
        // One write per request: several small ones would meet Nagle's
        // algorithm and the peer's delayed ACK, 40 ms each.
        let request =
            format!("GET {PATH} HTTP/1.1\r\nHost: {addr}\r\n{header}: {prefix}{value}\r\n\r\n");
        stream.write_all(request.as_bytes())?;
        let mut status_line = String::new();
        reader.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("bad status line `{}`", status_line.trim_end()))?;
        let mut headers = Vec::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            let line = line.trim_end().to_owned();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
            headers.push(line);
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        check(status, &headers, &String::from_utf8_lossy(&body))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// wrk

/// The Lua script: each wrk thread builds one request per line of
/// `values_path` and rotates over them from its own starting point; `done()`
/// prints one `BENCH` line with the figures.
fn write_script(
    dir: &Path,
    name: &str,
    values_path: &Path,
    header: &str,
    prefix: &str,
) -> anyhow::Result<PathBuf> {
    let script = format!(
        r#"-- written by benches/http.rs
local values_path = "{values}"
local header = "{header}"
local prefix = "{prefix}"
local thread_count = 0

function setup(thread)
  thread:set("start", thread_count * 5003)
  thread_count = thread_count + 1
end

local prepared = {{}}
local index = 0

function init(args)
  for line in io.lines(values_path) do
    prepared[#prepared + 1] = wrk.format("GET", "{PATH}", {{ [header] = prefix .. line }})
  end
  index = start % #prepared
end

function request()
  index = index % #prepared + 1
  return prepared[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.status + e.timeout))
end
"#,
        values = values_path.display(),
    );
    let path = dir.join(format!("{name}.lua"));
    std::fs::write(&path, script)?;
    Ok(path)
}

fn spawn_wrk(addr: SocketAddr, script: &Path, seconds: u32) -> anyhow::Result<std::process::Child> {
    Command::new("wrk")
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{WRK_CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .arg("--timeout=10s")
        .arg("-s")
        .arg(script)
        .arg(format!("http://{addr}{PATH}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("failed to start wrk")
}

fn finish_wrk(
    child: std::process::Child,
    server_pid: u32,
    cpu_before: Cpu,
) -> anyhow::Result<WrkResult> {
    let output = child.wait_with_output()?;
    let cpu_after = Cpu::now(server_pid)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find(|line| line.starts_with("BENCH ")).with_context(|| {
        format!("wrk printed no result:\n{stdout}{}", String::from_utf8_lossy(&output.stderr))
    })?;
    let field = |name: &str| -> anyhow::Result<u64> {
        line.split(' ')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no `{name}` in `{line}`"))?
            .parse()
            .with_context(|| format!("bad `{name}` in `{line}`"))
    };
    let requests = field("requests")?;
    let per_request =
        |ticks: u64| ticks as f64 * 1e6 / Cpu::TICKS_PER_SECOND / requests.max(1) as f64;
    Ok(WrkResult {
        requests,
        duration_us: field("duration_us")?,
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        max_us: field("max_us")?,
        errors: field("errors")?,
        server_cpu_us: per_request(cpu_after.server - cpu_before.server),
        wrk_cpu_us: per_request(cpu_after.children - cpu_before.children),
    })
}

/// One timed wrk run against the server in process `server_pid`.
fn wrk(addr: SocketAddr, script: &Path, server_pid: u32) -> anyhow::Result<WrkResult> {
    let cpu_before = Cpu::now(server_pid)?;
    finish_wrk(spawn_wrk(addr, script, WRK_SECONDS)?, server_pid, cpu_before)
}

/// The mean of several runs of the same scenario: requests over the total
/// time, the mean of each latency percentile and of the CPU figures, the
/// largest maximum and all the errors.
fn mean(runs: &[WrkResult]) -> WrkResult {
    let count = runs.len().max(1) as u64;
    let sum = |field: fn(&WrkResult) -> u64| runs.iter().map(field).sum::<u64>();
    let sum_f = |field: fn(&WrkResult) -> f64| runs.iter().map(field).sum::<f64>();
    WrkResult {
        requests: sum(|run| run.requests),
        duration_us: sum(|run| run.duration_us),
        p50_us: sum(|run| run.p50_us) / count,
        p99_us: sum(|run| run.p99_us) / count,
        max_us: runs.iter().map(|run| run.max_us).max().unwrap_or(0),
        errors: sum(|run| run.errors),
        server_cpu_us: sum_f(|run| run.server_cpu_us) / count as f64,
        wrk_cpu_us: sum_f(|run| run.wrk_cpu_us) / count as f64,
    }
}

/// Each run's requests per second, for the notes: `61234, 58765 and 60012`.
fn each_rate(runs: &[WrkResult]) -> String {
    let rates: Vec<String> =
        runs.iter().map(|run| format!("{:.0}", run.requests_per_second())).collect();
    match rates.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// CPU time used so far, in clock ticks, by the server's process and by
/// this process's children that have been waited for (wrk).
#[derive(Debug, Clone, Copy)]
struct Cpu {
    server: u64,
    children: u64,
}

impl Cpu {
    /// `sysconf(_SC_CLK_TCK)`, which is 100 on Linux.
    const TICKS_PER_SECOND: f64 = 100.0;

    fn now(server_pid: u32) -> anyhow::Result<Cpu> {
        let server = stat_fields(&format!("/proc/{server_pid}/stat"))?;
        let own = stat_fields("/proc/self/stat")?;
        Ok(Cpu { server: server[0] + server[1], children: own[2] + own[3] })
    }
}

/// utime, stime, cutime and cstime from a `/proc/PID/stat`.
fn stat_fields(path: &str) -> anyhow::Result<[u64; 4]> {
    let stat = std::fs::read_to_string(path).with_context(|| format!("failed to read `{path}`"))?;
    // The fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').with_context(|| format!("unexpected `{path}`"))?.1;
    let mut fields = [0; 4];
    for (slot, text) in fields.iter_mut().zip(rest.split_whitespace().skip(11)) {
        *slot = text.parse()?;
    }
    Ok(fields)
}

// ---------------------------------------------------------------------------
// Peak RSS

/// Runs `phase` with the peak RSS of this process reset first, and returns
/// the peak (KiB) it reached.
fn with_peak_rss<T>(phase: impl FnOnce() -> T) -> anyhow::Result<(T, u64)> {
    std::fs::write("/proc/self/clear_refs", "5")
        .context("failed to reset the peak RSS (`/proc/self/clear_refs`)")?;
    eprintln!("  RSS at the start of the phase: {} KiB", status_kib("VmRSS")?);
    let value = phase();
    let peak = status_kib("VmHWM")?;
    eprintln!(
        "  peak RSS of the phase: {peak} KiB (at its end: anonymous {} KiB, files {} KiB, shared memory {} KiB)",
        status_kib("RssAnon")?,
        status_kib("RssFile")?,
        status_kib("RssShmem")?
    );
    Ok((value, peak))
}

fn status_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no `{field}` in /proc/self/status"))?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

// ---------------------------------------------------------------------------
// The ceiling

/// `__ceiling WORKERS`: a bare tiny_http server answering a fixed small
/// JSON body, with the worker-pool shape of `http::server`: one shared
/// listener, WORKERS threads in a `recv_timeout` loop polling a stop flag.
/// It prints its address, then serves until its stdin closes.
fn serve_ceiling(args: &[String]) -> anyhow::Result<ExitCode> {
    let [workers] = args else { bail!("usage: __ceiling WORKERS") };
    let workers: usize = workers.parse()?;
    let server = tiny_http::Server::http("127.0.0.1:0")
        .map_err(|error| anyhow::anyhow!("failed to start the ceiling server: {error}"))?;
    let addr = server.server_addr().to_ip().context("the ceiling has no IP address")?;
    let server = Arc::new(server);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<JoinHandle<()>> = (0..workers)
        .map(|_| {
            let server = Arc::clone(&server);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let content_type =
                    tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
                        .expect("valid header");
                while !stop.load(Ordering::SeqCst) {
                    match server.recv_timeout(Duration::from_millis(100)) {
                        Ok(Some(request)) => {
                            let response = tiny_http::Response::from_data(CEILING_BODY)
                                .with_header(content_type.clone());
                            let _ = request.respond(response);
                        }
                        Ok(None) => {}
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    println!("{addr}");
    std::io::stdout().flush()?;
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    stop.store(true, Ordering::SeqCst);
    for thread in threads {
        let _ = thread.join();
    }
    server.unblock();
    Ok(ExitCode::SUCCESS)
}

/// The ceiling's child process.
struct Ceiling {
    addr: SocketAddr,
    pid: u32,
    child: std::process::Child,
}

impl Ceiling {
    fn spawn(workers: usize) -> anyhow::Result<Ceiling> {
        let exe = std::env::current_exe().context("failed to find the bench binary")?;
        let mut child = Command::new(exe)
            .args(["__ceiling", &workers.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("failed to start the ceiling")?;
        let stdout = child.stdout.take().context("no stdout from the ceiling")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line.trim().parse().with_context(|| format!("bad ceiling address `{line}`"))?;
        Ok(Ceiling { addr, pid: child.id(), child })
    }

    fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let status = self.child.wait()?;
        ensure!(status.success(), "the ceiling exited with {status}");
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The report

struct Report<'a> {
    started_at: chrono::DateTime<chrono::Utc>,
    workers: usize,
    ceiling: WrkResult,
    cookie: WrkResult,
    bearer: WrkResult,
    cleanup_idle: Option<f64>,
    during: Option<WrkResult>,
    peak_rss_kib: Option<u64>,
    rows: &'a [Row],
}

fn print_report(report: &Report<'_>) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let ceiling_rps = report.ceiling.requests_per_second();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nsessiond HTTP benchmark, {} UTC; {cores} cores, {} workers; wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{WRK_SECONDS}s, {USERS} users\n",
        report.started_at.format("%Y-%m-%d %H:%M"),
        report.workers
    );
    let _ = writeln!(
        out,
        "| scenario | requests/s | p50 | p99 | max | errors | vs ceiling | CPU µs/req server + wrk | note |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for row in report.rows {
        match row.result {
            Some(result) => {
                let rps = result.requests_per_second();
                let _ = writeln!(
                    out,
                    "| {} | {:.0} | {} | {} | {} | {} | {:.3} | {:.1} + {:.1} | {} |",
                    row.scenario,
                    rps,
                    micros(result.p50_us),
                    micros(result.p99_us),
                    micros(result.max_us),
                    result.errors,
                    rps / ceiling_rps,
                    result.server_cpu_us,
                    result.wrk_cpu_us,
                    row.note
                );
            }
            None => {
                let _ = writeln!(out, "| {} | | | | | | | | {} |", row.scenario, row.note);
            }
        }
    }
    match report.peak_rss_kib {
        Some(kib) => {
            let _ = writeln!(
                out,
                "\npeak RSS under load (VmHWM of the process hosting sessiond, reset before each load phase): {:.1} MiB",
                kib as f64 / 1024.0
            );
        }
        None => {
            let _ = writeln!(out, "\npeak RSS under load: not measured");
        }
    }
    let _ = writeln!(out, "\ntargets:");
    let cookie_ratio = report.cookie.requests_per_second() / ceiling_rps;
    let bearer_ratio = report.bearer.requests_per_second() / ceiling_rps;
    verdict(
        &mut out,
        "cookie whoami >= 0.60 of the ceiling",
        Some(cookie_ratio >= 0.6),
        format!("{cookie_ratio:.3}"),
    );
    verdict(
        &mut out,
        "bearer whoami >= 0.60 of the ceiling",
        Some(bearer_ratio >= 0.6),
        format!("{bearer_ratio:.3}"),
    );
    match report.cleanup_idle {
        Some(seconds) => verdict(
            &mut out,
            "idle cleanup of 1.1 M rows < 3 s",
            Some(seconds < 3.0),
            format!("{seconds:.2} s"),
        ),
        None => verdict(
            &mut out,
            "idle cleanup of 1.1 M rows < 3 s",
            None,
            String::from("not measured"),
        ),
    }
    match report.during {
        Some(during) => {
            verdict(
                &mut out,
                "no request fails during cleanup",
                Some(during.errors == 0),
                format!("{} errors", during.errors),
            );
            let half = during.requests_per_second() / report.cookie.requests_per_second();
            verdict(
                &mut out,
                "cookie throughput during cleanup >= 0.5 of without",
                Some(half >= 0.5),
                format!("{half:.3}"),
            );
            let p99 = during.p99_us as f64 / report.cookie.p99_us.max(1) as f64;
            verdict(
                &mut out,
                "cookie p99 during cleanup < 5x without",
                Some(p99 < 5.0),
                format!("{p99:.2}x"),
            );
        }
        None => {
            for target in [
                "no request fails during cleanup",
                "cookie throughput during cleanup >= 0.5 of without",
                "cookie p99 during cleanup < 5x without",
            ] {
                verdict(&mut out, target, None, String::from("not measured"));
            }
        }
    }
    match report.peak_rss_kib {
        Some(kib) => verdict(
            &mut out,
            "peak RSS under load < 32 MiB",
            Some(kib < 32 * 1024),
            format!("{:.1} MiB", kib as f64 / 1024.0),
        ),
        None => {
            verdict(&mut out, "peak RSS under load < 32 MiB", None, String::from("not measured"))
        }
    }
    print!("{out}");
}

fn verdict(out: &mut String, target: &str, holds: Option<bool>, figure: String) {
    let word = match holds {
        Some(true) => "holds",
        Some(false) => "MISSED",
        None => "NOT MEASURED",
    };
    let _ = writeln!(out, "- {target}: {word} ({figure})");
}

fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} ms", us as f64 / 1000.0)
    }
}

// ---------------------------------------------------------------------------
// Forward auth (issue 13), self-contained: `forward_auth_scenarios` is
// called once from `run` while sessiond serves, `print_forward_auth` once
// after the report.

/// Rules in the table for the forward-auth scenario; only the last matches.
const FORWARD_RULES: usize = 50;
/// The host the forward-auth requests name; the last rule matches it.
const FORWARD_HOST: &str = "app.example.test";

/// What the forward-auth scenarios measured.
struct ForwardAuthFigures {
    rows: Vec<Row>,
    forward: Option<WrkResult>,
    /// nginx → app with `auth_request`, and without it.
    nginx: Option<(WrkResult, WrkResult)>,
}

/// `/auth/forward` with the 10,000 cookies rotating and [`FORWARD_RULES`]
/// rules (the matching one last), on the running sessiond; then, when nginx
/// is installed, nginx in front of a bare tiny_http app with
/// `deploy/nginx.conf`'s `auth_request` against sessiond, and the same
/// nginx → app without it. Failures are pushed to `failures`.
fn forward_auth_scenarios(
    addr: SocketAddr,
    dir: &Path,
    db_path: &Path,
    cookies_path: &Path,
    clock: &OffsetClock,
    workers: usize,
    failures: &mut Vec<String>,
) -> anyhow::Result<ForwardAuthFigures> {
    use sessiond::access_rules::{self, NewRule};
    let conn = db::connect(db_path)?;
    for number in 1..FORWARD_RULES {
        let pattern = format!("app{number}.example.test");
        let path = (number % 2 == 0).then_some("/admin");
        access_rules::add(
            &conn,
            &NewRule::parse(&pattern, path, "admin").map_err(anyhow::Error::msg)?,
        )?;
    }
    access_rules::add(
        &conn,
        &NewRule::parse("*.example.test", None, "user").map_err(anyhow::Error::msg)?,
    )?;
    drop(conn);
    // The server checks the rules' version once a second of its clock.
    clock.jump(1);
    let first_cookie = std::fs::read_to_string(cookies_path)?
        .lines()
        .next()
        .context("no cookies were seeded")?
        .to_owned();
    let answer = raw_get(
        addr,
        &format!(
            "GET /auth/forward HTTP/1.1\r\nHost: {addr}\r\nX-Forwarded-Method: GET\r\n\
             X-Forwarded-Proto: https\r\nX-Forwarded-Host: {FORWARD_HOST}\r\n\
             X-Forwarded-Uri: /page\r\nCookie: sessionid={first_cookie}\r\nConnection: close\r\n\r\n"
        ),
    )?;
    ensure!(
        answer.starts_with("HTTP/1.1 200") && answer.to_ascii_lowercase().contains("remote-user: "),
        "/auth/forward did not let a seeded cookie through:\n{answer}"
    );
    let forward_script = write_forward_script(
        dir,
        "forward",
        cookies_path,
        "/auth/forward",
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", FORWARD_HOST),
            ("X-Forwarded-Uri", "/page"),
        ],
    )?;
    // As before each cookie run: every stored expiry lags and must slide.
    clock.jump(CLOCK_JUMP);
    let run_time = clock.now();
    eprintln!("running: /auth/forward");
    let forward = wrk(addr, &forward_script, std::process::id())?;
    check_expiry_slid(db_path, cookies_path, bench_lifetime(), run_time)
        .context("the /auth/forward run did not slide every stored expiry")?;
    let mut rows = vec![Row {
        scenario: "forward auth (/auth/forward, cookie, 50 rules, match last)",
        result: Some(forward),
        note: String::from("all 10,000 cookies rotating; every stored expiry slid"),
    }];

    let nginx = match nginx_ratio(addr, dir, cookies_path, workers) {
        Ok(Some(pair)) => {
            let (with, without) = pair;
            let ratio = with.requests_per_second() / without.requests_per_second();
            for (scenario, result) in [
                ("nginx → app with auth_request (deploy/nginx.conf)", with),
                ("nginx → app without auth_request", without),
            ] {
                rows.push(Row {
                    scenario,
                    result: Some(result),
                    note: format!("one nginx worker; with/without = {ratio:.3}"),
                });
            }
            Some(pair)
        }
        Ok(None) => {
            failures.push(format!("nginx is not installed at {NGINX_BIN}: no nginx figures"));
            None
        }
        Err(error) => {
            failures.push(format!("the nginx scenario failed: {error:#}"));
            None
        }
    };
    Ok(ForwardAuthFigures { rows, forward: Some(forward), nginx })
}

const NGINX_BIN: &str = "/usr/sbin/nginx";

/// nginx → a bare tiny_http app, with and without `auth_request`.
fn nginx_ratio(
    sessiond: SocketAddr,
    dir: &Path,
    cookies_path: &Path,
    workers: usize,
) -> anyhow::Result<Option<(WrkResult, WrkResult)>> {
    if !Path::new(NGINX_BIN).exists() {
        return Ok(None);
    }
    let app = Ceiling::spawn(workers)?;
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx.conf");
    let text = std::fs::read_to_string(&deploy)?;
    let mut results = Vec::new();
    for with_auth in [true, false] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let site = if with_auth {
            text.replace("listen 80;", &format!("listen 127.0.0.1:{port};"))
                .replace("app.example.com", FORWARD_HOST)
                .replace("auth.example.com", "auth.example.test")
                .replace("127.0.0.1:8000", &sessiond.to_string())
                .replace("127.0.0.1:3000", &app.addr.to_string())
        } else {
            format!(
                "server {{\n    listen 127.0.0.1:{port};\n    server_name {FORWARD_HOST};\n    \
                 location / {{\n        proxy_set_header Host $http_host;\n        \
                 proxy_pass http://{};\n    }}\n}}\n",
                app.addr
            )
        };
        let nginx =
            NginxProcess::start(dir, if with_auth { "with" } else { "without" }, &site, port)?;
        let nginx_addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let script = write_forward_script(
            dir,
            if with_auth { "nginx-with" } else { "nginx-without" },
            cookies_path,
            "/page",
            &[("Host", FORWARD_HOST)],
        )?;
        let answer = raw_get(
            nginx_addr,
            &format!(
                "GET /page HTTP/1.1\r\nHost: {FORWARD_HOST}\r\nCookie: sessionid={}\r\nConnection: close\r\n\r\n",
                std::fs::read_to_string(cookies_path)?.lines().next().unwrap_or("")
            ),
        )?;
        ensure!(
            answer.starts_with("HTTP/1.1 200"),
            "nginx did not pass a seeded cookie:\n{answer}"
        );
        eprintln!(
            "running: nginx → app {}",
            if with_auth { "with auth_request" } else { "without" }
        );
        results.push(wrk(nginx_addr, &script, nginx.pid())?);
        drop(nginx);
    }
    app.stop()?;
    Ok(Some((results[0], results[1])))
}

/// nginx with `site` inside a minimal main config in its own folder of
/// `dir`; killed on drop.
struct NginxProcess(std::process::Child);

impl NginxProcess {
    fn start(dir: &Path, name: &str, site: &str, port: u16) -> anyhow::Result<NginxProcess> {
        let root = dir.join(format!("nginx-{name}"));
        std::fs::create_dir_all(&root)?;
        let root_text = path_text(&root);
        std::fs::write(root.join("site.conf"), site)?;
        let main = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {root_text}/nginx.pid;\n\
             error_log {root_text}/error.log warn;\nevents {{ worker_connections 1024; }}\n\
             http {{\n    access_log off;\n    client_body_temp_path {root_text}/body;\n    \
             proxy_temp_path {root_text}/proxy;\n    fastcgi_temp_path {root_text}/fastcgi;\n    \
             uwsgi_temp_path {root_text}/uwsgi;\n    scgi_temp_path {root_text}/scgi;\n    \
             include {root_text}/site.conf;\n}}\n"
        );
        std::fs::write(root.join("nginx.conf"), main)?;
        let child = Command::new(NGINX_BIN)
            .args(["-p", &format!("{root_text}/"), "-c", &format!("{root_text}/nginx.conf")])
            .args(["-e", &format!("{root_text}/error.log")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("failed to start nginx")?;
        let mut nginx = NginxProcess(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = nginx.0.try_wait()? {
                bail!(
                    "nginx exited with {status}: {}",
                    std::fs::read_to_string(root.join("error.log")).unwrap_or_default()
                );
            }
            ensure!(Instant::now() < deadline, "nginx did not listen on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for NginxProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One request on a new connection; the response's head and body as text.
fn raw_get(addr: SocketAddr, request: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

/// A wrk script like [`write_script`]'s, for `path` with fixed `headers`
/// and the cookies rotating.
fn write_forward_script(
    dir: &Path,
    name: &str,
    cookies_path: &Path,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<PathBuf> {
    let fixed: String =
        headers.iter().map(|(name, value)| format!("[\"{name}\"] = \"{value}\", ")).collect();
    let script = format!(
        r#"-- written by benches/http.rs (forward auth)
local values_path = "{values}"
local thread_count = 0

function setup(thread)
  thread:set("start", thread_count * 5003)
  thread_count = thread_count + 1
end

local prepared = {{}}
local index = 0

function init(args)
  for line in io.lines(values_path) do
    prepared[#prepared + 1] = wrk.format("GET", "{path}", {{ {fixed}["Cookie"] = "sessionid=" .. line }})
  end
  index = start % #prepared
end

function request()
  index = index % #prepared + 1
  return prepared[index]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d max_us=%d errors=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.status + e.timeout))
end
"#,
        values = cookies_path.display(),
    );
    let script_path = dir.join(format!("{name}.lua"));
    std::fs::write(&script_path, script)?;
    Ok(script_path)
}

/// The targets of issue 13, after the main report.
fn print_forward_auth(figures: &ForwardAuthFigures, ceiling: WrkResult) {
    let mut out = String::from("\nforward auth (issue 13):\n");
    match figures.forward {
        Some(forward) => {
            let ratio = forward.requests_per_second() / ceiling.requests_per_second();
            verdict(
                &mut out,
                "/auth/forward >= 0.75 of the ceiling",
                Some(ratio >= 0.75 && forward.errors == 0),
                format!(
                    "{ratio:.3}, {:.0} requests/s, {} errors",
                    forward.requests_per_second(),
                    forward.errors
                ),
            );
        }
        None => verdict(
            &mut out,
            "/auth/forward >= 0.75 of the ceiling",
            None,
            String::from("not measured"),
        ),
    }
    match figures.nginx {
        Some((with, without)) => {
            let ratio = with.requests_per_second() / without.requests_per_second();
            let _ = writeln!(
                out,
                "- nginx → app with auth_request / without: {ratio:.3} ({:.0} / {:.0} requests/s, {} + {} errors)",
                with.requests_per_second(),
                without.requests_per_second(),
                with.errors,
                without.errors
            );
        }
        None => {
            let _ = writeln!(out, "- nginx → app with auth_request / without: not measured");
        }
    }
    print!("{out}");
}
