//! `tixngo-feedback`: S-360's "Retrieve ticket status from TIXNGO" (the feedback interface) as a
//! one-shot command-line job. Cron starts it every 5 minutes; it takes a lock, fetches one batch of
//! ticket changes from the TIXNGO diff endpoint, writes them into the S-360 store with the
//! cultural-contact assignments they imply, saves the next pagination key in the same transaction,
//! prints one line and exits with a code that says what happened.
//!
//! The modules, from the command line down:
//! - [`cli`]: the command line (clap);
//! - [`sync`]: one run of the job, batch after batch;
//! - [`tixngo`]: the diff endpoint's wire format and HTTP client;
//! - [`feedback`]: the mapping and contact rules, pure functions;
//! - [`store`]: the SQLite store, its schema and the one transaction per batch;
//! - [`report`]: counters and the summary line;
//! - [`lock`]: the run lock; [`logging`]: stderr logs;
//! - [`error`] and [`exit`]: failures and the exit codes they map to;
//! - [`timestamp`] and [`ticket_number`]: the two value types every layer shares.

pub mod cli;
pub mod error;
pub mod exit;
pub mod feedback;
pub mod lock;
pub mod logging;
pub mod report;
pub mod store;
pub mod sync;
pub mod ticket_number;
pub mod timestamp;
pub mod tixngo;

use std::ffi::OsString;
use std::time::Instant;

pub use error::Error;
pub use exit::ExitCode;

use cli::{Command, Parsed};

/// Runs the program with these arguments (the first is the program name) and returns its exit
/// code, after printing the summary or the error line.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let started = Instant::now();
    let cli = match cli::parse(args) {
        Parsed::Run(cli) => cli,
        Parsed::Printed(code) => return code,
        Parsed::Usage(error) => {
            eprintln!("tixngo-feedback: {error}");
            return error.exit_code();
        }
    };
    let global = &cli.global;
    logging::init(global.verbose, global.quiet);
    let summary = match &cli.command {
        Command::Sync(args) => sync::run(global, args, started),
    };
    let code = ExitCode::ALL
        .into_iter()
        .find(|c| c.code() == summary.exit_code)
        .unwrap_or(ExitCode::Software);
    if global.json {
        println!("{}", summary.to_json());
    } else if !global.quiet && summary.error.is_none() {
        println!("{}", summary.to_human());
    }
    if let Some(error) = &summary.error {
        eprintln!("tixngo-feedback: error: {error}");
    } else if code == ExitCode::Partial {
        eprintln!(
            "tixngo-feedback: {} tickets could not be mapped and wait in sync_error: see `tixngo-feedback status`, \
             fix and `replay --errors`, or `skip add` them",
            summary.counters.failed
        );
    }
    code
}
