//! The `sessiond` binary: parses the command line, runs the command, and is
//! the one place that prints an error and picks the exit status (1 for a
//! failed command; clap exits 2 for usage errors).

use std::process::ExitCode;

fn main() -> ExitCode {
    exit_quietly_on_closed_stdout();
    match sessiond::cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `sessiond config | head -1` closes stdout early; like other Unix tools,
/// stop quietly then instead of reporting a panic. (Rust ignores SIGPIPE, so
/// `println!` panics on a closed pipe; the work done so far stands.)
fn exit_quietly_on_closed_stdout() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
}
