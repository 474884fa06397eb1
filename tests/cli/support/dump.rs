//! The store's rows as comparable values, for "nothing changed" and "the same data" assertions:
//! each helper leaves out what its comparison must not see (times, run ids, surrogate ids).

use std::collections::{BTreeMap, HashMap};

use rusqlite::Connection;
use rusqlite::types::ValueRef;

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
const NOT_COMPARED: [&str; 10] = [
    "run_id",
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
pub fn canonical(db: &Connection) -> BTreeMap<String, Vec<Vec<String>>> {
    let mut contacts: HashMap<i64, String> = HashMap::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut statement = db
        .prepare("SELECT id, email_key FROM contact ORDER BY id")
        .unwrap();
    let rows = statement
        .query_map([], |row| {
            Ok((row.get::<_, i64>(0)?, row.get::<_, Option<String>>(1)?))
        })
        .unwrap();
    for row in rows {
        let (id, key) = row.unwrap();
        let key = key.unwrap_or_default();
        let rank = seen.entry(key.clone()).or_default();
        *rank += 1;
        contacts.insert(id, format!("{key}#{rank}"));
    }
    let tables: Vec<String> = db
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'sqlite_%' AND name != 'sync_run' ORDER BY name",
        )
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut dump = BTreeMap::new();
    for table in tables {
        let columns: Vec<String> = db
            .prepare(&format!("PRAGMA table_info({table})"))
            .unwrap()
            .query_map([], |row| row.get(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
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
        let mut statement = db.prepare(&sql).unwrap();
        let mut rows: Vec<Vec<String>> = statement
            .query_map([], |row| {
                let mut out = Vec::new();
                for (i, column) in select.iter().enumerate() {
                    let value = row.get_ref(i)?;
                    let text = super::value_text(value);
                    let column = column.as_str();
                    if NOT_COMPARED.contains(&column) {
                        continue;
                    }
                    let id = || match value {
                        ValueRef::Integer(id) => Some(id),
                        _ => None,
                    };
                    out.push(if column == "resolved_at" {
                        format!("resolved={}", value != ValueRef::Null)
                    } else if column == "id" && table == "contact" {
                        contacts[&id().unwrap()].clone()
                    } else if column == "id" {
                        continue;
                    } else if CONTACT_REFERENCES.contains(&column) {
                        id().map_or("NULL".into(), |id| {
                            contacts
                                .get(&id)
                                .cloned()
                                .unwrap_or(format!("missing contact {id}"))
                        })
                    } else {
                        format!("{column}={text}")
                    });
                }
                Ok(out)
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        rows.sort();
        dump.insert(table, rows);
    }
    dump
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
