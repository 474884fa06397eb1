//! What the commands read and change in a PostgreSQL store, with the signatures of the SQLite
//! store's methods (`crate::store::queries`, `feed`, `Store::pagination_key` …), so both can sit
//! behind one interface. Timestamps go in as the store's text form (`$n::text::timestamptz`) and
//! come out in it ([`utc`]); a list of ticket numbers or ids is one array parameter, one
//! statement whatever its length.

use std::collections::HashSet;

use postgres::types::ToSql;
use postgres::{Row, Transaction};
use serde_json::{Map, Value};

use super::PgStore;
use super::failure::InPg;
use crate::error::Error;
use crate::report::Counters;
use crate::store::{
    FeedState, RunRecord, SkipEntry, StatusFigures, SyncErrorDetail, SyncErrorEntry,
};
use crate::timestamp::Timestamp;

/// A `timestamptz` column in the store's text form, `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC).
fn utc(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
}

impl PgStore {
    /// Rows of a query on the session.
    fn rows(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Error> {
        self.client
            .borrow_mut()
            .query(sql, params)
            .in_pg(&self.store)
    }

    /// `work` in one transaction, committed when it succeeds, rolled back when it fails.
    fn in_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Transaction<'_>, &str) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let store = self.store.clone();
        let mut tx = self.client.get_mut().transaction().in_pg(&store)?;
        let result = work(&mut tx, &store)?;
        tx.commit().in_pg(&store)?;
        Ok(result)
    }

    /// The stored pagination key; `None` (or empty) is the start of the feed.
    pub fn pagination_key(&self) -> Result<Option<String>, Error> {
        Ok(self.pagination_state()?.0)
    }

    /// The stored key and when it was saved.
    pub fn pagination_state(&self) -> Result<(Option<String>, Option<String>), Error> {
        let row = self
            .client
            .borrow_mut()
            .query_one(&pagination_state_sql(), &[])
            .in_pg(&self.store)?;
        Ok((row.get(0), row.get(1)))
    }

    /// The persisted skip list.
    pub fn skip_list(&self) -> Result<HashSet<String>, Error> {
        let rows = self.rows("SELECT ticket_number FROM skip_ticket", &[])?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// The skip list, by ticket number.
    pub fn skip_entries(&self) -> Result<Vec<SkipEntry>, Error> {
        let sql = format!(
            "SELECT ticket_number, reason, {} FROM skip_ticket ORDER BY ticket_number COLLATE \"C\"",
            utc("added_at")
        );
        let rows = self.rows(&sql, &[])?;
        Ok(rows
            .iter()
            .map(|row| SkipEntry {
                ticket_number: row.get(0),
                reason: row.get(1),
                added_at: row.get(2),
            })
            .collect())
    }

    /// Adds ticket numbers to the skip list (a listed one keeps its entry). Returns how many were new.
    pub fn add_skips(&mut self, numbers: &[String], reason: Option<&str>) -> Result<usize, Error> {
        let now = Timestamp::now().to_string();
        self.in_transaction(|tx, store| {
            let added = tx
                .execute(
                    "INSERT INTO skip_ticket (ticket_number, reason, added_at)
                     SELECT number, $2, $3::text::timestamptz FROM unnest($1::text[]) AS number
                     ON CONFLICT (ticket_number) DO NOTHING",
                    &[&numbers, &reason, &now],
                )
                .in_pg(store)?;
            Ok(added as usize)
        })
    }

    /// Removes ticket numbers from the skip list. Returns how many were listed.
    pub fn remove_skips(&mut self, numbers: &[String]) -> Result<usize, Error> {
        self.in_transaction(|tx, store| {
            let removed = tx
                .execute(
                    "DELETE FROM skip_ticket WHERE ticket_number = ANY($1)",
                    &[&numbers],
                )
                .in_pg(store)?;
            Ok(removed as usize)
        })
    }

    /// Moves the live key (`None`: the start of the feed) and records the change in `sync_run`
    /// under `command`, in one transaction. Returns the key it replaced.
    pub fn set_pagination_key(
        &mut self,
        command: &str,
        key: Option<&str>,
    ) -> Result<Option<String>, Error> {
        let now = Timestamp::now().to_string();
        self.in_transaction(|tx, store| {
            let before: Option<String> = tx
                .query_one(
                    "SELECT pagination_key FROM sync_state WHERE id = 1 FOR UPDATE",
                    &[],
                )
                .in_pg(store)?
                .get(0);
            tx.execute(
                "UPDATE sync_state SET pagination_key = $1, updated_at = $2::text::timestamptz WHERE id = 1",
                &[&key, &now],
            )
            .in_pg(store)?;
            tx.execute(
                "INSERT INTO sync_run (command, started_at, finished_at, key_before, key_after, exit_code)
                 VALUES ($1, $2::text::timestamptz, $2::text::timestamptz, $3, $4, 0)",
                &[&command, &now, &before, &key],
            )
            .in_pg(store)?;
            Ok(before)
        })
    }

    /// Records a run that committed no batch (a failure after the rollback), in its own transaction.
    pub fn record_run(&mut self, run: &RunRecord<'_>) -> Result<(), Error> {
        let now = Timestamp::now().to_string();
        let sql = format!(
            "INSERT INTO sync_run (command, started_at, finished_at, key_before, key_after, exit_code, error, {})
             VALUES ($1, $2::text::timestamptz, $3::text::timestamptz, $4, $5, $6, $7, {})",
            Counters::NAMES.join(", "),
            (8..8 + Counters::NAMES.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let exit_code = i32::from(run.exit_code);
        let figures: Vec<i64> = run
            .counters
            .values()
            .iter()
            .map(|&v| i64::try_from(v).unwrap_or(i64::MAX))
            .collect();
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![
            &run.command,
            &run.started_at,
            &now,
            &run.key_before,
            &run.key_after,
            &exit_code,
            &run.error,
        ];
        values.extend(figures.iter().map(|v| v as &(dyn ToSql + Sync)));
        self.client
            .get_mut()
            .execute(&sql, &values)
            .in_pg(&self.store)?;
        Ok(())
    }

    /// The ids and raw payloads of the unresolved sync errors, oldest first.
    pub fn unresolved_payloads(&self) -> Result<Vec<(i64, String)>, Error> {
        let rows = self.rows(
            "SELECT id, payload FROM sync_error WHERE resolved_at IS NULL ORDER BY id",
            &[],
        )?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// The unresolved sync errors, oldest first.
    pub fn unresolved_errors(&self) -> Result<Vec<SyncErrorEntry>, Error> {
        let sql = format!(
            "SELECT id, ticket_number, reason, {} FROM sync_error
             WHERE resolved_at IS NULL ORDER BY id",
            utc("first_seen_at")
        );
        Ok(self.rows(&sql, &[])?.iter().map(error_entry).collect())
    }

    /// One sync error, resolved or not; `None` when there is no such id.
    pub fn sync_error(&self, id: i64) -> Result<Option<SyncErrorDetail>, Error> {
        let sql = format!(
            "SELECT id, ticket_number, reason, {}, payload, {}, resolution
             FROM sync_error WHERE id = $1",
            utc("first_seen_at"),
            utc("resolved_at")
        );
        let rows = self.rows(&sql, &[&id])?;
        Ok(rows.first().map(|row| SyncErrorDetail {
            entry: error_entry(row),
            payload: row.get(4),
            resolved_at: row.get(5),
            resolution: row.get(6),
        }))
    }

    /// Marks unresolved sync errors resolved with the operator's reason, all or none: an id
    /// that does not exist or is already resolved is a usage error naming it, and nothing changes.
    pub fn dismiss_errors(&mut self, ids: &[i64], reason: &str) -> Result<(), Error> {
        let now = Timestamp::now().to_string();
        self.in_transaction(|tx, store| {
            let sql = format!(
                "SELECT id, {} FROM sync_error WHERE id = ANY($1) FOR UPDATE",
                utc("resolved_at")
            );
            let found: Vec<(i64, Option<String>)> = tx
                .query(&sql, &[&ids])
                .in_pg(store)?
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect();
            for &id in ids {
                match found.iter().find(|(found, _)| *found == id) {
                    None => {
                        return Err(Error::Usage(format!(
                            "there is no sync error {id} (see `errors list`); nothing was dismissed"
                        )));
                    }
                    Some((_, Some(at))) => {
                        return Err(Error::Usage(format!(
                            "sync error {id} was already resolved at {at}; nothing was dismissed"
                        )));
                    }
                    Some((_, None)) => {}
                }
            }
            tx.execute(
                "UPDATE sync_error SET resolved_at = $1::text::timestamptz, resolution = $2 WHERE id = ANY($3)",
                &[&now, &reason, &ids],
            )
            .in_pg(store)?;
            Ok(())
        })
    }

    /// The feed as the latest live batch left it; `None` before the first one.
    pub fn feed_state(&self) -> Result<Option<FeedState>, Error> {
        let sql = format!(
            "SELECT {}, caught_up, {}, feed_lag_seconds, runs_behind
             FROM sync_run WHERE caught_up IS NOT NULL ORDER BY id DESC LIMIT 1",
            utc("finished_at"),
            utc("newest_change_at")
        );
        let rows = self.rows(&sql, &[])?;
        Ok(rows.first().map(|row| FeedState {
            checked_at: row.get(0),
            caught_up: row.get::<_, i16>(1) == 1,
            newest_change_at: row.get(2),
            feed_lag_seconds: row.get(3),
            runs_behind: row
                .get::<_, Option<i64>>(4)
                .map_or(0, |n| u64::try_from(n).unwrap_or(0)),
        }))
    }

    /// The figures of `status`, read in one read-only, repeatable-read transaction so that they
    /// agree with each other.
    pub fn status(&mut self, runs: usize, error_tickets: usize) -> Result<StatusFigures, Error> {
        let run_columns = self.sync_run_columns()?;
        self.in_transaction(|tx, store| {
            tx.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .in_pg(store)?;
            let key = tx.query_one(&pagination_state_sql(), &[]).in_pg(store)?;
            let (pagination_key, pagination_key_saved_at) = (key.get(0), key.get(1));
            let count = |tx: &mut Transaction<'_>, sql: &str| -> Result<u64, Error> {
                let n: i64 = tx.query_one(sql, &[]).in_pg(store)?.get(0);
                Ok(u64::try_from(n).unwrap_or(0))
            };
            let runs_sql = format!(
                "SELECT row_to_json(r)::text FROM (SELECT {run_columns} FROM sync_run ORDER BY id DESC LIMIT $1) r"
            );
            let runs = tx
                .query(&runs_sql, &[&(runs as i64)])
                .in_pg(store)?
                .iter()
                .map(|row| serde_json::from_str::<Map<String, Value>>(row.get(0)))
                .collect::<Result<_, _>>()
                .map_err(|e| Error::Internal(format!("a sync_run row as JSON: {e}")))?;
            let tickets: Vec<String> = tx
                .query(
                    "SELECT coalesce(ticket_number, '(unreadable)') FROM sync_error
                     WHERE resolved_at IS NULL ORDER BY id LIMIT $1",
                    &[&(error_tickets as i64)],
                )
                .in_pg(store)?
                .iter()
                .map(|row| row.get(0))
                .collect();
            Ok(StatusFigures {
                pagination_key,
                pagination_key_saved_at,
                runs,
                skip_count: count(tx, "SELECT count(*) FROM skip_ticket")?,
                unresolved_errors: count(
                    tx,
                    "SELECT count(*) FROM sync_error WHERE resolved_at IS NULL",
                )?,
                unresolved_error_tickets: tickets,
                tickets: count(tx, "SELECT count(*) FROM ticket")?,
                contacts: count(tx, "SELECT count(*) FROM contact")?,
            })
        })
    }

    /// Every column of `sync_run` in table order, timestamps in the store's text form, as a
    /// select list: `status` shows the rows whole, as SQLite's `SELECT *` does.
    fn sync_run_columns(&self) -> Result<String, Error> {
        let rows = self.rows(
            "SELECT column_name::text, data_type = 'timestamp with time zone'
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = 'sync_run'
             ORDER BY ordinal_position",
            &[],
        )?;
        let columns: Vec<String> = rows
            .iter()
            .map(|row| {
                let name: String = row.get(0);
                let quoted = format!("\"{}\"", name.replace('"', "\"\""));
                if row.get(1) {
                    format!("{} AS {quoted}", utc(&quoted))
                } else {
                    quoted
                }
            })
            .collect();
        Ok(columns.join(", "))
    }
}

/// The stored key and when it was saved (the one row of `sync_state`).
fn pagination_state_sql() -> String {
    format!(
        "SELECT pagination_key, {} FROM sync_state WHERE id = 1",
        utc("updated_at")
    )
}

/// A sync error's first four columns: id, ticket number, reason, first seen.
fn error_entry(row: &Row) -> SyncErrorEntry {
    SyncErrorEntry {
        id: row.get(0),
        ticket_number: row.get(1),
        reason: row.get(2),
        first_seen_at: row.get(3),
    }
}
