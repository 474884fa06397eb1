//! The run lock of a PostgreSQL store (SPEC §10): a session-level advisory lock on the one
//! connection that writes, held until the session ends. The server releases it when the session
//! ends however it ends (the client exits, is killed, or vanishes and the keepalives or
//! `idle_session_timeout` give up on it), so no stale lock survives; and it holds across hosts,
//! which a file lock cannot.
//!
//! The key is [`lock_key`] of the schema name: one lock per schema, so two organizers in one
//! database run side by side. In `pg_locks` a bigint advisory lock shows as `locktype =
//! 'advisory'`, `objsubid = 1`, `classid` = the key's high 32 bits, `objid` = its low 32 bits.

use postgres::Client;
use postgres::types::Type;

use super::failure::InPg;
use crate::error::Error;

/// The advisory lock key of a schema: FNV-1a (64 bits) of the name's bytes, as PostgreSQL's
/// `bigint`. Fixed for ever: runs of two versions of this program must take the same lock.
pub fn lock_key(schema: &str) -> i64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let hash = schema.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    });
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Takes the schema's lock on this session, without waiting; held → 75, naming the holder.
pub(super) fn acquire(client: &mut Client, store: &str, schema: &str) -> Result<(), Error> {
    let key = lock_key(schema);
    let taken: bool = client
        .query_typed("SELECT pg_try_advisory_lock($1)", &[(&key, Type::INT8)])
        .in_pg(store)?[0]
        .get(0);
    if taken {
        log::info!("store {store}: lock taken (advisory lock {key})");
        return Ok(());
    }
    let holder = holder(client, key)
        .in_pg(store)?
        .unwrap_or_else(|| "a session that has just ended".to_owned());
    Err(Error::StoreContended {
        store: store.to_owned(),
        message: format!("another run holds the store's lock (advisory lock {key}): {holder}"),
    })
}

/// Who holds the schema's lock now, as [`acquire`] names it, and the pid its
/// `application_name` gives (`tixngo-feedback/<version> <host> pid <pid>`); `None` when nobody
/// holds it. For `status`, which never takes the lock.
pub(super) fn holder_of(
    client: &mut Client,
    store: &str,
    schema: &str,
) -> Result<Option<(String, Option<u32>)>, Error> {
    let holder = holder(client, lock_key(schema)).in_pg(store)?;
    Ok(holder.map(|text| {
        let pid = text
            .split_once(" pid ")
            .and_then(|(_, rest)| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse().ok());
        (text, pid)
    }))
}

/// Who holds the lock `key` in this database, as `pg_stat_activity` shows the session: its
/// `application_name` (this program's version, host and pid), server pid, client address and
/// start (in the store's time form). The address and start are NULL to a role that may not see
/// the holder's session.
fn holder(client: &mut Client, key: i64) -> Result<Option<String>, postgres::Error> {
    let bits = u64::from_ne_bytes(key.to_ne_bytes());
    let (high, low) = ((bits >> 32) as u32, bits as u32);
    let row = client.query_opt(
        "SELECT a.application_name, a.pid, host(a.client_addr), a.backend_start
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.classid = $1 AND l.objid = $2
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
         LIMIT 1",
        &[&high, &low],
    )?;
    let Some(row) = row else { return Ok(None) };
    let name: Option<String> = row.try_get(0)?;
    let pid: i32 = row.try_get(1)?;
    let address: Option<String> = row.try_get(2)?;
    let since = super::time::read(&row, 3)?;
    let mut text = match name.filter(|n| !n.is_empty()) {
        Some(name) => format!("{} (server pid {pid}", crate::report::escape(&name)),
        None => format!("a session without application_name (server pid {pid}"),
    };
    if let Some(address) = address {
        text.push_str(&format!(", from {address}"));
    }
    if let Some(since) = since {
        text.push_str(&format!(", connected since {since}"));
    }
    text.push(')');
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_key_is_fnv_1a_of_the_schema_name_for_ever() {
        // FNV-1a 64 test vectors, then the default schema's key as the README documents it.
        let unsigned = |text| u64::from_ne_bytes(lock_key(text).to_ne_bytes());
        assert_eq!(unsigned(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(unsigned("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(unsigned("foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(lock_key("tixngo_feedback"), -4_631_113_708_555_359_732);
        assert_ne!(lock_key("acme"), lock_key("acme2"));
    }
}
