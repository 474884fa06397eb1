//! The run lock (SPEC §5): one writer per store, ever. An exclusive `flock` on the lock file
//! (std's `File::try_lock`), so `flock -n <store>.lock …` in a shell and this program exclude each
//! other, and the kernel releases it when the process dies: no stale lock survives a crash.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::error::Error;

/// How long a writer keeps trying before giving up, so that `status`'s momentary shared probe
/// never makes a run fail.
const ACQUIRE_PATIENCE: Duration = Duration::from_millis(500);
const RETRY_EVERY: Duration = Duration::from_millis(25);

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub(crate) struct RunLock {
    file: File,
    /// Whether this run wrote its pid into the file (it was empty or held a pid).
    wrote_pid: bool,
}

/// The width of the pid record: `u32::MAX` has 10 digits, then a newline. Always this many bytes
/// at offset 0, so a shorter pid overwrites a longer one without truncating the file.
const PID_RECORD: usize = 11;

impl Drop for RunLock {
    /// Blanks this run's pid while still holding the lock, so that a later holder that does not
    /// write its pid (`flock -n <store>.lock …` in a shell) is not reported with this process's
    /// pid, which the system may since have given to an unrelated process. The file keeps its
    /// length: it is never emptied.
    fn drop(&mut self) {
        if self.wrote_pid {
            let _ = self.file.write_all_at(&[b' '; PID_RECORD], 0);
        }
    }
}

/// What a probe of the lock found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LockState {
    pub held: bool,
    /// The holder's pid, as it wrote it into the lock file.
    pub pid: Option<u32>,
}

impl RunLock {
    /// Takes the lock, or fails with [`Error::LockHeld`] naming the holder's pid. The file is
    /// opened without truncating it and without following a link; the holder writes its pid into
    /// it only when it is empty or holds a pid, so a lock file named after some other file never
    /// loses a byte of it.
    pub(crate) fn acquire(path: &Path) -> Result<RunLock, Error> {
        let file_error = |source| Error::LockFile {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| open_error(path, e))?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if started.elapsed() < ACQUIRE_PATIENCE => {
                    sleep(RETRY_EVERY)
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::LockHeld {
                        path: path.to_owned(),
                        pid: read_pid(&mut file),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(file_error(e)),
            }
        }
        let wrote_pid = holds_a_pid_or_nothing(&file).map_err(file_error)?;
        if wrote_pid {
            let record = format!("{:<width$}\n", std::process::id(), width = PID_RECORD - 1);
            file.write_all_at(record.as_bytes(), 0)
                .map_err(file_error)?;
        } else {
            log::warn!(
                "the lock file {} holds something other than a pid: locked without writing to it",
                path.display()
            );
        }
        Ok(RunLock { file, wrote_pid })
    }

    /// Whether a run holds the lock now, with a shared lock taken and released at once. A missing
    /// lock file means nobody holds it; nothing is created.
    pub(crate) fn probe(path: &Path) -> Result<LockState, Error> {
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path);
        let mut file = match opened {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(LockState {
                    held: false,
                    pid: None,
                });
            }
            Err(source) => return Err(open_error(path, source)),
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                Ok(LockState {
                    held: false,
                    pid: None,
                })
            }
            Err(TryLockError::WouldBlock) => Ok(LockState {
                held: true,
                pid: read_pid(&mut file),
            }),
            Err(TryLockError::Error(source)) => Err(Error::LockFile {
                path: path.to_owned(),
                source,
            }),
        }
    }
}

/// The lock file next to a store: `<store>.lock`.
pub(crate) fn default_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// A link where the lock file should be is a configuration error: following it would lock, and
/// write a pid into, whatever it points at.
fn open_error(path: &Path, source: std::io::Error) -> Error {
    if source.raw_os_error() == Some(libc::ELOOP) {
        Error::Config(format!(
            "the lock file {} is a symbolic link, which is never followed: remove it or point --lock-file at a regular file",
            path.display()
        ))
    } else {
        Error::LockFile {
            path: path.to_owned(),
            source,
        }
    }
}

/// Whether the lock file is empty or holds nothing but a pid (written by an earlier run), and may
/// take this run's.
fn holds_a_pid_or_nothing(file: &File) -> std::io::Result<bool> {
    let metadata = file.metadata()?;
    if !metadata.is_file() || metadata.len() > PID_RECORD as u64 {
        return Ok(false);
    }
    let mut text = vec![0; metadata.len() as usize];
    file.read_exact_at(&mut text, 0)?;
    Ok(text
        .iter()
        .all(|b| b.is_ascii_digit() || b.is_ascii_whitespace()))
}

fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    // A run killed with SIGKILL leaves its pid behind; a holder that writes none (flock(1))
    // must not be reported with it.
    Path::new("/proc")
        .join(pid.to_string())
        .exists()
        .then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_acquire_fails_naming_the_pid_and_a_drop_releases() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.lock");
        let held = RunLock::acquire(&path).unwrap();
        let started = Instant::now();
        match RunLock::acquire(&path) {
            Err(Error::LockHeld { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected LockHeld, got {other:?}"),
        }
        assert!(started.elapsed() >= ACQUIRE_PATIENCE);
        assert_eq!(
            RunLock::probe(&path).unwrap(),
            LockState {
                held: true,
                pid: Some(std::process::id())
            }
        );
        drop(held);
        assert!(!RunLock::probe(&path).unwrap().held);
        RunLock::acquire(&path).unwrap();
    }

    #[test]
    fn the_pid_of_a_dead_process_is_not_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.lock");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        // What a run killed with SIGKILL leaves behind, now held by a holder that writes no pid.
        std::fs::write(&path, format!("{dead}\n")).unwrap();
        let holder = File::open(&path).unwrap();
        holder.lock().unwrap();
        assert_eq!(
            RunLock::probe(&path).unwrap(),
            LockState {
                held: true,
                pid: None
            }
        );
        match RunLock::acquire(&path) {
            Err(Error::LockHeld { pid, .. }) => assert_eq!(pid, None),
            other => panic!("expected LockHeld, got {other:?}"),
        }
    }

    #[test]
    fn the_pid_record_overwrites_a_longer_pid_and_is_blanked_never_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db.lock");
        std::fs::write(&path, "4294967295\n").unwrap();
        let held = RunLock::acquire(&path).unwrap();
        let record = std::fs::read_to_string(&path).unwrap();
        assert_eq!(record.len(), PID_RECORD);
        assert_eq!(record.trim(), std::process::id().to_string());
        drop(held);
        assert_eq!(std::fs::read(&path).unwrap(), [b' '; PID_RECORD]);
        for other in ["12 monkeys", "a note\n", "123456789012"] {
            std::fs::write(&path, other).unwrap();
            drop(RunLock::acquire(&path).unwrap());
            assert_eq!(std::fs::read_to_string(&path).unwrap(), other);
        }
    }

    #[test]
    fn probe_of_a_missing_file_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("none.lock");
        assert!(!RunLock::probe(&path).unwrap().held);
        assert!(!path.exists());
    }

    #[test]
    fn default_path_appends_lock() {
        assert_eq!(
            default_path(Path::new("/x/t.db")),
            Path::new("/x/t.db.lock")
        );
    }
}
