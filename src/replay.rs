//! `replay` (S-360 "File to upload"): a saved diff response processed exactly as if TIXNGO had
//! returned it, or, with `--errors`, the raw payloads of the unresolved sync errors re-processed
//! with the current mapping. Either way the stored pagination key is neither read nor written.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::thread::Scope;
use std::time::Instant;

use serde_json::value::RawValue;

use crate::engine::{self, Incoming, apply_page, open_locked, record_failure};
use crate::error::Error;
use crate::exit::ExitCode;
use crate::feedback::sentinel::RunNotes;
use crate::report::{Replayed, Summary};
use crate::settings::{ReplaySettings, StoreLocation};
use crate::store::KeyCommit;
use crate::timestamp::Timestamp;
use crate::tixngo::wire::{self, PageTicket};

/// Runs `replay`; the summary carries the exit code and the error, if any.
pub fn run(location: &StoreLocation, settings: ReplaySettings, started: Instant) -> Summary {
    let mut summary = Summary {
        dry_run: settings.mapping.dry_run,
        ..summary()
    };
    let result = replay(location, settings, &mut summary);
    engine::finish(summary, result, started)
}

/// The summary of a `replay` whose settings were refused.
pub fn refused(error: Error, started: Instant) -> Summary {
    engine::finish(summary(), Err(error), started)
}

/// A replay's summary before it starts.
fn summary() -> Summary {
    Summary {
        command: "replay",
        caught_up: true,
        ..Summary::default()
    }
}

fn replay(
    location: &StoreLocation,
    settings: ReplaySettings,
    summary: &mut Summary,
) -> Result<ExitCode, Error> {
    let ReplaySettings { input, mut mapping } = settings;
    summary.replayed = Some(match &input {
        Some(_) => Replayed::File { next_key: None },
        None => Replayed::Errors,
    });
    let file = match &input {
        Some(path) => Some(read_input(path)?),
        None => None,
    };
    std::thread::scope(|scope| {
        // The file is decoded on another thread from now on: its first tickets are mapped while
        // the rest is still being decoded.
        let streamed = file.as_deref().map(|body| TicketStream::start(scope, body));
        let mut store = open_locked(location, mapping.dry_run, None)?;
        let started_at = Timestamp::now().to_string();
        mapping.skip.extend(store.skip_list()?);
        let keys = &KeyCommit::UNTOUCHED;
        let mut notes = RunNotes::new(mapping.dry_run);
        let applied = match streamed {
            Some(mut stream) => {
                let tickets = stream.by_ref().map(|ticket| ticket.map(Incoming::from));
                let applied = apply_page(&mut store, "replay", tickets, keys, &mapping, &mut notes);
                let next_key = stream.next_key.take();
                summary.replayed = Some(Replayed::File { next_key });
                applied.map_err(|error| stream.document_error().unwrap_or(error))
            }
            None => {
                let payloads = error_payloads(&store)?;
                let tickets = payloads.iter().map(|(id, raw)| {
                    Ok(Incoming {
                        ticket: PageTicket::decode(raw),
                        error_id: Some(*id),
                    })
                });
                apply_page(&mut store, "replay", tickets, keys, &mapping, &mut notes)
            }
        };
        notes.report(summary);
        let counters = applied.inspect_err(|error| {
            if !mapping.dry_run {
                record_failure(&mut store, "replay", &started_at, None, error);
            }
        })?;
        summary.batches = 1;
        summary.counters = counters;
        Ok(engine::exit_code(&counters))
    })
}

/// Tickets decoded per message from the reading thread, and messages it may run ahead: enough to
/// keep both threads busy, little enough that a large file is never held decoded all at once.
const CHUNK: usize = 256;
const CHUNKS_AHEAD: usize = 4;

/// What the reading thread sends: tickets in file order, then how the document ended.
enum Streamed<'a> {
    Tickets(Vec<PageTicket<'a>>),
    End(Result<Option<String>, String>),
}

/// The tickets of a replay file, decoded on another thread as they are mapped. A document found
/// bad after some of its tickets were mapped ends the stream with the error (65), so the batch is
/// rolled back exactly as if the file had been refused up front.
struct TicketStream<'a> {
    receiver: mpsc::Receiver<Streamed<'a>>,
    chunk: std::vec::IntoIter<PageTicket<'a>>,
    ended: bool,
    /// The file's `nextPageKey`, once the document was read to its end: shown, never used.
    next_key: Option<String>,
}

impl<'a> TicketStream<'a> {
    fn start<'scope>(scope: &'scope Scope<'scope, '_>, body: &'a [u8]) -> TicketStream<'a>
    where
        'a: 'scope,
    {
        let (sender, receiver) = mpsc::sync_channel(CHUNKS_AHEAD);
        scope.spawn(move || {
            let mut chunk = Vec::with_capacity(CHUNK);
            // A failed send means the mapping side has stopped: so does the reading.
            let outcome = wire::stream_page(body, &mut |ticket| {
                chunk.push(ticket);
                chunk.len() < CHUNK
                    || sender
                        .send(Streamed::Tickets(std::mem::replace(
                            &mut chunk,
                            Vec::with_capacity(CHUNK),
                        )))
                        .is_ok()
            });
            let _ = sender
                .send(Streamed::Tickets(chunk))
                .and_then(|()| sender.send(Streamed::End(outcome)));
        });
        TicketStream {
            receiver,
            chunk: Vec::new().into_iter(),
            ended: false,
            next_key: None,
        }
    }
}

impl TicketStream<'_> {
    /// After the batch failed before the end of the file: whether the rest of the document is bad
    /// too. SPEC §3 names the first problem in the order parse (65) before write (74), so a bad
    /// document is what a replay reports, however far into it the store failed.
    fn document_error(mut self) -> Option<Error> {
        if self.ended {
            return None;
        }
        self.find_map(Result::err)
    }
}

impl<'a> Iterator for TicketStream<'a> {
    type Item = Result<PageTicket<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.ended {
            if let Some(ticket) = self.chunk.next() {
                return Some(Ok(ticket));
            }
            let end = match self.receiver.recv() {
                Ok(Streamed::Tickets(chunk)) => {
                    self.chunk = chunk.into_iter();
                    continue;
                }
                Ok(Streamed::End(Ok(next_page_key))) => {
                    if next_page_key.is_some() {
                        log::info!(
                            "the file's pagination key is ignored: replay never reads nor moves the stored key"
                        );
                    }
                    self.next_key = next_page_key;
                    None
                }
                Ok(Streamed::End(Err(reason))) => Some(Err(Error::BadData(reason))),
                Err(mpsc::RecvError) => Some(Err(Error::Internal(
                    "the reading of the replay file ended without a result".into(),
                ))),
            };
            self.ended = true;
            return end;
        }
        None
    }
}

/// The ids and raw payloads of the unresolved sync errors; one that is not JSON (edited by hand)
/// is left.
fn error_payloads(store: &crate::store::Store) -> Result<Vec<(i64, Box<RawValue>)>, Error> {
    Ok(store
        .unresolved_payloads()?
        .into_iter()
        .filter_map(|(id, payload)| match RawValue::from_string(payload) {
            Ok(raw) => Some((id, raw)),
            Err(e) => {
                log::warn!(
                    "an unresolved sync error holds a payload that is not JSON ({e}); left as it is"
                );
                None
            }
        })
        .collect())
}

/// Reads the whole file, or stdin for `-`. A file that cannot be read is a usage error: the
/// operator named it.
fn read_input(path: &Path) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    let read = if path.as_os_str() == "-" {
        std::io::stdin().lock().read_to_end(&mut body)
    } else {
        std::fs::File::open(path).and_then(|mut file| file.read_to_end(&mut body))
    };
    read.map_err(|e| Error::Usage(format!("cannot read {}: {e}", path.display())))?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feedback::Ticket;

    /// A stream fed with `messages`, whose reading side is gone once they are sent.
    fn stream(messages: Vec<Streamed<'static>>) -> TicketStream<'static> {
        let (sender, receiver) = mpsc::sync_channel(messages.len());
        for message in messages {
            sender.send(message).unwrap();
        }
        TicketStream {
            receiver,
            chunk: Vec::new().into_iter(),
            ended: false,
            next_key: None,
        }
    }

    fn ticket(number: &str) -> PageTicket<'static> {
        PageTicket::Decoded(Ticket {
            ticket_number: number.into(),
            ..Ticket::default()
        })
    }

    fn numbers(tickets: &[Result<PageTicket<'_>, Error>]) -> Vec<String> {
        tickets
            .iter()
            .map(|ticket| match ticket {
                Ok(PageTicket::Decoded(ticket)) => ticket.ticket_number.clone(),
                Ok(PageTicket::Unmappable { .. }) => "unmappable".into(),
                Err(error) => format!("error {}", error.exit_code().code()),
            })
            .collect()
    }

    #[test]
    fn a_read_document_ends_the_stream_after_every_chunk() {
        let mut tickets = stream(vec![
            Streamed::Tickets(vec![ticket("T-1"), ticket("T-2")]),
            Streamed::Tickets(Vec::new()),
            Streamed::Tickets(vec![ticket("T-3")]),
            Streamed::End(Ok(Some("key".into()))),
        ]);
        assert_eq!(
            numbers(&tickets.by_ref().collect::<Vec<_>>()),
            ["T-1", "T-2", "T-3"]
        );
        assert!(tickets.next().is_none(), "and stays ended");
    }

    #[test]
    fn a_document_found_bad_after_its_first_tickets_ends_in_bad_data_65() {
        let tickets = stream(vec![
            Streamed::Tickets(vec![ticket("T-1")]),
            Streamed::End(Err("the document is not a valid diff document".into())),
        ]);
        assert_eq!(numbers(&tickets.collect::<Vec<_>>()), ["T-1", "error 65"]);
    }

    #[test]
    fn a_reader_gone_without_an_end_is_a_bug_70_never_the_end_of_the_file() {
        // Were it read as the end, the tickets so far would be committed as the whole file.
        let tickets = stream(vec![Streamed::Tickets(vec![ticket("T-1")])]);
        assert_eq!(numbers(&tickets.collect::<Vec<_>>()), ["T-1", "error 70"]);
    }
}
