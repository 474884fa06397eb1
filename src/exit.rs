//! The process exit codes: an API that cron, scripts and monitoring act on (SPEC §3).
//!
//! The values follow `sysexits.h` where one fits, so that operators' tooling reads them the usual way.

/// What a run ended with, as the process exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitCode {
    /// The batch (or every batch) and the key were committed; "nothing new" included.
    Success,
    /// Committed, but some tickets could not be mapped and wait in `sync_error`.
    Partial,
    /// A bad flag or value: nothing was done.
    Usage,
    /// A response or file that is not a valid diff document, or a batch rejected for its failed tickets.
    DataErr,
    /// TIXNGO could not be reached or kept failing until the deadline.
    Unavailable,
    /// A bug in this program.
    Software,
    /// The store cannot be opened, read or written.
    IoErr,
    /// Try later: another run holds the lock, or TIXNGO kept rate-limiting.
    TempFail,
    /// TIXNGO rejected the API key.
    NoPerm,
    /// The configuration is wrong (URL, key, redirect, schema newer than this binary, 4xx).
    Config,
}

impl ExitCode {
    /// Every code, in the order SPEC §3 lists them.
    pub const ALL: [ExitCode; 10] = [
        ExitCode::Success,
        ExitCode::Partial,
        ExitCode::Usage,
        ExitCode::DataErr,
        ExitCode::Unavailable,
        ExitCode::Software,
        ExitCode::IoErr,
        ExitCode::TempFail,
        ExitCode::NoPerm,
        ExitCode::Config,
    ];

    /// The numeric status the process exits with.
    pub const fn code(self) -> u8 {
        match self {
            ExitCode::Success => 0,
            ExitCode::Partial => 2,
            ExitCode::Usage => 64,
            ExitCode::DataErr => 65,
            ExitCode::Unavailable => 69,
            ExitCode::Software => 70,
            ExitCode::IoErr => 74,
            ExitCode::TempFail => 75,
            ExitCode::NoPerm => 77,
            ExitCode::Config => 78,
        }
    }

    /// What the code means to an operator, as `--help` lists it.
    pub const fn meaning(self) -> &'static str {
        match self {
            ExitCode::Success => "success, including \"nothing new\"",
            ExitCode::Partial => "partial: committed, but some tickets wait in sync_error",
            ExitCode::Usage => "usage: a bad flag or value, a missing --yes",
            ExitCode::DataErr => {
                "bad data: not a diff document, too large, or too many bad tickets"
            }
            ExitCode::Unavailable => "TIXNGO unavailable: connection, timeout, 5xx",
            ExitCode::Software => "internal error (a bug: please report it)",
            ExitCode::IoErr => "the store cannot be opened, read or written",
            ExitCode::TempFail => "try later: another run holds the lock, or TIXNGO answered 429",
            ExitCode::NoPerm => "TIXNGO rejected the API key",
            ExitCode::Config => "configuration: URL, API key, key file, redirect, 4xx, newer store",
        }
    }

    /// Whether the run counts as a success for monitoring (`last_success_timestamp`).
    pub const fn is_success(self) -> bool {
        matches!(self, ExitCode::Success)
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> Self {
        std::process::ExitCode::from(code.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_values() {
        let codes: Vec<u8> = ExitCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes, [0, 2, 64, 65, 69, 70, 74, 75, 77, 78]);
    }

    #[test]
    fn codes_are_distinct() {
        let mut codes: Vec<u8> = ExitCode::ALL.iter().map(|c| c.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), ExitCode::ALL.len());
    }

    #[test]
    fn all_holds_every_variant() {
        // The match fails to compile when a variant is added, and the test then fails until
        // `ALL` (from which `--help` lists the codes) holds it at that place.
        let position = |code: ExitCode| match code {
            ExitCode::Success => 0,
            ExitCode::Partial => 1,
            ExitCode::Usage => 2,
            ExitCode::DataErr => 3,
            ExitCode::Unavailable => 4,
            ExitCode::Software => 5,
            ExitCode::IoErr => 6,
            ExitCode::TempFail => 7,
            ExitCode::NoPerm => 8,
            ExitCode::Config => 9,
        };
        for (index, code) in ExitCode::ALL.into_iter().enumerate() {
            assert_eq!(position(code), index, "{code:?}");
        }
    }

    #[test]
    fn only_success_is_success() {
        for code in ExitCode::ALL {
            assert_eq!(code.is_success(), code == ExitCode::Success, "{code:?}");
        }
    }
}
