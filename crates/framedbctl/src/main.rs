//! `framedbctl`, a command line for FrameDB's HTTP API (README, "framedbctl").
//!
//! Exit codes: 0 done; 1 the API refused (its `error` code and message on stderr) or a
//! `--wait` ended badly; 2 usage; 3 the server could not be reached, did not answer in
//! time, or answered something other than FrameDB's JSON.

mod api;
mod cli;
mod commands;
mod error;
mod output;
mod wait;

use std::collections::BTreeSet;
use std::error::Error as _;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};
use crate::error::Error;

fn main() -> ExitCode {
    let cli = Cli::parse();
    check(&cli);
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
        .and_then(|runtime| runtime.block_on(commands::run(cli)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            report(&error);
            ExitCode::from(error.exit_code())
        }
    }
}

/// What clap cannot check alone; exits with clap's usage error (2).
fn check(cli: &Cli) {
    if let Command::Create(args) = &cli.command {
        let mut keys = BTreeSet::new();
        if let Some((key, _)) = args.metadata.iter().find(|(key, _)| !keys.insert(key)) {
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("--metadata gives {key:?} twice"),
                )
                .exit();
        }
    }
}

/// `error: <what>: <cause>: <cause>...` on stderr, and the API's `details` if any.
fn report(error: &Error) {
    let mut text = format!("error: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    eprintln!("{text}");
    if let Error::Refused {
        details: Some(details),
        ..
    } = error
    {
        eprintln!("details: {details}");
    }
}
