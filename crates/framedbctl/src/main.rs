//! `framedbctl`, a command line for FrameDB's HTTP API (README, "framedbctl").
//!
//! Exit codes: 0 done, or stdout was closed by its reader (`framedbctl list | head -1`);
//! 1 the API refused (its `error` code and message on stderr) or a `--wait` ended badly;
//! 2 usage; 3 the server could not be reached, did not answer in time, or answered
//! something other than FrameDB's JSON (or paged without end).
//!
//! What the server sends is printed with its control characters escaped
//! ([`output::escaped`]), so that it cannot drive the terminal.

mod api;
mod cli;
mod commands;
mod error;
mod output;
mod wait;

use std::error::Error as _;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command, Connection, metadata_conflict};
use crate::error::Error;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let connection = check(&cli);
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
        .and_then(|runtime| runtime.block_on(commands::run(cli, &connection)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // The reader is gone (`| head`): nothing is left to tell it, and nothing went wrong.
        Err(Error::StdoutClosed) => ExitCode::SUCCESS,
        Err(error) => {
            report(&error);
            ExitCode::from(error.exit_code())
        }
    }
}

/// What clap cannot check alone, and the checked connection; exits with clap's usage
/// error (2).
fn check(cli: &Cli) -> Connection {
    let conflict = match &cli.command {
        Command::Create(args) => metadata_conflict(&args.metadata, &[]),
        Command::Update(args) => metadata_conflict(&args.metadata, &args.remove_metadata),
        _ => None,
    };
    if let Some(conflict) = conflict {
        usage(ErrorKind::ArgumentConflict, conflict);
    }
    cli.global
        .connection()
        .unwrap_or_else(|refusal| usage(ErrorKind::ValueValidation, refusal))
}

/// Ends the process with clap's usage error: `message`, the usage line, exit 2.
fn usage(kind: ErrorKind, message: String) -> ! {
    Cli::command().error(kind, message).exit()
}

/// `error: <what>: <cause>: <cause>...` on stderr, and the API's `details` if any.
fn report(error: &Error) {
    let mut text = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{}", output::escaped(&text));
    if let Error::Refused {
        details: Some(details),
        ..
    } = error
    {
        eprintln!("details: {}", output::escaped(&details.to_string()));
    }
}
