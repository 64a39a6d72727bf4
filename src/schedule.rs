//! The cleanup schedule (a cron expression kept in the database) and the
//! timer thread that runs it.
//!
//! The schedule is a 5-field cron expression (minute, hour, day of month,
//! month, day of week) parsed by `croner`, or `off`, stored in `meta` under
//! [`SCHEDULE_KEY`]; a database that never had one set uses [`DEFAULT_CRON`].
//! Expressions are read in the server's local time zone (`chrono::Local`,
//! which honours `TZ`); every function that decides a time is generic over
//! `chrono::TimeZone` so that tests can check daylight-saving changes with a
//! zone of their own.
//!
//! The timer thread owns its own connection and reads the time only from
//! `app.clock`. It re-reads the schedule every [`RELOAD_EVERY`] seconds, so a
//! change made by the admin page or by `sessiond schedule` in another process
//! is noticed within a minute; it polls the shutdown flag every
//! [`POLL_INTERVAL`]. This module holds no SQL: the schedule lives in `meta`
//! and the runs in `cleanup`. Several servers on one file each run a timer;
//! each scheduled time is claimed in the database by the first of them, and
//! only that one runs it (`cleanup::clear_expired_scheduled`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::db::Conn;
use anyhow::Context;
use chrono::TimeZone;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::app::App;
use crate::cleanup;
use crate::clock::UnixTime;

/// The schedule of a new database: daily at 05:00 local time.
pub const DEFAULT_CRON: &str = "0 5 * * *";

/// The `meta` key that holds the schedule.
pub const SCHEDULE_KEY: &str = "cleanup_schedule";

/// What `meta` holds when the schedule is turned off.
const OFF: &str = "off";

/// How often, in seconds of the app's clock, the timer re-reads the schedule.
pub const RELOAD_EVERY: i64 = 20;

/// How often the timer thread wakes to look at the clock and the shutdown
/// flag.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Off,
    /// A validated 5-field cron expression.
    Cron(String),
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Schedule::Off => f.write_str(OFF),
            Schedule::Cron(expression) => f.write_str(expression),
        }
    }
}

/// Validates a 5-field cron expression; the error says why it is refused.
/// The fields are normalised to single spaces.
pub fn parse(expression: &str) -> Result<Schedule, String> {
    let fields: Vec<&str> = expression.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "invalid cron expression `{}`: expected 5 fields ({}), found {}",
            expression.trim(),
            FIELD_NAMES.join(" "),
            fields.len()
        ));
    }
    let normalised = fields.join(" ");
    let cron = parse_cron(&normalised).map_err(|reason| {
        format!("invalid cron expression `{normalised}`: {}", name_bad_field(&fields, reason))
    })?;
    // An expression such as `0 0 30 2 *` parses but never matches a date.
    let reference = chrono::Utc.timestamp_opt(946_684_800, 0).single().expect("a valid time");
    if cron.find_next_occurrence(&reference, false).is_err() {
        return Err(format!("invalid cron expression `{normalised}`: it never matches a date"));
    }
    Ok(Schedule::Cron(normalised))
}

/// The stored schedule, or the default when none was ever stored.
pub fn load(conn: &Conn) -> crate::db::Result<Schedule> {
    match crate::meta::get(conn, SCHEDULE_KEY)? {
        None => Ok(Schedule::Cron(DEFAULT_CRON.to_owned())),
        Some(value) if value == OFF => Ok(Schedule::Off),
        Some(value) => parse(&value).map_err(|reason| {
            crate::db::Error::Conversion(format!(
                "the stored cleanup schedule is unusable: {reason}"
            ))
        }),
    }
}

/// Stores a schedule.
pub fn store(conn: &Conn, schedule: &Schedule) -> crate::db::Result<()> {
    crate::meta::set(conn, SCHEDULE_KEY, &schedule.to_string())
}

/// The next run strictly after `now`, in the server's local time zone.
pub fn next_run(schedule: &Schedule, now: UnixTime) -> Option<UnixTime> {
    next_run_in(schedule, now, &chrono::Local)
}

/// The next run strictly after `now`, reading the expression in `zone`.
/// A time that a daylight-saving change skips runs at the first minute after
/// the gap; a time that happens twice runs only the first time.
pub fn next_run_in<Tz: TimeZone>(
    schedule: &Schedule,
    now: UnixTime,
    zone: &Tz,
) -> Option<UnixTime> {
    let Schedule::Cron(expression) = schedule else {
        return None;
    };
    let cron = parse_cron(expression).ok()?;
    let mut after = zone.timestamp_opt(now, 0).single()?;
    // croner searches wall-clock times, so from inside a repeated hour it can
    // answer with the first pass of that hour, which lies before `now`; then
    // search on from there.
    for _ in 0..4 {
        let next = cron.find_next_occurrence(&after, false).ok()?;
        if next.timestamp() > now {
            return Some(next.timestamp());
        }
        after = next;
    }
    None
}

/// Formats a time as the server's local wall-clock time with its offset,
/// e.g. `2026-11-28 05:00 +01:00`.
pub fn local_time(time: UnixTime) -> String {
    local_time_in(time, &chrono::Local)
}

/// [`local_time`] in a given zone.
pub fn local_time_in<Tz: TimeZone>(time: UnixTime, zone: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    match zone.timestamp_opt(time, 0).single() {
        Some(datetime) => datetime.format("%Y-%m-%d %H:%M %:z").to_string(),
        None => String::from("invalid-time"),
    }
}

/// One line saying when the next cleanup runs, as `serve` logs it and
/// `schedule show` prints it.
pub fn describe_next_run(schedule: &Schedule, now: UnixTime) -> String {
    match (schedule, next_run(schedule, now)) {
        (Schedule::Off, _) => String::from("the scheduled cleanup is off"),
        (Schedule::Cron(expression), Some(next)) => format!(
            "next cleanup run at {} ({}), schedule `{expression}`",
            local_time(next),
            crate::clock::rfc3339(next)
        ),
        (Schedule::Cron(expression), None) => {
            format!("the schedule `{expression}` has no next run")
        }
    }
}

/// The timer's decisions, kept apart from its thread so that tests can drive
/// them with chosen times and zones.
///
/// The plan knows the schedule it last saw and when the next run is due. A
/// changed schedule counts from the last time the old one was seen, so a run
/// that falls between the change and the moment the timer notices it is not
/// lost. A run that was missed (the clock jumped, the machine slept) happens
/// once, as soon as the timer looks, and the plan moves on to the next time
/// after that.
#[derive(Debug, Clone)]
pub struct TimerPlan<Tz: TimeZone> {
    zone: Tz,
    schedule: Schedule,
    due: Option<UnixTime>,
    seen: UnixTime,
}

impl<Tz: TimeZone> TimerPlan<Tz> {
    /// A plan for `schedule` as read at `now`.
    pub fn new(schedule: Schedule, now: UnixTime, zone: Tz) -> TimerPlan<Tz> {
        let due = next_run_in(&schedule, now, &zone);
        TimerPlan { zone, schedule, due, seen: now }
    }

    /// When the next run is due, if ever.
    pub fn due(&self) -> Option<UnixTime> {
        self.due
    }

    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// Takes in the schedule as read from the database at `now`.
    pub fn observe(&mut self, schedule: Schedule, now: UnixTime) {
        if schedule != self.schedule {
            self.due = next_run_in(&schedule, self.seen.min(now), &self.zone);
            self.schedule = schedule;
        }
        self.seen = now;
    }

    /// True when a run is due at `now`; the plan then moves on to the first
    /// time after `now`.
    pub fn take_due(&mut self, now: UnixTime) -> bool {
        self.take_due_time(now).is_some()
    }

    /// [`TimerPlan::take_due`] that names the scheduled time that is due:
    /// the time every server on the file agrees on, and claims.
    pub fn take_due_time(&mut self, now: UnixTime) -> Option<UnixTime> {
        match self.due {
            Some(due) if now >= due => {
                self.due = next_run_in(&self.schedule, now, &self.zone);
                Some(due)
            }
            _ => None,
        }
    }
}

/// Starts the timer thread; it stops when the app's shutdown flag is set.
/// The schedule and the start time are read before the thread starts, so a
/// test that moves the clock right after `start` cannot race the thread.
pub fn spawn_timer(app: Arc<App>) -> anyhow::Result<Option<JoinHandle<()>>> {
    let conn = crate::db::connect(&app.settings.db)?;
    let started = app.clock.now();
    let schedule = load(&conn).unwrap_or_else(|error| {
        eprintln!("cleanup timer: failed to read the schedule: {error}");
        Schedule::Off
    });
    let plan = TimerPlan::new(schedule, started, chrono::Local);
    let handle = std::thread::Builder::new()
        .name(String::from("cleanup-timer"))
        .spawn(move || run_timer(&app, conn, plan, started))
        .context("failed to start the cleanup timer thread")?;
    Ok(Some(handle))
}

/// The timer thread's loop: look at the clock, re-read the schedule now and
/// then, run the cleanup when it is due, and sleep a little.
fn run_timer(
    app: &App,
    mut conn: Conn,
    mut plan: TimerPlan<chrono::Local>,
    mut last_read: UnixTime,
) {
    let mut last_watch = std::time::Instant::now();
    while !app.shutdown.load(Ordering::SeqCst) {
        // The database file deleted or replaced is logged within a second
        // even when nobody asks `/healthz` (by the real clock: it is about
        // the file, not about session times).
        if last_watch.elapsed() >= Duration::from_secs(1) {
            let _ = app.db_file.check();
            last_watch = std::time::Instant::now();
        }
        let now = app.clock.now();
        if now - last_read >= RELOAD_EVERY || now < last_read {
            match load(&conn) {
                Ok(schedule) => plan.observe(schedule, now),
                Err(error) => eprintln!("cleanup timer: failed to read the schedule: {error}"),
            }
            last_read = now;
        }
        if let Some(scheduled_at) = plan.take_due_time(now) {
            let next = match plan.due() {
                Some(next) => format!("next run at {}", crate::clock::rfc3339(next)),
                None => String::from("no next run"),
            };
            let run = cleanup::clear_expired_scheduled(&mut conn, scheduled_at, now, &app.shutdown);
            // A run claimed by another server is that server's to count.
            match &run {
                Ok(Some(run)) => app.metrics.record_cleanup(
                    crate::metrics::CleanupTrigger::Timer,
                    Some((run.web_deleted, run.jwt_deleted)),
                ),
                Ok(None) => {}
                Err(_) => app.metrics.record_cleanup(crate::metrics::CleanupTrigger::Timer, None),
            }
            match run {
                Ok(Some(run)) => eprintln!(
                    "cleanup timer: cleared {} expired web session(s) and {} expired GraphQL login session(s) in {} ms; {next}",
                    run.web_deleted, run.jwt_deleted, run.duration_ms
                ),
                Ok(None) => eprintln!(
                    "cleanup timer: the run due at {} was claimed by another server on this database; {next}",
                    crate::clock::rfc3339(scheduled_at)
                ),
                Err(error) => eprintln!("cleanup timer: the cleanup failed: {error:#}; {next}"),
            }
            app.timer_handled.store(scheduled_at, Ordering::SeqCst);
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Parses exactly five fields; unlike croner's default parser, seconds and
/// years are not accepted.
fn parse_cron(expression: &str) -> Result<Cron, String> {
    let parser = CronParser::builder().seconds(Seconds::Disallowed).year(Year::Disallowed).build();
    parser.parse(expression).map_err(|error| lowercase_first(&error.to_string()))
}

/// The names of the five fields, in order.
const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// Says which field croner refused, when one field alone is refused: croner
/// tells what is wrong but not where.
fn name_bad_field(fields: &[&str], reason: String) -> String {
    for (index, field) in fields.iter().enumerate() {
        let mut alone = ["*"; 5];
        alone[index] = field;
        if parse_cron(&alone.join(" ")).is_err() {
            return format!("the {} field `{field}`: {reason}", FIELD_NAMES[index]);
        }
    }
    reason
}

/// croner's messages start with a capital and end with a period; ours do
/// not.
fn lowercase_first(message: &str) -> String {
    let message = message.trim_end_matches('.');
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercase_first_drops_the_capital_and_period() {
        assert_eq!(lowercase_first("Invalid pattern: x."), "invalid pattern: x");
    }

    #[test]
    fn time_formatting_shows_the_offset() {
        let zone = chrono::FixedOffset::east_opt(3600).unwrap();
        assert_eq!(local_time_in(1_795_780_800, &zone), "2026-11-27 13:00 +01:00");
    }
}
