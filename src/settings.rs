//! The resolved configuration. The command line and the environment become typed settings once,
//! before any work starts; the commands take these settings, never the command line's own types.
//!
//! Resolving follows the order of the exit codes (SPEC §3): the command line was parsed (64) and
//! its paths checked ([`crate::paths`], 64) before; here the mapping switches (64), then the API
//! URL and the API key (78); the lock (75) and the store (74) come after, in the commands.
//! Resolving reads only what the command needs: `status` needs no API key.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use crate::cli::{
    self, Cli, Command, CursorCommand, ErrorsCommand, GlobalArgs, MappingArgs, ReplayArgs,
    SkipCommand, SkipList, SyncArgs,
};
use crate::error::Error;
use crate::lock;
use crate::store::postgres::{self, PgTarget};
use crate::tixngo::api_key::ApiKey;
use crate::tixngo::client::{ApiUrl, Connection};
use crate::tixngo::dump::Dumps;
use crate::tixngo::wire::PaginationKey;

/// What to run, and on which store.
pub struct Settings {
    pub store: StoreLocation,
    pub command: CommandSettings,
}

/// The store and its run lock.
#[derive(Debug)]
pub struct StoreFiles {
    pub store: PathBuf,
    /// `--lock-file`, else `<store>.lock`.
    pub lock: PathBuf,
}

/// Where the store is: an SQLite file with its lock file, or a schema of a PostgreSQL database,
/// whose lock is an advisory lock on the server (SPEC §10).
#[derive(Debug)]
pub enum StoreLocation {
    Sqlite(StoreFiles),
    Postgres(Box<PgTarget>),
}

impl StoreLocation {
    /// The store as messages and `status` name it: the SQLite path, or the PostgreSQL URL
    /// (without password) and schema.
    pub(crate) fn describe(&self) -> String {
        match self {
            StoreLocation::Sqlite(files) => files.store.display().to_string(),
            StoreLocation::Postgres(target) => target.to_string(),
        }
    }

    /// Resolves `--store`: a `postgres://` or `postgresql://` URL is a PostgreSQL store, anything
    /// else an SQLite path. A PostgreSQL store refuses `--lock-file` (64), then its URL, password
    /// file and TLS are checked (78). Its extra TLS roots are sync's `--ca-file`, or for the other
    /// commands `TIXNGO_CA_FILE`.
    pub fn resolve(cli: &Cli) -> Result<StoreLocation, Error> {
        let global = &cli.global;
        let value = global.store.to_str().unwrap_or_default();
        if let Some(scheme) = postgres::url_scheme(value).filter(|_| !postgres::is_url(value)) {
            // Never echoed whole: a URL may hold a password.
            return Err(Error::Config(format!(
                "--store: a {scheme}:// URL is no store this program knows: give a postgres:// URL or the path of an SQLite file"
            )));
        }
        let Some(url) = global.store.to_str().filter(|s| postgres::is_url(s)) else {
            return Ok(StoreLocation::Sqlite(StoreFiles::of(global)));
        };
        if global.lock_file.is_some() {
            return Err(Error::Usage(
                "--lock-file (TIXNGO_FEEDBACK_LOCK) is not used with a PostgreSQL store: its lock is an advisory lock on the server".into(),
            ));
        }
        let ca_file = match &cli.command {
            Command::Sync(args) => args.ca_file.clone(),
            _ => std::env::var_os("TIXNGO_CA_FILE").map(PathBuf::from),
        };
        let schema = global
            .pg_schema
            .as_deref()
            .unwrap_or(postgres::DEFAULT_SCHEMA);
        let target = PgTarget::parse(url, schema)?
            .with_ca_file(ca_file)
            .with_password_from(global.store_password_file.as_deref())?;
        Ok(StoreLocation::Postgres(Box::new(target)))
    }
}

/// What the run prints on stdout. Resolved apart from [`Settings`], and first: a command whose
/// settings are refused prints its failure this way too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputMode {
    /// The human summary, on success.
    Human,
    /// One line of JSON, success or not (`--json` wins over `--quiet`).
    Json,
    /// Nothing.
    Quiet,
}

/// Each command with its settings.
pub enum CommandSettings {
    Sync(Box<SyncSettings>),
    Replay(Box<ReplaySettings>),
    Status,
    Skip(SkipAction),
    Cursor(CursorAction),
    Errors(ErrorsAction),
    Completions(clap_complete::Shell),
    Man,
}

/// One run of `sync`.
pub struct SyncSettings {
    pub url: ApiUrl,
    pub api_key: ApiKey,
    /// The endpoint, the TLS roots, the response cap and the dumps.
    pub connection: Connection,
    pub start: StartKey,
    /// Tickets asked for per page.
    pub batch_size: u32,
    /// Batches the run may commit: `--max-batches`, else one, or no limit with `--drain`.
    pub(crate) max_batches: u32,
    /// The deadline of the whole process, from its start.
    pub timeout: Duration,
    pub metrics_file: Option<PathBuf>,
    pub mapping: MappingPolicy,
}

/// Where a sync starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartKey {
    /// The stored key; each committed batch saves the next one.
    Stored,
    /// `--pagination-key`, for this run only (`None`: the start of the feed); the stored key is
    /// neither read nor changed.
    Given(Option<PaginationKey>),
}

/// One run of `replay`.
pub struct ReplaySettings {
    /// The saved response (`-`: stdin), or `None` for the sync errors (`--errors`).
    pub input: Option<PathBuf>,
    pub mapping: MappingPolicy,
}

/// How the tickets of a batch are mapped (SPEC §4.4–4.6).
pub struct MappingPolicy {
    /// The persisted skip list and `--skip`.
    pub skip: HashSet<String>,
    pub stop_on_error: bool,
    pub max_failed_ratio: f64,
    pub contacts: bool,
    /// Map and report as a real run would, writing nothing: the changes stay in memory.
    pub dry_run: bool,
    /// The technical login written on distribution lines (`--operator-login`).
    pub operator_login: String,
}

/// `skip add|remove|list`, with the ticket numbers of every NUMBERS argument.
pub enum SkipAction {
    Add {
        numbers: Vec<String>,
        reason: Option<String>,
    },
    Remove {
        numbers: Vec<String>,
    },
    List,
}

/// `cursor show|set|reset`; a change needs `--yes`.
pub enum CursorAction {
    Show,
    /// `cursor set KEY`; the empty key is none, as `reset` makes it.
    Set {
        key: Option<PaginationKey>,
        confirmed: bool,
    },
    Reset {
        confirmed: bool,
    },
}

/// `errors list|show|dismiss`.
pub enum ErrorsAction {
    List,
    Show { id: i64 },
    Dismiss { ids: Vec<i64>, reason: String },
}

/// A `sync` or `replay` whose settings were refused: reported as the run's failure.
pub enum Refused {
    Sync {
        error: Error,
        /// Whether the run was a dry run, once the mapping switches were read.
        dry_run: bool,
        metrics_file: Option<PathBuf>,
    },
    Replay {
        error: Error,
    },
    /// Another command, refused for its store (`--store`, `--pg-schema`, the password file).
    Command {
        name: &'static str,
        error: Error,
    },
}

impl Settings {
    /// Resolves the parsed command line and the environment.
    pub fn resolve(cli: Cli) -> Result<Settings, Refused> {
        let store = match &cli.command {
            // They never open the store: a store they could not open is none of their business.
            Command::Completions { .. } | Command::Man => {
                Ok(StoreLocation::Sqlite(StoreFiles::of(&cli.global)))
            }
            _ => StoreLocation::resolve(&cli),
        };
        // A usage error of the store (64) goes before the command's configuration errors (78),
        // as SPEC §3 orders them: its message then replaces theirs.
        let store_usage = |refused: Refused| match &store {
            Err(error @ Error::Usage(_)) => refused.instead(Error::Usage(error.to_string())),
            _ => refused,
        };
        let command = match cli.command {
            Command::Sync(args) => {
                CommandSettings::Sync(Box::new(SyncSettings::resolve(args).map_err(store_usage)?))
            }
            Command::Replay(args) => CommandSettings::Replay(Box::new(
                ReplaySettings::resolve(args).map_err(store_usage)?,
            )),
            Command::Status => CommandSettings::Status,
            Command::Skip(command) => CommandSettings::Skip(SkipAction::of(command)),
            Command::Cursor(command) => CommandSettings::Cursor(CursorAction::of(command)),
            Command::Errors(command) => CommandSettings::Errors(ErrorsAction::of(command)),
            Command::Completions { shell } => CommandSettings::Completions(shell),
            Command::Man => CommandSettings::Man,
        };
        match store {
            Ok(store) => Ok(Settings { store, command }),
            Err(error) => Err(command.refuse(error)),
        }
    }
}

impl Refused {
    /// The same refusal for another error.
    fn instead(self, error: Error) -> Refused {
        match self {
            Refused::Sync {
                dry_run,
                metrics_file,
                ..
            } => Refused::Sync {
                error,
                dry_run,
                metrics_file,
            },
            Refused::Replay { .. } => Refused::Replay { error },
            Refused::Command { name, .. } => Refused::Command { name, error },
        }
    }
}

impl CommandSettings {
    /// The command as the summary and its messages name it (`skip add`, `status`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            CommandSettings::Sync(_) => "sync",
            CommandSettings::Replay(_) => "replay",
            CommandSettings::Status => "status",
            CommandSettings::Skip(action) => action.name(),
            CommandSettings::Cursor(action) => action.name(),
            CommandSettings::Errors(action) => action.name(),
            CommandSettings::Completions(_) => "completions",
            CommandSettings::Man => "man",
        }
    }

    /// The refusal of this command for its store, found once the rest was resolved.
    fn refuse(self, error: Error) -> Refused {
        let name = self.name();
        match self {
            CommandSettings::Sync(sync) => Refused::Sync {
                error,
                dry_run: sync.mapping.dry_run,
                metrics_file: sync.metrics_file,
            },
            CommandSettings::Replay(_) => Refused::Replay { error },
            _ => Refused::Command { name, error },
        }
    }
}

impl StoreFiles {
    pub fn of(global: &GlobalArgs) -> StoreFiles {
        StoreFiles {
            store: global.store.clone(),
            lock: global
                .lock_file
                .clone()
                .unwrap_or_else(|| lock::default_path(&global.store)),
        }
    }
}

impl SkipAction {
    fn of(command: SkipCommand) -> SkipAction {
        let numbers = |lists: Vec<SkipList>| lists.into_iter().flat_map(|list| list.0).collect();
        match command {
            SkipCommand::Add {
                numbers: lists,
                reason,
            } => SkipAction::Add {
                numbers: numbers(lists),
                reason,
            },
            SkipCommand::Remove { numbers: lists } => SkipAction::Remove {
                numbers: numbers(lists),
            },
            SkipCommand::List => SkipAction::List,
        }
    }

    /// The command as `sync_run` and `--json` name it.
    pub fn name(&self) -> &'static str {
        match self {
            SkipAction::Add { .. } => "skip add",
            SkipAction::Remove { .. } => "skip remove",
            SkipAction::List => "skip list",
        }
    }
}

impl CursorAction {
    fn of(command: CursorCommand) -> CursorAction {
        match command {
            CursorCommand::Show => CursorAction::Show,
            CursorCommand::Set { key, yes } => CursorAction::Set {
                key: key.start(),
                confirmed: yes,
            },
            CursorCommand::Reset { yes } => CursorAction::Reset { confirmed: yes },
        }
    }

    /// The command as `sync_run` and `--json` name it.
    pub fn name(&self) -> &'static str {
        match self {
            CursorAction::Show => "cursor show",
            CursorAction::Set { .. } => "cursor set",
            CursorAction::Reset { .. } => "cursor reset",
        }
    }
}

impl ErrorsAction {
    fn of(command: ErrorsCommand) -> ErrorsAction {
        match command {
            ErrorsCommand::List => ErrorsAction::List,
            ErrorsCommand::Show { id } => ErrorsAction::Show { id },
            ErrorsCommand::Dismiss { ids, reason } => ErrorsAction::Dismiss { ids, reason },
        }
    }

    /// The command as `--json` names it.
    pub fn name(&self) -> &'static str {
        match self {
            ErrorsAction::List => "errors list",
            ErrorsAction::Show { .. } => "errors show",
            ErrorsAction::Dismiss { .. } => "errors dismiss",
        }
    }
}

impl OutputMode {
    pub fn of(global: &GlobalArgs) -> OutputMode {
        match (global.json, global.quiet) {
            (true, _) => OutputMode::Json,
            (false, true) => OutputMode::Quiet,
            (false, false) => OutputMode::Human,
        }
    }
}

impl SyncSettings {
    fn resolve(args: SyncArgs) -> Result<SyncSettings, Refused> {
        let refused = |dry_run| {
            let metrics_file = args.metrics_file.clone();
            move |error| Refused::Sync {
                error,
                dry_run,
                metrics_file,
            }
        };
        let mapping = MappingPolicy::resolve(&args.mapping).map_err(refused(false))?;
        let endpoint = Endpoint::resolve(&args).map_err(refused(mapping.dry_run))?;
        Ok(SyncSettings {
            url: endpoint.url,
            api_key: endpoint.api_key,
            connection: Connection {
                max_body_bytes: args.max_response_mb * 1024 * 1024,
                ca_file: args.ca_file,
                dumps: args
                    .dump_dir
                    .map(|dir| Dumps::new(dir, args.dump_keep as usize)),
                diff_path: args.diff_path,
                api_key_header: args.api_key_header,
            },
            start: match args.pagination_key {
                Some(key) => StartKey::Given(key.start()),
                None => StartKey::Stored,
            },
            batch_size: args.batch_size,
            max_batches: args
                .max_batches
                .unwrap_or(if args.drain { u32::MAX } else { 1 }),
            timeout: Duration::from_secs(args.timeout),
            metrics_file: args.metrics_file,
            mapping,
        })
    }
}

/// The API URL and the key, checked (configuration errors, 78).
struct Endpoint {
    url: ApiUrl,
    api_key: ApiKey,
}

impl Endpoint {
    fn resolve(args: &SyncArgs) -> Result<Endpoint, Error> {
        let url = args
            .api_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| Error::Config("no API URL: set --api-url or TIXNGO_API_URL".into()))?;
        let url = ApiUrl::parse(url)?;
        let api_key = match &args.api_key_file {
            Some(path) => ApiKey::from_file(path)?,
            None => api_key_from_env()?,
        };
        Ok(Endpoint { url, api_key })
    }
}

/// The API key in `TIXNGO_API_KEY`, trimmed, when no key file is named (SPEC §7).
fn api_key_from_env() -> Result<ApiKey, Error> {
    match std::env::var("TIXNGO_API_KEY") {
        Ok(key) if !key.trim().is_empty() => ApiKey::new(key.trim().to_owned())
            .map_err(|why| Error::Config(format!("TIXNGO_API_KEY {why}"))),
        _ => Err(Error::Config(
            "no API key: set TIXNGO_API_KEY or --api-key-file (TIXNGO_API_KEY_FILE)".into(),
        )),
    }
}

impl ReplaySettings {
    fn resolve(args: ReplayArgs) -> Result<ReplaySettings, Refused> {
        Ok(ReplaySettings {
            mapping: MappingPolicy::resolve(&args.mapping)
                .map_err(|error| Refused::Replay { error })?,
            input: args.file,
        })
    }
}

impl MappingPolicy {
    /// Checks the mapping switches (usage errors only: no I/O).
    fn resolve(args: &MappingArgs) -> Result<MappingPolicy, Error> {
        Ok(MappingPolicy {
            skip: args.skip.iter().flat_map(|s| s.0.iter().cloned()).collect(),
            stop_on_error: args.stop_on_error,
            max_failed_ratio: args.max_failed_ratio,
            contacts: contacts_enabled(args.no_contacts)?,
            dry_run: args.dry_run,
            operator_login: args.operator_login.clone(),
        })
    }
}

/// Whether contacts are on: `--no-contacts` wins, else `TIXNGO_CONTACTS` (on/off, true/false,
/// 1/0; anything else is a usage error), else on.
fn contacts_enabled(no_contacts: bool) -> Result<bool, Error> {
    if no_contacts {
        return Ok(false);
    }
    let Some(value) = std::env::var_os("TIXNGO_CONTACTS") else {
        return Ok(true);
    };
    value.to_str().and_then(cli::switch_value).ok_or_else(|| {
        Error::Usage(format!(
            "invalid TIXNGO_CONTACTS value {value:?}: expected on/off, true/false or 1/0"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Parsed, parse};

    fn resolve(args: &[&str]) -> Result<Settings, Refused> {
        match parse(args) {
            Parsed::Run(cli) => Settings::resolve(*cli),
            other => panic!("{args:?} parsed as {other:?}"),
        }
    }

    fn sync(extra: &[&str]) -> SyncSettings {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("key");
        std::fs::write(&key_file, "s3cr3t\n").unwrap();
        let owner_only = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(&key_file, owner_only).unwrap();
        let mut args = vec![
            "t",
            "sync",
            "--api-url",
            "https://api.example/organizer/tickets",
            "--api-key-file",
            key_file.to_str().unwrap(),
        ];
        args.extend(extra);
        match resolve(&args) {
            Ok(Settings {
                command: CommandSettings::Sync(sync),
                ..
            }) => *sync,
            _ => panic!("{args:?} was not resolved to a sync"),
        }
    }

    #[test]
    fn commands_that_fetch_nothing_need_no_url_nor_key() {
        for args in [&["t", "status"][..], &["t", "cursor", "show"]] {
            let settings = resolve(args).unwrap_or_else(|_| panic!("{args:?} refused"));
            let StoreLocation::Sqlite(files) = settings.store else {
                panic!("{args:?}: not an SQLite store")
            };
            assert_eq!(files.lock, PathBuf::from("tixngo-feedback.db.lock"));
        }
    }

    fn location(args: &[&str]) -> Result<StoreLocation, Error> {
        match parse(args) {
            Parsed::Run(cli) => StoreLocation::resolve(&cli),
            other => panic!("{args:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn a_postgres_url_is_a_postgresql_store_and_anything_else_a_path() {
        let url = "postgres://feedback@db.example/s360";
        let Ok(StoreLocation::Postgres(target)) =
            location(&["t", "--store", url, "--pg-schema", "acme", "status"])
        else {
            panic!("{url} is not a PostgreSQL store")
        };
        assert_eq!(target.schema(), "acme");
        let Ok(StoreLocation::Postgres(target)) = location(&["t", "--store", url, "status"]) else {
            panic!("{url} is not a PostgreSQL store")
        };
        assert_eq!(target.schema(), "tixngo_feedback");
        for path in ["acme.db", "postgres.db", "./postgres:/x"] {
            let Ok(StoreLocation::Sqlite(files)) = location(&["t", "--store", path, "status"])
            else {
                panic!("{path} is not an SQLite store")
            };
            assert_eq!(files.store, PathBuf::from(path));
        }
    }

    #[test]
    fn a_store_usage_error_goes_before_the_commands_configuration_errors() {
        let store = [
            "--store",
            "postgres://feedback@db.example/s360",
            "--lock-file",
            "x.lock",
        ];
        // Without an API URL or key, sync and replay alone would be refused with 78.
        for command in [&["sync"][..], &["replay", "--errors", "--dry-run"]] {
            let args: Vec<&str> = ["t"].iter().chain(&store).chain(command).copied().collect();
            let error = match resolve(&args) {
                Err(Refused::Sync { error, .. } | Refused::Replay { error }) => error,
                _ => panic!("{args:?} was not refused as a run"),
            };
            assert_eq!(error.exit_code(), crate::exit::ExitCode::Usage, "{error}");
            assert!(error.to_string().contains("--lock-file"), "{error}");
        }
    }

    #[test]
    fn a_command_refused_for_its_store_is_named_as_its_summary_names_it() {
        let store = [
            "--store",
            "postgres://feedback@db.example/s360",
            "--lock-file",
            "x",
        ];
        for (command, name) in [
            (&["status"][..], "status"),
            (&["skip", "add", "T1"], "skip add"),
            (&["cursor", "show"], "cursor show"),
            (&["errors", "list"], "errors list"),
        ] {
            let args: Vec<&str> = ["t"].iter().chain(&store).chain(command).copied().collect();
            match resolve(&args) {
                Err(Refused::Command { name: refused, .. }) => assert_eq!(refused, name),
                _ => panic!("{args:?} was not refused as a command"),
            }
        }
    }

    #[test]
    fn a_postgresql_store_refuses_a_lock_file_then_a_bad_url() {
        let url = "postgres://feedback@db.example/s360";
        let with_lock = location(&["t", "--store", url, "--lock-file", "x.lock", "status"]);
        let error = with_lock.expect_err("--lock-file accepted");
        assert_eq!(error.exit_code(), crate::exit::ExitCode::Usage, "{error}");
        let with_password = "postgres://feedback:hunter2@db.example/s360";
        let error = location(&["t", "--store", with_password, "status"]).expect_err("accepted");
        assert_eq!(error.exit_code(), crate::exit::ExitCode::Config, "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }

    #[test]
    fn an_empty_start_key_is_the_start_of_the_feed() {
        assert_eq!(sync(&[]).start, StartKey::Stored);
        assert_eq!(sync(&["--pagination-key", ""]).start, StartKey::Given(None));
        let given = sync(&["--pagination-key", "pk1"]).start;
        let StartKey::Given(Some(key)) = given else {
            panic!("{given:?}")
        };
        assert_eq!(key.as_str(), "pk1");
    }

    #[test]
    fn a_run_commits_one_batch_unless_told_otherwise() {
        assert_eq!(sync(&[]).max_batches, 1);
        assert_eq!(sync(&["--drain"]).max_batches, u32::MAX);
        assert_eq!(sync(&["--drain", "--max-batches", "3"]).max_batches, 3);
    }

    #[test]
    fn a_refused_sync_says_whether_it_was_a_dry_run() {
        let refused = resolve(&["t", "sync", "--dry-run", "--api-url", "ftp://x"]);
        let Err(Refused::Sync { error, dry_run, .. }) = refused else {
            panic!("not refused")
        };
        assert_eq!(error.exit_code(), crate::exit::ExitCode::Config);
        assert!(dry_run);
    }
}
