//! The sensor's message counter: the `seq` of every signed envelope. It only grows, across
//! restarts and crashes: each number is on disk (written and synced) before a message carrying
//! it is sealed, so a number is never handed out twice and the server can tell an old message
//! from a new one. A crash between the write and the send leaves a gap of one, which the server
//! shows as a missing message: that is the truth (nothing was sent).
//!
//! The number is written in place, 21 bytes at the start of the file (20 digits and a newline,
//! inside one disk sector), into blocks the file already has: a full disk cannot stop the
//! counter, so it cannot stop an event from being sealed (the outbox then holds it in memory).
//! Only making the file, the first time, needs space.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// File name of the counter inside the agent's state directory.
pub const SEQ_FILE: &str = "seq";

/// A persisted, strictly increasing counter.
#[derive(Debug)]
pub struct Sequence {
    path: PathBuf,
    last: Mutex<u64>,
    /// The counter file, open once.
    file: Mutex<Option<fs::File>>,
}

/// What went wrong with the counter file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceError {
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds something other than a number.
    #[error(
        "{path}: not a sequence number ({what}); the counter must never go back, so it is not reset: check the file"
    )]
    Corrupt {
        /// The file.
        path: String,
        /// What was found.
        what: String,
    },
    /// The counter reached its end (never in practice: 2^64 messages).
    #[error("the sequence counter is exhausted")]
    Exhausted,
}

impl Sequence {
    /// Opens the counter in `dir` (0 when there is none yet: the first message is 1).
    ///
    /// # Errors
    /// An unreadable or corrupt file: the counter is never silently reset.
    pub fn open(dir: &Path) -> Result<Self, SequenceError> {
        let path = dir.join(SEQ_FILE);
        let shown = path.display().to_string();
        let last = match fs::read_to_string(&path) {
            Ok(text) => text
                .trim()
                .parse::<u64>()
                .map_err(|e| SequenceError::Corrupt {
                    path: shown,
                    what: e.to_string(),
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => {
                return Err(SequenceError::Io {
                    path: shown,
                    source,
                });
            }
        };
        Ok(Self {
            path,
            last: Mutex::new(last),
            file: Mutex::new(None),
        })
    }

    /// The last number handed out (0 before the first).
    #[must_use]
    pub fn last(&self) -> u64 {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next number, on disk before it is returned.
    ///
    /// # Errors
    /// When it cannot be stored: the number is then not used, and the counter is unchanged.
    pub fn next(&self) -> Result<u64, SequenceError> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = last.checked_add(1).ok_or(SequenceError::Exhausted)?;
        self.store(n)?;
        *last = n;
        Ok(n)
    }

    fn store(&self, n: u64) -> Result<(), SequenceError> {
        use std::os::unix::fs::FileExt as _;
        let io = |source| SequenceError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if file.is_none() {
            let existed = self.path.exists();
            let f = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)
                .map_err(io)?;
            if !existed {
                // The file's blocks, allocated once, then only ever overwritten.
                f.write_all_at(format!("{:020}\n", 0).as_bytes(), 0)
                    .and_then(|()| f.sync_all())
                    .map_err(io)?;
                if let Some(dir) = self.path.parent() {
                    // The new file's name must survive a power cut.
                    fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
                }
            }
            *file = Some(f);
        }
        let Some(f) = file.as_ref() else {
            return Ok(());
        };
        f.write_all_at(format!("{n:020}\n").as_bytes(), 0)
            .and_then(|()| f.sync_data())
            .map_err(|e| {
                // Reopen next time: the handle may be what failed.
                let err = io(e);
                *file = None;
                err
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_only_grow_across_reopening() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Sequence::open(dir.path()).expect("open");
        assert_eq!(s.last(), 0);
        let a: Vec<u64> = (0..5).map(|_| s.next().expect("next")).collect();
        assert_eq!(a, [1, 2, 3, 4, 5]);
        drop(s);
        let s = Sequence::open(dir.path()).expect("reopen");
        assert_eq!(s.last(), 5);
        assert_eq!(s.next().expect("next"), 6, "no number is handed out twice");
    }

    #[test]
    fn a_corrupt_counter_is_an_error_not_a_reset() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(SEQ_FILE), "12x\n").expect("write");
        let e = Sequence::open(dir.path()).expect_err("corrupt");
        assert!(e.to_string().contains("not a sequence number"), "{e}");
    }

    #[test]
    fn a_counter_that_cannot_be_stored_hands_out_nothing() {
        let dir = tempfile::tempdir().expect("tmp");
        // A directory where the counter file should be: it cannot be opened for writing.
        std::fs::create_dir(dir.path().join(SEQ_FILE)).expect("mkdir");
        let s = Sequence {
            path: dir.path().join(SEQ_FILE),
            last: Mutex::new(0),
            file: Mutex::new(None),
        };
        assert!(s.next().is_err(), "the counter cannot be stored");
        assert_eq!(s.last(), 0, "the failed number was not used");
        std::fs::remove_dir(dir.path().join(SEQ_FILE)).expect("rmdir");
        assert_eq!(s.next().expect("next"), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join(SEQ_FILE)).expect("file"),
            "00000000000000000001\n"
        );
    }

    #[test]
    fn a_counter_written_by_an_earlier_version_reads_and_grows() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join(SEQ_FILE), "41\n").expect("write");
        let s = Sequence::open(dir.path()).expect("open");
        assert_eq!(s.next().expect("next"), 42);
        drop(s);
        assert_eq!(Sequence::open(dir.path()).expect("reopen").last(), 42);
    }
}
