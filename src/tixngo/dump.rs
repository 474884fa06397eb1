//! `--dump-dir`: each response TIXNGO sent, kept as a file for troubleshooting (S-360's
//! `maxLengthDumpedCallsInKbs`), so that a support engineer can replay exactly what the job saw.
//!
//! A dump is two files sharing a name: `tixngo-diff-<time>-<n>.json`, the body of a 200 exactly
//! as received (what `replay` reads), or `….txt` for any other status (a first line naming the
//! status, then the body, so that it can never be replayed as a page); and `….meta`, the status
//! and the request's query (the API key travels in a header and is never in it). Files are
//! created 0600 under a random temporary name in the directory, then renamed; only the newest
//! `keep` dumps stay, and only files named like this program's are ever removed. Dumping never
//! fails a run: a problem is a warning.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::timestamp::Timestamp;

/// The name every dump file starts with; nothing else in the directory is touched.
const PREFIX: &str = "tixngo-diff-";
const META: &str = "meta";
/// The extensions of a dump's files: the body of a 200, the body of any other status, the meta.
const EXTENSIONS: [&str; 3] = ["json", "txt", META];

/// Where responses are dumped, and how many are kept.
#[derive(Debug)]
pub struct Dumps {
    dir: PathBuf,
    keep: usize,
    /// Tells apart the dumps of one process written within the same millisecond.
    sequence: AtomicU32,
}

impl Dumps {
    pub fn new(dir: PathBuf, keep: usize) -> Dumps {
        Dumps {
            dir,
            keep,
            sequence: AtomicU32::new(0),
        }
    }

    /// Keeps one response; a failure is logged, never returned: a dump is worth less than a batch.
    pub fn keep(&self, query: &str, status: u16, body: &[u8]) {
        if let Err(error) = self.write(query, status, body).and_then(|()| self.prune()) {
            log::warn!(
                "the response could not be dumped into {} ({error}); the run goes on",
                self.dir.display()
            );
        }
    }

    fn write(&self, query: &str, status: u16, body: &[u8]) -> io::Result<()> {
        if !self.dir.is_dir() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.dir)?;
        }
        let time = Timestamp::now().to_string().replace([':', '-'], "");
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let stem = format!("{PREFIX}{time}-{}-{sequence:04}", std::process::id());
        let meta = format!("status: {status}\nquery: {query}\n");
        // The meta file last: a dump is listed (and pruned) by its meta file.
        if status == 200 {
            self.create(&format!("{stem}.json"), body)?;
        } else {
            let mut text = format!("# HTTP {status} from TIXNGO: an error answer, not a diff document; its body follows\n").into_bytes();
            text.extend_from_slice(body);
            self.create(&format!("{stem}.txt"), &text)?;
        }
        self.create(&format!("{stem}.{META}"), meta.as_bytes())?;
        log::debug!("response dumped as {}", self.dir.join(&stem).display());
        Ok(())
    }

    /// Writes `name` in the directory: a new file (mode 0600, random name, never through an
    /// existing file or link), then renamed into place.
    fn create(&self, name: &str, contents: &[u8]) -> io::Result<()> {
        let temporary = self
            .dir
            .join(format!(".{name}.{:016x}.tmp", fastrand::u64(..)));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)
            .and_then(|mut file| file.write_all(contents).and_then(|()| file.sync_data()))
            .and_then(|()| fs::rename(&temporary, self.dir.join(name)));
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written
    }

    /// Removes the oldest dumps beyond `keep` (names sort by time).
    fn prune(&self) -> io::Result<()> {
        let mut stems = dump_stems(&self.dir)?;
        stems.sort_unstable();
        let excess = stems.len().saturating_sub(self.keep);
        for stem in &stems[..excess] {
            for extension in EXTENSIONS {
                match fs::remove_file(self.dir.join(format!("{stem}.{extension}"))) {
                    Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// The names (without extension) of the dumps in `dir`, known by their meta files.
fn dump_stems(dir: &Path) -> io::Result<Vec<String>> {
    let mut stems = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let stem = name
            .to_str()
            .and_then(|name| name.strip_suffix(".meta"))
            .filter(|stem| stem.starts_with(PREFIX));
        if let Some(stem) = stem {
            stems.push(stem.to_owned());
        }
    }
    Ok(stems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn keeps_the_newest_dumps_and_leaves_other_files_alone() {
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("dumps");
        let dumps = Dumps::new(dir.clone(), 2);
        for n in 0..4 {
            dumps.keep(&format!("limit={n}"), 200, b"{}");
        }
        fs::write(dir.join("notes.json"), "mine").unwrap();
        dumps.keep("limit=9", 503, b"{\"message\":\"down\"}");
        let names = names(&dir);
        assert_eq!(names.len(), 5, "{names:?}");
        assert!(names.contains(&"notes.json".to_owned()));
        let metas: Vec<String> = names
            .iter()
            .filter(|n| n.ends_with(".meta"))
            .map(|n| fs::read_to_string(dir.join(n)).unwrap())
            .collect();
        assert_eq!(
            metas,
            [
                "status: 200\nquery: limit=3\n",
                "status: 503\nquery: limit=9\n"
            ]
        );
        let error = names.iter().find(|n| n.ends_with(".txt")).unwrap();
        assert!(
            fs::read_to_string(dir.join(error))
                .unwrap()
                .starts_with("# HTTP 503")
        );
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for name in names.iter().filter(|n| n.starts_with(PREFIX)) {
            let mode = fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
    }

    #[test]
    fn a_dump_that_cannot_be_written_is_only_a_warning() {
        let scratch = tempfile::tempdir().unwrap();
        let file = scratch.path().join("a-file");
        fs::write(&file, "").unwrap();
        Dumps::new(file.join("dumps"), 3).keep("limit=1", 200, b"{}");
    }
}
