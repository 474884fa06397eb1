//! The command line (SPEC §2). Every option also reads the environment variable shown; a flag wins
//! over its variable. No option takes the API key: argv is visible to every user through `ps`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, value_parser};

use crate::error::Error;
use crate::exit::ExitCode;
use crate::ticket_number;
use crate::tixngo::wire::{self, PaginationKey};

#[derive(Debug, Parser)]
#[command(
    name = "tixngo-feedback",
    version,
    about = "Retrieve mobile-ticket changes from TIXNGO into the S-360 store (the feedback interface)",
    long_about = None,
    after_help = top_level_help()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every subcommand takes, before or after it.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The SQLite store, created (mode 0600) with its schema when missing; or a PostgreSQL
    /// store: postgres://USER@HOST:PORT/DB (no password in it)
    #[arg(
        long,
        global = true,
        env = "TIXNGO_FEEDBACK_STORE",
        default_value = "tixngo-feedback.db",
        value_name = "PATH|URL"
    )]
    pub store: PathBuf,

    /// The run lock [default: <store>.lock]; a PostgreSQL store locks on the server instead
    #[arg(long, global = true, env = "TIXNGO_FEEDBACK_LOCK", value_name = "PATH")]
    pub lock_file: Option<PathBuf>,

    /// File holding the PostgreSQL store's password (mode 0600); without it, PGPASSWORD
    #[arg(
        long,
        global = true,
        env = "TIXNGO_FEEDBACK_STORE_PASSWORD_FILE",
        value_name = "PATH"
    )]
    pub store_password_file: Option<PathBuf>,

    /// The PostgreSQL schema holding the store, one per organizer [default: tixngo_feedback]
    #[arg(
        long,
        global = true,
        env = "TIXNGO_FEEDBACK_PG_SCHEMA",
        value_name = "NAME",
        value_parser = crate::store::postgres::parse_schema
    )]
    pub pg_schema: Option<String>,

    /// Print one line of compact JSON on stdout instead of the human summary
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing at all on success; errors still go to stderr
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// More log lines on stderr (repeatable); without it, RUST_LOG or warnings only
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch one batch from the TIXNGO diff endpoint, store it, advance the key (the cron job)
    #[command(after_help = examples(&[
        "tixngo-feedback --store /var/lib/tixngo-feedback/acme.db sync \\\n      --api-url https://api.tixngo.io/organizer/tickets --api-key-file /etc/tixngo-feedback/acme.key",
        "tixngo-feedback --store acme.db sync --pagination-key '' --max-batches 50 --dry-run",
    ]))]
    Sync(SyncArgs),
    /// Process a saved diff response as if TIXNGO had returned it, or re-process the sync errors
    #[command(after_help = examples(&[
        "tixngo-feedback --store acme.db replay response.json",
        "tixngo-feedback --store acme.db replay --errors --dry-run",
    ]))]
    Replay(ReplayArgs),
    /// Show the key, the lock, the last runs, the skip list, the sync errors and the counts
    #[command(after_help = examples(&[
        "tixngo-feedback --store acme.db status",
        "tixngo-feedback --store acme.db status --json",
    ]))]
    Status,
    /// The persisted skip list (S-360 "Skip Ticket Tax Numbers")
    #[command(subcommand, after_help = examples(&[
        "tixngo-feedback --store acme.db skip add 2026000042 --reason \"bad holder data\"",
        "tixngo-feedback --store acme.db skip list",
    ]))]
    Skip(SkipCommand),
    /// Show or move the stored pagination key
    #[command(subcommand, after_help = examples(&[
        "tixngo-feedback --store acme.db cursor show",
        "tixngo-feedback --store acme.db cursor reset --yes",
    ]))]
    Cursor(CursorCommand),
    /// Triage the sync errors: tickets that could not be mapped
    #[command(subcommand, after_help = examples(&[
        "tixngo-feedback --store acme.db errors list",
        "tixngo-feedback --store acme.db errors dismiss 12 13 --reason \"cancelled in S-360\"",
    ]))]
    Errors(ErrorsCommand),
    /// Print a shell completion script, generated from this command line
    #[command(after_help = examples(&[
        "tixngo-feedback completions bash > /usr/share/bash-completion/completions/tixngo-feedback",
        "tixngo-feedback completions zsh > /usr/local/share/zsh/site-functions/_tixngo-feedback",
    ]))]
    Completions {
        /// The shell
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this command line
    #[command(after_help = examples(&[
        "tixngo-feedback man > /usr/local/share/man/man1/tixngo-feedback.1",
        "tixngo-feedback man | man -l -",
    ]))]
    Man,
}

/// An "Examples:" block for a command's help.
fn examples(lines: &[&str]) -> String {
    let mut text = "Examples:".to_owned();
    for line in lines {
        text.push_str("\n  ");
        text.push_str(line);
    }
    text
}

/// The end of the top-level help: the exit codes, from [`ExitCode::ALL`], and where to start.
fn top_level_help() -> String {
    let mut text = "Exit codes:".to_owned();
    for code in ExitCode::ALL {
        text.push_str(&format!("\n  {:>3}  {}", code.code(), code.meaning()));
    }
    text.push_str("\n\n");
    text.push_str(&examples(&[
        "tixngo-feedback --store acme.db sync --api-url https://api.tixngo.io/organizer/tickets --api-key-file acme.key",
        "tixngo-feedback --store acme.db status",
    ]));
    text.push_str(
        "\n\nEach command's --help shows its own examples; `man tixngo-feedback` has them all.",
    );
    text
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The saved diff response ('-' for stdin)
    #[arg(
        value_name = "FILE",
        required_unless_present = "errors",
        conflicts_with = "errors"
    )]
    pub file: Option<PathBuf>,

    /// Re-process the raw payloads of the unresolved sync errors instead of a file
    #[arg(long)]
    pub errors: bool,

    #[command(flatten)]
    pub mapping: MappingArgs,
}

#[derive(Debug, Subcommand)]
pub enum SkipCommand {
    /// Add ticket numbers to the skip list
    #[command(after_help = examples(&[
        "tixngo-feedback skip add 2026000042,2026000043 --reason \"bad holder data, ticket #123\"",
    ]))]
    Add {
        /// Ticket numbers (also comma separated)
        #[arg(value_name = "NUMBERS", required = true, value_parser = parse_skip)]
        numbers: Vec<SkipList>,
        /// Why they are skipped
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
    },
    /// Remove ticket numbers from the skip list
    #[command(after_help = examples(&["tixngo-feedback skip remove 2026000042"]))]
    Remove {
        /// Ticket numbers (also comma separated)
        #[arg(value_name = "NUMBERS", required = true, value_parser = parse_skip)]
        numbers: Vec<SkipList>,
    },
    /// List the skip list
    #[command(after_help = examples(&["tixngo-feedback skip list --json"]))]
    List,
}

#[derive(Debug, Subcommand)]
pub enum CursorCommand {
    /// Show the stored pagination key
    #[command(after_help = examples(&["tixngo-feedback cursor show"]))]
    Show,
    /// Set the stored pagination key (the next sync starts from KEY)
    #[command(after_help = examples(&["tixngo-feedback cursor set 'pk1.3e8.5d2c0a11' --yes"]))]
    Set {
        /// The key the next sync starts from, as `status --json` shows a run's key_before or key_after
        #[arg(value_name = "KEY", value_parser = parse_pagination_key)]
        key: PaginationKey,
        /// Confirm the change
        #[arg(long)]
        yes: bool,
    },
    /// Empty the stored key: the next sync starts from the beginning of the feed
    #[command(after_help = examples(&["tixngo-feedback cursor reset --yes"]))]
    Reset {
        /// Confirm the change
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ErrorsCommand {
    /// List the unresolved sync errors: id, ticket number, when first seen, reason
    #[command(after_help = examples(&["tixngo-feedback errors list", "tixngo-feedback errors list --json"]))]
    List,
    /// Print one sync error's reason and raw payload (personal data: for the operator's eyes)
    #[command(after_help = examples(&["tixngo-feedback errors show 12"]))]
    Show {
        /// The error's id, as `errors list` shows it
        #[arg(value_name = "ID")]
        id: i64,
    },
    /// Mark sync errors resolved by hand; they are kept, with the reason
    #[command(after_help = examples(&[
        "tixngo-feedback errors dismiss 12 13 --reason \"duplicates of tickets cancelled in S-360\"",
    ]))]
    Dismiss {
        /// The errors' ids, as `errors list` shows them
        #[arg(value_name = "ID", required = true)]
        ids: Vec<i64>,
        /// Why they need no further work (kept on each error)
        #[arg(long, value_name = "TEXT", required = true, value_parser = parse_reason)]
        reason: String,
    },
}

fn parse_reason(text: &str) -> Result<String, String> {
    match text.trim() {
        "" => Err("the reason must not be empty".to_owned()),
        reason => Ok(reason.to_owned()),
    }
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The TIXNGO interface URL, ending in /organizer/tickets
    #[arg(long, env = "TIXNGO_API_URL", value_name = "URL")]
    pub api_url: Option<String>,

    /// File holding the API key (mode 0600); without it, TIXNGO_API_KEY holds the key
    #[arg(long, env = "TIXNGO_API_KEY_FILE", value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,

    /// Tickets per batch
    #[arg(
        long,
        env = "TIXNGO_BATCH_SIZE",
        default_value_t = 1000,
        value_name = "N",
        value_parser = value_parser!(u32).range(1..=10_000)
    )]
    pub batch_size: u32,

    /// Start from KEY for this run only ('' = the beginning); the stored key is neither read nor changed
    #[arg(long, value_name = "KEY", value_parser = parse_pagination_key)]
    pub pagination_key: Option<PaginationKey>,

    /// Fetch up to N batches, each committed on its own, stopping early once caught up
    /// [default: 1; with --drain: no limit]
    #[arg(long, value_name = "N", value_parser = value_parser!(u32).range(1..))]
    pub max_batches: Option<u32>,

    /// Batch after batch until caught up, or until the deadline leaves too little time for
    /// another batch [env: TIXNGO_DRAIN=on|off]
    #[arg(long, env = "TIXNGO_DRAIN", hide_env = true, value_parser = parse_drain)]
    pub drain: bool,

    /// Deadline in seconds for the whole process, every batch and retry included
    #[arg(
        long,
        env = "TIXNGO_TIMEOUT",
        default_value_t = 240,
        value_name = "SECS",
        value_parser = value_parser!(u64).range(1..=3600)
    )]
    pub timeout: u64,

    /// Refuse a response larger than N MiB
    #[arg(
        long,
        default_value_t = 64,
        value_name = "N",
        value_parser = value_parser!(u64).range(1..=1024)
    )]
    pub max_response_mb: u64,

    /// Also write the run's figures in Prometheus text format to PATH, atomically
    #[arg(long, env = "TIXNGO_METRICS_FILE", value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,

    /// Keep each fetched response in DIR (replayable, with its query and status beside it)
    #[arg(long, env = "TIXNGO_DUMP_DIR", value_name = "DIR")]
    pub dump_dir: Option<PathBuf>,

    /// How many dumped responses to keep in --dump-dir (oldest removed first)
    #[arg(
        long,
        default_value_t = 20,
        value_name = "N",
        value_parser = value_parser!(u32).range(1..=100_000)
    )]
    pub dump_keep: u32,

    /// Extra PEM root certificates to trust, besides the platform's (a private CA, a TLS proxy)
    #[arg(long, env = "TIXNGO_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,

    /// The diff endpoint under the API URL (TIXNGO does not publish it)
    #[arg(
        long,
        env = "TIXNGO_DIFF_PATH",
        default_value = wire::DIFF_PATH,
        value_name = "PATH",
        value_parser = parse_diff_path
    )]
    pub diff_path: String,

    /// The HTTP header that carries the API key
    #[arg(
        long,
        env = "TIXNGO_API_KEY_HEADER",
        default_value = wire::API_KEY_HEADER,
        value_name = "NAME",
        value_parser = parse_header_name
    )]
    pub api_key_header: String,

    #[command(flatten)]
    pub mapping: MappingArgs,
}

/// How a batch's tickets are mapped; shared by every command that processes a diff document.
#[derive(Debug, Args)]
pub struct MappingArgs {
    /// Fetch and map, report what would change, write nothing at all
    #[arg(long)]
    pub dry_run: bool,

    /// Extra ticket numbers to skip in this run only, comma separated
    #[arg(long, value_name = "NUMBERS", value_parser = parse_skip)]
    pub skip: Option<SkipList>,

    /// A ticket that cannot be mapped fails the whole batch (nothing written, pagination key unchanged)
    #[arg(long)]
    pub stop_on_error: bool,

    /// Roll the batch back (exit 65) when more than R (0..=1) of its tickets cannot be mapped
    #[arg(
        long,
        env = "TIXNGO_MAX_FAILED_RATIO",
        default_value_t = 1.0,
        value_name = "R",
        value_parser = parse_ratio
    )]
    pub max_failed_ratio: f64,

    /// Do not create contacts or distribution lines [env: TIXNGO_CONTACTS=on|off]
    #[arg(long)]
    pub no_contacts: bool,

    /// The technical login written on distribution lines (S-360's OPERATOR_LOGIN)
    #[arg(
        long,
        env = "TIXNGO_OPERATOR_LOGIN",
        default_value = "TIXNGO_FEEDBACK",
        value_name = "NAME",
        value_parser = parse_operator_login
    )]
    pub operator_login: String,
}

/// The ticket numbers of `--skip`.
#[derive(Clone, Debug, Default)]
pub struct SkipList(pub Vec<String>);

fn parse_skip(text: &str) -> Result<SkipList, String> {
    ticket_number::parse_list(text).map(SkipList)
}

/// A key given on the command line: the rule of a received key, refused as a usage error.
fn parse_pagination_key(text: &str) -> Result<PaginationKey, String> {
    PaginationKey::new(text.to_owned()).map_err(|why| format!("the pagination key {why}"))
}

/// The value of a switch variable (`TIXNGO_DRAIN`, `TIXNGO_CONTACTS`): on/off, true/false or 1/0,
/// trimmed, in any case; `None` for anything else.
pub fn switch_value(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" => Some(true),
        "off" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// `--drain` (its implicit `true`) or `TIXNGO_DRAIN`.
fn parse_drain(text: &str) -> Result<bool, String> {
    switch_value(text).ok_or_else(|| "TIXNGO_DRAIN takes on/off, true/false or 1/0".to_owned())
}

/// A path under the API URL: starts with `/`, holds no query or fragment, and only characters a
/// URL path may carry as they are.
fn parse_diff_path(text: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/-._~!$&'()*+,;=:@%".contains(c);
    if !text.starts_with('/') {
        return Err("expected a path starting with '/'".to_owned());
    }
    if !text.chars().all(allowed) {
        return Err(
            "expected a URL path without a query, a fragment, blanks or control characters"
                .to_owned(),
        );
    }
    Ok(text.to_owned())
}

/// An HTTP header name: an RFC 9110 token.
fn parse_header_name(text: &str) -> Result<String, String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if text.is_empty() || !text.chars().all(token) {
        return Err(
            "expected an HTTP header name (letters, digits and !#$%&'*+-.^_`|~)".to_owned(),
        );
    }
    Ok(text.to_owned())
}

/// The operator login: a short printable text, as S-360 logins are.
fn parse_operator_login(text: &str) -> Result<String, String> {
    let login = text.trim();
    if login.is_empty() || login.len() > 64 || login.chars().any(char::is_control) {
        return Err("expected 1 to 64 printable characters".to_owned());
    }
    Ok(login.to_owned())
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err("expected a number from 0 to 1".to_owned()),
    }
}

/// What parsing the command line came to.
#[derive(Debug)]
pub enum Parsed {
    Run(Box<Cli>),
    /// `--help` or `--version` was printed; exit with this code.
    Printed(ExitCode),
    /// A usage error (exit 64), reduced to one line.
    Usage(Error),
}

/// Parses the arguments; clap's own exit code 2 becomes 64, and its message one line.
pub fn parse<I, T>(args: I) -> Parsed
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    use clap::error::ErrorKind;
    match Cli::try_parse_from(args) {
        Ok(cli) => Parsed::Run(Box::new(cli)),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Parsed::Printed(ExitCode::Success)
        }
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Parsed::Usage(
            Error::Usage("a subcommand is required (see --help)".to_owned()),
        ),
        Err(e) => {
            // clap's message, up to its usage block, on one line.
            let rendered = e.render().to_string();
            let message = rendered
                .lines()
                .map(str::trim)
                .take_while(|line| {
                    !line.starts_with("Usage:") && !line.starts_with("For more information")
                })
                .filter(|line| !line.is_empty() && !line.starts_with("tip:"))
                .collect::<Vec<_>>()
                .join(" ");
            let message = message.trim_start_matches("error: ");
            Parsed::Usage(Error::Usage(format!("{message} (see --help)")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_top_level_help_lists_every_exit_code() {
        let help = Cli::command().render_help().to_string();
        let codes = help
            .split_once("Exit codes:")
            .unwrap_or_else(|| panic!("no exit codes in\n{help}"))
            .1;
        for code in ExitCode::ALL {
            let line = format!("{:>3}  {}", code.code(), code.meaning());
            assert!(codes.contains(&line), "{line:?} missing from\n{help}");
        }
    }

    #[test]
    fn every_command_shows_examples_and_every_argument_says_what_it_is() {
        fn check(command: &clap::Command, path: &str) {
            let path = format!("{path} {}", command.get_name());
            if command.get_name() == "help" {
                return; // clap's own
            }
            let after = command.get_after_help().map(ToString::to_string);
            assert!(
                after.is_some_and(|text| text.contains("Examples:\n  tixngo-feedback ")),
                "{path} has no examples"
            );
            for arg in command.get_arguments() {
                assert!(arg.get_help().is_some(), "{path} {}: no help", arg.get_id());
            }
            for subcommand in command.get_subcommands() {
                check(subcommand, &path);
            }
        }
        let mut command = Cli::command();
        command.build();
        check(&command, "");
    }

    fn usage(args: &[&str]) -> String {
        match parse(args) {
            Parsed::Usage(e) => {
                assert_eq!(e.exit_code(), ExitCode::Usage);
                e.to_string()
            }
            other => panic!("{args:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn bad_values_are_usage_errors_on_one_line() {
        for (args, needle) in [
            (&["t", "sync", "--batch-size", "0"][..], "--batch-size"),
            (&["t", "sync", "--batch-size", "10001"], "--batch-size"),
            (&["t", "sync", "--timeout", "3601"], "--timeout"),
            (
                &["t", "sync", "--max-response-mb", "0"],
                "--max-response-mb",
            ),
            (&["t", "sync", "--max-batches", "0"], "--max-batches"),
            (
                &["t", "sync", "--max-failed-ratio", "1.5"],
                "--max-failed-ratio",
            ),
            (&["t", "sync", "--skip", "1,2 3"], "2 3"),
            (&["t", "sync", "--frobnicate"], "--frobnicate"),
            (&["t"], "subcommand"),
            (&["t", "replay"], "FILE"),
            (&["t", "replay", "f.json", "--errors"], "--errors"),
            (&["t", "skip", "add"], "NUMBERS"),
            (&["t", "skip", "add", "ok,bad number"], "bad number"),
            (&["t", "skip", "remove", "é"], "é"),
            (&["t", "sync", "--skip", ",,"], "\",,\""),
            (&["t", "sync", "--skip", " "], "\" \""),
            (&["t", "skip", "add", " "], "empty item"),
            (&["t", "cursor", "set"], "KEY"),
            (&["t", "sync", "--diff-path", "diff"], "--diff-path"),
            (
                &["t", "sync", "--diff-path", "/diff?limit=5"],
                "--diff-path",
            ),
            (&["t", "sync", "--diff-path", "/diff#x"], "--diff-path"),
            (&["t", "sync", "--diff-path", "/a b"], "--diff-path"),
            (
                &["t", "sync", "--api-key-header", "x api key"],
                "--api-key-header",
            ),
            (
                &["t", "sync", "--api-key-header", "x-key:"],
                "--api-key-header",
            ),
            (&["t", "sync", "--api-key-header", ""], "--api-key-header"),
            (&["t", "sync", "--operator-login", " "], "--operator-login"),
            (&["t", "status", "--pg-schema", "Acme"], "--pg-schema"),
            (&["t", "status", "--pg-schema", "pg_catalog"], "--pg-schema"),
        ] {
            let message = usage(args);
            assert!(message.contains(needle), "{args:?}: {message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn switches_read_on_off_true_false_and_1_0_in_any_case() {
        for (text, value) in [
            (" ON ", Some(true)),
            ("True", Some(true)),
            ("1", Some(true)),
        ] {
            assert_eq!(switch_value(text), value, "{text}");
        }
        for (text, value) in [
            ("off", Some(false)),
            ("FALSE", Some(false)),
            ("0", Some(false)),
        ] {
            assert_eq!(switch_value(text), value, "{text}");
        }
        for text in ["", "yes", "2", "of"] {
            assert_eq!(switch_value(text), None, "{text}");
        }
    }

    #[test]
    fn global_options_go_before_or_after_the_subcommand() {
        for args in [
            &["t", "--store", "x.db", "--json", "sync"][..],
            &["t", "sync", "--store", "x.db", "--json"],
        ] {
            let Parsed::Run(cli) = parse(args) else {
                panic!("{args:?}")
            };
            assert_eq!(cli.global.store, PathBuf::from("x.db"));
            assert!(cli.global.json);
        }
    }

    #[test]
    fn skip_lists_are_trimmed() {
        let Parsed::Run(cli) = parse(["t", "sync", "--skip", " 1, 2 "]) else {
            panic!()
        };
        let Command::Sync(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.mapping.skip.unwrap().0, ["1", "2"]);
    }
}
