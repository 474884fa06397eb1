//! Where a PostgreSQL store is (SPEC §10): the URL as checked, the schema, the password and the
//! TLS rule. Everything here is decided before a byte goes to the server; every refusal is a
//! configuration error (78), except a bad schema name, which the command line refuses (64).

use std::fmt;
use std::path::{Path, PathBuf};

use postgres::config::{Host, SslMode};

use crate::error::Error;
use crate::tixngo::api_key::read_key_file;
use crate::tixngo::client::is_loopback;

/// The schema of `--pg-schema` when none is given.
pub(crate) const DEFAULT_SCHEMA: &str = "tixngo_feedback";

/// The longest identifier PostgreSQL keeps whole (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;

/// Whether a `--store` value names a PostgreSQL store rather than an SQLite file.
pub(crate) fn is_url(store: &str) -> bool {
    matches!(
        url_scheme(store).as_deref(),
        Some("postgres" | "postgresql")
    )
}

/// The scheme of a `--store` value written as a URL (`scheme://…`, RFC 3986's scheme
/// characters), lower-cased as schemes compare; `None` for anything else, a path.
pub(crate) fn url_scheme(store: &str) -> Option<String> {
    let (scheme, _) = store.split_once("://")?;
    let first = scheme.chars().next()?;
    let rest_ok = scheme
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first.is_ascii_alphabetic() && rest_ok).then(|| scheme.to_ascii_lowercase())
}

/// Checks a `--pg-schema` name: a plain lower-case identifier (letters, digits, `_`, not first a
/// digit, at most 63 bytes, not `pg_…`, which PostgreSQL reserves), so that it never needs
/// quoting to mean what it says.
pub(crate) fn parse_schema(text: &str) -> Result<String, String> {
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let starts_well = text
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if !plain || !starts_well || text.len() > MAX_IDENTIFIER {
        return Err(format!(
            "expected a schema name of 1 to {MAX_IDENTIFIER} lower-case letters, digits and _, not starting with a digit"
        ));
    }
    if text.starts_with("pg_") {
        return Err("schema names starting with pg_ are reserved by PostgreSQL".to_owned());
    }
    Ok(text.to_owned())
}

/// How the connection is protected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Tls {
    /// A Unix socket, or loopback without `sslmode=require`.
    Off,
    /// TLS with the server's certificate verified against the roots TIXNGO's client trusts, and
    /// `ca_file`'s.
    Verified { ca_file: Option<PathBuf> },
}

/// A PostgreSQL store, checked: the server, the database, the user and password, the schema.
#[derive(Clone)]
pub struct PgTarget {
    pub(super) config: postgres::Config,
    pub(super) schema: String,
    pub(super) tls: Tls,
    /// The URL without password or parameters, and the schema: what messages show.
    shown: String,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTarget")
            .field("store", &self.shown)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PgTarget {
    /// Checks a `postgres://` or `postgresql://` URL for the store in `schema` (already checked
    /// by [`parse_schema`]). A URL holding a password, naming no host, or asking for `sslmode`
    /// `disable`/`prefer` to a host that is not loopback is refused (78); without `sslmode`, a
    /// host that is not loopback gets TLS with certificate verification.
    pub fn parse(url: &str, schema: &str) -> Result<PgTarget, Error> {
        let url = url.trim();
        let shown = format!("{}, schema {schema}", redact(url));
        let bad = |why: String| Error::Config(format!("the store URL {} {why}", redact(url)));
        if !is_url(url) {
            return Err(bad("must start with postgres:// or postgresql://".into()));
        }
        // Schemes compare without case; the client library knows them in lower case.
        let (scheme, rest) = url.split_once("://").unwrap_or_default();
        let url = format!("{}://{rest}", scheme.to_ascii_lowercase());
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| bad(format!("cannot be read ({})", super::failure::detail(&e))))?;
        if config.get_password().is_some() {
            return Err(bad(
                "holds a password: put it in a file (mode 0600) given with --store-password-file, or in PGPASSWORD".into(),
            ));
        }
        if config.get_hosts().is_empty() {
            return Err(bad(
                "names no host (for a Unix socket: postgres://user@%2Fvar%2Frun%2Fpostgresql/db)"
                    .into(),
            ));
        }
        let tls = tls_rule(&config, sslmode_of(&url).as_deref()).map_err(bad)?;
        config.ssl_mode(match tls {
            Tls::Off => SslMode::Disable,
            Tls::Verified { .. } => SslMode::Require,
        });
        Ok(PgTarget {
            config,
            schema: schema.to_owned(),
            tls,
            shown,
        })
    }

    /// Extra root certificates (`--ca-file`) for a TLS connection.
    pub fn with_ca_file(mut self, ca_file: Option<PathBuf>) -> PgTarget {
        if let Tls::Verified { ca_file: roots } = &mut self.tls {
            *roots = ca_file;
        }
        self
    }

    /// The password for the server: the password file's (`--store-password-file`), else
    /// `PGPASSWORD`'s (an empty value counts as unset), else none (peer, trust or certificate
    /// authentication). The file follows the rules of the API key file: 0600, regular, trimmed.
    pub fn with_password_from(mut self, password_file: Option<&Path>) -> Result<PgTarget, Error> {
        let password = match password_file {
            Some(path) => {
                let password = read_key_file(path, "store password file")?;
                if password.is_empty() {
                    return Err(Error::Config(format!(
                        "the store password file {} is empty",
                        path.display()
                    )));
                }
                Some(password)
            }
            None => std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()),
        };
        if let Some(password) = password {
            self.config.password(password);
        }
        Ok(self)
    }

    /// The schema holding the store.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

/// The value of the URL's `sslmode` parameter, when it has one.
fn sslmode_of(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query
        .rsplit('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "sslmode")
        .map(|(_, value)| value.to_owned())
}

/// SPEC §10: TLS unless every host is loopback or a Unix socket; off it, `sslmode` may only ask
/// for TLS. On loopback, TLS only when `sslmode=require` asks for it.
fn tls_rule(config: &postgres::Config, sslmode: Option<&str>) -> Result<Tls, String> {
    let hosts = config.get_hosts();
    if hosts.iter().all(|host| matches!(host, Host::Unix(_))) {
        return Ok(Tls::Off);
    }
    let loopback = hosts.iter().all(|host| match host {
        Host::Tcp(name) => is_loopback(name),
        Host::Unix(_) => true,
    }) && config.get_hostaddrs().iter().all(|ip| ip.is_loopback());
    match (sslmode, loopback) {
        (Some("require"), _) | (None, false) => Ok(Tls::Verified { ca_file: None }),
        (Some(mode), false) => Err(format!(
            "asks for sslmode={mode} to a host that is not loopback: a PostgreSQL store over the network is reached with TLS only (sslmode=require, or no sslmode)"
        )),
        (_, true) => Ok(Tls::Off),
    }
}

/// A store URL as messages show it: scheme, user, hosts, ports and database; never the
/// password, nor the parameters.
fn redact(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = without_query.split_once("://") else {
        return without_query.chars().take(200).collect();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{hosts}{path}")
        }
        None => format!("{scheme}://{authority}{path}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(url: &str) -> String {
        match PgTarget::parse(url, DEFAULT_SCHEMA) {
            Err(error @ Error::Config(_)) => error.to_string(),
            other => panic!("{url} was not refused as configuration: {other:?}"),
        }
    }

    #[test]
    fn store_values_are_urls_only_with_a_postgres_scheme() {
        for url in [
            "postgres://u@h/db",
            "postgresql://u@h/db",
            "POSTGRES://u@h/db",
        ] {
            assert!(is_url(url), "{url}");
        }
        for path in [
            "tixngo-feedback.db",
            "postgres.db",
            "./postgres://x",
            "/a/b://c",
        ] {
            assert!(!is_url(path) && url_scheme(path).is_none(), "{path}");
        }
        assert_eq!(url_scheme("MySQL://u:pw@h/db").as_deref(), Some("mysql"));
        assert!(!is_url("mysql://u@h/db"));
    }

    #[test]
    fn a_url_is_read_with_its_user_hosts_port_and_database() {
        let target = PgTarget::parse(
            "postgresql://feedback@db.example:6432/s360?connect_timeout=5",
            "acme",
        )
        .unwrap();
        assert_eq!(target.config.get_user(), Some("feedback"));
        assert_eq!(target.config.get_dbname(), Some("s360"));
        assert_eq!(target.config.get_ports(), [6432]);
        assert!(matches!(&target.config.get_hosts()[0], Host::Tcp(h) if h == "db.example"));
        assert_eq!(
            target.to_string(),
            "postgresql://feedback@db.example:6432/s360, schema acme"
        );
    }

    #[test]
    fn a_password_in_the_url_is_refused_and_never_shown() {
        for url in [
            "postgres://feedback:hunter2@db.example/s360",
            "postgres://feedback@db.example/s360?password=hunter2",
        ] {
            let message = refusal(url);
            assert!(message.contains("holds a password"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }

    #[test]
    fn tls_is_required_off_loopback_and_optional_on_it() {
        let tls = |url: &str| PgTarget::parse(url, DEFAULT_SCHEMA).unwrap().tls;
        let verified = Tls::Verified { ca_file: None };
        assert_eq!(tls("postgres://u@db.example/s360"), verified);
        assert_eq!(
            tls("postgres://u@db.example/s360?sslmode=require"),
            verified
        );
        assert_eq!(tls("postgres://u@127.0.0.1:5432/s360"), Tls::Off);
        assert_eq!(tls("postgres://u@localhost/s360?sslmode=disable"), Tls::Off);
        assert_eq!(tls("postgres://u@[::1]/s360?sslmode=prefer"), Tls::Off);
        assert_eq!(tls("postgres://u@localhost/s360?sslmode=require"), verified);
        assert_eq!(tls("postgres://u@%2Fvar%2Frun%2Fpostgresql/s360"), Tls::Off);
        // One host off loopback is enough to need TLS.
        assert_eq!(tls("postgres://u@localhost,db.example/s360"), verified);
        assert_eq!(
            tls("postgres://u@localhost/s360?hostaddr=10.0.0.5"),
            verified
        );
        for mode in ["disable", "prefer"] {
            let message = refusal(&format!("postgres://u@db.example/s360?sslmode={mode}"));
            assert!(message.contains(&format!("sslmode={mode}")), "{message}");
        }
    }

    #[test]
    fn unreadable_urls_are_configuration_errors() {
        for url in [
            "postgres://u@db.example/s360?sslmode=verify-full",
            "postgres://u@db.example/s360?frobnicate=1",
            "postgres://u@db.example:port/s360",
            "postgres:///s360",
            "mysql://u@db.example/s360",
        ] {
            refusal(url);
        }
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        for good in ["tixngo_feedback", "acme", "_x", "org2", &"a".repeat(63)] {
            assert_eq!(parse_schema(good).as_deref(), Ok(good));
        }
        for bad in [
            "",
            "Acme",
            "2org",
            "a-b",
            "a b",
            "a\"b",
            "pg_x",
            "é",
            &"a".repeat(64),
        ] {
            assert!(parse_schema(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_password_comes_from_a_private_file_and_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "  hunter2\n").unwrap();
        let mode = |m| std::os::unix::fs::PermissionsExt::from_mode(m);
        std::fs::set_permissions(&file, mode(0o644)).unwrap();
        let target = PgTarget::parse("postgres://u@db.example/s360", "acme").unwrap();
        let refused = target.clone().with_password_from(Some(&file)).unwrap_err();
        assert!(
            refused.to_string().contains("readable by others"),
            "{refused}"
        );
        std::fs::set_permissions(&file, mode(0o600)).unwrap();
        let target = target.with_password_from(Some(&file)).unwrap();
        assert_eq!(target.config.get_password(), Some(&b"hunter2"[..]));
        assert!(!format!("{target:?} {target}").contains("hunter2"));
        std::fs::write(&file, " \n").unwrap();
        let empty = PgTarget::parse("postgres://u@db.example/s360", "acme")
            .unwrap()
            .with_password_from(Some(&file))
            .unwrap_err();
        assert!(empty.to_string().contains("is empty"), "{empty}");
    }
}
