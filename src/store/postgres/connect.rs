//! The one session a run holds with the server (SPEC §10): named for `pg_stat_activity`, with
//! keepalives on both ends and an idle limit so that a vanished or frozen holder loses the lock
//! within about a minute, statements bounded by the run's deadline, and never reconnected.

use std::sync::Arc;
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use rustls::pki_types::CertificateDer;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::failure::{InPg, classify};
use super::target::{PgTarget, Tls};
use crate::error::Error;
use crate::tixngo::client::trusted_roots;

/// Connecting longer than this fails (74), or sooner when the run's deadline comes first.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A statement's limit when the command has no deadline (`status`, `skip`, `cursor`, `errors`).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// TCP keepalives, on the client's socket and the server's: a silent peer is given up after
/// about IDLE + INTERVAL × COUNT = 11 s; unacknowledged data after `USER_TIMEOUT`. With the
/// systems' defaults a partitioned holder would keep the lock for about two hours.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(5);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_COUNT: u32 = 3;
const USER_TIMEOUT: Duration = Duration::from_secs(15);

/// A session idle this long (in or out of a transaction) is ended by the server: a frozen holder
/// (SIGSTOP, a paused VM) loses the lock. A run never waits that long between two statements
/// unless TIXNGO takes that long to answer, and then it fails (74) rather than write unlocked.
const IDLE_SESSION_TIMEOUT: Duration = Duration::from_secs(60);

/// PostgreSQL keeps this many bytes of `application_name`.
const APPLICATION_NAME_BYTES: usize = 63;

/// Opens the run's session: connects (TLS as the target says), then sets the session up with
/// the schema as `search_path` and times in UTC. `read_only` sessions cannot write at all.
pub(super) fn connect(
    target: &PgTarget,
    deadline: Option<Instant>,
    read_only: bool,
) -> Result<Client, Error> {
    let store = target.to_string();
    let mut config = target.config.clone();
    config
        .application_name(&application_name())
        .connect_timeout(bounded(CONNECT_TIMEOUT, deadline))
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_COUNT)
        .tcp_user_timeout(USER_TIMEOUT);
    let mut client = match &target.tls {
        Tls::Off => config.connect(NoTls),
        Tls::Verified { ca_file } => config.connect(tls_connector(ca_file.as_deref())?),
    }
    .map_err(|e| classify(&store, &e))?;
    client
        .batch_execute(&session_settings(target.schema(), deadline, read_only))
        .in_pg(&store)?;
    Ok(client)
}

/// One round trip of `SET`s. `idle_session_timeout` exists from PostgreSQL 14 on: on 13 the
/// idle limit inside transactions still holds.
fn session_settings(schema: &str, deadline: Option<Instant>, read_only: bool) -> String {
    let statement_ms = bounded(STATEMENT_TIMEOUT, deadline).as_millis();
    let idle_ms = IDLE_SESSION_TIMEOUT.as_millis();
    let mut sql = format!(
        "SET statement_timeout = {statement_ms};
         SET idle_in_transaction_session_timeout = {idle_ms};
         SELECT set_config('idle_session_timeout', '{idle_ms}', false)
             WHERE current_setting('server_version_num')::int >= 140000;
         SET tcp_keepalives_idle = {};
         SET tcp_keepalives_interval = {};
         SET tcp_keepalives_count = {KEEPALIVE_COUNT};
         SET tcp_user_timeout = {};
         SET TIME ZONE 'UTC';
         SET search_path = \"{schema}\";",
        KEEPALIVE_IDLE.as_secs(),
        KEEPALIVE_INTERVAL.as_secs(),
        USER_TIMEOUT.as_millis(),
    );
    if read_only {
        sql.push_str("SET default_transaction_read_only = on;");
    }
    sql
}

/// `longest`, or the time left before the deadline when that is shorter (at least a second:
/// PostgreSQL reads 0 as "no limit").
fn bounded(longest: Duration, deadline: Option<Instant>) -> Duration {
    let left = deadline.map_or(longest, |d| d.saturating_duration_since(Instant::now()));
    left.min(longest).max(Duration::from_secs(1))
}

/// `tixngo-feedback/<version> <hostname> pid <pid>`, the host name cut so that the whole fits
/// in what PostgreSQL keeps: the pid is what finds the holder.
fn application_name() -> String {
    let version = format!("tixngo-feedback/{}", env!("CARGO_PKG_VERSION"));
    let pid = format!("pid {}", std::process::id());
    let room = APPLICATION_NAME_BYTES.saturating_sub(version.len() + pid.len() + 2);
    let host: String = hostname().chars().take(room).collect();
    format!("{version} {host} {pid}")
}

/// This host's name, ASCII printable only (PostgreSQL shows anything else as `?`).
fn hostname() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: the buffer is writable for its whole length, which is passed.
    let done = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) } == 0;
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let name: String = buffer[..end]
        .iter()
        .filter(|b| b.is_ascii_graphic())
        .map(|&b| char::from(b))
        .collect();
    if done && !name.is_empty() {
        name
    } else {
        "unknown-host".to_owned()
    }
}

/// rustls with the ring provider (the one ureq uses) and the roots TIXNGO's client trusts.
fn tls_connector(ca_file: Option<&std::path::Path>) -> Result<MakeRustlsConnect, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(
        trusted_roots(ca_file)?
            .iter()
            .map(|certificate| CertificateDer::from(certificate.der().to_vec())),
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_application_name_names_version_host_and_pid_within_63_bytes() {
        let name = application_name();
        assert!(name.len() <= APPLICATION_NAME_BYTES, "{name}");
        assert!(name.starts_with("tixngo-feedback/"), "{name}");
        assert!(
            name.ends_with(&format!(" pid {}", std::process::id())),
            "{name}"
        );
    }

    #[test]
    fn timeouts_end_at_the_deadline_but_never_at_zero() {
        let soon = Instant::now() + Duration::from_secs(3);
        assert!(bounded(CONNECT_TIMEOUT, Some(soon)) <= Duration::from_secs(3));
        assert_eq!(bounded(CONNECT_TIMEOUT, None), CONNECT_TIMEOUT);
        let past = Instant::now() - Duration::from_secs(1);
        assert_eq!(bounded(CONNECT_TIMEOUT, Some(past)), Duration::from_secs(1));
    }
}
