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
