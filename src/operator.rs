//! The operator commands that are not a batch: `status`, `skip`, `cursor` (SPEC §2).
//! Each returns its human text and its JSON object; [`crate::report::Output::of`] prints them.

use serde_json::{Value, json};

use crate::cli::{CursorCommand, GlobalArgs, SkipCommand, flatten_numbers};
use crate::error::Error;
use crate::lock::RunLock;
use crate::report::quoted;
use crate::store::Store;
use crate::sync::lock_path;
use crate::timestamp::Timestamp;

/// How many runs and error tickets `status` shows.
const STATUS_RUNS: usize = 10;
const STATUS_ERROR_TICKETS: usize = 10;

type Shown = Result<(String, Value), Error>;

/// `status`: read-only, works while a sync runs, never creates the store.
pub fn status(global: &GlobalArgs) -> Shown {
    let mut store = Store::open_read_only(&global.store)?;
    let lock = RunLock::probe(&lock_path(global))?;
    let figures = store.status(STATUS_RUNS, STATUS_ERROR_TICKETS)?;
    let mut lines = vec![
        format!("store: {}", global.store.display()),
        format!(
            "pagination key: {} (saved {})",
            quoted(figures.pagination_key.as_deref()),
            figures
                .pagination_key_saved_at
                .as_deref()
                .unwrap_or("never")
        ),
        match (lock.held, lock.pid) {
            (true, Some(pid)) => format!("lock: held by pid {pid}"),
            (true, None) => "lock: held".to_owned(),
            (false, _) => "lock: free".to_owned(),
        },
        format!("skip list: {} tickets", figures.skip_count),
        if figures.unresolved_errors == 0 {
            "unresolved sync errors: 0".to_owned()
        } else {
            format!(
                "unresolved sync errors: {} (first: {})",
                figures.unresolved_errors,
                figures.unresolved_error_tickets.join(", ")
            )
        },
        format!(
            "tickets: {}, contacts: {}",
            figures.tickets, figures.contacts
        ),
    ];
    let unknown_fields = last_unknown_fields(&figures.runs);
    lines.push(format!(
        "ticket fields the mapping does not read (last sync or replay): {}",
        if unknown_fields.is_empty() {
            "none".to_owned()
        } else {
            unknown_fields.join(", ").escape_debug().to_string()
        }
    ));
    lines.push(format!("last {} runs:", figures.runs.len()));
    lines.extend(figures.runs.iter().map(describe_run));
    let mut json = serde_json::to_value(&figures).map_err(|e| Error::Internal(e.to_string()))?;
    json["unknown_fields"] = json!(unknown_fields);
    json["store"] = json!(global.store.display().to_string());
    json["lock_held"] = json!(lock.held);
    json["lock_pid"] = json!(lock.pid);
    Ok((lines.join("\n"), json))
}

/// The ticket fields that the latest `sync` or `replay` run (newest first in `runs`) found and the
/// mapping does not read: what TIXNGO actually sends beyond what is expected.
fn last_unknown_fields(runs: &[serde_json::Map<String, Value>]) -> Vec<String> {
    runs.iter()
        .find(|run| {
            matches!(
                run.get("command").and_then(Value::as_str),
                Some("sync" | "replay")
            )
        })
        .and_then(|run| run.get("unknown_fields")?.as_str())
        .and_then(|names| serde_json::from_str(names).ok())
        .unwrap_or_default()
}

/// One `sync_run` row as a line of `status`.
fn describe_run(run: &serde_json::Map<String, Value>) -> String {
    let text = |name: &str| run.get(name).and_then(Value::as_str);
    let number = |name: &str| run.get(name).and_then(Value::as_i64).unwrap_or(0);
    let duration = match (
        text("started_at").and_then(Timestamp::parse_rfc3339),
        text("finished_at").and_then(Timestamp::parse_rfc3339),
    ) {
        (Some(start), Some(end)) => format!("{} ms", end.millis_since(start)),
        _ => "unfinished".to_owned(),
    };
    format!(
        "  {} {} exit {}: {} fetched, {} stored, {} unchanged, {} skipped, {} stale, {} failed; \
         contacts +{} ~{}; distributions +{} ~{}; key {} -> {}; {}{}",
        text("started_at").unwrap_or("?"),
        text("command").unwrap_or("?"),
        run.get("exit_code")
            .and_then(Value::as_i64)
            .map_or("?".to_owned(), |c| c.to_string()),
        number("fetched"),
        number("stored"),
        number("unchanged"),
        number("skipped"),
        number("stale"),
        number("failed"),
        number("contacts_created"),
        number("contacts_updated"),
        number("distributions_created"),
        number("distributions_updated"),
        quoted(text("key_before")),
        quoted(text("key_after")),
        duration,
        text("error").map(|e| format!("; {e}")).unwrap_or_default(),
    )
}

/// `skip add|remove|list`.
pub fn skip(global: &GlobalArgs, command: &SkipCommand) -> Shown {
    match command {
        SkipCommand::List => {
            let entries = Store::open_read_only(&global.store)?.skip_entries()?;
            let human = if entries.is_empty() {
                "skip list: empty".to_owned()
            } else {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{}\t{}\t{}",
                            e.ticket_number,
                            e.added_at,
                            e.reason.as_deref().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            Ok((human, json!({ "skip": entries })))
        }
        SkipCommand::Add { numbers, reason } => {
            let numbers = flatten_numbers(numbers);
            let _lock = RunLock::acquire(&lock_path(global))?;
            let mut store = Store::open(&global.store)?;
            let added = store.add_skips(&numbers, reason.as_deref())?;
            let total = store.skip_list()?.len();
            let listed = numbers.len() - added;
            Ok((
                format!(
                    "skip: {added} added, {listed} already listed; {total} tickets on the skip list"
                ),
                json!({ "added": added, "already_listed": listed, "skip_count": total }),
            ))
        }
        SkipCommand::Remove { numbers } => {
            let numbers = flatten_numbers(numbers);
            let _lock = RunLock::acquire(&lock_path(global))?;
            let mut store = Store::open(&global.store)?;
            let removed = store.remove_skips(&numbers)?;
            let total = store.skip_list()?.len();
            let missing = numbers.len() - removed;
            Ok((
                format!(
                    "skip: {removed} removed, {missing} not listed; {total} tickets on the skip list"
                ),
                json!({ "removed": removed, "not_listed": missing, "skip_count": total }),
            ))
        }
    }
}

/// `cursor show|set|reset`.
pub fn cursor(global: &GlobalArgs, command: &CursorCommand) -> Shown {
    let (name, key, confirmed) = match command {
        CursorCommand::Show => {
            let (key, saved_at) = Store::open_read_only(&global.store)?.pagination_state()?;
            let human = format!(
                "pagination key: {} (saved {})",
                quoted(key.as_deref()),
                saved_at.as_deref().unwrap_or("never")
            );
            return Ok((
                human,
                json!({ "pagination_key": key, "pagination_key_saved_at": saved_at }),
            ));
        }
        CursorCommand::Set { key, yes } => (
            command.name(),
            Some(key.as_str()).filter(|k| !k.is_empty()),
            *yes,
        ),
        CursorCommand::Reset { yes } => (command.name(), None, *yes),
    };
    if !confirmed {
        return Err(Error::Usage(format!(
            "`{name}` moves where the next sync starts: add --yes to confirm"
        )));
    }
    let _lock = RunLock::acquire(&lock_path(global))?;
    let before = Store::open(&global.store)?.set_pagination_key(name, key)?;
    Ok((
        format!(
            "{name}: key {} -> {}",
            quoted(before.as_deref()),
            quoted(key)
        ),
        json!({ "key_before": before, "key_after": key }),
    ))
}
