//! The store's rows as comparable values, for "nothing changed" and "the same data" assertions:
//! each helper leaves out what its comparison must not see (times, run ids, surrogate ids).

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
