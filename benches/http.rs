//! `cargo bench --bench http`: sessiond's "who is this?" answer measured
//! side by side with the ceiling of its HTTP stack, its memory over the
//! whole run, a login flood, and the same answers with a million sessions,
//! in one run (issues 6, 13 and 15).
//!
//! The bench starts a bare tiny_http server with worker threads calling
//! `recv` (the ceiling, tiny_http's own way and the targets' yardstick),
//! the same app answering on each connection's thread as sessiond does
//! (reported beside it, no target), then sessiond itself in-process on a temporary
//! database file, seeded with 10,000 users (one password, known to the
//! bench) that each hold one web session and one JWT session, and drives
//! both with `wrk` (2 threads, 32 keep-alive connections, 10 s) through Lua
//! scripts. The scenarios run in the order of [`SCENARIOS`]; each is one
//! function that adds its rows to the table and its targets to the
//! verdicts, so a new one is one more function in that list:
//!
//! - `request_path`: both ceilings, cookie, bearer, twice, and both
//!   ceilings a third time, rotating over all 10,000 cookies or tokens; the
//!   table shows the means.
//! - `postgres`: a throwaway PostgreSQL cluster (the tests' `pg_cluster`:
//!   initdb in a temp folder, fsync off) seeded as `request_path`'s file is,
//!   and a second sessiond in-process on it; cookie and bearer whoami there
//!   alternated with the same on SQLite in this run; then 1,000,000 expired
//!   web and 100,000 expired JWT rows there, cleared by the command while
//!   the cookie scenario runs on PostgreSQL.
//! - `forward_auth`: `/auth/forward` with the 10,000 cookies rotating and 50
//!   rules in the table (the matching one last), alternated with cookie
//!   whoami and both ceilings (which run from `request_path` until here); and
//!   nginx → a bare app with `deploy/nginx.conf`'s `auth_request` against
//!   nginx → app without it, reported as a ratio.
//! - `login_burst`: 100 real form logins (8 at once) and the resident
//!   memory before and after.
//! - `login_flood`: cookie whoami under wrk while a second wrk posts
//!   right-password logins on 250 connections, each for the next user and
//!   from its own `X-Forwarded-For` address (trusted for the run), so that
//!   the throttle never answers instead of the hash.
//! - `cleanup`: `sessiond clear_expired_sessions` (run beside the server, as
//!   an operator would) over 1,000,000 expired web sessions and 100,000
//!   expired JWT rows on the idle server, then the cookie scenario again with
//!   that cleanup started five seconds into it.
//! - `scale`: 1,000,000 live web sessions and 1,000,000 JWT rows, cookie and
//!   bearer whoami rotating over 100,000 of each, against the 10,000 of
//!   `request_path`: cookie runs with every stored expiry fresh (the
//!   look-up path, compared with the same run over 10,000), and with every
//!   slide due after a clock jump (100,000 writes in the run, reported).
//! - `observability`: cookie whoami on servers of their own with the metrics
//!   listener and the access log on, against both off, in four runs of 5 s
//!   each, in the order off, on, on, off, off, on, on, off (so that a run's
//!   place and the machine's drift count against both alike); then the
//!   cost of a `/metrics` scrape with the million sessions of `scale` in the
//!   table (the access log goes to a file, as `2>>file` would).
//! - `steady_cleanup`: 100,000 expired web sessions beside the million live
//!   ones, cleared while the cookie scenario runs over the 100,000.
//!
//! Before any timing, every cookie and token is checked to answer 200, and
//! the stored expiries are checked to have slid. Seeding and the ceiling run
//! in child processes (this binary, re-executed with a `__seed-*` or
//! `__ceiling` argument), and the cleanup is the real command, so that none
//! of them counts in the memory of the process that hosts sessiond. That
//! memory is measured over the whole life of the process, never reset:
//! `VmHWM` at the end, and the largest `RssAnon` seen by a thread that reads
//! `/proc/self/status` every 10 ms (anonymous memory: the database pages
//! SQLite maps are file-backed and shared with the OS's page cache, and
//! count in `VmHWM` but not here). Both include this bench's own few MiB,
//! never wrk's. The stored expiries are made to lag before a cookie run by
//! moving the server's clock (the system clock plus an offset) two minutes
//! forward, so that every cookie of the run must be written once. Nothing
//! here writes SQL: rows are made and read through the modules that own
//! their tables.
//!
//! SESSIOND_BENCH_QUICK=1 is a smoke run: 3 s per wrk run, one round, no
//! cleanup scenarios, 200,000 rows for `scale`; SESSIOND_BENCH_SCALE=N sets
//! the rows of `scale`. SESSIOND_BENCH_ONLY=forward_auth,steady_cleanup runs
//! just those scenarios (with `request_path`, which every ratio needs, and
//! `scale` when a scenario uses its million rows), for work on one figure.
//! A run for the README sets none of them.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use sessiond::clock::{Clock, SystemClock, UnixTime};
use sessiond::settings::{Overrides, Settings};
use sessiond::startup::{self, StartOptions};
use sessiond::users::{self, Role, User};
use sessiond::web_sessions::{self, Lifetime};
use sessiond::{db, jwt, jwt_sessions, password_hash, secrets};

/// The throwaway PostgreSQL cluster of the tests, for the `postgres` scenario.
#[path = "../tests/integration/pg_cluster.rs"]
#[allow(dead_code)]
mod pg_cluster;

/// Users, each with one live web session and one live JWT session.
const USERS: usize = 10_000;
/// Every seeded user's password: the login scenarios sign in with it.
const BENCH_PASSWORD: &str = "bench-password";
/// Expired rows for the cleanup scenario.
const EXPIRED_WEB: usize = 1_000_000;
const EXPIRED_JWT: usize = 100_000;
/// Live rows of each kind for the `scale` scenario, and how many of each its
/// wrk runs rotate over.
const SCALE_LIVE: usize = 1_000_000;
const SCALE_ROTATING: usize = 100_000;
/// Expired web sessions beside the live ones for `steady_cleanup`.
const STEADY_EXPIRED_WEB: usize = 100_000;
/// Logins of `login_burst`, and how many run at once.
const BURST_LOGINS: usize = 100;
const BURST_THREADS: usize = 8;
/// Connections of the login flood.
const FLOOD_CONNECTIONS: u32 = 250;
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
/// When the cleanup starts in the "during cleanup" scenarios, which are the
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

/// A scenario: adds its rows and verdicts to the bench.
type Scenario = fn(&mut Bench) -> anyhow::Result<()>;

/// The scenarios, in the order they run (see the top of this file).
const SCENARIOS: &[(&str, Scenario)] = &[
    ("request_path", request_path),
    // Right after `request_path`, while the SQLite file holds the same
    // 10,000 sessions as the PostgreSQL database, before `cleanup` and
    // `scale` add their rows.
    ("postgres", postgres),
    ("forward_auth", forward_auth),
    ("login_burst", login_burst),
    ("login_flood", login_flood),
    ("cleanup", cleanup),
    ("scale", scale),
    ("observability", observability),
    ("steady_cleanup", steady_cleanup),
];

/// The scenarios that SESSIOND_BENCH_ONLY asks for with those they depend
/// on, or `None` for all of them.
fn scenarios_asked() -> anyhow::Result<Option<Vec<&'static str>>> {
    let Ok(text) = std::env::var("SESSIOND_BENCH_ONLY") else { return Ok(None) };
    let mut only = vec!["request_path"];
    for asked in text.split(',').map(str::trim).filter(|name| !name.is_empty()) {
        let Some((name, _)) = SCENARIOS.iter().find(|(name, _)| *name == asked) else {
            bail!("SESSIOND_BENCH_ONLY: no scenario `{asked}`");
        };
        if matches!(*name, "observability" | "steady_cleanup") {
            only.push("scale");
        }
        only.push(name);
    }
    Ok(Some(only))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let outcome = match args.get(1).map(String::as_str) {
        Some("__seed-live") => seed_live(&args[2..]),
        Some("__seed-expired") => seed_expired(&args[2..]),
        Some("__seed-scale") => seed_scale(&args[2..]),
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

/// A row of the table.
struct Row {
    scenario: String,
    result: Option<WrkResult>,
    note: String,
}

/// A target and whether it held.
struct Verdict {
    target: String,
    holds: Option<bool>,
    figure: String,
}

/// How long and how big this run is (the full run, or a quick smoke run).
#[derive(Debug, Clone, Copy)]
struct Plan {
    wrk_seconds: u32,
    rounds: usize,
    cleanups: bool,
    scale_live: usize,
    scale_rotating: usize,
}

impl Plan {
    fn from_env() -> anyhow::Result<Plan> {
        let quick = std::env::var_os("SESSIOND_BENCH_QUICK").is_some();
        let mut plan = if quick {
            Plan {
                wrk_seconds: 3,
                rounds: 1,
                cleanups: false,
                scale_live: 200_000,
                scale_rotating: 20_000,
            }
        } else {
            Plan {
                wrk_seconds: 10,
                rounds: 2,
                cleanups: true,
                scale_live: SCALE_LIVE,
                scale_rotating: SCALE_ROTATING,
            }
        };
        if let Ok(text) = std::env::var("SESSIOND_BENCH_SCALE") {
            plan.scale_live = text.parse().context("SESSIOND_BENCH_SCALE must be a number")?;
            plan.scale_rotating = (plan.scale_live / 10).max(USERS);
        }
        ensure!(plan.scale_live > USERS, "the `scale` rows must be more than {USERS}");
        Ok(plan)
    }
}

/// What the scenarios share: the running server, its files, and the table.
struct Bench {
    plan: Plan,
    dir: PathBuf,
    db_path: PathBuf,
    addr: SocketAddr,
    clock: Arc<OffsetClock>,
    lifetime: Lifetime,
    workers: usize,
    ceiling: Option<Ceiling>,
    /// The same app answering on each connection's thread (reported).
    same_thread_ceiling: Option<Ceiling>,
    ceiling_result: WrkResult,
    /// The 10,000-session means of `request_path`, which later scenarios
    /// compare against.
    cookie_10k: Option<WrkResult>,
    fresh_10k: Option<WrkResult>,
    bearer_10k: Option<WrkResult>,
    cookie_scale: Option<WrkResult>,
    rows: Vec<Row>,
    verdicts: Vec<Verdict>,
    memory: Arc<MemorySampler>,
}

impl Bench {
    fn row(&mut self, scenario: impl Into<String>, result: Option<WrkResult>, note: String) {
        self.rows.push(Row { scenario: scenario.into(), result, note });
    }

    fn verdict(&mut self, target: impl Into<String>, holds: Option<bool>, figure: String) {
        self.verdicts.push(Verdict { target: target.into(), holds, figure });
    }

    fn cookies(&self) -> PathBuf {
        self.dir.join("cookies.txt")
    }

    fn tokens(&self) -> PathBuf {
        self.dir.join("tokens.txt")
    }

    fn script(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.lua"))
    }

    /// One timed wrk run of the script against sessiond.
    /// One wrk run of the cookie script against the ceiling.
    fn wrk_ceiling(&self) -> anyhow::Result<WrkResult> {
        let ceiling = self.ceiling.as_ref().context("the ceiling is running")?;
        eprintln!("running: ceiling");
        Bench::wrk_on(ceiling, &self.script("cookie"), self.plan.wrk_seconds)
    }

    /// One wrk run of the cookie script against the same-thread ceiling.
    fn wrk_same_thread_ceiling(&self) -> anyhow::Result<WrkResult> {
        let ceiling = self.same_thread_ceiling.as_ref().context("the ceiling is running")?;
        eprintln!("running: ceiling, answering on each connection's thread");
        Bench::wrk_on(ceiling, &self.script("cookie"), self.plan.wrk_seconds)
    }

    fn wrk_on(ceiling: &Ceiling, script: &Path, seconds: u32) -> anyhow::Result<WrkResult> {
        let cpu_before = Cpu::now(ceiling.pid)?;
        let child = spawn_wrk(ceiling.addr, script, seconds, WRK_CONNECTIONS)?;
        finish_wrk(child, ceiling.pid, cpu_before)
    }

    fn wrk(&self, script: &str) -> anyhow::Result<WrkResult> {
        let cpu_before = Cpu::now(std::process::id())?;
        let child =
            spawn_wrk(self.addr, &self.script(script), self.plan.wrk_seconds, WRK_CONNECTIONS)?;
        finish_wrk(child, std::process::id(), cpu_before)
    }

    /// The ratio of two rates, as a verdict of at least `least`.
    fn ratio_verdict(
        &mut self,
        target: &str,
        of: Option<WrkResult>,
        to: Option<WrkResult>,
        least: f64,
    ) {
        match (of, to) {
            (Some(of), Some(to)) => {
                let ratio = of.requests_per_second() / to.requests_per_second();
                self.verdict(target, Some(ratio >= least), format!("{ratio:.3}"));
            }
            _ => self.verdict(target, None, String::from("not measured")),
        }
    }

    /// A p99 of at most `most` times another, as a verdict.
    fn p99_verdict(
        &mut self,
        target: &str,
        of: Option<WrkResult>,
        to: Option<WrkResult>,
        most: f64,
    ) {
        match (of, to) {
            (Some(of), Some(to)) => {
                let ratio = of.p99_us as f64 / to.p99_us.max(1) as f64;
                self.verdict(target, Some(ratio < most), format!("{ratio:.2}x"));
            }
            _ => self.verdict(target, None, String::from("not measured")),
        }
    }
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
    let plan = Plan::from_env()?;
    let started_at = chrono::Utc::now();
    let run_started = Instant::now();
    let load_before = load_average();
    let tempdir = tempfile::tempdir().context("failed to make a temp dir")?;
    let dir = tempdir.path().to_path_buf();
    let db_path = dir.join("sessiond.sqlite3");
    // The worker count of `sessiond serve`; SESSIOND_BENCH_WORKERS overrides
    // it (for both servers) to compare pool sizes.
    let workers = match std::env::var("SESSIOND_BENCH_WORKERS") {
        Ok(text) => text.parse().context("SESSIOND_BENCH_WORKERS must be a number")?,
        Err(_) => startup::default_workers(),
    };
    // Sampling starts before sessiond does and never resets.
    let memory = MemorySampler::start();

    eprintln!("seeding {USERS} users, each with one web and one JWT session...");
    let seed_started = Instant::now();
    run_child(&["__seed-live", &path_text(&db_path), &path_text(&dir)])?;
    eprintln!("  done in {:.1} s", seed_started.elapsed().as_secs_f64());

    let ceiling = Ceiling::spawn(workers)?;
    eprintln!("ceiling listening on http://{}", ceiling.addr);
    verify_all(ceiling.addr, &dir.join("cookies.txt"), "Cookie", "sessionid=", |status, _, _| {
        ensure!(status == 200, "the ceiling answered {status}");
        Ok(())
    })?;
    write_script(&dir, "cookie", &dir.join("cookies.txt"), "Cookie", "sessionid=")?;
    write_script(&dir, "bearer", &dir.join("tokens.txt"), "Authorization", "Bearer ")?;
    write_flood_script(&dir)?;

    // sessiond, in-process, on the seeded file.
    let clock = Arc::new(OffsetClock::default());
    let settings = bench_settings(&db_path);
    let options = StartOptions { clock: clock.clone(), workers, ..StartOptions::default() };
    let running = startup::start(settings, options).context("sessiond did not start")?;
    let addr = running.addr();
    eprintln!("sessiond listening on http://{addr}");
    let lifetime = running.app().lifetime;

    let mut bench = Bench {
        plan,
        dir,
        db_path,
        addr,
        clock,
        lifetime,
        workers,
        ceiling: Some(ceiling),
        same_thread_ceiling: Some(Ceiling::spawn_same_thread()?),
        ceiling_result: WrkResult::default(),
        cookie_10k: None,
        fresh_10k: None,
        bearer_10k: None,
        cookie_scale: None,
        rows: Vec::new(),
        verdicts: Vec::new(),
        memory,
    };
    let mut failures = Vec::new();
    let only = scenarios_asked()?;
    for (name, scenario) in SCENARIOS {
        if only.as_ref().is_some_and(|only| !only.contains(name)) {
            continue;
        }
        eprintln!("scenario `{name}`");
        if let Err(error) = scenario(&mut bench) {
            eprintln!("error: scenario `{name}` failed: {error:#}");
            failures.push(format!("scenario `{name}`: {error:#}"));
            bench.row(*name, None, format!("FAILED: {error:#}"));
        }
    }
    running.stop();
    for ceiling in [bench.ceiling.take(), bench.same_thread_ceiling.take()].into_iter().flatten() {
        ceiling.stop()?;
    }
    let memory = bench.memory.stop();
    let peak_anon_mib = memory.peak_anon_kib as f64 / 1024.0;
    let hwm_mib = status_kib("VmHWM")? as f64 / 1024.0;
    bench.verdict(
        "peak anonymous memory (RssAnon) over the whole run < 64 MiB",
        Some(memory.peak_anon_kib < 64 * 1024),
        format!(
            "{peak_anon_mib:.1} MiB, during `{}`; VmHWM {hwm_mib:.1} MiB; by scenario (MiB): {}",
            memory.peak_phase, memory.by_phase
        ),
    );
    for verdict in &bench.verdicts {
        if verdict.holds == Some(false) {
            failures.push(format!("missed: {} ({})", verdict.target, verdict.figure));
        }
    }
    print_report(&Report {
        started_at,
        load_before,
        load_after: load_average(),
        minutes: run_started.elapsed().as_secs_f64() / 60.0,
        plan: bench.plan,
        workers: bench.workers,
        ceiling: bench.ceiling_result,
        peak_anon_mib,
        hwm_mib,
        rows: &bench.rows,
        verdicts: &bench.verdicts,
    });
    drop(tempdir);
    for failure in &failures {
        eprintln!("error: {failure}");
    }
    Ok(if failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

// ---------------------------------------------------------------------------
// The scenarios

/// Ceiling, cookie, bearer, [`Plan::rounds`] times, and the ceiling once
/// more; the table shows the means. The ceiling is measured before, between
/// and after the rounds, so that the machine's speed, which drifts by 15%
/// within a run here, counts against both sides alike.
fn request_path(bench: &mut Bench) -> anyhow::Result<()> {
    bench.memory.phase("request_path");
    let (cookies, tokens) = (bench.cookies(), bench.tokens());
    verify_cookies(bench, &cookies, USERS)?;
    verify_tokens(bench.addr, &tokens)?;
    let mut ceiling_runs = vec![bench.wrk_ceiling()?];
    let mut same_thread_runs = vec![bench.wrk_same_thread_ceiling()?];
    let mut cookie_runs = Vec::new();
    let mut fresh_runs = Vec::new();
    let mut bearer_runs = Vec::new();
    for round in 1..=bench.plan.rounds {
        // The jump makes every stored expiry lag again, so the run writes
        // each of the 10,000 sessions at least once.
        bench.clock.jump(CLOCK_JUMP);
        let run_time = bench.clock.now();
        eprintln!("running: cookie whoami ({round})");
        let result = bench.wrk("cookie")?;
        cookie_runs.push(result);
        check_slid_if_covered(bench, &cookies, run_time, USERS, result)?;
        // Right after, every stored expiry is fresh: the look-up path alone.
        eprintln!("running: cookie whoami, no slide due ({round})");
        fresh_runs.push(bench.wrk("cookie")?);
        eprintln!("running: bearer whoami ({round})");
        bearer_runs.push(bench.wrk("bearer")?);
        ceiling_runs.push(bench.wrk_ceiling()?);
        same_thread_runs.push(bench.wrk_same_thread_ceiling()?);
    }
    let ceiling = mean(&ceiling_runs);
    let same_thread = mean(&same_thread_runs);
    let cookie = mean(&cookie_runs);
    let bearer = mean(&bearer_runs);
    bench.ceiling_result = ceiling;
    bench.cookie_10k = Some(cookie);
    bench.fresh_10k = Some(mean(&fresh_runs));
    bench.bearer_10k = Some(bearer);
    let note = format!("mean of {}, before, between and after", each_rate(&ceiling_runs));
    bench.row("ceiling (bare tiny_http)", Some(ceiling), note);
    bench.row(
        "ceiling answering on each connection's thread (as sessiond does)",
        Some(same_thread),
        format!(
            "mean of {}, before and after each round; reported, no target",
            each_rate(&same_thread_runs)
        ),
    );
    let note =
        format!("mean of {}; all 10,000 stored expiries slid in each", each_rate(&cookie_runs));
    bench.row("cookie whoami (sliding expiry), 10,000 sessions", Some(cookie), note);
    bench.row(
        "cookie whoami, 10,000 sessions, no slide due",
        bench.fresh_10k,
        format!(
            "mean of {}; right after the run above, so every stored expiry is fresh",
            each_rate(&fresh_runs)
        ),
    );
    bench.row(
        "bearer whoami, 10,000 tokens",
        Some(bearer),
        format!("mean of {}", each_rate(&bearer_runs)),
    );
    bench.ratio_verdict("cookie whoami >= 0.60 of the ceiling", Some(cookie), Some(ceiling), 0.6);
    bench.ratio_verdict("bearer whoami >= 0.60 of the ceiling", Some(bearer), Some(ceiling), 0.6);
    for (what, of) in [("cookie", cookie), ("bearer", bearer)] {
        let ratio = of.requests_per_second() / same_thread.requests_per_second();
        bench.verdict(
            format!("{what} whoami / the ceiling answering on each connection's thread (reported)"),
            None,
            format!("{ratio:.3}"),
        );
    }
    // The ceiling keeps running for `forward_auth`, which stops it.
    Ok(())
}

/// Cookie and bearer whoami on PostgreSQL against the same on SQLite,
/// alternated in this run, [`Plan::rounds`] times: a throwaway cluster,
/// seeded as `request_path`'s file is, served by a second sessiond
/// in-process with the same settings and worker count (its memory counts
/// in this process's, so a peak here shows as `during postgres`). Then the
/// cleanup of `cleanup` (1,000,000 expired web and 100,000 expired JWT
/// rows, the real command) on PostgreSQL while the cookie scenario runs
/// there.
fn postgres(bench: &mut Bench) -> anyhow::Result<()> {
    bench.memory.phase("postgres");
    let cookie_target = "cookie whoami on PostgreSQL >= 0.5 of SQLite";
    let bearer_target = "bearer whoami on PostgreSQL >= 0.5 of SQLite";
    let cleanup_target = "cleanup of 1.1 M rows on PostgreSQL under load < 5 s";
    let failures_target = "no request fails during the PostgreSQL cleanup";
    if !pg_cluster::installed("the bench's `postgres` scenario") {
        for target in [cookie_target, bearer_target, cleanup_target, failures_target] {
            bench.verdict(target, None, String::from("not measured: PostgreSQL is not installed"));
        }
        return Ok(());
    }
    let cluster = pg_cluster::Cluster::start();
    let tcp_url = cluster.new_database();
    let database = tcp_url.rsplit('/').next().expect("a database name").to_owned();
    // A server on the same machine is reached through its socket (the
    // README's advice); the TCP figure for a bearer run is reported beside.
    let url = cluster.socket_url(&database);
    let dir = bench.dir.join("postgres");
    std::fs::create_dir(&dir)?;
    eprintln!("seeding PostgreSQL: {USERS} users, each with one web and one JWT session...");
    let seed_started = Instant::now();
    run_child(&["__seed-live", &url, &path_text(&dir)])?;
    eprintln!("  done in {:.1} s", seed_started.elapsed().as_secs_f64());
    let clock = Arc::new(OffsetClock::default());
    let options =
        StartOptions { clock: clock.clone(), workers: bench.workers, ..StartOptions::default() };
    let running = startup::start(bench_settings(Path::new(&url)), options)
        .context("sessiond did not start on PostgreSQL")?;
    let addr = running.addr();
    eprintln!("sessiond on PostgreSQL (its Unix socket) listening on http://{addr}");
    let options =
        StartOptions { clock: clock.clone(), workers: bench.workers, ..StartOptions::default() };
    let over_tcp = startup::start(bench_settings(Path::new(&tcp_url)), options)
        .context("sessiond did not start on PostgreSQL over TCP")?;
    let (cookies, tokens) = (dir.join("cookies.txt"), dir.join("tokens.txt"));
    verify_all(addr, &cookies, "Cookie", "sessionid=", |status, _, _| {
        ensure!(status == 200, "a seeded cookie got {status} on PostgreSQL");
        Ok(())
    })?;
    verify_tokens(addr, &tokens)?;
    write_script(&dir, "cookie", &cookies, "Cookie", "sessionid=")?;
    write_script(&dir, "bearer", &tokens, "Authorization", "Bearer ")?;
    let seconds = bench.plan.wrk_seconds;
    // PostgreSQL's own processes share the two cores with sessiond and wrk;
    // a run on PostgreSQL also gives their CPU a request, for its row's note.
    let on = |addr: SocketAddr, script: &str| -> anyhow::Result<(WrkResult, f64)> {
        let cpu_before = Cpu::now(std::process::id())?;
        let postgres_before = cluster_cpu_ticks(cluster.port)?;
        let script = dir.join(format!("{script}.lua"));
        let child = spawn_wrk(addr, &script, seconds, WRK_CONNECTIONS)?;
        let result = finish_wrk(child, std::process::id(), cpu_before)?;
        let ticks = cluster_cpu_ticks(cluster.port)?.saturating_sub(postgres_before);
        let per_request =
            ticks as f64 / Cpu::TICKS_PER_SECOND * 1e6 / result.requests.max(1) as f64;
        Ok((result, per_request))
    };
    let on_postgres = |script: &str| on(addr, script);
    let (mut sqlite_cookie, mut postgres_cookie) = (Vec::new(), Vec::new());
    let (mut sqlite_bearer, mut postgres_bearer) = (Vec::new(), Vec::new());
    let (mut postgres_fresh, mut postgres_tcp_bearer) = (Vec::new(), Vec::new());
    // Each PostgreSQL run's CPU of PostgreSQL, by the same names as the runs.
    let (mut cookie_pg, mut fresh_pg, mut bearer_pg, mut tcp_pg) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let push = |runs: &mut Vec<WrkResult>, cpu: &mut Vec<f64>, (run, pg)| {
        runs.push(run);
        cpu.push(pg);
    };
    for round in 1..=bench.plan.rounds {
        // As in `request_path`: every stored expiry lags, so each cookie
        // run writes every session once, on both engines.
        bench.clock.jump(CLOCK_JUMP);
        clock.jump(CLOCK_JUMP);
        eprintln!("running: cookie whoami, SQLite then PostgreSQL ({round})");
        sqlite_cookie.push(bench.wrk("cookie")?);
        push(&mut postgres_cookie, &mut cookie_pg, on_postgres("cookie")?);
        // Every stored expiry is fresh now: the look-up path alone, which
        // tells the read from the slide's write.
        eprintln!("running: cookie whoami on PostgreSQL, no slide due ({round})");
        push(&mut postgres_fresh, &mut fresh_pg, on_postgres("cookie")?);
        eprintln!("running: bearer whoami, SQLite then PostgreSQL ({round})");
        sqlite_bearer.push(bench.wrk("bearer")?);
        push(&mut postgres_bearer, &mut bearer_pg, on_postgres("bearer")?);
        eprintln!("running: bearer whoami on PostgreSQL over TCP ({round})");
        push(&mut postgres_tcp_bearer, &mut tcp_pg, on(over_tcp.addr(), "bearer")?);
    }
    over_tcp.stop();
    let postgres_note = |cpu: &[f64]| {
        let mean = cpu.iter().sum::<f64>() / cpu.len().max(1) as f64;
        format!("; PostgreSQL's own processes {mean:.1} µs of CPU a request besides")
    };
    let note = |runs: &[WrkResult], of: &str| {
        format!("mean of {}; alternated with {of} in this run", each_rate(runs))
    };
    let rows = [
        ("cookie whoami on SQLite, 10,000 sessions", &sqlite_cookie, "PostgreSQL", None),
        (
            "cookie whoami on PostgreSQL, 10,000 sessions",
            &postgres_cookie,
            "SQLite",
            Some(&cookie_pg),
        ),
        ("bearer whoami on SQLite, 10,000 tokens", &sqlite_bearer, "PostgreSQL", None),
        (
            "bearer whoami on PostgreSQL, 10,000 tokens",
            &postgres_bearer,
            "SQLite",
            Some(&bearer_pg),
        ),
    ];
    for (scenario, runs, of, cpu) in rows {
        let besides = cpu.map(|cpu| postgres_note(cpu)).unwrap_or_default();
        bench.row(scenario, Some(mean(runs)), format!("{}{besides}", note(runs, of)));
    }
    bench.row(
        "cookie whoami on PostgreSQL, 10,000 sessions, no slide due",
        Some(mean(&postgres_fresh)),
        format!(
            "mean of {}; right after the run above, so every stored expiry is fresh{}",
            each_rate(&postgres_fresh),
            postgres_note(&fresh_pg)
        ),
    );
    bench.row(
        "bearer whoami on PostgreSQL over TCP (127.0.0.1), 10,000 tokens",
        Some(mean(&postgres_tcp_bearer)),
        format!(
            "mean of {}; the same database through the loopback instead of the socket{}",
            each_rate(&postgres_tcp_bearer),
            postgres_note(&tcp_pg)
        ),
    );
    let (of, to) = (Some(mean(&postgres_cookie)), Some(mean(&sqlite_cookie)));
    bench.ratio_verdict(cookie_target, of, to, 0.5);
    let (of, to) = (Some(mean(&postgres_bearer)), Some(mean(&sqlite_bearer)));
    bench.ratio_verdict(bearer_target, of, to, 0.5);

    if bench.plan.cleanups {
        eprintln!("seeding PostgreSQL: {EXPIRED_WEB} expired web and {EXPIRED_JWT} expired JWT...");
        let now = clock.now().to_string();
        let (web, jwt) = (EXPIRED_WEB.to_string(), EXPIRED_JWT.to_string());
        run_child(&["__seed-expired", &url, &now, &web, &jwt])?;
        clock.jump(CLOCK_JUMP);
        eprintln!("running: cookie whoami on PostgreSQL during cleanup");
        // Long enough to cover a cleanup three times the target's 5 s, so
        // that its failed requests, if any, are counted.
        let seconds = seconds.max(20);
        let cpu_before = Cpu::now(std::process::id())?;
        let child = spawn_wrk(addr, &dir.join("cookie.lua"), seconds, WRK_CONNECTIONS)?;
        std::thread::sleep(CLEANUP_START);
        clock.jump(CLEANUP_CLOCK_JUMP);
        let cleanup = timed_cleanup(Path::new(&url));
        let result = finish_wrk(child, std::process::id(), cpu_before)?;
        let (cleanup_seconds, run) = cleanup?;
        ensure!(
            (run.web, run.jwt) == (EXPIRED_WEB, EXPIRED_JWT),
            "the cleanup on PostgreSQL cleared {} web and {} JWT rows",
            run.web,
            run.jwt
        );
        let covered = CLEANUP_START.as_secs_f64() + cleanup_seconds < f64::from(seconds);
        let mut note = during_note(cleanup_seconds, run);
        if !covered {
            note.push_str("; the cleanup OUTLASTED the run, whose figures miss its end");
        }
        bench.row("cookie whoami on PostgreSQL during cleanup (1.1 M rows)", Some(result), note);
        let holds = cleanup_seconds < 5.0;
        bench.verdict(cleanup_target, Some(holds), format!("{cleanup_seconds:.2} s"));
        let errors = result.errors;
        bench.verdict(failures_target, Some(errors == 0 && covered), format!("{errors} errors"));
    } else {
        for target in [cleanup_target, failures_target] {
            bench.verdict(target, None, String::from("skipped (SESSIOND_BENCH_QUICK)"));
        }
    }
    running.stop();
    drop(cluster);
    Ok(())
}

/// [`BURST_LOGINS`] real form logins, [`BURST_THREADS`] at once, each for
/// its own user; resident memory before and after.
fn login_burst(bench: &mut Bench) -> anyhow::Result<()> {
    bench.memory.phase("login_burst");
    let (rss_before, anon_before) = (status_kib("VmRSS")?, status_kib("RssAnon")?);
    let peak_before = password_hash::peak_concurrent_hashes();
    let started = Instant::now();
    let addr = bench.addr;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let threads: Vec<_> = (0..BURST_THREADS)
            .map(|thread| {
                scope.spawn(move || -> anyhow::Result<()> {
                    for number in (thread..BURST_LOGINS).step_by(BURST_THREADS) {
                        let status = form_login(addr, &format!("user{number:05}"))?;
                        ensure!(status == 303, "a burst login got {status}");
                    }
                    Ok(())
                })
            })
            .collect();
        for thread in threads {
            thread.join().map_err(|_| anyhow::anyhow!("a login thread panicked"))??;
        }
        Ok(())
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let (rss_after, anon_after) = (status_kib("VmRSS")?, status_kib("RssAnon")?);
    let grew_mib = (rss_after as f64 - rss_before as f64) / 1024.0;
    bench.row(
        format!("{BURST_LOGINS} form logins, {BURST_THREADS} at once"),
        None,
        format!(
            "{seconds:.2} s ({:.0} logins/s); resident {:.1} -> {:.1} MiB, anonymous {:.1} -> {:.1} MiB; at most {} hashes at once (of {} slots; {} before the burst)",
            BURST_LOGINS as f64 / seconds,
            rss_before as f64 / 1024.0,
            rss_after as f64 / 1024.0,
            anon_before as f64 / 1024.0,
            anon_after as f64 / 1024.0,
            password_hash::peak_concurrent_hashes(),
            password_hash::slots(),
            peak_before,
        ),
    );
    bench.verdict(
        format!("resident memory after {BURST_LOGINS} logins within 16 MiB of before"),
        Some(grew_mib < 16.0),
        format!("{grew_mib:+.1} MiB"),
    );
    bench.verdict(
        "at most one hash per core at once",
        Some(password_hash::peak_concurrent_hashes() <= password_hash::slots()),
        format!(
            "{} at most, {} cores",
            password_hash::peak_concurrent_hashes(),
            password_hash::slots()
        ),
    );
    Ok(())
}

/// Cookie whoami under wrk while [`FLOOD_CONNECTIONS`] connections post
/// right-password logins. The whoami run starts first, so that its
/// connections are open before the flood's fill the connection cap.
fn login_flood(bench: &mut Bench) -> anyhow::Result<()> {
    bench.memory.phase("login_flood");
    bench.clock.jump(CLOCK_JUMP);
    eprintln!("running: cookie whoami during a login flood");
    let seconds = bench.plan.wrk_seconds;
    let cpu_before = Cpu::now(std::process::id())?;
    let whoami = spawn_wrk(bench.addr, &bench.script("cookie"), seconds, WRK_CONNECTIONS)?;
    std::thread::sleep(Duration::from_millis(200));
    let flood = Command::new("wrk")
        .args(["-t1", &format!("-c{FLOOD_CONNECTIONS}"), &format!("-d{seconds}s"), "--timeout=30s"])
        .arg("-s")
        .arg(bench.script("flood"))
        .arg(format!("http://{}/login", bench.addr))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("failed to start the flood's wrk")?;
    let result = finish_wrk(whoami, std::process::id(), cpu_before)?;
    let output = flood.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().find(|line| line.starts_with("FLOOD ")).with_context(|| {
        format!("the flood printed no result:\n{stdout}{}", String::from_utf8_lossy(&output.stderr))
    })?;
    let field = |name: &str| -> anyhow::Result<f64> {
        line.split(' ')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no `{name}` in `{line}`"))?
            .parse()
            .with_context(|| format!("bad `{name}` in `{line}`"))
    };
    let flood_seconds = field("duration_us")? / 1e6;
    let signed_in = field("ok")?;
    let logins_per_second = signed_in / flood_seconds;
    bench.row(
        format!("cookie whoami during a login flood ({FLOOD_CONNECTIONS} connections)"),
        Some(result),
        format!(
            "the flood: {signed_in:.0} logins signed in ({logins_per_second:.1}/s), {:.0} answered 503 (by the connection cap of 256, which the flood's connections and wrk's pass, or by the login queue), {:.0} other answers, {:.0} socket errors; login p50 {:.2} s, p99 {:.2} s",
            field("busy")?,
            field("other")?,
            field("errors")?,
            field("p50_us")? / 1e6,
            field("p99_us")? / 1e6,
        ),
    );
    bench.verdict(
        "no cookie whoami fails during the login flood",
        Some(result.errors == 0),
        format!("{} errors", result.errors),
    );
    let without = bench.cookie_10k;
    bench.p99_verdict(
        "cookie whoami p99 during the login flood < 3x without",
        Some(result),
        without,
        3.0,
    );
    bench.verdict(
        "the login flood signs people in",
        Some(signed_in > 0.0),
        format!("{logins_per_second:.1} logins/s"),
    );
    Ok(())
}

/// The cleanup of 1.1 M expired rows, idle and under the cookie scenario.
fn cleanup(bench: &mut Bench) -> anyhow::Result<()> {
    bench.memory.phase("cleanup");
    let target_idle = "idle cleanup of 1.1 M rows < 3 s";
    let targets_during = [
        "no request fails during cleanup",
        "cookie throughput during cleanup >= 0.5 of without",
        "cookie p99 during cleanup < 5x without",
    ];
    if !bench.plan.cleanups {
        bench.verdict(target_idle, None, String::from("skipped (SESSIOND_BENCH_QUICK)"));
        for target in targets_during {
            bench.verdict(target, None, String::from("skipped (SESSIOND_BENCH_QUICK)"));
        }
        return Ok(());
    }
    eprintln!("seeding {EXPIRED_WEB} expired web and {EXPIRED_JWT} expired JWT sessions...");
    seed_expired_rows(bench, EXPIRED_WEB, EXPIRED_JWT)?;
    eprintln!("running: cleanup on the idle server");
    let (seconds, run) = timed_cleanup(&bench.db_path)?;
    ensure!(
        run.web == EXPIRED_WEB && run.jwt == EXPIRED_JWT,
        "the cleanup cleared {} web and {} JWT rows, not {EXPIRED_WEB} and {EXPIRED_JWT}",
        run.web,
        run.jwt
    );
    bench.row(
        "cleanup, idle (1.1 M rows)",
        None,
        format!("{seconds:.2} s; cleared {} web + {} JWT", run.web, run.jwt),
    );
    bench.verdict(target_idle, Some(seconds < 3.0), format!("{seconds:.2} s"));

    eprintln!("seeding the expired rows again...");
    seed_expired_rows(bench, EXPIRED_WEB, EXPIRED_JWT)?;
    let during = during_cleanup(bench, "cookie", (EXPIRED_WEB, EXPIRED_JWT), 10)?;
    bench.row("cookie whoami during cleanup (1.1 M rows)", Some(during.result), during.note());
    let without = bench.cookie_10k;
    let [failures, rate, p99] = targets_during;
    during.verdicts(bench, (failures, Some(rate), p99), without);
    Ok(())
}

/// A million live web sessions and a million JWT rows; cookie and bearer
/// whoami rotating over [`Plan::scale_rotating`] of each.
fn scale(bench: &mut Bench) -> anyhow::Result<()> {
    bench.memory.phase("scale");
    let Plan { scale_live, scale_rotating, .. } = bench.plan;
    eprintln!("seeding up to {scale_live} live web sessions and {scale_live} JWT rows...");
    let started = Instant::now();
    run_child(&[
        "__seed-scale",
        &path_text(&bench.db_path),
        &path_text(&bench.dir),
        &scale_live.to_string(),
        &scale_rotating.to_string(),
        &bench.clock.now().to_string(),
    ])?;
    eprintln!("  done in {:.1} s", started.elapsed().as_secs_f64());
    let (cookies, tokens) =
        (bench.dir.join("cookies-scale.txt"), bench.dir.join("tokens-scale.txt"));
    write_script(&bench.dir, "cookie-scale", &cookies, "Cookie", "sessionid=")?;
    write_script(&bench.dir, "bearer-scale", &tokens, "Authorization", "Bearer ")?;
    verify_tokens(bench.addr, &tokens)?;
    verify_cookies(bench, &cookies, scale_rotating)?;
    let mut fresh_runs = Vec::new();
    let mut cookie_runs = Vec::new();
    let mut bearer_runs = Vec::new();
    let parts = split_lines(&cookies, SLIDE_PASS_CONNECTIONS)?;
    let mut slid_during_fresh = Vec::new();
    for round in 1..=bench.plan.rounds {
        // Every stored expiry is made fresh just before the run, so that no
        // slide falls due in it (one falls due 30 s after the last): the
        // look-up path alone, as in the run of `request_path` it is
        // compared with. Neither the sequential check above (100,000
        // requests one by one) nor the last run with the jump (which does
        // not reach every cookie in 10 s) leaves them all fresh, and runs
        // that wrote tens of thousands of slides were taken for "no slide
        // due" before. The clock jumps first, so that the pass must write
        // every slide: a slide still within its allowed lag is put off while
        // another writer holds the lock, and the pass's four connections
        // write at once.
        bench.clock.jump(CLOCK_JUMP);
        // A slide falls due once the stored expiry lags (or leads) the
        // exact one by half the allowed lag, 30 s, and a pass on a loaded
        // machine can take longer than that (67.4 s in the run of
        // 2026-12-01 18:28, whose "no slide due" run then wrote 9,870
        // slides). So the clock stands still through the pass, every
        // session slides to the same expiry, and the run starts 5 s before
        // that time: none falls due in a run of up to 35 s.
        let held_at = bench.clock.hold();
        let passed = slide_pass(bench, &parts);
        bench.clock.resume_at(held_at - 5);
        passed?;
        let before = stored_expiries(&bench.db_path, &cookies)?;
        let wanted = bench.lifetime.expiry_after_save(held_at - SEED_SAVE_AGE, held_at);
        let lagging = before.iter().filter(|expiry| **expiry != wanted).count();
        ensure!(lagging == 0, "{lagging} stored expiries did not slide to {wanted} in the pass");
        eprintln!("running: cookie whoami, {scale_live} sessions, no slide due ({round})");
        fresh_runs.push(bench.wrk("cookie-scale")?);
        let after = stored_expiries(&bench.db_path, &cookies)?;
        slid_during_fresh.push(before.iter().zip(&after).filter(|(b, a)| b != a).count());
        eprintln!("running: bearer whoami, {scale_live} tokens ({round})");
        bearer_runs.push(bench.wrk("bearer-scale")?);
        bench.clock.jump(CLOCK_JUMP);
        let run_time = bench.clock.now();
        eprintln!("running: cookie whoami, {scale_live} sessions, every slide due ({round})");
        let result = bench.wrk("cookie-scale")?;
        cookie_runs.push(result);
        check_slid_if_covered(bench, &cookies, run_time, scale_rotating, result)?;
    }
    let fresh = mean(&fresh_runs);
    let cookie = mean(&cookie_runs);
    let bearer = mean(&bearer_runs);
    bench.cookie_scale = Some(cookie);
    let (live, rotating) = (thousands(scale_live), thousands(scale_rotating));
    bench.row(
        format!("cookie whoami, {live} live sessions, rotating over {rotating}, no slide due"),
        Some(fresh),
        format!(
            "mean of {}; right after a pass that slid every stored expiry; stored expiries that slid during the runs: {}",
            each_rate(&fresh_runs),
            slid_during_fresh.iter().map(usize::to_string).collect::<Vec<_>>().join(" and ")
        ),
    );
    let against = bench
        .cookie_10k
        .map(|ten| format!("{:.3}", cookie.requests_per_second() / ten.requests_per_second()))
        .unwrap_or_default();
    bench.row(
        format!("cookie whoami, {live} live sessions, rotating over {rotating}, every slide due"),
        Some(cookie),
        format!(
            "mean of {}; the clock jumped {CLOCK_JUMP} s first, so each of the {rotating} sessions was written once in the run (ten times the writes of the 10,000-session run; {against} of its rate; no target)",
            each_rate(&cookie_runs)
        ),
    );
    bench.row(
        format!("bearer whoami, {live} JWT rows, rotating over {rotating}"),
        Some(bearer),
        format!("mean of {}", each_rate(&bearer_runs)),
    );
    let (fresh_10k, bearer_10k) = (bench.fresh_10k, bench.bearer_10k);
    bench.ratio_verdict(
        &format!("cookie whoami with {live} sessions >= 0.8 of with 10,000 (no slide due)"),
        Some(fresh),
        fresh_10k,
        0.8,
    );
    bench.ratio_verdict(
        &format!("bearer whoami with {live} JWT rows >= 0.8 of with 10,000"),
        Some(bearer),
        bearer_10k,
        0.8,
    );
    Ok(())
}

/// The cleanup of [`STEADY_EXPIRED_WEB`] expired web sessions beside the
/// million live ones, while the cookie scenario of `scale` runs.
fn steady_cleanup(bench: &mut Bench) -> anyhow::Result<()> {
    bench.memory.phase("steady_cleanup");
    let targets = [
        "steady-state cleanup (100,000 expired beside 1 M live) < 5 s",
        "no request fails during the steady-state cleanup",
        "cookie p99 during the steady-state cleanup < 5x without",
    ];
    if !bench.plan.cleanups {
        for target in targets {
            bench.verdict(target, None, String::from("skipped (SESSIOND_BENCH_QUICK)"));
        }
        return Ok(());
    }
    eprintln!("seeding {STEADY_EXPIRED_WEB} expired web sessions...");
    seed_expired_rows(bench, STEADY_EXPIRED_WEB, 0)?;
    // 15 s: long enough to cover a cleanup of twice the target's 5 s (in
    // the 16:29 run of 2026-12-01 it took 5.61 s and outlasted a 10 s run,
    // so that the run could not say whether a request failed at its end).
    let during = during_cleanup(bench, "cookie-scale", (STEADY_EXPIRED_WEB, 0), 15)?;
    bench.row(
        format!(
            "cookie whoami during the steady-state cleanup ({} live, 100,000 expired)",
            thousands(bench.plan.scale_live)
        ),
        Some(during.result),
        during.note(),
    );
    let seconds = during.seconds;
    bench.verdict(targets[0], Some(seconds < 5.0), format!("{seconds:.2} s"));
    let without = bench.cookie_scale;
    during.verdicts(bench, (targets[1], None, targets[2]), without);
    Ok(())
}

// ---------------------------------------------------------------------------
// Helpers of the scenarios

/// Every cookie answers 200 and slides its stored expiry.
fn verify_cookies(bench: &Bench, cookies: &Path, count: usize) -> anyhow::Result<()> {
    let pass_time = bench.clock.now();
    verify_all(bench.addr, cookies, "Cookie", "sessionid=", |status, headers, body| {
        ensure!(status == 200, "a cookie got {status}");
        ensure!(body.contains(r#""auth":"session""#), "a cookie got `{body}`");
        ensure!(
            headers.iter().any(|h| h.to_ascii_lowercase().starts_with("set-cookie: sessionid=")),
            "a cookie request got no Set-Cookie"
        );
        Ok(())
    })?;
    check_expiry_slid(&bench.db_path, cookies, bench.lifetime, pass_time, count)?;
    eprintln!("checked: every cookie answers 200 and its stored expiry slid");
    Ok(())
}

/// After a cookie run: every stored expiry slid, when the run made enough
/// requests to reach every cookie (twice the count: two wrk threads rotate
/// from different starts); a short run on a slow machine may not.
fn check_slid_if_covered(
    bench: &Bench,
    cookies: &Path,
    run_time: UnixTime,
    count: usize,
    result: WrkResult,
) -> anyhow::Result<()> {
    if result.requests < 2 * count as u64 {
        eprintln!(
            "  NOT CHECKED that every stored expiry slid: {} requests for {count} cookies",
            result.requests
        );
        return Ok(());
    }
    check_expiry_slid(&bench.db_path, cookies, bench.lifetime, run_time, count)
        .context("the cookie run did not slide every stored expiry")
}

/// Connections of the pass that slides every stored expiry before a `scale`
/// run with no slide due, one per worker of a 4-worker server.
const SLIDE_PASS_CONNECTIONS: usize = 4;

/// Writes the lines of `path` round-robin into `count` files beside it, and
/// returns their paths.
fn split_lines(path: &Path, count: usize) -> anyhow::Result<Vec<PathBuf>> {
    let text = std::fs::read_to_string(path)?;
    let mut parts = vec![String::new(); count];
    for (index, line) in text.lines().enumerate() {
        writeln!(parts[index % count], "{line}")?;
    }
    let mut paths = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        let part_path = path.with_extension(format!("part{index}.txt"));
        std::fs::write(&part_path, part)?;
        paths.push(part_path);
    }
    Ok(paths)
}

/// One request per cookie of `parts`, each part on its own connection at
/// once, so that every stored expiry is slid within a few seconds.
fn slide_pass(bench: &Bench, parts: &[PathBuf]) -> anyhow::Result<()> {
    let started = Instant::now();
    let addr = bench.addr;
    std::thread::scope(|scope| {
        let passes: Vec<_> = parts
            .iter()
            .map(|part| {
                scope.spawn(move || {
                    verify_all(addr, part, "Cookie", "sessionid=", |status, _, _| {
                        ensure!(status == 200, "a cookie got {status}");
                        Ok(())
                    })
                })
            })
            .collect();
        passes.into_iter().try_for_each(|pass| pass.join().expect("a slide pass panicked"))
    })?;
    eprintln!("  slid every stored expiry in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The stored expiry of each cookie's session, in the file's order.
fn stored_expiries(db_path: &Path, cookies_path: &Path) -> anyhow::Result<Vec<UnixTime>> {
    let conn = db::connect(db_path)?;
    let text = std::fs::read_to_string(cookies_path)?;
    text.lines()
        .map(|key| {
            let cookie_key =
                web_sessions::parse_cookie_value(key).context("a seeded key is malformed")?;
            Ok(web_sessions::find_live(&conn, &cookie_key, i64::MIN)?
                .context("a seeded session is gone")?
                .expire_date)
        })
        .collect()
}

/// Every bearer token answers 200.
fn verify_tokens(addr: SocketAddr, tokens: &Path) -> anyhow::Result<()> {
    verify_all(addr, tokens, "Authorization", "Bearer ", |status, _, body| {
        ensure!(status == 200, "a bearer token got {status}");
        ensure!(body.contains(r#""auth":"jwt""#), "a token got `{body}`");
        Ok(())
    })?;
    eprintln!("checked: every bearer token answers 200");
    Ok(())
}

fn seed_expired_rows(bench: &Bench, web: usize, jwt: usize) -> anyhow::Result<()> {
    run_child(&[
        "__seed-expired",
        &path_text(&bench.db_path),
        &bench.clock.now().to_string(),
        &web.to_string(),
        &jwt.to_string(),
    ])
}

/// The cookie scenario of `script`, run for at least `least_seconds`, with
/// a cleanup started [`CLEANUP_START`] into it; a cleanup that clears other counts than
/// `expected` fails the scenario. `covered` is false when the cleanup
/// outlasted the run, whose figures then miss its end.
fn during_cleanup(
    bench: &Bench,
    script: &str,
    expected: (usize, usize),
    least_seconds: u32,
) -> anyhow::Result<During> {
    bench.clock.jump(CLOCK_JUMP);
    eprintln!("running: cookie whoami during cleanup ({script})");
    let seconds = bench.plan.wrk_seconds.max(least_seconds);
    let cpu_before = Cpu::now(std::process::id())?;
    let child = spawn_wrk(bench.addr, &bench.script(script), seconds, WRK_CONNECTIONS)?;
    std::thread::sleep(CLEANUP_START);
    bench.clock.jump(CLEANUP_CLOCK_JUMP);
    let cleanup = timed_cleanup(&bench.db_path);
    let result = finish_wrk(child, std::process::id(), cpu_before)?;
    let (cleanup_seconds, run) = cleanup?;
    ensure!(
        (run.web, run.jwt) == expected,
        "the cleanup cleared {} web and {} JWT rows, not {} and {}",
        run.web,
        run.jwt,
        expected.0,
        expected.1
    );
    let covered = CLEANUP_START.as_secs_f64() + cleanup_seconds < f64::from(seconds);
    Ok(During { result, seconds: cleanup_seconds, run, covered })
}

/// A cookie run with a cleanup in it.
struct During {
    result: WrkResult,
    seconds: f64,
    run: Cleared,
    covered: bool,
}

impl During {
    fn note(&self) -> String {
        let mut note = during_note(self.seconds, self.run);
        if !self.covered {
            note.push_str("; the cleanup OUTLASTED the run, whose figures miss its end");
        }
        note
    }

    /// The run's verdicts for `targets`: no failed request, the rate at
    /// least half of `without` (when named), the p99 under 5 times that of
    /// `without`. Whatever the figures, a cleanup that outlasted the run
    /// misses them.
    fn verdicts(
        &self,
        bench: &mut Bench,
        targets: (&str, Option<&str>, &str),
        without: Option<WrkResult>,
    ) {
        let first = bench.verdicts.len();
        let errors = self.result.errors;
        bench.verdict(targets.0, Some(errors == 0), format!("{errors} errors"));
        if let Some(target) = targets.1 {
            bench.ratio_verdict(target, Some(self.result), without, 0.5);
        }
        bench.p99_verdict(targets.2, Some(self.result), without, 5.0);
        if !self.covered {
            for verdict in &mut bench.verdicts[first..] {
                verdict.holds = Some(false);
                verdict.figure.push_str(", but the cleanup outlasted the run");
            }
        }
    }
}

fn during_note(seconds: f64, run: Cleared) -> String {
    format!(
        "the cleanup started {:.0} s into the run, as the clock moved {CLEANUP_CLOCK_JUMP} s so \
         that every session's slide fell due, and took {seconds:.2} s under load, clearing {} \
         web + {} JWT; the wrk CPU figure includes the cleanup process",
        CLEANUP_START.as_secs_f64(),
        run.web,
        run.jwt,
    )
}

/// One form login with the bench password; returns the status.
fn form_login(addr: SocketAddr, username: &str) -> anyhow::Result<u16> {
    let body = format!("username={username}&password={BENCH_PASSWORD}");
    let request = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split(' ').nth(1).and_then(|code| code.parse().ok());
    status.with_context(|| {
        format!("bad response to a login: `{}`", response.lines().next().unwrap_or(""))
    })
}

fn thousands(number: usize) -> String {
    let digits = number.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The 1-minute load average, for the report.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| String::from("unknown"))
}

// ---------------------------------------------------------------------------
// Memory over the whole run

/// Reads this process's `RssAnon` every 10 ms and keeps the largest, with
/// the scenario it was seen in.
struct MemorySampler {
    peak_anon_kib: AtomicU64,
    /// The scenario running, the one the peak was seen in, and each
    /// scenario's own peak.
    phase: std::sync::Mutex<(String, String)>,
    phase_peaks: std::sync::Mutex<Vec<(String, u64)>>,
    stop: AtomicBool,
    thread: std::sync::Mutex<Option<JoinHandle<()>>>,
}

struct MemoryPeak {
    peak_anon_kib: u64,
    peak_phase: String,
    /// `scenario MiB, ...`: each scenario's peak RssAnon.
    by_phase: String,
}

impl MemorySampler {
    fn start() -> Arc<MemorySampler> {
        let sampler = Arc::new(MemorySampler {
            peak_anon_kib: AtomicU64::new(0),
            phase: std::sync::Mutex::new((String::from("seeding"), String::from("seeding"))),
            phase_peaks: std::sync::Mutex::new(vec![(String::from("seeding"), 0)]),
            stop: AtomicBool::new(false),
            thread: std::sync::Mutex::new(None),
        });
        let shared = Arc::clone(&sampler);
        let thread = std::thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                shared.sample();
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        *sampler.thread.lock().unwrap() = Some(thread);
        sampler
    }

    fn sample(&self) {
        let Ok(anon) = status_kib("RssAnon") else { return };
        if let Some((_, peak)) = self.phase_peaks.lock().unwrap().last_mut() {
            *peak = (*peak).max(anon);
        }
        if anon > self.peak_anon_kib.fetch_max(anon, Ordering::SeqCst) {
            let mut phase = self.phase.lock().unwrap();
            phase.1 = phase.0.clone();
        }
    }

    fn phase(&self, name: &str) {
        self.phase.lock().unwrap().0 = name.to_owned();
        self.phase_peaks.lock().unwrap().push((name.to_owned(), 0));
    }

    fn stop(&self) -> MemoryPeak {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.lock().unwrap().take() {
            let _ = thread.join();
        }
        self.sample();
        let by_phase: Vec<String> = self
            .phase_peaks
            .lock()
            .unwrap()
            .iter()
            .map(|(name, kib)| format!("{name} {:.1}", *kib as f64 / 1024.0))
            .collect();
        MemoryPeak {
            peak_anon_kib: self.peak_anon_kib.load(Ordering::SeqCst),
            peak_phase: self.phase.lock().unwrap().1.clone(),
            by_phase: by_phase.join(", "),
        }
    }
}

fn status_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .with_context(|| format!("no `{field}` in /proc/self/status"))?;
    Ok(line.trim().trim_end_matches("kB").trim().parse()?)
}

/// Runs `sessiond clear_expired_sessions` on the file, as an operator would
/// beside the running server, and returns its wall time and the counts it
/// printed. A separate process, so that the server's peak RSS is the
/// server's alone.
fn timed_cleanup(db_path: &Path) -> anyhow::Result<(f64, Cleared)> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessiond"));
    command.arg("--db").arg(db_path).arg("clear_expired_sessions");
    // A PostgreSQL URL has no folder to run in (the `postgres` scenario).
    let folder = db_path.parent().filter(|folder| folder.is_dir());
    command.current_dir(folder.unwrap_or(&std::env::temp_dir()));
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
        // On by default, the access log would write this bench's own stderr
        // (issue 16 measures it apart: see the README's "Observability").
        ("SESSIOND_ACCESS_LOG", "false".to_owned()),
        // The login flood gives each login its own client address.
        ("SESSIOND_TRUST_PROXY_HEADERS", "true".to_owned()),
        // Every connection of the bench comes from 127.0.0.1; the flood
        // stands for many clients, so the per-client cap is the server's.
        ("SESSIOND_MAX_CONNECTIONS_PER_CLIENT", "256".to_owned()),
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
    let conn = db::open(Path::new(db_path))?;
    let settings = bench_settings(Path::new(db_path));
    let secrets = secrets::resolve(&conn, &settings)?;
    let jwt_key = jwt_simple::algorithms::HS256Key::from_bytes(secrets.jwt_secret_key.as_bytes());
    let now = SystemClock.now();
    // One Argon2 hash for all: the logins of the bench all use one password.
    let password_hash = users::hash_password(BENCH_PASSWORD);
    let mut cookies = String::new();
    let mut tokens = String::new();
    let tx = conn.transaction(sessiond::db::Behavior::Immediate)?;
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

/// `__seed-expired DB NOW WEB JWT`: WEB expired web sessions and JWT
/// expired JWT rows, spread over the seeded users.
fn seed_expired(args: &[String]) -> anyhow::Result<ExitCode> {
    let [db_path, now, web, jwt] = args else { bail!("usage: __seed-expired DB NOW WEB JWT") };
    let now: UnixTime = now.parse()?;
    let (web, jwt): (usize, usize) = (web.parse()?, jwt.parse()?);
    let conn = seeding_connection(Path::new(db_path))?;
    let seeded_users = seeded_users(&conn)?;
    // Web sessions last saved 40 days ago: expired by the idle age.
    let saved = now - 40 * 86_400;
    for chunk_start in (0..web).step_by(100_000) {
        let tx = conn.transaction(sessiond::db::Behavior::Immediate)?;
        for number in chunk_start..(chunk_start + 100_000).min(web) {
            let user = &seeded_users[number % USERS];
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
    let tx = conn.transaction(sessiond::db::Behavior::Immediate)?;
    for number in 0..jwt {
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

/// `__seed-scale DB DIR LIVE ROTATING NOW`: live web sessions and JWT rows
/// until each table holds about LIVE; writes the keys of ROTATING of the new
/// web sessions to DIR/cookies-scale.txt and as many tokens to
/// DIR/tokens-scale.txt.
fn seed_scale(args: &[String]) -> anyhow::Result<ExitCode> {
    let [db_path, dir, live, rotating, now] = args else {
        bail!("usage: __seed-scale DB DIR LIVE ROTATING NOW")
    };
    let (live, rotating): (usize, usize) = (live.parse()?, rotating.parse()?);
    let now: UnixTime = now.parse()?;
    let conn = seeding_connection(Path::new(db_path))?;
    let settings = bench_settings(Path::new(db_path));
    let secrets = secrets::resolve(&conn, &settings)?;
    let jwt_key = jwt_simple::algorithms::HS256Key::from_bytes(secrets.jwt_secret_key.as_bytes());
    let seeded_users = seeded_users(&conn)?;
    let new_rows = live.saturating_sub(USERS);
    let mut cookies = String::new();
    let mut tokens = String::new();
    for chunk_start in (0..new_rows).step_by(100_000) {
        let tx = conn.transaction(sessiond::db::Behavior::Immediate)?;
        for number in chunk_start..(chunk_start + 100_000).min(new_rows) {
            let user = &seeded_users[number % USERS];
            let (key, _) = web_sessions::create(
                &tx,
                user,
                bench_lifetime(),
                now - SEED_SAVE_AGE,
                "127.0.0.1",
                "sessiond-bench",
            )?;
            let jti = uuid::Uuid::new_v4().to_string();
            jwt_sessions::create(
                &tx,
                &jti,
                user.id,
                now,
                now + JWT_LIFETIME,
                "127.0.0.1",
                "sessiond-bench",
            )?;
            if number < rotating {
                writeln!(cookies, "{key}")?;
                let token = jwt::issue(&jwt_key, user, &jti, now, now + JWT_LIFETIME)?;
                writeln!(tokens, "{token}")?;
            }
        }
        tx.commit()?;
    }
    std::fs::write(Path::new(dir).join("cookies-scale.txt"), cookies)?;
    std::fs::write(Path::new(dir).join("tokens-scale.txt"), tokens)?;
    Ok(ExitCode::SUCCESS)
}

/// A connection for a seeding child, with a big page cache: only in this
/// short-lived process, where the random key hashes make the unique index
/// the slow part of a million inserts.
fn seeding_connection(db_path: &Path) -> anyhow::Result<sessiond::db::Conn> {
    let conn = db::connect(db_path)?;
    if let Some(sqlite) = conn.as_sqlite() {
        sqlite.pragma_update(None, "cache_size", -512 * 1024)?;
    }
    Ok(conn)
}

/// The users `__seed-live` made, in order.
fn seeded_users(conn: &sessiond::db::Conn) -> anyhow::Result<Vec<User>> {
    let mut seeded_users: Vec<User> = Vec::with_capacity(USERS);
    for number in 0..USERS {
        let username = format!("user{number:05}");
        let user = users::find_by_username(conn, &username)?
            .with_context(|| format!("no seeded user `{username}`"))?;
        seeded_users.push(user);
    }
    Ok(seeded_users)
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
/// stored expiries lag again before a run without waiting a minute; held
/// still while `scale` slides every session, so that every stored expiry
/// is the same however long that pass takes.
#[derive(Debug, Default)]
struct OffsetClock {
    offset: AtomicI64,
    /// The time it reads while held, or 0.
    held: AtomicI64,
}

impl OffsetClock {
    fn jump(&self, seconds: i64) {
        self.offset.fetch_add(seconds, Ordering::SeqCst);
    }

    /// Stops the clock at the time it reads now, which it returns.
    fn hold(&self) -> UnixTime {
        let now = self.now();
        self.held.store(now, Ordering::SeqCst);
        now
    }

    /// Starts a held clock again, from `at`.
    fn resume_at(&self, at: UnixTime) {
        self.offset.store(at - SystemClock.now(), Ordering::SeqCst);
        self.held.store(0, Ordering::SeqCst);
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> UnixTime {
        match self.held.load(Ordering::SeqCst) {
            0 => SystemClock.now() + self.offset.load(Ordering::SeqCst),
            held => held,
        }
    }
}

/// Every cookie's stored expiry is within the allowed lag of a save at
/// `saved_at` or later.
fn check_expiry_slid(
    db_path: &Path,
    cookies_path: &Path,
    lifetime: Lifetime,
    saved_at: UnixTime,
    expected: usize,
) -> anyhow::Result<()> {
    let conn = db::connect(db_path)?;
    let wanted = lifetime.expiry_after_save(saved_at - SEED_SAVE_AGE, saved_at);
    let file = std::fs::File::open(cookies_path)?;
    let mut checked = 0;
    for line in BufReader::new(file).lines() {
        let key = line?;
        let cookie_key =
            web_sessions::parse_cookie_value(&key).context("a seeded key is malformed")?;
        let session = web_sessions::find_live(&conn, &cookie_key, saved_at)?
            .context("a seeded session is gone")?;
        ensure!(
            session.expire_date >= wanted - lifetime.allowed_lag(),
            "a stored expiry did not slide: {} < {}",
            session.expire_date,
            wanted - lifetime.allowed_lag()
        );
        checked += 1;
    }
    ensure!(checked == expected, "checked {checked} sessions, not {expected}");
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

/// The Lua script of a `GET /api/whoami` run: each request carries the
/// next line of `values_path` in `header`, after `prefix`.
fn write_script(
    dir: &Path,
    name: &str,
    values_path: &Path,
    header: &str,
    prefix: &str,
) -> anyhow::Result<PathBuf> {
    write_rotating_script(dir, name, values_path, PATH, &[], (header, prefix))
}

/// The Lua script: each wrk thread builds one `GET path` per line of
/// `values_path` (with the fixed `headers`, and the line in `rotating`'s
/// header after its prefix) and rotates over them from its own starting
/// point; `done()` prints one `BENCH` line with the figures.
fn write_rotating_script(
    dir: &Path,
    name: &str,
    values_path: &Path,
    path: &str,
    headers: &[(&str, &str)],
    rotating: (&str, &str),
) -> anyhow::Result<PathBuf> {
    let fixed: String =
        headers.iter().map(|(name, value)| format!("[\"{name}\"] = \"{value}\", ")).collect();
    let (header, prefix) = rotating;
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
    prepared[#prepared + 1] = wrk.format("GET", "{path}", {{ {fixed}[header] = prefix .. line }})
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
    let script_path = dir.join(format!("{name}.lua"));
    std::fs::write(&script_path, script)?;
    Ok(script_path)
}

/// The login flood's Lua script: each request signs in the next seeded user
/// with the right password, from its own `X-Forwarded-For` address; `done()`
/// prints one `FLOOD` line with the counts of answers.
fn write_flood_script(dir: &Path) -> anyhow::Result<PathBuf> {
    let script = format!(
        r#"-- written by benches/http.rs
local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  sent = 0
  ok = 0
  busy = 0
  other = 0
end

function request()
  sent = sent + 1
  local user = sent % {USERS}
  local body = string.format("username=user%05d&password={BENCH_PASSWORD}", user)
  local address = string.format("10.%d.%d.%d", math.floor(sent / 65536) % 256,
    math.floor(sent / 256) % 256, sent % 256)
  return wrk.format("POST", "/login", {{
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Forwarded-For"] = address,
  }}, body)
end

function response(status, headers, body)
  if status == 303 then
    ok = ok + 1
  elseif status == 503 then
    busy = busy + 1
  else
    other = other + 1
  end
end

function done(summary, latency, requests)
  local ok, busy, other = 0, 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("ok")
    busy = busy + thread:get("busy")
    other = other + thread:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    "FLOOD requests=%d duration_us=%d ok=%d busy=%d other=%d errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, ok, busy, other,
    e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))
end
"#
    );
    let path = dir.join("flood.lua");
    std::fs::write(&path, script)?;
    Ok(path)
}

fn spawn_wrk(
    addr: SocketAddr,
    script: &Path,
    seconds: u32,
    connections: u32,
) -> anyhow::Result<std::process::Child> {
    Command::new("wrk")
        .arg(format!("-t{WRK_THREADS}"))
        .arg(format!("-c{connections}"))
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

/// CPU time used so far, in clock ticks, by the PostgreSQL cluster
/// listening on `port`: its postmaster (found by the `-p PORT` it was
/// started with), the children it has waited for, and its live children
/// (the backends, the background processes).
fn cluster_cpu_ticks(port: u16) -> anyhow::Result<u64> {
    let wanted = format!("-p {port} ");
    let mut processes = Vec::new();
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some((_, rest)) = stat.rsplit_once(')') else { continue };
        let parent: u32 =
            rest.split_whitespace().nth(1).and_then(|text| text.parse().ok()).unwrap_or(0);
        processes.push((pid, parent));
    }
    let postmaster = processes
        .iter()
        .map(|(pid, _)| *pid)
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                cmdline.contains("postgres") && cmdline.contains(&wanted)
            })
        })
        .with_context(|| format!("no PostgreSQL postmaster started with `-p {port}`"))?;
    let mut ticks = 0;
    for (pid, parent) in processes {
        if pid == postmaster || parent == postmaster {
            // A process gone since the listing counts no more.
            if let Ok(fields) = stat_fields(&format!("/proc/{pid}/stat")) {
                ticks += fields.iter().sum::<u64>();
            }
        }
    }
    Ok(ticks)
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
// The ceiling

/// `__ceiling WORKERS`: a bare tiny_http server answering a fixed small
/// JSON body the crate's own way (and `http::server`'s until requests
/// stayed on their connection's thread): one shared listener, WORKERS
/// threads in a `recv_timeout` loop polling a stop flag. `__ceiling
/// same-thread` is [`serve_same_thread_ceiling`]. It prints its address,
/// then serves until its stdin closes.
fn serve_ceiling(args: &[String]) -> anyhow::Result<ExitCode> {
    let workers: usize = match args {
        [model] if model == "same-thread" => return serve_same_thread_ceiling(),
        [workers] => workers.parse()?,
        _ => bail!("usage: __ceiling WORKERS | __ceiling same-thread"),
    };
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

/// The ceiling's answer on the thread of the connection that read the
/// request, as sessiond's own listener answers (tiny_http's
/// `from_listener_with_handler`, a sessiond patch); no worker threads.
fn serve_same_thread_ceiling() -> anyhow::Result<ExitCode> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let content_type =
        tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"application/json"[..])
            .expect("valid header");
    let handler: tiny_http::Handler = Arc::new(move |request| {
        let response =
            tiny_http::Response::from_data(CEILING_BODY).with_header(content_type.clone());
        let _ = request.respond(response);
    });
    let limits = tiny_http::Limits::default();
    let server = tiny_http::Server::from_listener_with_handler(listener, limits, handler)
        .map_err(|error| anyhow::anyhow!("failed to start the ceiling server: {error}"))?;
    let addr = server.server_addr().to_ip().context("the ceiling has no IP address")?;
    println!("{addr}");
    std::io::stdout().flush()?;
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    Ok(ExitCode::SUCCESS)
}

/// The ceiling's child process.
struct Ceiling {
    addr: SocketAddr,
    pid: u32,
    child: std::process::Child,
}

impl Ceiling {
    /// The bare tiny_http app: `workers` threads taking requests from
    /// tiny_http's queue (`Server::recv`), the crate's own way.
    fn spawn(workers: usize) -> anyhow::Result<Ceiling> {
        Ceiling::spawn_with(&[&workers.to_string()])
    }

    /// The bare app answering on each connection's own thread.
    fn spawn_same_thread() -> anyhow::Result<Ceiling> {
        Ceiling::spawn_with(&["same-thread"])
    }

    fn spawn_with(args: &[&str]) -> anyhow::Result<Ceiling> {
        let exe = std::env::current_exe().context("failed to find the bench binary")?;
        let mut child = Command::new(exe)
            .arg("__ceiling")
            .args(args)
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
    load_before: String,
    load_after: String,
    minutes: f64,
    plan: Plan,
    workers: usize,
    ceiling: WrkResult,
    peak_anon_mib: f64,
    hwm_mib: f64,
    rows: &'a [Row],
    verdicts: &'a [Verdict],
}

fn print_report(report: &Report<'_>) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let ceiling_rps = report.ceiling.requests_per_second();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\nsessiond HTTP benchmark, {} UTC; {cores} cores, {} workers, {} hash slots; wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{}s; {USERS} users; load average {} before, {} after; {:.1} minutes\n",
        report.started_at.format("%Y-%m-%d %H:%M"),
        report.workers,
        password_hash::slots(),
        report.plan.wrk_seconds,
        report.load_before,
        report.load_after,
        report.minutes,
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
    let _ = writeln!(
        out,
        "\nmemory of the process hosting sessiond over the whole run (never reset): peak RssAnon {:.1} MiB, VmHWM {:.1} MiB (VmHWM counts the memory-mapped database pages too)",
        report.peak_anon_mib, report.hwm_mib
    );
    let _ = writeln!(out, "\ntargets:");
    for verdict in report.verdicts {
        let word = match verdict.holds {
            Some(true) => "holds",
            Some(false) => "MISSED",
            None => "NOT MEASURED",
        };
        let _ = writeln!(out, "- {}: {word} ({})", verdict.target, verdict.figure);
    }
    print!("{out}");
}

fn micros(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} ms", us as f64 / 1000.0)
    }
}

// ---------------------------------------------------------------------------
// Forward auth (issue 13).

/// Rules in the table for the forward-auth scenario; only the last matches.
const FORWARD_RULES: usize = 50;
/// The host the forward-auth requests name; the last rule matches it.
const FORWARD_HOST: &str = "app.example.test";

/// `/auth/forward` with the 10,000 cookies rotating and [`FORWARD_RULES`]
/// rules (the matching one last), on the running sessiond, alternated with
/// cookie whoami and the ceiling that `request_path` started (and this stops);
/// then, when nginx is installed, nginx in front
/// of a bare tiny_http app with `deploy/nginx.conf`'s `auth_request` against
/// sessiond, and the same nginx → app without it.
fn forward_auth(bench: &mut Bench) -> anyhow::Result<()> {
    use sessiond::access_rules::{self, NewRule};
    bench.memory.phase("forward_auth");
    let conn = db::connect(&bench.db_path)?;
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
    bench.clock.jump(1);
    let cookies_path = bench.cookies();
    let first_cookie = std::fs::read_to_string(&cookies_path)?
        .lines()
        .next()
        .context("no cookies were seeded")?
        .to_owned();
    let addr = bench.addr;
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
    write_forward_script(
        &bench.dir,
        "forward",
        &cookies_path,
        "/auth/forward",
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", FORWARD_HOST),
            ("X-Forwarded-Uri", "/page"),
        ],
    )?;
    // Forward auth, cookie whoami and the ceiling alternated, as in
    // `request_path`: the machine's speed drifts within a run, and each
    // ratio is taken between runs minutes apart at most.
    let mut ceiling_runs = vec![bench.wrk_ceiling()?];
    let mut same_thread_runs = vec![bench.wrk_same_thread_ceiling()?];
    let (mut forward_runs, mut cookie_runs) = (Vec::new(), Vec::new());
    for round in 1..=bench.plan.rounds {
        // Which of the two goes first changes each round, so that whatever
        // ran just before (the ceilings) counts against neither.
        let forward_first = round % 2 == 1;
        for forward in [forward_first, !forward_first] {
            // As before each cookie run: every stored expiry lags and must
            // slide.
            bench.clock.jump(CLOCK_JUMP);
            if forward {
                let run_time = bench.clock.now();
                eprintln!("running: /auth/forward ({round})");
                let result = bench.wrk("forward")?;
                check_slid_if_covered(bench, &cookies_path, run_time, USERS, result)
                    .context("the /auth/forward run did not slide every stored expiry")?;
                forward_runs.push(result);
            } else {
                eprintln!("running: cookie whoami, beside /auth/forward ({round})");
                cookie_runs.push(bench.wrk("cookie")?);
            }
        }
        ceiling_runs.push(bench.wrk_ceiling()?);
        same_thread_runs.push(bench.wrk_same_thread_ceiling()?);
    }
    for ceiling in [bench.ceiling.take(), bench.same_thread_ceiling.take()].into_iter().flatten() {
        ceiling.stop()?;
    }
    let (forward, cookie, ceiling) = (mean(&forward_runs), mean(&cookie_runs), mean(&ceiling_runs));
    let same_thread = mean(&same_thread_runs);
    bench.row(
        "forward auth (/auth/forward, cookie, 50 rules, match last)",
        Some(forward),
        format!(
            "mean of {}; all 10,000 cookies rotating, every stored expiry slid in each",
            each_rate(&forward_runs)
        ),
    );
    bench.row(
        "cookie whoami, alternated with /auth/forward",
        Some(cookie),
        format!("mean of {}; every stored expiry slid in each", each_rate(&cookie_runs)),
    );
    bench.row(
        "ceiling, alternated with /auth/forward",
        Some(ceiling),
        format!("mean of {}, before, between and after", each_rate(&ceiling_runs)),
    );
    bench.row(
        "ceiling answering on each connection's thread, alternated with /auth/forward",
        Some(same_thread),
        format!("mean of {}; reported, no target", each_rate(&same_thread_runs)),
    );
    bench.ratio_verdict("/auth/forward >= 0.75 of the ceiling", Some(forward), Some(ceiling), 0.75);
    let ratio = forward.requests_per_second() / same_thread.requests_per_second();
    bench.verdict(
        "/auth/forward / the ceiling answering on each connection's thread (reported)",
        None,
        format!("{ratio:.3}"),
    );
    bench.ratio_verdict(
        "/auth/forward about what cookie whoami costs (>= 0.9 of it)",
        Some(forward),
        Some(cookie),
        0.9,
    );
    match nginx_ratio(bench, &cookies_path)? {
        Some((with, without)) => {
            let ratio = with.requests_per_second() / without.requests_per_second();
            for (scenario, result) in [
                ("nginx → app with auth_request (deploy/nginx.conf)", with),
                ("nginx → app without auth_request", without),
            ] {
                bench.row(
                    scenario,
                    Some(result),
                    format!("one nginx worker; with/without = {ratio:.3}"),
                );
            }
            bench.verdict(
                "nginx → app with auth_request / without (reported)",
                None,
                format!("{ratio:.3}"),
            );
        }
        None => bench.verdict(
            "nginx → app with auth_request / without (reported)",
            None,
            format!("not measured: nginx is not installed at {NGINX_BIN}"),
        ),
    }
    Ok(())
}

const NGINX_BIN: &str = "/usr/sbin/nginx";

/// nginx → a bare tiny_http app, with and without `auth_request`.
fn nginx_ratio(
    bench: &Bench,
    cookies_path: &Path,
) -> anyhow::Result<Option<(WrkResult, WrkResult)>> {
    if !Path::new(NGINX_BIN).exists() {
        return Ok(None);
    }
    let (sessiond, dir) = (bench.addr, bench.dir.as_path());
    let app = Ceiling::spawn(bench.workers)?;
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
        let cpu_before = Cpu::now(nginx.pid())?;
        let child = spawn_wrk(nginx_addr, &script, bench.plan.wrk_seconds, WRK_CONNECTIONS)?;
        results.push(finish_wrk(child, nginx.pid(), cpu_before)?);
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

/// A wrk script for `path` with fixed `headers` and the cookies rotating.
fn write_forward_script(
    dir: &Path,
    name: &str,
    cookies_path: &Path,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<PathBuf> {
    write_rotating_script(dir, name, cookies_path, path, headers, ("Cookie", "sessionid="))
}

// ---------------------------------------------------------------------------
// Observability (issue 16).

/// Cookie whoami with the metrics listener and the access log on, against
/// both off, on servers of their own over the bench's file, in runs of half
/// the plan's length, twice the plan's rounds of each, in the order off, on,
/// on, off, off, on, ... so that the machine's drift and a run's place count
/// against both alike; then
/// the cost of a `/metrics` scrape with the rows of `scale` in the table
/// (the metrics listener keeps the counts fresh in the background, so a
/// scrape reads cached counts; the recount's own cost is timed apart).
fn observability(bench: &mut Bench) -> anyhow::Result<()> {
    use sessiond::http::access_log::Destination;
    bench.memory.phase("observability");
    let log_path = bench.dir.join("access.log");
    let log_file = Arc::new(std::fs::OpenOptions::new().create(true).append(true).open(&log_path)?);
    let (db_path, workers) = (bench.db_path.clone(), bench.workers);
    let main_clock = Arc::clone(&bench.clock);
    let start = |on: bool| -> anyhow::Result<(startup::Running, Arc<OffsetClock>)> {
        let mut settings = bench_settings(&db_path);
        settings.access_log = on;
        settings.metrics_bind = on.then(|| "127.0.0.1:0".parse().expect("an address"));
        let clock = Arc::new(OffsetClock::default());
        clock.jump(main_clock.now() - SystemClock.now());
        let options = StartOptions {
            clock: clock.clone(),
            workers,
            access_log: Destination::File(Arc::clone(&log_file)),
            ..StartOptions::default()
        };
        Ok((startup::start(settings, options).context("sessiond did not start")?, clock))
    };
    let scrape = |addr: SocketAddr| -> anyhow::Result<(Duration, String)> {
        let started = Instant::now();
        let mut stream = TcpStream::connect(addr)?;
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let elapsed = started.elapsed();
        ensure!(response.starts_with("HTTP/1.1 200"), "a scrape got `{response:.80}`");
        Ok((elapsed, response))
    };
    let script = bench.script("cookie");
    let mut off_runs = Vec::new();
    let mut on_runs = Vec::new();
    let mut runs_started = 1;
    // Twice the plan's rounds, each run half the plan's length: the same
    // time in all, but shorter stretches of the machine's drift between an
    // off run and the on run beside it.
    let (pairs, seconds) = (bench.plan.rounds * 2, (bench.plan.wrk_seconds / 2).max(1));
    for pair in 1..=pairs {
        // Off then on, then on then off: a run's place in the sequence (what
        // the run before left in the WAL and the page cache, the machine's
        // drift over the minute) counts as much against each.
        let order = if pair % 2 == 1 { [false, true] } else { [true, false] };
        for on in order {
            let (running, clock) = start(on)?;
            // Every stored expiry lags again, as in the cookie scenario: each
            // run jumps further than the one before, whichever it is.
            runs_started += 1;
            clock.jump(CLOCK_JUMP * runs_started);
            eprintln!(
                "running: cookie whoami, metrics and access log {} ({pair})",
                if on { "on" } else { "off" }
            );
            let cpu_before = Cpu::now(std::process::id())?;
            let child = spawn_wrk(running.addr(), &script, seconds, WRK_CONNECTIONS)?;
            let result = finish_wrk(child, std::process::id(), cpu_before)?;
            if on {
                on_runs.push(result)
            } else {
                off_runs.push(result)
            }
            running.stop();
        }
    }
    let (off, on) = (mean(&off_runs), mean(&on_runs));
    bench.row(
        "cookie whoami, metrics and access log off",
        Some(off),
        format!(
            "mean of {} ({seconds} s each); servers of their own on the same file",
            each_rate(&off_runs)
        ),
    );
    bench.row(
        "cookie whoami, metrics and access log on",
        Some(on),
        format!(
            "mean of {} ({seconds} s each); the access log written to a file",
            each_rate(&on_runs)
        ),
    );
    bench.ratio_verdict("metrics and access log on >= 0.9 of both off", Some(on), Some(off), 0.9);

    let (running, clock) = start(true)?;
    let metrics_addr = running.metrics_addr().context("no metrics listener")?;
    let (first, _) = scrape(metrics_addr)?;
    let mut cached = Vec::new();
    let scrapes_started = Instant::now();
    while cached.len() < 200 && scrapes_started.elapsed() < Duration::from_secs(4) {
        cached.push(scrape(metrics_addr)?.0);
    }
    let conn = db::connect(&db_path)?;
    let total = {
        let web = web_sessions::counts(&conn, clock.now())?;
        let jwt = jwt_sessions::counts(&conn, clock.now())?;
        web.active + web.expired + jwt.active + jwt.expired + jwt.revoked
    };
    let mut recounts = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        web_sessions::counts(&conn, clock.now())?;
        jwt_sessions::counts(&conn, clock.now())?;
        recounts.push(started.elapsed());
    }
    running.stop();
    cached.sort();
    recounts.sort();
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    let median = ms(cached[cached.len() / 2]);
    let slowest = ms(*cached.last().expect("at least one scrape"));
    let sessions = total as f64 / 1e6;
    bench.row(
        format!("/metrics scrape, {sessions:.2} M sessions: median {median:.2} ms"),
        None,
        format!(
            "of {} scrapes, slowest {slowest:.2} ms; first after start {:.2} ms; the background recount {:.1} ms",
            cached.len(),
            ms(first),
            ms(recounts[recounts.len() / 2])
        ),
    );
    bench.verdict(
        "a /metrics scrape with a million sessions < 5 ms",
        Some(median < 5.0),
        format!("median {median:.2} ms over {sessions:.2} M sessions"),
    );
    Ok(())
}
