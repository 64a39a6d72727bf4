//! `sessiond serve`: starts the server, logs what is in force, and stops
//! cleanly on SIGINT or SIGTERM.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::settings::Settings;
use crate::startup::{self, StartOptions};

pub fn run(settings: Settings) -> anyhow::Result<()> {
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&shutdown))
            .context("failed to install the signal handlers")?;
    }
    if settings.postgres.is_some() {
        // A database that cannot be reached is the one line of a failed
        // start, not the last of the settings' log.
        drop(crate::db::connect(&settings.db)?);
    }
    for resolved in &settings.resolved {
        eprintln!(
            "setting {}={} ({})",
            resolved.key.name,
            resolved.display_value(),
            resolved.source
        );
    }
    let options = StartOptions { shutdown, ..StartOptions::default() };
    let running = startup::start(settings, options)?;
    eprintln!("listening on http://{}", running.addr());
    if let Some(metrics_addr) = running.metrics_addr() {
        eprintln!("metrics on http://{metrics_addr}");
    }
    log_next_cleanup(&running);
    running.wait();
    eprintln!("stopped");
    Ok(())
}

/// Logs when the scheduled cleanup runs next; a failure to read the
/// schedule is logged too and does not stop the server.
fn log_next_cleanup(running: &startup::Running) {
    let app = running.app();
    let schedule =
        crate::db::connect(&app.settings.db).and_then(|conn| Ok(crate::schedule::load(&conn)?));
    match schedule {
        Ok(schedule) => {
            eprintln!("{}", crate::schedule::describe_next_run(&schedule, app.clock.now()));
        }
        Err(error) => eprintln!("failed to read the cleanup schedule: {error:#}"),
    }
}

/// Warns when the `.env` file can be read by the group or by others: it
/// holds the signing keys.
pub fn warn_about_env_file(env_file: &std::path::Path) {
    if let Some(mode) = crate::env_file::readable_by_others(env_file) {
        eprintln!(
            "warning: `{}` is readable by group or others (mode {mode:o}) and holds secrets; run `chmod 600 {}`",
            env_file.display(),
            env_file.display()
        );
    }
}
