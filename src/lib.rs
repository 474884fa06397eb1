//! `tixngo-feedback`: S-360's "Retrieve ticket status from TIXNGO" (the feedback interface) as a
//! one-shot command-line job. Cron starts it every 5 minutes; it takes a lock, fetches one batch of
//! ticket changes from the TIXNGO diff endpoint, writes them into the S-360 store with the
//! cultural-contact assignments they imply, saves the next pagination key in the same transaction,
//! prints one line and exits with a code that says what happened.
//!
//! The modules, from the command line down:
//! - [`cli`]: the command line (clap); [`paths`]: the files it names must be different files;
//! - [`settings`]: the command line and the environment resolved into typed settings, before any
//!   work starts; the commands take these, never the command line;
//! - [`sync`]: one run of the job, batch after batch; [`replay`]: a saved response or the
//!   sync errors through the same mapping; [`commands`]: `status`, `skip`, `cursor`, `errors`;
//! - [`engine`]: one batch mapped and committed, the same for `sync` and `replay`;
//! - [`tixngo`]: the diff endpoint's wire format, the API key and the HTTP client;
//! - [`feedback`]: the mapping and contact rules, pure functions;
//! - [`store`]: the store behind one interface (an SQLite file), its schema and the one
//!   transaction per batch;
//! - [`report`]: counters, the summary line, the metrics file;
//! - [`lock`]: the run lock; [`logging`]: stderr logs; [`manual`]: completions and man page;
//! - [`error`] and [`exit`]: failures and the exit codes they map to;
//! - [`timestamp`] and [`ticket_number`]: the two value types every layer shares.

pub(crate) mod cli;
pub(crate) mod commands;
pub mod engine;
pub mod error;
pub(crate) mod exit;
pub mod feedback;
pub(crate) mod lock;
pub(crate) mod logging;
pub(crate) mod manual;
pub(crate) mod paths;
pub(crate) mod replay;
pub mod report;
pub mod settings;
pub mod store;
pub(crate) mod sync;
pub mod ticket_number;
pub mod timestamp;
pub mod tixngo;

use std::ffi::OsString;
use std::io::Write;
use std::time::Instant;

pub use error::Error;
pub use exit::ExitCode;

use cli::Parsed;
use report::{Output, Summary};
use settings::{CommandSettings, OutputMode, Refused, Settings};

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
            say(&format!("error: {}", report::escape(&error.to_string())));
            return error.exit_code();
        }
    };
    if let Err(error) = paths::check_distinct(&cli) {
        say(&format!("error: {error}"));
        return error.exit_code();
    }
    logging::init(cli.global.verbose, cli.global.quiet);
    let mode = OutputMode::of(&cli.global);
    // A panic is a bug: one line and exit 70, never a backtrace. Unwinding drops the batch's
    // transaction, which rolls it back, and the lock goes with the process.
    std::panic::set_hook(Box::new(|info| {
        say(&format!(
            "error: internal error (a bug, please report it): {info}"
        ));
    }));
    let result = std::panic::catch_unwind(move || match Settings::resolve(*cli) {
        Ok(settings) => dispatch(settings, started),
        Err(refused) => refused_output(refused, started),
    });
    let panicked = result.is_err();
    let output = result.unwrap_or_else(|_| {
        Output::of(
            "internal",
            Err(Error::Internal("the run was abandoned".to_owned())),
        )
    });
    // stdout may be closed (a pipe to `head`): nothing to do about it, and no reason to panic.
    let mut stdout = std::io::stdout().lock();
    if mode == OutputMode::Json {
        let _ = writeln!(stdout, "{}", output.json);
    } else if mode == OutputMode::Human && output.error.is_none() {
        let _ = writeln!(stdout, "{}", output.human);
    }
    if panicked {
        // The panic hook has printed the line already.
    } else if let Some(error) = &output.error {
        say(&format!("error: {}", report::escape(error)));
    } else if let Some(warning) = &output.warning {
        say(&report::escape(warning));
    }
    output.exit_code
}

/// Prints one line on stderr. A stderr that cannot be written (a closed pipe, a full disk) is
/// ignored: the exit code is the one message left, and it must hold (`eprintln!` would panic).
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "tixngo-feedback: {line}");
}

/// Runs the command the settings name.
fn dispatch(settings: Settings, started: Instant) -> Output {
    let store = &settings.store;
    let name = settings.command.name();
    match settings.command {
        CommandSettings::Sync(sync) => {
            let metrics_file = sync.metrics_file.clone();
            let summary = sync::run(store, *sync, started);
            run_output(summary, metrics_file.as_deref())
        }
        CommandSettings::Replay(replay) => replay::run(store, *replay, started).output(),
        CommandSettings::Status => Output::of(name, commands::status(store)),
        CommandSettings::Skip(command) => Output::of(name, commands::skip(store, &command)),
        CommandSettings::Cursor(command) => Output::of(name, commands::cursor(store, &command)),
        CommandSettings::Errors(command) => Output::of(name, commands::errors(store, &command)),
        CommandSettings::Completions(shell) => Output::of(name, manual::completions(shell)),
        CommandSettings::Man => Output::of(name, manual::man_page()),
    }
}

/// The output of a `sync` or `replay` whose settings were refused: the run's failure.
fn refused_output(refused: Refused, started: Instant) -> Output {
    match refused {
        Refused::Sync {
            error,
            dry_run,
            metrics_file,
        } => run_output(
            sync::refused(error, dry_run, started),
            metrics_file.as_deref(),
        ),
        Refused::Replay { error } => replay::refused(error, started).output(),
        Refused::Command { name, error } => Output::of(name, Err(error)),
    }
}

/// The output of a sync, after writing its metrics file (never for a dry run).
fn run_output(summary: Summary, metrics_file: Option<&std::path::Path>) -> Output {
    if let (Some(path), false) = (metrics_file, summary.dry_run)
        && let metrics = report::metrics::with_feed_carried_over(path, &summary)
        && let Err(e) = report::metrics::write(path, &metrics, timestamp::Timestamp::now())
    {
        log::error!("cannot write the metrics file {}: {e}", path.display());
    }
    summary.output()
}
