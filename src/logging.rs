//! Log lines on stderr (env_logger). `-v` raises this program's level, else `RUST_LOG`, else
//! warnings; `--quiet` keeps errors only. The HTTP, TLS and PostgreSQL crates stay capped at
//! `info` whatever is asked: the first two dump request headers, the API key among them, and
//! the PostgreSQL client logs every statement's parameters, spectators' names and e-mails.

use std::borrow::Cow;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::report::escape;

/// Crates whose records above `info` are dropped.
const CAPPED: [&str; 5] = ["ureq", "ureq_proto", "rustls", "tokio_postgres", "postgres"];

/// Installs the logger; a second call (tests, the quick-start example) is ignored.
pub fn init(verbose: u8, quiet: bool) {
    let mut builder = env_logger::Builder::new();
    builder.format_timestamp_millis();
    match (quiet, verbose) {
        (true, _) => builder.filter_level(LevelFilter::Error),
        (false, 0) => match std::env::var("RUST_LOG") {
            Ok(spec) if !spec.trim().is_empty() => {
                builder.filter_level(LevelFilter::Warn).parse_filters(&spec)
            }
            _ => builder.filter_level(LevelFilter::Warn),
        },
        (false, 1) => builder.filter_level(LevelFilter::Info),
        (false, 2) => builder.filter_level(LevelFilter::Debug),
        (false, _) => builder.filter_level(LevelFilter::Trace),
    };
    let inner = builder.build();
    let max = inner.filter();
    if log::set_boxed_logger(Box::new(CappedLogger(inner))).is_ok() {
        log::set_max_level(max);
    }
}

struct CappedLogger(env_logger::Logger);

fn is_capped(target: &str, level: Level) -> bool {
    level > Level::Info
        && CAPPED.iter().any(|name| {
            target == *name
                || target
                    .strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with("::"))
        })
}

impl Log for CappedLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !is_capped(metadata.target(), metadata.level()) && self.0.enabled(metadata)
    }

    /// Every line goes through [`escape`]: log lines quote server text (reasons, keys, ticket
    /// numbers), which must never reach the terminal raw.
    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        match escape(&text) {
            Cow::Borrowed(_) => self.0.log(record),
            Cow::Owned(escaped) => self.0.log(
                &Record::builder()
                    .args(format_args!("{escaped}"))
                    .metadata(record.metadata().clone())
                    .module_path(record.module_path())
                    .file(record.file())
                    .line(record.line())
                    .build(),
            ),
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_crates_are_capped_at_info() {
        assert!(is_capped("ureq", Level::Debug));
        assert!(is_capped("ureq::unversioned::transport", Level::Trace));
        assert!(is_capped("ureq_proto::client", Level::Debug));
        assert!(is_capped("rustls::client::hs", Level::Trace));
        assert!(is_capped("tokio_postgres::query", Level::Debug));
        assert!(is_capped("postgres", Level::Debug));
        assert!(!is_capped("ureq", Level::Info));
        assert!(!is_capped("ureqx", Level::Trace));
        assert!(!is_capped("tixngo_feedback::sync", Level::Trace));
    }
}
