//! A TCP proxy that adds a fixed delay to every byte in each direction: a LAN's round trip on
//! loopback, for `bench/bench.py postgres`, which measures the PostgreSQL store with an added
//! 1 ms round trip (0.5 ms each way). The delay is added without limiting the bandwidth: what
//! arrives is forwarded as soon as it is due, however much arrives meanwhile.
//!
//! ```text
//! cargo run --release --example delay-proxy -- UPSTREAM_HOST:PORT ONE_WAY_MICROSECONDS
//! ```
//!
//! It prints the address it listens on (127.0.0.1, a free port), then serves until killed.

use std::error::Error;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: delay-proxy UPSTREAM_HOST:PORT ONE_WAY_MICROSECONDS";
    let upstream = args.next().ok_or(usage)?;
    let delay = Duration::from_micros(args.next().ok_or(usage)?.parse()?);
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?);
    for client in listener.incoming() {
        let client = client?;
        let server = TcpStream::connect(&upstream)?;
        for stream in [&client, &server] {
            stream.set_nodelay(true)?;
        }
        forward(client.try_clone()?, server.try_clone()?, delay);
        forward(server, client, delay);
    }
    Ok(())
}

/// Copies `from` into `to`, each chunk written `delay` after it was read, on two threads (one
/// reads, one writes) so that reading never waits for a chunk's delay.
fn forward(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (chunks, due) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buffer = vec![0; 64 * 1024];
        while let Ok(read @ 1..) = from.read(&mut buffer) {
            if chunks
                .send((Instant::now() + delay, buffer[..read].to_vec()))
                .is_err()
            {
                break;
            }
        }
    });
    thread::spawn(move || {
        for (at, chunk) in due {
            thread::sleep(at.saturating_duration_since(Instant::now()));
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}
