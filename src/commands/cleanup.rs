//! `clear_expired_sessions` and `schedule`: the cleanup from the command
//! line, and showing or changing its schedule.
//!
//! Both are safe while `serve` runs on the same file: the cleanup deletes in
//! short transactions, and a running server re-reads the schedule within a
//! minute.

use crate::cleanup::{self, CleanupRun, Trigger};
use crate::cli::ScheduleAction;
use crate::clock::{Clock, SystemClock, rfc3339};
use crate::commands::open_db;
use crate::schedule::{self, Schedule};
use crate::settings::Settings;

/// How many recorded runs `schedule show` lists.
const RUNS_SHOWN: usize = 10;

pub fn clear_expired_sessions(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = open_db(settings)?;
    let run = cleanup::clear_expired(&mut conn, SystemClock.now(), Trigger::Command)?;
    print_counts(&run);
    Ok(())
}

pub fn schedule(settings: &Settings, action: ScheduleAction) -> anyhow::Result<()> {
    let mut conn = open_db(settings)?;
    let now = SystemClock.now();
    match action {
        ScheduleAction::Show => {
            let current = schedule::load(&conn)?;
            match &current {
                Schedule::Off => println!("Schedule: off"),
                Schedule::Cron(expression) => println!(
                    "Schedule: {expression} (minute hour day-of-month month day-of-week, server time zone)"
                ),
            }
            match schedule::next_run(&current, now) {
                Some(next) => {
                    println!("Next run: {} ({})", schedule::local_time(next), rfc3339(next));
                }
                None => println!("Next run: none"),
            }
            let runs = cleanup::recent_runs(&conn, RUNS_SHOWN)?;
            if runs.is_empty() {
                println!("Last runs: none");
            } else {
                println!("Last runs:");
                for run in runs {
                    println!(
                        "  {}  {:<7}  {:>6} ms  {} web, {} GraphQL  {}",
                        rfc3339(run.started),
                        run.trigger,
                        run.duration_ms,
                        run.web_deleted,
                        run.jwt_deleted,
                        run.outcome
                    );
                }
            }
        }
        ScheduleAction::Set { cron } => {
            let new = schedule::parse(&cron).map_err(anyhow::Error::msg)?;
            schedule::store(&conn, &new)?;
            match schedule::next_run(&new, now) {
                Some(next) => println!(
                    "Schedule set to `{new}`; next run at {} ({}).",
                    schedule::local_time(next),
                    rfc3339(next)
                ),
                None => println!("Schedule set to `{new}`; it has no next run."),
            }
        }
        ScheduleAction::Off => {
            schedule::store(&conn, &Schedule::Off)?;
            println!("The scheduled cleanup is off.");
        }
        ScheduleAction::Run => {
            let run = cleanup::clear_expired(&mut conn, now, Trigger::Command)?;
            print_counts(&run);
        }
    }
    Ok(())
}

fn print_counts(run: &CleanupRun) {
    println!("Cleared {} expired web session(s).", run.web_deleted);
    println!("Cleared {} expired GraphQL login session(s).", run.jwt_deleted);
}
