//! The store's rows as comparable values, for "nothing changed" and "the same data" assertions:
//! each helper leaves out what its comparison must not see (times, run ids, surrogate ids); and
//! the comparison of two stores row for row, ids included ([`assert_same_rows`]).

use std::collections::{BTreeMap, HashMap};

use super::Env;

/// Every column of the contact and distribution tables and each ticket's cultural contact, for
/// "nothing changed" comparisons.
pub fn contacts(env: &Env) -> Vec<Vec<String>> {
    let mut rows = env.rows("SELECT 'contact', * FROM contact ORDER BY id");
    rows.extend(env.rows("SELECT 'distribution', * FROM distribution ORDER BY id"));
    rows.extend(env.rows(
        "SELECT 'ticket', ticket_number, cultural_contact_id FROM ticket ORDER BY ticket_number",
    ));
    rows
}

/// Columns that hold times (or a run's id): they differ between any two runs.
const NOT_COMPARED: [&str; 11] = [
    "run_id",
    "migrated_at",
    "first_seen_at",
    "first_synced_at",
    "last_synced_at",
    "created_at",
    "updated_at",
    "recorded_at",
    "added_at",
    "started_at",
    "finished_at",
];
/// Columns naming a contact by its surrogate id.
const CONTACT_REFERENCES: [&str; 3] = ["cultural_contact_id", "old_contact_id", "new_contact_id"];

/// Every table but `sync_run` as sorted rows of text, without times, run ids or surrogate ids:
/// a contact is named by its e-mail key (and its rank among contacts sharing it), a row of a
/// ticket's history, lines or errors by the ticket number and its rank among them.
pub fn canonical(env: &Env) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut contacts: HashMap<String, String> = HashMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in env.rows("SELECT id, coalesce(email_key, '') FROM contact ORDER BY id") {
        let [id, key] = <[String; 2]>::try_from(row).unwrap();
        let rank = seen.entry(key.clone()).or_default();
        *rank += 1;
        contacts.insert(id, format!("{key}#{rank}"));
    }
    let mut dump = BTreeMap::new();
    for table in env.tables() {
        if table == "sync_run" {
            continue;
        }
        let columns = env.columns(&table);
        let has = |c: &str| columns.iter().any(|column| column == c);
        let ranked = has("ticket_number") && has("id") && table != "ticket";
        // The names of the values read, and what is selected for them.
        let mut select: Vec<String> = columns.clone();
        let mut expressions: Vec<String> = columns.clone();
        if ranked {
            select.push("rank".into());
            expressions.push("row_number() OVER (PARTITION BY ticket_number ORDER BY id)".into());
        }
        let sql = format!("SELECT {} FROM {table}", expressions.join(", "));
        let mut rows: Vec<Vec<String>> = env
            .rows(&sql)
            .into_iter()
            .map(|row| canonical_row(&table, &select, row, &contacts))
            .collect();
        rows.sort();
        dump.insert(table, rows);
    }
    dump
}

/// One row of [`canonical`]: contact ids by e-mail key, other ids and times left out.
fn canonical_row(
    table: &str,
    select: &[String],
    row: Vec<String>,
    contacts: &HashMap<String, String>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (column, text) in select.iter().zip(row) {
        let column = column.as_str();
        if NOT_COMPARED.contains(&column) || (column == "id" && table != "contact") {
            continue;
        }
        out.push(if column == "resolved_at" {
            format!("resolved={}", text != "NULL")
        } else if column == "id" {
            contacts[&text].clone()
        } else if CONTACT_REFERENCES.contains(&column) {
            if text == "NULL" {
                text
            } else {
                contacts
                    .get(&text)
                    .cloned()
                    .unwrap_or(format!("missing contact {text}"))
            }
        } else {
            format!("{column}={text}")
        });
    }
    out
}

/// The data tables as text, ordered by their keys, without time and run columns, on either
/// store (values as [`super::value_text`] renders them).
pub fn data(env: &Env) -> Vec<String> {
    const VOLATILE: [&str; 6] = [
        "first_synced_at",
        "last_synced_at",
        "created_at",
        "updated_at",
        "recorded_at",
        "run_id",
    ];
    let mut lines = Vec::new();
    for (table, order) in [
        ("ticket", "ticket_number"),
        ("contact", "id"),
        ("distribution", "id"),
        ("ticket_history", "id"),
        ("sync_state", "id"),
    ] {
        let kept: Vec<String> = env
            .columns(table)
            .into_iter()
            .filter(|c| !VOLATILE.contains(&c.as_str()))
            .collect();
        let sql = format!("SELECT {} FROM {table} ORDER BY {order}", kept.join(", "));
        lines.extend(
            env.rows(&sql)
                .into_iter()
                .map(|row| format!("{table}\t{}", row.join("\t"))),
        );
    }
    lines
}

/// The tables compared row for row between two stores, each with the column that orders its rows.
const SAME_ROWS_TABLES: [(&str, &str); 7] = [
    ("ticket", "ticket_number"),
    ("ticket_history", "id"),
    ("contact", "id"),
    ("distribution", "id"),
    ("sync_error", "id"),
    ("sync_state", "id"),
    ("sync_run", "id"),
];

/// Columns whose values are times of the run that wrote the row, or follow from them (the feed's
/// lag at the run's end): they differ between any two runs, so a comparison of two stores sees
/// only whether they are set.
pub const CLOCK_COLUMNS: [&str; 10] = [
    "first_synced_at",
    "last_synced_at",
    "recorded_at",
    "created_at",
    "updated_at",
    "first_seen_at",
    "resolved_at",
    "started_at",
    "finished_at",
    "feed_lag_seconds",
];

/// How two stores' rows compare: the rows of each table read, and every difference found (a
/// table's columns, a row, a table's row count), none where the stores hold the same rows.
pub struct RowComparison {
    pub rows: Vec<(&'static str, usize)>,
    pub differences: Vec<String>,
}

/// Compares every row of two stores (SQLite or PostgreSQL, in any pair), ids included, each
/// value as [`Env::rows`] renders it, the [`CLOCK_COLUMNS`] as set or not.
pub fn compare_rows(expected: &Env, actual: &Env) -> RowComparison {
    let mut comparison = RowComparison {
        rows: Vec::new(),
        differences: Vec::new(),
    };
    for (table, order) in SAME_ROWS_TABLES {
        let columns = expected.columns(table);
        let (mut named, mut actual_named) = (columns.clone(), actual.columns(table));
        named.sort();
        actual_named.sort();
        if actual_named != named {
            comparison.differences.push(format!(
                "the columns of {table}: {actual_named:?}, expected {named:?}"
            ));
            continue;
        }
        let want = clocked_rows(expected, table, order, &columns);
        let got = clocked_rows(actual, table, order, &columns);
        for (line, (want, got)) in want.iter().zip(&got).enumerate() {
            if got != want {
                comparison
                    .differences
                    .push(format!("{table} row {line}: {got}\n  expected {want}"));
            }
        }
        if got.len() != want.len() {
            comparison.differences.push(format!(
                "{table}: {} rows, expected {}",
                got.len(),
                want.len()
            ));
        }
        comparison.rows.push((table, want.len()));
    }
    comparison
}

/// Asserts that `actual` holds the rows of `expected` (see [`compare_rows`]): the rows of each
/// table.
pub fn assert_same_rows(expected: &Env, actual: &Env) -> Vec<(&'static str, usize)> {
    let comparison = compare_rows(expected, actual);
    assert!(
        comparison.differences.is_empty(),
        "the stores differ:\n{}",
        comparison.differences.join("\n")
    );
    comparison.rows
}

/// A table's rows in `order` (by bytes on either store), as tab-separated `columns`, the clock
/// values as `(set)`.
fn clocked_rows(env: &Env, table: &str, order: &str, columns: &[String]) -> Vec<String> {
    let collation = match &env.pg {
        Some(_) if order != "id" => " COLLATE \"C\"",
        _ => "",
    };
    let sql = format!(
        "SELECT {} FROM {table} ORDER BY {order}{collation}",
        columns.join(", ")
    );
    let clocked =
        |(column, value): (&String, String)| match CLOCK_COLUMNS.contains(&column.as_str()) {
            true if value != "NULL" => "(set)".to_owned(),
            _ => value,
        };
    env.rows(&sql)
        .into_iter()
        .map(|row| {
            let values: Vec<String> = columns.iter().zip(row).map(clocked).collect();
            values.join("\t")
        })
        .collect()
}

#[test]
fn a_comparison_of_two_stores_reports_any_difference_but_a_clock_value() {
    use super::{API_KEY, Feed, Simulator};
    let sim = Simulator::start(Feed::generate(5, 40), API_KEY);
    let synced = || {
        let env = Env::sqlite();
        env.sync(&sim).args(&["--batch-size", "20"]).run();
        env
    };
    let expected = synced();
    let differences = |change: &str| {
        let actual = synced();
        actual.execute(change);
        compare_rows(&expected, &actual).differences
    };
    let none = Vec::<String>::new();
    assert_eq!(differences("SELECT 1"), none);
    let other_time = "UPDATE ticket SET last_synced_at = '2000-01-01T00:00:00.000Z'";
    assert_eq!(differences(other_time), none);
    let first_ticket = "ticket_number = (SELECT min(ticket_number) FROM ticket)";
    let last_history = "id = (SELECT max(id) FROM ticket_history)";
    for (change, reported) in [
        (
            "UPDATE contact SET first_name = 'Mallory' WHERE id = 1".to_owned(),
            "contact row 0: ",
        ),
        (
            format!("UPDATE ticket SET first_synced_at = NULL WHERE {first_ticket}"),
            "ticket row 0: ",
        ),
        (
            format!("DELETE FROM ticket_history WHERE {last_history}"),
            "ticket_history: ",
        ),
        (
            "UPDATE sync_state SET pagination_key = 'moved'".to_owned(),
            "sync_state row 0: ",
        ),
        (
            "ALTER TABLE sync_run ADD COLUMN note TEXT".to_owned(),
            "the columns of sync_run",
        ),
    ] {
        let found = differences(&change);
        assert!(
            found.len() == 1 && found[0].starts_with(reported),
            "{change}: {found:?}"
        );
    }
}
