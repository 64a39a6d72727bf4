//! The cleanup schedule (SPEC 7): parsing, storing, the next run across days
//! and daylight-saving changes, the timer's decisions with chosen times, the
//! timer thread on a manual clock, and `sessiond schedule`.

use std::time::{Duration, Instant};

use chrono::{FixedOffset, MappedLocalTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use sessiond::cleanup::{self, CleanupRun};
use sessiond::schedule::{self, DEFAULT_CRON, Schedule, TimerPlan};
use sessiond::users;
use sessiond::web_sessions::{self, Lifetime};

use crate::cleanup::{break_web_session_deletes, mend_web_session_deletes};
use crate::support::{Cli, START, TestServer, count};

/// A time zone like Europe/Berlin in 2026: CET (+01:00), and CEST (+02:00)
/// from 2026-03-29T01:00Z (02:00 local jumps to 03:00) until
/// 2026-10-25T01:00Z (03:00 local falls back to 02:00).
#[derive(Debug, Clone, Copy)]
struct Berlin2026;

const SPRING_FORWARD: i64 = 1_774_746_000; // 2026-03-29T01:00:00Z
const FALL_BACK: i64 = 1_792_890_000; // 2026-10-25T01:00:00Z

impl Berlin2026 {
    fn offset_at(utc: i64) -> FixedOffset {
        let hours = if (SPRING_FORWARD..FALL_BACK).contains(&utc) { 2 } else { 1 };
        FixedOffset::east_opt(hours * 3600).unwrap()
    }
}

impl TimeZone for Berlin2026 {
    type Offset = FixedOffset;

    fn from_offset(_offset: &FixedOffset) -> Berlin2026 {
        Berlin2026
    }

    fn offset_from_local_date(&self, local: &NaiveDate) -> MappedLocalTime<FixedOffset> {
        self.offset_from_local_datetime(&local.and_hms_opt(0, 0, 0).unwrap())
    }

    fn offset_from_local_datetime(&self, local: &NaiveDateTime) -> MappedLocalTime<FixedOffset> {
        // A wall-clock time exists under an offset when that offset is in
        // force at the instant it names; earlier instants come first.
        let fits: Vec<FixedOffset> = [2, 1]
            .into_iter()
            .map(|hours| FixedOffset::east_opt(hours * 3600).unwrap())
            .filter(|offset| {
                let utc = local.and_utc().timestamp() - i64::from(offset.local_minus_utc());
                Berlin2026::offset_at(utc) == *offset
            })
            .collect();
        match fits.as_slice() {
            [] => MappedLocalTime::None,
            [one] => MappedLocalTime::Single(*one),
            [earliest, latest] => MappedLocalTime::Ambiguous(*earliest, *latest),
            _ => unreachable!("two offsets at most"),
        }
    }

    fn offset_from_utc_date(&self, utc: &NaiveDate) -> FixedOffset {
        Berlin2026::offset_at(utc.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp())
    }

    fn offset_from_utc_datetime(&self, utc: &NaiveDateTime) -> FixedOffset {
        Berlin2026::offset_at(utc.and_utc().timestamp())
    }
}

fn utc(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> i64 {
    Utc.with_ymd_and_hms(year, month, day, hour, minute, 0).unwrap().timestamp()
}

fn cron(expression: &str) -> Schedule {
    schedule::parse(expression).expect("valid expression")
}

#[test]
fn the_reference_zone_models_both_changes() {
    assert_eq!(schedule::local_time_in(SPRING_FORWARD - 1, &Berlin2026), "2026-03-29 01:59 +01:00");
    assert_eq!(schedule::local_time_in(SPRING_FORWARD, &Berlin2026), "2026-03-29 03:00 +02:00");
    assert_eq!(schedule::local_time_in(FALL_BACK - 60, &Berlin2026), "2026-10-25 02:59 +02:00");
    assert_eq!(schedule::local_time_in(FALL_BACK, &Berlin2026), "2026-10-25 02:00 +01:00");
}

#[test]
fn parse_accepts_five_fields_and_normalises_spaces() {
    assert_eq!(schedule::parse(" 0  5 * * * "), Ok(Schedule::Cron("0 5 * * *".to_owned())));
    assert!(schedule::parse("*/15 2-4 * * mon-fri").is_ok());
    assert!(schedule::parse("0 0 29 2 *").is_ok());
}

#[test]
fn parse_refuses_anything_but_five_fields_with_the_count() {
    for (expression, found) in
        [("0 5 * *", 4), ("0 0 5 * * *", 6), ("0 0 5 * * * 2027", 7), ("@daily", 1), ("", 0)]
    {
        let reason = schedule::parse(expression).unwrap_err();
        assert!(reason.contains("expected 5 fields"), "{expression}: {reason}");
        assert!(reason.contains(&format!("found {found}")), "{expression}: {reason}");
    }
}

#[test]
fn parse_refuses_out_of_range_and_impossible_fields_with_the_reason() {
    for expression in ["61 5 * * *", "0 24 * * *", "0 5 32 * *", "0 5 * 13 *", "x 5 * * *"] {
        let reason = schedule::parse(expression).unwrap_err();
        assert!(
            reason.starts_with(&format!("invalid cron expression `{expression}`: ")),
            "{reason}"
        );
        assert!(reason.len() > expression.len() + 30, "a reason is given: {reason}");
    }
    let reason = schedule::parse("0 99 * * *").unwrap_err();
    assert!(reason.contains("the hour field `99`"), "{reason}");
    let reason = schedule::parse("0 5 * * 8").unwrap_err();
    assert!(reason.contains("the day-of-week field `8`"), "{reason}");
    let reason = schedule::parse("0 5 30 2 *").unwrap_err();
    assert!(reason.contains("never matches"), "{reason}");
}

#[test]
fn a_database_without_a_schedule_uses_the_default_and_off_is_stored_apart() {
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::support::open_db(&dir.path().join("db.sqlite3"));
    assert_eq!(schedule::load(&conn).unwrap(), Schedule::Cron(DEFAULT_CRON.to_owned()));
    schedule::store(&conn, &Schedule::Off).unwrap();
    assert_eq!(schedule::load(&conn).unwrap(), Schedule::Off);
    schedule::store(&conn, &cron("15 3 * * sun")).unwrap();
    assert_eq!(schedule::load(&conn).unwrap(), cron("15 3 * * sun"));
}

#[test]
fn next_run_is_the_next_matching_minute_strictly_after_now() {
    let daily = cron(DEFAULT_CRON);
    // START is Friday 2026-11-27 12:00Z.
    assert_eq!(schedule::next_run_in(&daily, START, &Utc), Some(utc(2026, 11, 28, 5, 0)));
    let at_five = utc(2026, 11, 28, 5, 0);
    assert_eq!(schedule::next_run_in(&daily, at_five, &Utc), Some(utc(2026, 11, 29, 5, 0)));
    assert_eq!(schedule::next_run_in(&daily, at_five - 1, &Utc), Some(at_five));
    let mondays = cron("0 5 * * mon");
    assert_eq!(schedule::next_run_in(&mondays, START, &Utc), Some(utc(2026, 11, 30, 5, 0)));
    let first_of_month = cron("30 4 1 * *");
    assert_eq!(schedule::next_run_in(&first_of_month, START, &Utc), Some(utc(2026, 12, 1, 4, 30)));
    let new_year = cron("0 0 1 1 *");
    assert_eq!(schedule::next_run_in(&new_year, START, &Utc), Some(utc(2027, 1, 1, 0, 0)));
}

#[test]
fn next_run_reads_the_expression_in_the_given_zone() {
    let daily = cron(DEFAULT_CRON);
    let plus_one = FixedOffset::east_opt(3600).unwrap();
    assert_eq!(schedule::next_run_in(&daily, START, &plus_one), Some(utc(2026, 11, 28, 4, 0)));
    let minus_five = FixedOffset::west_opt(5 * 3600).unwrap();
    assert_eq!(schedule::next_run_in(&daily, START, &minus_five), Some(utc(2026, 11, 28, 10, 0)));
}

#[test]
fn next_run_of_off_is_none() {
    assert_eq!(schedule::next_run_in(&Schedule::Off, START, &Utc), None);
    assert_eq!(schedule::next_run(&Schedule::Off, START), None);
}

#[test]
fn daily_run_stays_at_five_local_across_spring_forward() {
    let daily = cron(DEFAULT_CRON);
    let saturday_noon = utc(2026, 3, 28, 12, 0);
    // Saturday 05:00 CET is 04:00Z; Sunday 05:00 CEST is 03:00Z.
    assert_eq!(
        schedule::next_run_in(&daily, utc(2026, 3, 27, 12, 0), &Berlin2026),
        Some(utc(2026, 3, 28, 4, 0))
    );
    assert_eq!(
        schedule::next_run_in(&daily, saturday_noon, &Berlin2026),
        Some(utc(2026, 3, 29, 3, 0))
    );
}

#[test]
fn daily_run_stays_at_five_local_across_fall_back() {
    let daily = cron(DEFAULT_CRON);
    assert_eq!(
        schedule::next_run_in(&daily, utc(2026, 10, 24, 12, 0), &Berlin2026),
        Some(utc(2026, 10, 25, 4, 0))
    );
    assert_eq!(
        schedule::next_run_in(&daily, utc(2026, 10, 25, 4, 0), &Berlin2026),
        Some(utc(2026, 10, 26, 4, 0))
    );
}

#[test]
fn a_time_skipped_by_spring_forward_runs_right_after_the_gap() {
    let half_past_two = cron("30 2 * * *");
    // 02:30 does not exist on 2026-03-29: the run is at 03:00 CEST (01:00Z).
    let run = schedule::next_run_in(&half_past_two, utc(2026, 3, 28, 12, 0), &Berlin2026);
    assert_eq!(run, Some(SPRING_FORWARD));
    // The day after, 02:30 CEST is 00:30Z.
    assert_eq!(
        schedule::next_run_in(&half_past_two, SPRING_FORWARD, &Berlin2026),
        Some(utc(2026, 3, 30, 0, 30))
    );
}

#[test]
fn a_time_repeated_by_fall_back_runs_only_once() {
    let half_past_two = cron("30 2 * * *");
    let first = schedule::next_run_in(&half_past_two, utc(2026, 10, 24, 12, 0), &Berlin2026);
    // The first 02:30, in CEST, is 00:30Z.
    assert_eq!(first, Some(utc(2026, 10, 25, 0, 30)));
    // Not again at the second 02:30 (CET, 01:30Z), but the next day.
    assert_eq!(
        schedule::next_run_in(&half_past_two, utc(2026, 10, 25, 0, 30), &Berlin2026),
        Some(utc(2026, 10, 26, 1, 30))
    );
    // A server started inside the repeated hour (02:10 CET) waits for the
    // next day too, instead of answering with a time already past.
    assert_eq!(
        schedule::next_run_in(&half_past_two, utc(2026, 10, 25, 1, 10), &Berlin2026),
        Some(utc(2026, 10, 26, 1, 30))
    );
}

#[test]
fn plan_runs_once_when_due_and_then_waits_for_the_next_day() {
    let mut plan = TimerPlan::new(cron(DEFAULT_CRON), START, Utc);
    let due = utc(2026, 11, 28, 5, 0);
    assert_eq!(plan.due(), Some(due));
    assert!(!plan.take_due(due - 1));
    assert!(plan.take_due(due));
    assert!(!plan.take_due(due));
    assert!(!plan.take_due(due + 3600));
    assert_eq!(plan.due(), Some(utc(2026, 11, 29, 5, 0)));
}

#[test]
fn plan_runs_missed_runs_once_after_a_clock_jump() {
    let mut plan = TimerPlan::new(cron(DEFAULT_CRON), START, Utc);
    let three_days_later = START + 3 * 86_400;
    assert!(plan.take_due(three_days_later));
    assert!(!plan.take_due(three_days_later));
    assert_eq!(plan.due(), Some(utc(2026, 12, 1, 5, 0)));
}

#[test]
fn plan_counts_a_changed_schedule_from_when_the_old_one_was_last_seen() {
    let mut plan = TimerPlan::new(cron(DEFAULT_CRON), START, Utc);
    plan.observe(cron(DEFAULT_CRON), START + 20);
    // Changed to every 10 minutes at some moment after START + 20, noticed
    // at START + 40 * 60: the run due at START + 10 min is not lost.
    plan.observe(cron("*/10 * * * *"), START + 40 * 60);
    assert_eq!(plan.due(), Some(START + 600));
    assert!(plan.take_due(START + 40 * 60));
    assert_eq!(plan.due(), Some(START + 50 * 60));
}

#[test]
fn plan_with_the_schedule_off_never_runs_until_it_is_on_again() {
    let mut plan = TimerPlan::new(cron(DEFAULT_CRON), START, Utc);
    plan.observe(Schedule::Off, START + 20);
    assert_eq!(plan.due(), None);
    assert!(!plan.take_due(START + 30 * 86_400 - 20));
    plan.observe(Schedule::Off, START + 30 * 86_400 - 20);
    plan.observe(cron("0 6 * * *"), START + 30 * 86_400);
    assert_eq!(plan.due(), Some(utc(2026, 12, 28, 6, 0)));
}

/// Waits (by the real clock, a few seconds at most) for the timer to record
/// one more run than `seen`, and for that run to finish; returns it.
#[track_caller]
fn wait_for_run(server: &TestServer, seen: usize) -> CleanupRun {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let runs = cleanup::recent_runs(&server.conn(), 100).unwrap();
        if runs.len() > seen && runs[0].outcome != cleanup::OUTCOME_RUNNING {
            return runs[0].clone();
        }
        assert!(Instant::now() < deadline, "the timer did not run within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One expired and one live web session; returns the live one's row id.
fn expired_and_live_web_sessions(server: &TestServer) -> i64 {
    let conn = server.conn();
    let root = users::find_by_username(&conn, "root").unwrap().unwrap();
    let short = Lifetime { idle: 60, absolute: 0 };
    web_sessions::create(&conn, &root, short, START - 1000, "", "").unwrap();
    let ten_days = Lifetime { idle: 10 * 86_400, absolute: 0 };
    web_sessions::create(&conn, &root, ten_days, START, "", "").unwrap().1.row_id
}

#[test]
fn timer_clears_expired_sessions_at_the_scheduled_time() {
    let server = TestServer::start();
    let live = expired_and_live_web_sessions(&server);
    let due = schedule::next_run(&cron(DEFAULT_CRON), START).unwrap();

    server.advance(due - START);
    let run = wait_for_run(&server, 0);

    assert_eq!((run.trigger.as_str(), run.started), ("timer", due));
    assert_eq!((run.web_deleted, run.outcome.as_str()), (1, "ok"));
    let conn = server.conn();
    let remaining: i64 = conn.query_row("SELECT id FROM web_sessions", [], |r| r.get(0)).unwrap();
    assert_eq!(remaining, live);
}

#[test]
fn timer_survives_a_failed_run_and_runs_the_next_time() {
    let server = TestServer::start();
    expired_and_live_web_sessions(&server);
    break_web_session_deletes(&server.conn());
    let due = schedule::next_run(&cron(DEFAULT_CRON), START).unwrap();

    server.advance(due - START);
    let failed = wait_for_run(&server, 0);
    assert_eq!(failed.trigger, "timer");
    assert!(failed.outcome.contains("injected failure"), "{}", failed.outcome);
    assert_eq!(count(&server.conn(), "web_sessions"), 2);

    mend_web_session_deletes(&server.conn());
    let next = schedule::next_run(&cron(DEFAULT_CRON), due).unwrap();
    server.advance(next - due);
    let recovered = wait_for_run(&server, 1);
    assert_eq!((recovered.started, recovered.outcome.as_str()), (next, "ok"));
    assert_eq!(recovered.web_deleted, 1);
    assert_eq!(count(&server.conn(), "web_sessions"), 1);
}

#[test]
fn timer_notices_a_schedule_changed_by_another_connection() {
    let server = TestServer::start();
    expired_and_live_web_sessions(&server);
    schedule::store(&server.conn(), &cron("* * * * *")).unwrap();

    // Under the default schedule nothing would run for hours.
    server.advance(61);
    let run = wait_for_run(&server, 0);

    assert_eq!((run.trigger.as_str(), run.started), ("timer", START + 61));
    assert_eq!(run.web_deleted, 1);
}

#[test]
fn timer_stops_promptly_on_shutdown() {
    let server = TestServer::start();
    let (done, finished) = std::sync::mpsc::channel();
    let started = Instant::now();
    std::thread::spawn(move || {
        let mut server = server;
        server.stop();
        let _ = done.send(());
    });
    finished.recv_timeout(Duration::from_secs(5)).expect("the server and its timer stopped");
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
}

/// A new database for the commands (which refuse one that does not exist).
fn cli_db(dir: &std::path::Path) -> String {
    drop(crate::support::open_db(&dir.join("db.sqlite3")));
    dir.join("db.sqlite3").display().to_string()
}

fn stored_schedule(dir: &std::path::Path) -> Schedule {
    schedule::load(&crate::support::open_db(&dir.join("db.sqlite3"))).unwrap()
}

#[test]
fn schedule_set_refuses_an_invalid_expression_with_the_reason_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = cli_db(dir.path());
    for (expression, reason) in
        [("0 5 * *", "expected 5 fields"), ("0 0 5 * * *", "found 6"), ("0 99 * * *", "0 99 * * *")]
    {
        let stderr = Cli::new(dir.path())
            .args(&["--db", &db, "schedule", "set", expression])
            .status(1)
            .output()
            .stderr;
        assert!(stderr.starts_with("error: invalid cron expression"), "{stderr}");
        assert!(stderr.contains(reason), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert_eq!(stored_schedule(dir.path()), cron(DEFAULT_CRON));
    }
}

#[test]
fn schedule_set_stores_the_expression_and_show_prints_it_with_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = cli_db(dir.path());
    Cli::new(dir.path()).args(&["--db", &db, "schedule", "set", "30  4 * * *"]).run();
    assert_eq!(stored_schedule(dir.path()), cron("30 4 * * *"));

    let stdout =
        Cli::new(dir.path()).args(&["--db", &db, "schedule", "show"]).env("TZ", "UTC").run();

    assert!(stdout.contains("Schedule: 30 4 * * *"), "{stdout}");
    assert!(stdout.contains(" 04:30 +00:00 (") && stdout.contains("T04:30:00Z"), "{stdout}");
    assert!(stdout.contains("Last runs: none"), "{stdout}");
}

#[test]
fn schedule_show_reads_the_expression_in_the_tz_zone() {
    let dir = tempfile::tempdir().unwrap();
    let db = cli_db(dir.path());
    let tokyo = [("TZ", "JST-9")];

    let stdout = Cli::new(dir.path()).args(&["--db", &db, "schedule"]).envs(&tokyo).run();

    assert!(stdout.contains("Schedule: 0 5 * * *"), "{stdout}");
    // 05:00 in Tokyo (+09:00) is 20:00Z the day before.
    assert!(stdout.contains(" 05:00 +09:00 (") && stdout.contains("T20:00:00Z"), "{stdout}");
}

#[test]
fn schedule_off_turns_the_timer_off() {
    let dir = tempfile::tempdir().unwrap();
    let db = cli_db(dir.path());
    Cli::new(dir.path()).args(&["--db", &db, "schedule", "off"]).run();
    assert_eq!(stored_schedule(dir.path()), Schedule::Off);

    let stdout = Cli::new(dir.path()).args(&["--db", &db, "schedule", "show"]).run();

    assert!(stdout.contains("Schedule: off") && stdout.contains("Next run: none"), "{stdout}");
}

#[test]
fn schedule_run_clears_now_and_shows_up_in_the_last_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = cli_db(dir.path());

    let run = Cli::new(dir.path()).args(&["--db", &db, "schedule", "run"]).run();

    assert_eq!(
        run,
        "Cleared 0 expired web session(s).\nCleared 0 expired GraphQL login session(s).\n"
    );
    let stdout = Cli::new(dir.path()).args(&["--db", &db, "schedule", "show"]).run();
    assert!(stdout.contains("Last runs:\n") && stdout.contains("command"), "{stdout}");
    assert!(stdout.contains("0 web, 0 GraphQL  ok"), "{stdout}");
}

#[test]
fn schedule_set_without_an_expression_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    Cli::new(dir.path()).args(&["--db", &cli_db(dir.path()), "schedule", "set"]).status(2).run();
}
