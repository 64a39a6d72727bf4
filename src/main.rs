//! The `sessiond` binary: parses the command line, runs the command, and is
//! the one place that prints an error and picks the exit status (1 for a
//! failed command; clap exits 2 for usage errors).

use std::process::ExitCode;

fn main() -> ExitCode {
    match sessiond::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        // `sessiond config | head -1` closed stdout early: like other Unix
        // tools, stop quietly; the work done so far stands.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
