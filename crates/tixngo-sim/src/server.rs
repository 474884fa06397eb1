//! The HTTP/1.1 server on `std::net`: one thread per connection, the normal diff answer.

use std::collections::VecDeque;
use std::fmt;
use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::faults::sabotage;
use crate::{Fault, Feed, Request};

/// The interface URL's path, as the product is configured with it.
const INTERFACE_PATH: &str = "/organizer/tickets";
const DIFF_PATH: &str = "/organizer/tickets/diff";
/// TIXNGO's documented maximum page size (docs/reference.md §2, `--batch-size`).
const MAX_LIMIT: usize = 10_000;
/// A longer request head is answered 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// A client that has not sent its whole head by then is dropped, so it cannot pin a thread.
const HEAD_DEADLINE: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// After answering, how long to drain what the client still sends before closing, so that the
/// close is a FIN and not a reset that could destroy the answer in flight.
const LINGER: Duration = Duration::from_secs(2);
/// How long [`Fault::Stall`] holds a connection at most.
const STALL_HOLD: Duration = Duration::from_secs(120);

/// A diff endpoint serving one [`Feed`] on `127.0.0.1`, one thread per connection.
///
/// Dropping it stops accepting new connections (best effort, without blocking); connections
/// already open finish on their own.
pub struct Simulator {
    address: SocketAddr,
    shared: Arc<Shared>,
}

/// What the accept thread and the connection threads share with the [`Simulator`] handle.
pub(crate) struct Shared {
    pub(crate) feed: Feed,
    api_key: String,
    /// Faults for the next diff requests, in order, each with the number of requests left
    /// (`usize::MAX`: forever).
    faults: Mutex<VecDeque<(Fault, usize)>>,
    requests: Mutex<Vec<Request>>,
    stopping: AtomicBool,
}

impl Simulator {
    /// Serves `feed` on an ephemeral port of 127.0.0.1.
    ///
    /// # Panics
    /// When no loopback port can be bound: a test cannot go on without its server.
    pub fn start(feed: Feed, api_key: &str) -> Simulator {
        Simulator::start_on(0, feed, api_key).expect("bind the simulator to 127.0.0.1:0")
    }

    /// Serves `feed` on `127.0.0.1:port` (0: an ephemeral port).
    pub fn start_on(port: u16, feed: Feed, api_key: &str) -> io::Result<Simulator> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            feed,
            api_key: api_key.to_owned(),
            faults: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
            stopping: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("tixngo-sim-accept".to_owned())
            .spawn(move || accept_connections(&listener, &accept_shared))?;
        Ok(Simulator { address, shared })
    }

    /// The interface URL to configure the product with: `http://127.0.0.1:PORT/organizer/tickets`.
    pub fn url(&self) -> String {
        format!("http://{}{INTERFACE_PATH}", self.address)
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn feed(&self) -> &Feed {
        &self.shared.feed
    }

    /// The next `times` diff requests get `fault`, after the faults already queued
    /// (`usize::MAX`: every diff request from then on, until [`Simulator::clear_faults`]).
    pub fn push_fault(&self, fault: Fault, times: usize) {
        if times > 0 {
            lock(&self.shared.faults).push_back((fault, times));
        }
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Every request received so far (diff or not), in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the accept thread, blocked in `accept`, so it sees the flag and drops the listener.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_millis(200));
    }
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("address", &self.address)
            .field("feed", &self.shared.feed)
            .finish_non_exhaustive()
    }
}

/// A poisoned lock only means a connection thread panicked; the data is still consistent.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn take_fault(&self) -> Option<Fault> {
        let mut faults = lock(&self.faults);
        let (fault, remaining) = faults.front_mut()?;
        let fault = fault.clone();
        if *remaining != usize::MAX {
            *remaining -= 1;
            if *remaining == 0 {
                faults.pop_front();
            }
        }
        Some(fault)
    }
}

fn accept_connections(listener: &TcpListener, shared: &Arc<Shared>) {
    for connection in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = connection else {
            // Out of file descriptors and the like: do not spin.
            thread::sleep(Duration::from_millis(10));
            continue;
        };
        let shared = Arc::clone(shared);
        // A failed spawn drops the connection, as an overloaded server would.
        let _ = thread::Builder::new()
            .name("tixngo-sim-connection".to_owned())
            .spawn(move || serve_connection(stream, &shared));
    }
}

/// What happens to the connection once the answer (or the sabotage) is written.
pub(crate) enum Ending {
    /// Half-close, drain briefly, close: the client reads the whole answer.
    Graceful,
    /// Close at once, whatever the client expects next.
    Abrupt,
    /// Send nothing more but keep the socket open ([`Fault::Stall`]).
    Hold,
}

fn serve_connection(mut stream: TcpStream, shared: &Shared) {
    // Answers are written in one piece; never let Nagle hold back a partial one.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let ending = match read_head(&mut stream) {
        Ok(head) => match Request::parse(&head) {
            Some(request) => {
                lock(&shared.requests).push(request.clone());
                respond(&mut stream, &request, shared)
            }
            None => send(&mut stream, &Reply::message(400)),
        },
        Err(HeadError::TooLarge) => send(&mut stream, &Reply::message(431)),
        Err(HeadError::Incomplete) => return,
    };
    match ending {
        Ok(Ending::Graceful) => {
            let _ = stream.shutdown(Shutdown::Write);
            wait_for_client_to_leave(&mut stream, LINGER);
        }
        Ok(Ending::Hold) => wait_for_client_to_leave(&mut stream, STALL_HOLD),
        Ok(Ending::Abrupt) | Err(_) => {}
    }
}

enum HeadError {
    /// More than [`MAX_HEAD_BYTES`] without the blank line that ends a head.
    TooLarge,
    /// The client closed, failed or fell silent before the end of its head.
    Incomplete,
}

/// Reads up to and including the blank line that ends the request head. Whatever follows (a
/// body nobody asked for) is left unread; the lingering close drains it.
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    const END: &[u8] = b"\r\n\r\n";
    let deadline = Instant::now() + HEAD_DEADLINE;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Err(HeadError::Incomplete);
        }
        let read = match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Incomplete),
            Ok(read) => read,
            Err(error) if error.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Incomplete),
        };
        // The end marker may straddle two reads.
        let search_from = head.len().saturating_sub(END.len() - 1);
        head.extend_from_slice(&chunk[..read]);
        if let Some(found) = head[search_from..]
            .windows(END.len())
            .position(|window| window == END)
        {
            let head_length = search_from + found + END.len();
            if head_length > MAX_HEAD_BYTES {
                return Err(HeadError::TooLarge);
            }
            head.truncate(head_length);
            return Ok(head);
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Reads and discards until the client closes, fails, or `longest` passes.
fn wait_for_client_to_leave(stream: &mut TcpStream, longest: Duration) {
    let deadline = Instant::now() + longest;
    let mut sink = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

fn respond(stream: &mut TcpStream, request: &Request, shared: &Shared) -> io::Result<Ending> {
    if request.path != DIFF_PATH {
        return send(stream, &Reply::message(404));
    }
    match shared.take_fault() {
        Some(fault) => sabotage(stream, &fault, request, shared),
        None => send(stream, &diff_reply(request, shared)),
    }
}

/// The normal answer to a diff request.
pub(crate) fn diff_reply(request: &Request, shared: &Shared) -> Reply {
    if request.method != "GET" {
        return Reply::message(405).with_header("Allow", "GET");
    }
    if request.header("x-api-key") != Some(shared.api_key.as_str()) {
        return Reply::message(401);
    }
    let Some(limit) = requested_limit(request) else {
        return Reply::json(
            400,
            format!(r#"{{"message":"limit must be an integer in 1..={MAX_LIMIT}"}}"#),
        );
    };
    match shared
        .feed
        .page_json(request.query_param("paginationKey"), limit)
    {
        Ok(page) => Reply::json(200, page),
        Err(_) => Reply::json(400, r#"{"message":"invalid paginationKey"}"#),
    }
}

/// `limit` when it is a plain decimal integer in `1..=MAX_LIMIT`.
pub(crate) fn requested_limit(request: &Request) -> Option<usize> {
    let raw = request.query_param("limit")?;
    if raw.is_empty() || !raw.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    raw.parse()
        .ok()
        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
}

/// An HTTP answer before framing.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: Vec<u8>,
}

pub(crate) enum Framing {
    ContentLength(usize),
    Chunked,
}

impl Reply {
    pub(crate) fn json(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// `{"message":"<reason phrase>"}`: TIXNGO's error shape.
    pub(crate) fn message(status: u16) -> Reply {
        Reply::json(
            status,
            format!(r#"{{"message":"{}"}}"#, reason_phrase(status)),
        )
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn head(&self, framing: Framing) -> Vec<u8> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nConnection: close\r\nServer: tixngo-sim\r\n",
            self.status,
            reason_phrase(self.status)
        );
        match framing {
            Framing::ContentLength(length) => {
                let _ = write!(head, "Content-Length: {length}\r\n");
            }
            Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        head.into_bytes()
    }
}

/// Writes the whole answer in one piece.
pub(crate) fn send(stream: &mut TcpStream, reply: &Reply) -> io::Result<Ending> {
    let mut wire = reply.head(Framing::ContentLength(reply.body.len()));
    wire.extend_from_slice(&reply.body);
    stream.write_all(&wire)?;
    Ok(Ending::Graceful)
}

/// Announces the full `Content-Length` but sends only the first half of the body.
pub(crate) fn send_cut_short(stream: &mut TcpStream, reply: &Reply) -> io::Result<()> {
    let mut wire = reply.head(Framing::ContentLength(reply.body.len()));
    wire.extend_from_slice(&reply.body[..reply.body.len() / 2]);
    stream.write_all(&wire)?;
    stream.flush()
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
