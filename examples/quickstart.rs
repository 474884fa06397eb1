//! The README quick start: the cron job against the bundled TIXNGO simulator, in one command.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//!
//! It starts the simulator on 127.0.0.1 with a generated organizer of 5 000 tickets, writes the
//! demo API key into `quickstart.key` (mode 0600), then runs exactly what cron would run (the
//! binary's own entry point, in this process): `sync` in batches of 1 000 until caught up, into
//! `quickstart.db`, then `status`. Run it again: the second sync finds nothing new.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::process::ExitCode;

use tixngo_sim::{Feed, Simulator};

const API_KEY: &str = "demo-key";
const STORE: &str = "quickstart.db";
const KEY_FILE: &str = "quickstart.key";

fn main() -> ExitCode {
    let simulator = Simulator::start(Feed::generate(1, 5_000), API_KEY);
    println!("TIXNGO simulator listening on {}", simulator.url());
    let key_file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(KEY_FILE)
        .and_then(|mut file| writeln!(file, "{API_KEY}"));
    if let Err(error) = key_file {
        eprintln!("quickstart: cannot write {KEY_FILE}: {error}");
        return ExitCode::FAILURE;
    }
    let url = simulator.url();
    let sync = [
        "tixngo-feedback",
        "--store",
        STORE,
        "sync",
        "--api-url",
        &url,
        "--api-key-file",
        KEY_FILE,
        "--max-batches",
        "100",
    ];
    println!("\n$ {}", sync.join(" "));
    let code = tixngo_feedback::run(sync);
    println!("\n$ tixngo-feedback --store {STORE} status");
    tixngo_feedback::run(["tixngo-feedback", "--store", STORE, "status"]);
    println!(
        "\nThe store is {STORE}; try:\n  sqlite3 {STORE} \"SELECT mobile_status, count(*) FROM ticket GROUP BY 1\"\n  \
         sqlite3 {STORE} \"SELECT status, count(*) FROM distribution GROUP BY 1\""
    );
    code.into()
}
