//! `replay` (S-360 "File to upload"): a saved diff response processed exactly as if TIXNGO had
//! returned it, or, with `--errors`, the raw payloads of the unresolved sync errors re-processed
//! with the current mapping. Either way the stored pagination key is neither read nor written.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use serde_json::value::RawValue;

use crate::cli::{GlobalArgs, ReplayArgs};
use crate::error::Error;
use crate::exit::ExitCode;
use crate::lock::RunLock;
use crate::report::Summary;
use crate::sync::{self, MappingOptions, apply_page, lock_path, open_store, record_failure};
use crate::timestamp::Timestamp;
use crate::tixngo::wire::{self, Page, PageTicket};

/// Runs `replay`; the summary carries the exit code and the error, if any.
pub fn run(global: &GlobalArgs, args: &ReplayArgs, started: Instant) -> Summary {
    let mut summary = Summary {
        command: "replay",
        caught_up: true,
        ..Summary::default()
    };
    let result = replay(global, args, &mut summary);
    sync::finish(summary, result, started)
}

fn replay(
    global: &GlobalArgs,
    args: &ReplayArgs,
    summary: &mut Summary,
) -> Result<ExitCode, Error> {
    let mut mapping = MappingOptions::from_args(&args.mapping)?;
    summary.dry_run = mapping.dry_run;
    let file = match &args.file {
        Some(path) => Some(read_input(path)?),
        None => None,
    };
    let _lock = RunLock::acquire(&lock_path(global))?;
    let mut store = open_store(&global.store, mapping.dry_run)?;
    let started_at = Timestamp::now().to_string();
    mapping.skip.extend(store.skip_list()?);
    let payloads: Vec<Box<RawValue>>;
    let page = match &file {
        Some(body) => wire::read_page(body).map_err(Error::BadData),
        None => {
            (mapping.error_ids, payloads) = error_payloads(&store)?.into_iter().unzip();
            Ok(Page {
                next_page_key: None,
                tickets: payloads.iter().map(|raw| PageTicket::decode(raw)).collect(),
            })
        }
    };
    let counters = page.and_then(|page| {
        if page.next_page_key.is_some() {
            log::info!(
                "the file's pagination key is ignored: replay never reads nor moves the stored key"
            );
        }
        apply_page(&mut store, "replay", &page, None, None, false, &mapping)
    });
    let counters = match counters {
        Ok(counters) => counters,
        Err(error) => {
            if !mapping.dry_run {
                record_failure(&mut store, "replay", &started_at, None, &error);
            }
            return Err(error);
        }
    };
    summary.batches = 1;
    summary.counters = counters;
    Ok(if counters.failed > 0 {
        ExitCode::Partial
    } else {
        ExitCode::Success
    })
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
