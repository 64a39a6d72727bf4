//! `clear_expired_sessions` and `schedule`: the cleanup from the command
//! line, and showing or changing its schedule.
//!
//! Both are safe while `serve` runs on the same file: the cleanup deletes in
//! short transactions, and a running server re-reads the schedule within a
//! minute.

use clap::Subcommand;

use crate::cleanup::{self, CleanupRun, Trigger};
use crate::clock::{Clock, SystemClock, rfc3339};
use crate::commands::open_db;
use crate::schedule::{self, Schedule};
use crate::settings::Settings;

/// `sessiond schedule` actions.
#[derive(Debug, Subcommand)]
pub enum ScheduleAction {
    /// Show the schedule, the next run and the last runs
    Show,
    /// Set the schedule to a 5-field cron expression
    Set { cron: String },
    /// Turn the scheduled cleanup off
    Off,
    /// Run the cleanup now
    Run,
}

/// How many recorded runs `schedule show` lists.
const RUNS_SHOWN: usize = 10;

pub fn clear_expired_sessions(settings: &Settings) -> anyhow::Result<()> {
    let mut conn = open_db(settings)?;
    let run = cleanup::clear_expired(&mut conn, SystemClock.now(), Trigger::Command)?;
    print_counts(&run)?;
    Ok(())
}

pub fn schedule(settings: &Settings, action: ScheduleAction) -> anyhow::Result<()> {
    let mut conn = open_db(settings)?;
    let now = SystemClock.now();
    match action {
        ScheduleAction::Show => {
            let current = schedule::load(&conn)?;
            match &current {
                Schedule::Off => say!("Schedule: off"),
                Schedule::Cron(expression) => say!(
                    "Schedule: {expression} (minute hour day-of-month month day-of-week, server time zone)"
                ),
            }
            match schedule::next_run(&current, now) {
                Some(next) => {
                    say!("Next run: {} ({})", schedule::local_time(next), rfc3339(next));
                }
                None => say!("Next run: none"),
            }
            let runs = cleanup::recent_runs(&conn, RUNS_SHOWN)?;
            if runs.is_empty() {
                say!("Last runs: none");
            } else {
                say!("Last runs:");
                for run in runs {
                    say!(
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
                Some(next) => say!(
                    "Schedule set to `{new}`; next run at {} ({}).",
                    schedule::local_time(next),
                    rfc3339(next)
                ),
                None => say!("Schedule set to `{new}`; it has no next run."),
            }
        }
        ScheduleAction::Off => {
            schedule::store(&conn, &Schedule::Off)?;
            say!("The scheduled cleanup is off.");
        }
        ScheduleAction::Run => {
            let run = cleanup::clear_expired(&mut conn, now, Trigger::Command)?;
            print_counts(&run)?;
        }
    }
    Ok(())
}

fn print_counts(run: &CleanupRun) -> std::io::Result<()> {
    say!("Cleared {} expired web session(s).", run.web_deleted);
    say!("Cleared {} expired GraphQL login session(s).", run.jwt_deleted);
    Ok(())
}
