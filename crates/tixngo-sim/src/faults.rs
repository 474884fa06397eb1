//! The ways to answer a diff request other than normally, and how each is sent.

use crate::feed::page_body;
use crate::server::{Framing, requested_limit};
use std::io::{self, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use crate::Request;
use crate::server::{Ending, Reply, Shared, diff_reply, send, send_cut_short};

/// A way to answer a diff request other than normally; see [`Simulator::push_fault`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 429, with `Retry-After` sent verbatim when given (seconds or an HTTP date).
    TooManyRequests { retry_after: Option<String> },
    /// This status with a small JSON error body.
    Status(u16),
    /// 301 to this `Location`.
    Redirect(String),
    /// Waits this long, then answers normally (authentication and validation included).
    Slow(Duration),
    /// Status line, headers with the full `Content-Length` and half the body, then silence: the
    /// socket stays open until the client goes away or 120 s pass.
    Stall,
    /// Full `Content-Length`, half the body, then the socket is closed.
    Truncated,
    /// `Transfer-Encoding: chunked`, one good chunk, an invalid chunk-size line, then close.
    BrokenChunked,
    /// Reads the request and closes the socket without a byte of answer.
    Reset,
    /// 200 `application/json` whose body is the page cut in the middle (a prefix of a JSON
    /// object is never valid JSON); the `Content-Length` matches what is sent.
    InvalidJson,
    /// 200 with the page plus a field holding Latin-1 bytes (`"venue":"Z\xFCrich"`): complete,
    /// JSON-shaped, not UTF-8.
    InvalidUtf8,
    /// 200 with valid JSON that holds no ticket list: `{"message":"ok"}`.
    NotADiffDocument,
    /// 200 with the valid page, padded by a long envelope field `padding` to at least `bytes`.
    Oversized { bytes: usize },
    /// The normal page, except that its first ticket lacks `taxNumber`.
    MissingTicketNumber,
    /// The normal answer, preceded by a UTF-8 byte order mark.
    ByteOrderMark,
    /// The normal page, with this `nextPageKey` instead of the real one.
    NextPageKey(String),
    /// This status with this body, sent as it is.
    StatusWithBody(u16, String),
    /// The normal answer, gzip-compressed with `Content-Encoding: gzip` when the request's
    /// `Accept-Encoding` names gzip (as nginx's `gzip on` does); as it is otherwise.
    Gzip,
    /// 200 `Content-Encoding: gzip` whose body, small on the wire, decodes to a page padded to
    /// at least `bytes` (a decompression bomb), whatever the request accepts.
    GzipBomb { bytes: usize },
}

/// The page a fault derives its body from when the request's own `limit` is unusable.
const FAULT_FALLBACK_LIMIT: usize = 1_000;

/// Answers a diff request with `fault`. Faults that bend a page use the page the request
/// addresses, whatever its key and credentials (falling back to the start of the feed and
/// [`FAULT_FALLBACK_LIMIT`] tickets), so a test gets a realistic body without a valid request.
pub(crate) fn sabotage(
    stream: &mut TcpStream,
    fault: &Fault,
    request: &Request,
    shared: &Shared,
) -> io::Result<Ending> {
    let feed = &shared.feed;
    let offset = feed
        .resolve_key(request.query_param("paginationKey"))
        .unwrap_or(0);
    let limit = requested_limit(request).unwrap_or(FAULT_FALLBACK_LIMIT);
    let page = || feed.page_at(offset, limit);
    match fault {
        Fault::TooManyRequests { retry_after } => {
            let mut reply = Reply::message(429);
            if let Some(retry_after) = retry_after {
                reply = reply.with_header("Retry-After", retry_after);
            }
            send(stream, &reply)
        }
        Fault::Status(status) => send(stream, &Reply::message(*status)),
        Fault::Redirect(location) => send(
            stream,
            &Reply::message(301).with_header("Location", location),
        ),
        Fault::Slow(delay) => {
            thread::sleep(*delay);
            send(stream, &diff_reply(request, shared))
        }
        Fault::Stall => {
            send_cut_short(stream, &Reply::json(200, page()))?;
            Ok(Ending::Hold)
        }
        Fault::Truncated => {
            send_cut_short(stream, &Reply::json(200, page()))?;
            Ok(Ending::Abrupt)
        }
        Fault::BrokenChunked => {
            let body = page();
            let first_chunk = &body.as_bytes()[..body.len() / 2];
            let mut wire = Reply::json(200, "").head(Framing::Chunked);
            let _ = write!(wire, "{:x}\r\n", first_chunk.len());
            wire.extend_from_slice(first_chunk);
            wire.extend_from_slice(b"\r\nnot-a-chunk-size\r\n");
            stream.write_all(&wire)?;
            Ok(Ending::Abrupt)
        }
        Fault::Reset => Ok(Ending::Abrupt),
        Fault::InvalidJson => {
            let body = page();
            let mut cut = body.len() / 2;
            // Cut between characters: the body must be invalid JSON, not invalid UTF-8.
            while !body.is_char_boundary(cut) {
                cut -= 1;
            }
            send(stream, &Reply::json(200, &body[..cut]))
        }
        Fault::InvalidUtf8 => {
            // "Zürich" in Latin-1 (0xFC), as a misconfigured upstream would write it.
            let mut body = b"{\"venue\":\"Z\xFCrich\",".to_vec();
            body.extend_from_slice(&page().as_bytes()[1..]);
            send(stream, &Reply::json(200, body))
        }
        Fault::NotADiffDocument => send(stream, &Reply::json(200, r#"{"message":"ok"}"#)),
        Fault::Oversized { bytes } => send(stream, &Reply::json(200, padded(page(), *bytes))),
        Fault::MissingTicketNumber => send(
            stream,
            &Reply::json(200, feed.page_without_first_tax_number(offset, limit)),
        ),
        Fault::ByteOrderMark => {
            let mut reply = diff_reply(request, shared);
            reply.body.splice(0..0, *b"\xEF\xBB\xBF");
            send(stream, &reply)
        }
        Fault::NextPageKey(key) => {
            let events = feed.page_range(offset, limit);
            let tickets = events.map(|index| feed.event_text(index));
            let key = serde_json::to_string(key).expect("a string serializes");
            let page = page_body("", tickets).replacen(
                r#""nextPageKey":"""#,
                &format!(r#""nextPageKey":{key}"#),
                1,
            );
            send(stream, &Reply::json(200, page))
        }
        Fault::StatusWithBody(status, body) => send(stream, &Reply::json(*status, body.as_str())),
        Fault::Gzip => {
            let reply = diff_reply(request, shared);
            let accepts = request.header("accept-encoding").is_some_and(|value| {
                value
                    .split(',')
                    .any(|coding| coding.trim().starts_with("gzip"))
            });
            if accepts {
                send(stream, &gzipped(reply))
            } else {
                send(stream, &reply)
            }
        }
        Fault::GzipBomb { bytes } => {
            send(stream, &gzipped(Reply::json(200, padded(page(), *bytes))))
        }
    }
}

/// `reply` with its body gzip-compressed and `Content-Encoding: gzip`.
fn gzipped(reply: Reply) -> Reply {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(&reply.body)
        .expect("writing to memory cannot fail");
    let body = encoder.finish().expect("writing to memory cannot fail");
    Reply { body, ..reply }.with_header("Content-Encoding", "gzip")
}

/// `page` with a trailing envelope field `"padding":"xxx…"` making it at least `at_least` bytes.
fn padded(page: String, at_least: usize) -> String {
    const FIELD: &str = r#","padding":""#;
    // The page's closing brace is moved after the field: `…]` + FIELD + x… + `"}`.
    let fixed = page.len() + FIELD.len() + 1;
    let filler = at_least.saturating_sub(fixed);
    let mut body = page;
    body.pop();
    body.reserve(FIELD.len() + filler + 2);
    body.push_str(FIELD);
    body.extend(std::iter::repeat_n('x', filler));
    body.push_str("\"}");
    body
}
