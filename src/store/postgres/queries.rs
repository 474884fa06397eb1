//! What the operator commands read and change on PostgreSQL: the key, the skip list, the run
//! log, the errors; the same results as SQLite's, times in the same text form.

use std::collections::HashSet;

use postgres::Row;
use postgres::types::Type;
use serde_json::{Map, Value};

use super::batch::PgBatch;
use super::failure::InPg;
use super::{PgStore, Wire, time};
use crate::error::Error;
use crate::report::Counters;
use crate::store::{
    Backend, Batch, FeedState, RunRecord, SkipEntry, StatusFigures, SyncErrorDetail,
    SyncErrorEntry, check_dismissal,
};
use crate::timestamp::Timestamp;

/// The columns of `sync_run` in the table's order, around its counters.
const RUN_HEAD: [&str; 6] = [
    "id",
    "command",
    "started_at",
    "finished_at",
    "key_before",
    "key_after",
];
const RUN_TAIL: [&str; 7] = [
    "exit_code",
    "error",
    "caught_up",
    "newest_change_at",
    "feed_lag_seconds",
    "runs_behind",
    "unknown_fields",
];

impl Backend for PgStore {
    fn pagination_key(&self) -> Result<Option<String>, Error> {
        let rows = self.read("SELECT pagination_key FROM sync_state WHERE id = 1", &[])?;
        let key: Option<String> = rows[0].get(0);
        *self.key_seen.borrow_mut() = Some(key.clone());
        Ok(key)
    }

    fn skip_list(&self) -> Result<HashSet<String>, Error> {
        let rows = self.read("SELECT ticket_number FROM skip_ticket", &[])?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    fn keep_alive(&mut self) -> Result<(), Error> {
        log::debug!(
            "store {}: still waiting for TIXNGO, the session kept alive",
            self.label
        );
        self.client
            .get_mut()
            .batch_execute("SELECT 1")
            .in_pg(&self.label)
    }

    fn begin_batch(
        &mut self,
        command: &str,
        key_before: Option<&str>,
    ) -> Result<Box<dyn Batch + '_>, Error> {
        Ok(Box::new(PgBatch::begin(self, command, key_before)?))
    }

    fn record_run(&mut self, run: &RunRecord<'_>) -> Result<(), Error> {
        let now = Timestamp::now().to_system_time();
        let started_at = time::sent(run.started_at)?;
        let figures = Counters::NAMES.len();
        let sql = format!(
            "INSERT INTO sync_run (command, started_at, finished_at, key_before, key_after, exit_code, error, {})
             VALUES ($1, $2, $3, $4, $5, $6, $7, {})",
            Counters::NAMES.join(", "),
            (8..8 + figures).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
        );
        let exit_code = i32::from(run.exit_code);
        let values: Vec<i64> = run
            .counters
            .values()
            .into_iter()
            .map(|v| v as i64)
            .collect();
        let mut params: Vec<(&(dyn postgres::types::ToSql + Sync), Type)> = vec![
            (&run.command, Type::TEXT),
            (&started_at, Type::TIMESTAMPTZ),
            (&now, Type::TIMESTAMPTZ),
            (&run.key_before, Type::TEXT),
            (&run.key_after, Type::TEXT),
            (&exit_code, Type::INT4),
            (&run.error, Type::TEXT),
        ];
        params.extend(values.iter().map(|v| (v as _, Type::INT8)));
        self.in_transaction(|wire| wire.query(&sql, &params).map(drop))
    }

    fn feed_state(&self) -> Result<Option<FeedState>, Error> {
        let rows = self.read(
            "SELECT finished_at, caught_up <> 0, newest_change_at, feed_lag_seconds, runs_behind
             FROM sync_run WHERE caught_up IS NOT NULL ORDER BY id DESC LIMIT 1",
            &[],
        )?;
        let feed = |row: &Row| -> Result<FeedState, postgres::Error> {
            Ok(FeedState {
                checked_at: time::read(row, 0)?,
                caught_up: row.try_get(1)?,
                newest_change_at: time::read(row, 2)?,
                feed_lag_seconds: row.try_get(3)?,
                runs_behind: row.try_get::<_, Option<i64>>(4)?.unwrap_or(0) as u64,
            })
        };
        rows.first().map(feed).transpose().in_pg(&self.label)
    }

    fn status(&mut self, runs: usize, error_tickets: usize) -> Result<StatusFigures, Error> {
        let snapshot = !self.dry_run;
        self.in_transaction(|wire| {
            if snapshot {
                wire.simple("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
            }
            let (pagination_key, pagination_key_saved_at) = pagination_state(wire)?;
            let counts = wire.query(
                "SELECT (SELECT count(*) FROM skip_ticket),
                        (SELECT count(*) FROM sync_error WHERE resolved_at IS NULL),
                        (SELECT count(*) FROM ticket),
                        (SELECT count(*) FROM contact)",
                &[],
            )?;
            let count = |column: usize| counts[0].get::<_, i64>(column) as u64;
            let (skip_count, unresolved_errors) = (count(0), count(1));
            let (tickets, contacts) = (count(2), count(3));
            let error_tickets = wire.query(
                "SELECT coalesce(ticket_number, '(unreadable)') FROM sync_error
                 WHERE resolved_at IS NULL ORDER BY id LIMIT $1",
                &[(&(error_tickets as i64), Type::INT8)],
            )?;
            Ok(StatusFigures {
                pagination_key,
                pagination_key_saved_at,
                runs: latest_runs(wire, runs)?,
                skip_count,
                unresolved_errors,
                unresolved_error_tickets: error_tickets.iter().map(|row| row.get(0)).collect(),
                tickets,
                contacts,
            })
        })
    }

    fn pagination_state(&self) -> Result<(Option<String>, Option<String>), Error> {
        let rows = self.read(PAGINATION_STATE, &[])?;
        key_and_time(&rows[0]).in_pg(&self.label)
    }

    fn set_pagination_key(
        &mut self,
        command: &str,
        key: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let now = Timestamp::now().to_system_time();
        let before = self.in_transaction(|wire| {
            let rows = wire.query(
                "SELECT pagination_key FROM sync_state WHERE id = 1 FOR UPDATE",
                &[],
            )?;
            let before: Option<String> = rows[0].get(0);
            wire.query(
                "UPDATE sync_state SET pagination_key = $1, updated_at = $2 WHERE id = 1",
                &[(&key, Type::TEXT), (&now, Type::TIMESTAMPTZ)],
            )?;
            wire.query(
                "INSERT INTO sync_run (command, started_at, finished_at, key_before, key_after, exit_code)
                 VALUES ($1, $2, $2, $3, $4, 0)",
                &[
                    (&command, Type::TEXT),
                    (&now, Type::TIMESTAMPTZ),
                    (&before, Type::TEXT),
                    (&key, Type::TEXT),
                ],
            )?;
            Ok(before)
        })?;
        *self.key_seen.borrow_mut() = Some(key.map(str::to_owned));
        Ok(before)
    }

    fn skip_entries(&self) -> Result<Vec<SkipEntry>, Error> {
        let rows = self.read(
            "SELECT ticket_number, reason, added_at FROM skip_ticket ORDER BY ticket_number COLLATE \"C\"",
            &[],
        )?;
        let entry = |row: &Row| -> Result<SkipEntry, postgres::Error> {
            Ok(SkipEntry {
                ticket_number: row.try_get(0)?,
                reason: row.try_get(1)?,
                added_at: time::read(row, 2)?.unwrap_or_default(),
            })
        };
        rows.iter()
            .map(entry)
            .collect::<Result<_, _>>()
            .in_pg(&self.label)
    }

    fn add_skips(&mut self, numbers: &[String], reason: Option<&str>) -> Result<usize, Error> {
        let now = Timestamp::now().to_system_time();
        self.in_transaction(|wire| {
            let rows = wire.query(
                "INSERT INTO skip_ticket (ticket_number, reason, added_at)
                 SELECT n, $2, $3 FROM unnest($1) WITH ORDINALITY AS u(n, ord) ORDER BY ord
                 ON CONFLICT (ticket_number) DO NOTHING RETURNING 1",
                &[
                    (&numbers, Type::TEXT_ARRAY),
                    (&reason, Type::TEXT),
                    (&now, Type::TIMESTAMPTZ),
                ],
            )?;
            Ok(rows.len())
        })
    }

    fn remove_skips(&mut self, numbers: &[String]) -> Result<usize, Error> {
        self.in_transaction(|wire| {
            let rows = wire.query(
                "DELETE FROM skip_ticket WHERE ticket_number = ANY($1) RETURNING 1",
                &[(&numbers, Type::TEXT_ARRAY)],
            )?;
            Ok(rows.len())
        })
    }

    fn unresolved_payloads(&self) -> Result<Vec<(i64, String)>, Error> {
        let rows = self.read(
            "SELECT id, payload FROM sync_error WHERE resolved_at IS NULL ORDER BY id",
            &[],
        )?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    fn unresolved_errors(&self) -> Result<Vec<SyncErrorEntry>, Error> {
        let rows = self.read(
            "SELECT id, ticket_number, reason, first_seen_at FROM sync_error
             WHERE resolved_at IS NULL ORDER BY id",
            &[],
        )?;
        rows.iter()
            .map(error_entry)
            .collect::<Result<_, _>>()
            .in_pg(&self.label)
    }

    fn sync_error(&self, id: i64) -> Result<Option<SyncErrorDetail>, Error> {
        let rows = self.read(
            "SELECT id, ticket_number, reason, first_seen_at, payload, resolved_at, resolution
             FROM sync_error WHERE id = $1",
            &[(&id, Type::INT8)],
        )?;
        let detail = |row: &Row| -> Result<SyncErrorDetail, postgres::Error> {
            Ok(SyncErrorDetail {
                entry: error_entry(row)?,
                payload: row.try_get(4)?,
                resolved_at: time::read(row, 5)?,
                resolution: row.try_get(6)?,
            })
        };
        rows.first().map(detail).transpose().in_pg(&self.label)
    }

    fn dismiss_errors(&mut self, ids: &[i64], reason: &str) -> Result<(), Error> {
        let now = Timestamp::now();
        self.in_transaction(|wire| {
            let rows = wire.query(
                "SELECT id, resolved_at FROM sync_error WHERE id = ANY($1)",
                &[(&ids, Type::INT8_ARRAY)],
            )?;
            let resolved_at = rows
                .iter()
                .map(|row| Ok((row.try_get(0)?, time::read(row, 1)?)))
                .collect::<Result<_, postgres::Error>>()
                .in_pg(wire.label())?;
            check_dismissal(ids, resolved_at, &now.to_string())?;
            wire.query(
                "UPDATE sync_error SET resolved_at = $1, resolution = $2 WHERE id = ANY($3)",
                &[
                    (&now.to_system_time(), Type::TIMESTAMPTZ),
                    (&reason, Type::TEXT),
                    (&ids, Type::INT8_ARRAY),
                ],
            )?;
            Ok(())
        })
    }
}

/// A sync error's first four columns: id, ticket number, reason, first seen.
fn error_entry(row: &Row) -> Result<SyncErrorEntry, postgres::Error> {
    Ok(SyncErrorEntry {
        id: row.try_get(0)?,
        ticket_number: row.try_get(1)?,
        reason: row.try_get(2)?,
        first_seen_at: time::read(row, 3)?,
    })
}

const PAGINATION_STATE: &str = "SELECT pagination_key, updated_at FROM sync_state WHERE id = 1";

/// The key and when it was saved, from a row of [`PAGINATION_STATE`].
fn key_and_time(row: &Row) -> Result<(Option<String>, Option<String>), postgres::Error> {
    Ok((row.try_get(0)?, time::read(row, 1)?))
}

fn pagination_state(wire: &mut Wire<'_>) -> Result<(Option<String>, Option<String>), Error> {
    let rows = wire.query(PAGINATION_STATE, &[])?;
    key_and_time(&rows[0]).in_pg(wire.label())
}

/// The latest `limit` runs, newest first, as objects keyed by column name: times as text,
/// integers and the lag as numbers, as SQLite's `status` shows them.
fn latest_runs(wire: &mut Wire<'_>, limit: usize) -> Result<Vec<Map<String, Value>>, Error> {
    let columns: Vec<String> = RUN_HEAD
        .iter()
        .chain(&Counters::NAMES)
        .chain(&RUN_TAIL)
        .map(|&c| match c {
            c if c.ends_with("_at") => c.to_owned(),
            "command" | "key_before" | "key_after" | "error" | "unknown_fields"
            | "feed_lag_seconds" => c.to_owned(),
            c => format!("{c}::bigint AS {c}"),
        })
        .collect();
    let rows = wire.query(
        &format!(
            "SELECT {} FROM sync_run ORDER BY id DESC LIMIT $1",
            columns.join(", ")
        ),
        &[(&(limit as i64), Type::INT8)],
    )?;
    let run = |row: &Row| -> Result<Map<String, Value>, postgres::Error> {
        let mut object = Map::new();
        for (index, column) in row.columns().iter().enumerate() {
            let value = match *column.type_() {
                Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::from),
                Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Value::from),
                Type::TIMESTAMPTZ => time::read(row, index)?.map(Value::from),
                _ => row.try_get::<_, Option<String>>(index)?.map(Value::from),
            };
            object.insert(column.name().to_owned(), value.unwrap_or(Value::Null));
        }
        Ok(object)
    };
    let label = wire.label();
    rows.iter().map(run).collect::<Result<_, _>>().in_pg(label)
}
