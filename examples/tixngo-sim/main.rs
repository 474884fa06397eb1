//! The TIXNGO diff-endpoint simulator as a program, for the README quick start, the benchmark
//! and manual testing:
//!
//! ```text
//! cargo run --release --example tixngo-sim -- [--port P] [--url-file PATH] [--seed S]
//!     [--tickets N] [--api-key K] [--fault SPEC]...
//! ```
//!
//! The first line on stdout is the interface URL (`http://127.0.0.1:PORT/organizer/tickets`), also
//! written to `--url-file` once it listens, so a script can start it in the background and read
//! where it listens; it then serves until killed.
//! See the `tixngo-sim` crate (`crates/tixngo-sim/`) for the generated organizer and the faults.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tixngo_sim::{Fault, Feed, Simulator};

const USAGE: &str = "\
usage: tixngo-sim [--port P] [--url-file PATH] [--seed S] [--tickets N] [--api-key K] [--fault SPEC]...
                  [--match-day CHANGES:SECONDS]

Serves a generated TIXNGO organizer on GET http://127.0.0.1:P/organizer/tickets/diff and prints
the interface URL as the first line on stdout.

  --port P        port on 127.0.0.1 (default 0: an ephemeral port)
  --url-file PATH also write the interface URL to PATH once listening (for scripts)
  --seed S        organizer seed (default 1)
  --tickets N     distinct tickets (default 20000; about 3 events each)
  --api-key K     the expected x-api-key header (default demo-key)
  --fault SPEC    queue a fault for the next diff requests (repeatable, applied in order)
  --match-day CHANGES:SECONDS
                  instead of the organizer, a match day compressed into SECONDS from start:
                  CHANGES activations and controls of one event's tickets, each served from the
                  moment its lastUpdated says (a feed that grows while it is read)

SPEC is KIND[:ARG][*TIMES]; TIMES defaults to 1, `*inf` means every request:
  429[:RETRY_AFTER]   500, 503, 400, … (any status)   redirect:URL   slow:MILLIS
  stall   truncated   broken-chunked   reset   invalid-json   invalid-utf8
  not-a-diff   oversized:BYTES   missing-ticket-number   bom   next-page-key:KEY
  gzip (compress when asked; gzip*inf serves every page compressed)   gzip-bomb:BYTES
e.g. --fault 503*2 --fault 429:1 --fault slow:1500";

struct Options {
    port: u16,
    url_file: Option<PathBuf>,
    seed: u64,
    tickets: usize,
    api_key: String,
    faults: Vec<(Fault, usize)>,
    /// `--match-day CHANGES:SECONDS`.
    match_day: Option<(usize, Duration)>,
}

fn main() -> ExitCode {
    let options = match parse_arguments(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("tixngo-sim: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let feed = match options.match_day {
        Some((changes, window)) => Feed::match_day(options.seed, changes, window),
        None => Feed::generate(options.seed, options.tickets),
    };
    let events = feed.len();
    let simulator = match Simulator::start_on(options.port, feed, &options.api_key) {
        Ok(simulator) => simulator,
        Err(error) => {
            eprintln!(
                "tixngo-sim: cannot listen on 127.0.0.1:{}: {error}",
                options.port
            );
            return ExitCode::FAILURE;
        }
    };
    for (fault, times) in options.faults {
        simulator.push_fault(fault, times);
    }
    let mut stdout = std::io::stdout();
    if writeln!(stdout, "{}", simulator.url())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    if let Some(path) = &options.url_file
        && let Err(error) = write_url(path, &simulator.url())
    {
        eprintln!("tixngo-sim: cannot write {}: {error}", path.display());
        return ExitCode::FAILURE;
    }
    eprintln!(
        "tixngo-sim: {events} events for {} tickets (seed {}); x-api-key: {}; Ctrl-C to stop",
        options.tickets, options.seed, options.api_key
    );
    loop {
        std::thread::park();
    }
}

/// Writes the URL whole or not at all (a temporary file renamed), so that a script waiting for
/// the file never reads half of it.
fn write_url(path: &Path, url: &str) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    std::fs::write(&temporary, format!("{url}\n"))?;
    std::fs::rename(&temporary, path)
}

/// `Ok(None)` for `--help`.
fn parse_arguments(arguments: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut options = Options {
        port: 0,
        url_file: None,
        seed: 1,
        tickets: 20_000,
        api_key: "demo-key".to_owned(),
        faults: Vec::new(),
        match_day: None,
    };
    let mut arguments = arguments.peekable();
    while let Some(argument) = arguments.next() {
        if argument == "-h" || argument == "--help" {
            return Ok(None);
        }
        // Both `--flag value` and `--flag=value`.
        let (flag, inline_value) = match argument.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (argument, None),
        };
        let mut value = || {
            inline_value
                .clone()
                .or_else(|| arguments.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--port" => options.port = parse_number(&flag, &value()?)?,
            "--url-file" => options.url_file = Some(PathBuf::from(value()?)),
            "--seed" => options.seed = parse_number(&flag, &value()?)?,
            "--tickets" => options.tickets = parse_number(&flag, &value()?)?,
            "--api-key" => options.api_key = value()?,
            "--fault" => options.faults.push(parse_fault(&value()?)?),
            "--match-day" => options.match_day = Some(parse_match_day(&value()?)?),
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(Some(options))
}

fn parse_number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag}: {text:?} is not a valid number"))
}

/// `CHANGES:SECONDS` → the match day's changes and its (compressed) window.
fn parse_match_day(spec: &str) -> Result<(usize, Duration), String> {
    let (changes, seconds) = spec
        .split_once(':')
        .ok_or_else(|| format!("--match-day: expected CHANGES:SECONDS, got {spec:?}"))?;
    let seconds: u64 = parse_number("--match-day", seconds)?;
    Ok((
        parse_number("--match-day", changes)?,
        Duration::from_secs(seconds.max(1)),
    ))
}

/// `KIND[:ARG][*TIMES]` → the fault and how many diff requests it applies to.
fn parse_fault(spec: &str) -> Result<(Fault, usize), String> {
    let (kind_and_argument, times) = match spec.rsplit_once('*') {
        Some((rest, "inf")) => (rest, usize::MAX),
        Some((rest, count)) if !count.is_empty() && count.bytes().all(|b| b.is_ascii_digit()) => {
            (rest, parse_number("--fault", count)?)
        }
        _ => (spec, 1),
    };
    let (kind, argument) = match kind_and_argument.split_once(':') {
        Some((kind, argument)) => (kind, Some(argument)),
        None => (kind_and_argument, None),
    };
    let needs = |what: &str| {
        argument
            .filter(|argument| !argument.is_empty())
            .ok_or_else(|| format!("--fault {kind} needs :{what}"))
    };
    let fault = match kind {
        "429" | "too-many-requests" => Fault::TooManyRequests {
            retry_after: argument.map(str::to_owned),
        },
        "redirect" => Fault::Redirect(needs("URL")?.to_owned()),
        "slow" => Fault::Slow(Duration::from_millis(parse_number(
            "--fault slow",
            needs("MILLIS")?,
        )?)),
        "stall" => Fault::Stall,
        "truncated" => Fault::Truncated,
        "broken-chunked" => Fault::BrokenChunked,
        "reset" => Fault::Reset,
        "invalid-json" => Fault::InvalidJson,
        "invalid-utf8" => Fault::InvalidUtf8,
        "not-a-diff" => Fault::NotADiffDocument,
        "oversized" => Fault::Oversized {
            bytes: parse_number("--fault oversized", needs("BYTES")?)?,
        },
        "missing-ticket-number" => Fault::MissingTicketNumber,
        "bom" => Fault::ByteOrderMark,
        "next-page-key" => Fault::NextPageKey(needs("KEY")?.to_owned()),
        "gzip" => Fault::Gzip,
        "gzip-bomb" => Fault::GzipBomb {
            bytes: parse_number("--fault gzip-bomb", needs("BYTES")?)?,
        },
        status => match status.parse::<u16>() {
            Ok(status) if (100..=599).contains(&status) => Fault::Status(status),
            _ => return Err(format!("--fault: unknown fault {spec:?}")),
        },
    };
    Ok((fault, times))
}
