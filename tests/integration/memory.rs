//! Memory and the login path under load (SPEC 8, issue 15): password hashes
//! run at most one per core however many logins arrive at once, a burst of
//! logins gives its memory back, and a flood of logins queues behind itself
//! rather than in front of signed-in requests.
//!
//! The memory test reads `/proc/PID/status` of a real `sessiond serve`
//! process, because the in-process servers of other tests share this test
//! binary's memory; it does not run (and says so) where there is no
//! `/proc`, and fails there when `CI` is set.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sessiond::http::server::LOGIN_THREAD_NICE_OFFSET;
use sessiond::password_hash;
use sessiond::users::{self, Role};

use crate::support::{self, ServeProcess, TestServer};

#[test]
fn logins_beyond_the_cores_never_run_more_hashes_at_once() {
    let server = TestServer::start();
    let slots = password_hash::slots();
    // Distinct users, so that the throttle (5 attempts in progress per
    // username) never answers instead of the hash.
    let logins = 4 * slots + 4;
    let names: Vec<String> = (0..logins).map(|n| format!("user{n}")).collect();
    for name in &names {
        server.create_user(name, "the-password", Role::User);
    }
    std::thread::scope(|scope| {
        for (number, name) in names.iter().enumerate() {
            let server = &server;
            scope.spawn(move || {
                if number % 2 == 0 {
                    server.login(name, "the-password");
                } else {
                    support::jwt_login(server, name, "the-password");
                }
            });
        }
    });
    // The peak is that of the whole test process, whose other tests hash
    // too: the bound is process-wide, so it holds for all of them at once.
    let peak = password_hash::peak_concurrent_hashes();
    assert!(peak <= slots, "{peak} hashes ran at once on {slots} cores");
    assert!(peak >= slots.min(2), "the logins never overlapped: peak {peak}");
}

#[test]
fn memory_returns_after_a_burst_of_logins() {
    if !proc_is_there("memory_returns_after_a_burst_of_logins") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db_path = support::prepare_database(dir.path());
    let conn = crate::support::connect_db(&db_path);
    let now = chrono::Utc::now().timestamp();
    let threads = 8;
    for number in 0..threads {
        let name = format!("burst{number}");
        users::create(&conn, &name, "", "burst-password", Role::User, now).unwrap();
    }
    drop(conn);
    let server = ServeProcess::start(dir.path(), &[]);
    let login = |name: &str| {
        let response =
            server.post_form("/login", &[("username", name), ("password", "burst-password")], &[]);
        assert_eq!(response.status, 303, "login of {name}: {}", response.body);
    };
    // One login first, so that what is made once (the decoy hash, the
    // workers' statements) is there before the measurement starts.
    login("burst0");
    let before = status_kib(server.pid(), "RssAnon");

    std::thread::scope(|scope| {
        for number in 0..threads {
            let login = &login;
            scope.spawn(move || {
                for _ in 0..100 / threads + 1 {
                    login(&format!("burst{number}"));
                }
            });
        }
    });

    let after = status_kib(server.pid(), "RssAnon");
    let peak = status_kib(server.pid(), "VmHWM");
    eprintln!("anonymous memory before {before} KiB, after {after} KiB (VmHWM {peak} KiB)");
    assert!(
        after < before + 16 * 1024,
        "104 logins left {} KiB more anonymous memory than before ({before} -> {after} KiB)",
        after.saturating_sub(before)
    );
}

#[test]
fn a_flood_of_logins_does_not_hold_up_signed_in_requests() {
    let server = TestServer::start();
    let flooders = 6 * password_hash::slots();
    for number in 0..flooders {
        server.create_user(&format!("flood{number}"), "flood-password", Role::User);
    }
    server.create_user("reader", "reader-password", Role::User);
    let cookie = server.login("reader", "reader-password");
    let stop = AtomicBool::new(false);
    let (login_times, whoami_times) = std::thread::scope(|scope| {
        let floods: Vec<_> = (0..flooders)
            .map(|number| {
                let (server, stop) = (&server, &stop);
                scope.spawn(move || {
                    let name = format!("flood{number}");
                    let mut times = Vec::new();
                    while !stop.load(Ordering::SeqCst) {
                        let started = Instant::now();
                        server.login(&name, "flood-password");
                        times.push(started.elapsed());
                    }
                    times
                })
            })
            .collect();
        let mut whoami_times = Vec::new();
        for _ in 0..60 {
            let started = Instant::now();
            let response = server.get_with_cookie("/api/whoami", &cookie);
            whoami_times.push(started.elapsed());
            assert_eq!(response.status, 200, "{}", response.body);
        }
        stop.store(true, Ordering::SeqCst);
        let logins: Vec<Duration> =
            floods.into_iter().flat_map(|flood| flood.join().unwrap()).collect();
        (logins, whoami_times)
    });
    let login_median = median(login_times);
    let whoami_median = median(whoami_times);
    eprintln!("median login {login_median:?}, median cookie whoami {whoami_median:?}");
    // A login waits for the logins queued before it; a whoami that queued
    // behind them too would take a good share of that.
    assert!(
        whoami_median * 4 < login_median,
        "cookie whoami took {whoami_median:?} (median) while logins took {login_median:?}"
    );
}

#[test]
fn login_threads_run_below_the_threads_that_answer_signed_in_requests() {
    if !proc_is_there("login_threads_run_below_the_threads_that_answer_signed_in_requests") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    support::prepare_database(dir.path());
    let server = ServeProcess::start(dir.path(), &[]);
    assert_eq!(server.get("/healthz", &[]).status, 200);
    // `comm` and the nice value (field 19 of `stat`, counted after the
    // parenthesised name) of every thread of the real process.
    let mut niceness: Vec<(String, i64)> = Vec::new();
    let pid = server.pid();
    let mut tasks: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| task.unwrap().path())
        .collect();
    // The main thread (whose id is the process's) first.
    tasks.sort_by_key(|task| !task.ends_with(pid.to_string()));
    for task in tasks {
        let name = std::fs::read_to_string(task.join("comm")).unwrap().trim().to_owned();
        let stat = std::fs::read_to_string(task.join("stat")).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let nice = after_name.split(' ').nth(16).unwrap().parse().unwrap();
        niceness.push((name, nice));
    }
    // Relative to the process's own nice value, which a test run under
    // `nice` gives every thread.
    let main_thread = niceness[0].1;
    let expected = (main_thread + i64::from(LOGIN_THREAD_NICE_OFFSET)).min(19);
    let (logins, others): (Vec<_>, Vec<_>) =
        niceness.iter().partition(|(name, _)| name.starts_with("http-login"));
    assert_eq!(logins.len(), password_hash::slots(), "login threads: {niceness:?}");
    for (name, nice) in &logins {
        assert_eq!(*nice, expected, "{name} runs at nice {nice}: {niceness:?}");
    }
    assert!(others.iter().all(|(_, nice)| *nice == main_thread), "other threads: {niceness:?}");
}

/// True where `/proc` is there to read a real process's memory and threads
/// from; where it is not, says loudly that `test` did not run, and fails
/// when `CI` is set.
#[track_caller]
fn proc_is_there(test: &str) -> bool {
    if std::path::Path::new("/proc/self/task").exists() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "no /proc: {test} cannot run in CI");
    eprintln!("WARNING: {test} did NOT run: no /proc here");
    false
}

fn median(mut times: Vec<Duration>) -> Duration {
    assert!(!times.is_empty());
    times.sort();
    times[times.len() / 2]
}

/// A field of `/proc/PID/status`, in KiB.
#[track_caller]
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let value = status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    value.trim().trim_end_matches("kB").trim().parse().unwrap()
}

#[test]
fn pipelined_logins_hold_no_worker_while_they_wait_for_a_hash() {
    // As many connections as workers, each pipelining logins (distinct
    // unknown names from distinct trusted addresses, so that each one hashes
    // and the throttle never answers instead) and then a `GET /healthz`.
    // Answers leave in request order, so a worker given one of those GETs
    // would wait for all of its connection's logins; one request in flight
    // per connection keeps the GET unread until they are answered, and the
    // workers free for everybody else.
    let server = TestServer::start_with(&[("SESSIOND_TRUST_PROXY_HEADERS", "true")]);
    let (connections, logins) = (4, 30);
    let finished_at = std::thread::scope(|scope| {
        let pipelines: Vec<_> = (0..connections)
            .map(|connection| {
                let server = &server;
                scope.spawn(move || {
                    let mut pipelined = Vec::new();
                    for number in 0..logins {
                        let number = connection * logins + number;
                        let body = format!("username=nobody{number}&password=wrong");
                        let client = std::net::Ipv4Addr::from(0x0a00_0000_u32 + number as u32);
                        pipelined.extend_from_slice(
                            format!(
                                "POST /login HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: {client}\r\n\
                                 Content-Type: application/x-www-form-urlencoded\r\n\
                                 Content-Length: {}\r\n\r\n{body}",
                                body.len()
                            )
                            .as_bytes(),
                        );
                    }
                    pipelined.extend_from_slice(
                        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    );
                    let answer = support::send_raw(server.addr, &pipelined);
                    let finished = Instant::now();
                    let text = String::from_utf8_lossy(&answer).into_owned();
                    assert_eq!(text.matches("HTTP/1.1 ").count(), logins + 1, "{text}");
                    finished
                })
            })
            .collect();
        // Once the logins are under way (the first hash takes tens of ms),
        // somebody else's request.
        std::thread::sleep(Duration::from_millis(20));
        let probe = server.get("/healthz", &[]);
        assert_eq!(probe.status, 200, "{}", probe.body);
        let probed = Instant::now();
        let first_pipeline_done =
            pipelines.into_iter().map(|pipeline| pipeline.join().unwrap()).min().unwrap();
        (probed, first_pipeline_done)
    });
    let (probed, first_pipeline_done) = finished_at;
    assert!(
        probed < first_pipeline_done,
        "the other client's request waited for a pipeline of logins to end"
    );
}
