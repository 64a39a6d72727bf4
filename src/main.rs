//! The `sessiond` binary: parses the command line, runs the command, and is
//! the one place that prints an error and picks the exit status (1 for a
//! failed command; clap exits 2 for usage errors).

use std::process::ExitCode;

fn main() -> ExitCode {
    match sessiond::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
