//! The sensor's message counter: the `seq` of every signed envelope. It only grows, across
//! restarts and crashes: each number is on disk (written, synced, renamed into place) before a
//! message carrying it is sealed, so a number is never handed out twice and the server can tell
//! an old message from a new one. A crash between the write and the send leaves a gap of one,
//! which the server shows as a missing message: that is the truth (nothing was sent).

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// File name of the counter inside the agent's state directory.
pub const SEQ_FILE: &str = "seq";

/// A persisted, strictly increasing counter.
#[derive(Debug)]
pub struct Sequence {
    path: PathBuf,
    last: Mutex<u64>,
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
        let io = |source| SequenceError::Io {
            path: self.path.display().to_string(),
            source,
        };
        let tmp = self.path.with_extension("tmp");
        let mut f = fs::File::create(&tmp).map_err(io)?;
        writeln!(f, "{n}").and_then(|()| f.sync_all()).map_err(io)?;
        fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            // The rename itself must survive a power cut.
            fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(())
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
        let sub = dir.path().join("state");
        std::fs::create_dir(&sub).expect("mkdir");
        let s = Sequence::open(&sub).expect("open");
        assert_eq!(s.next().expect("next"), 1);
        std::fs::remove_dir_all(&sub).expect("rm");
        assert!(s.next().is_err(), "the directory is gone");
        assert_eq!(s.last(), 1, "the failed number was not used");
        std::fs::create_dir(&sub).expect("mkdir");
        assert_eq!(s.next().expect("next"), 2);
    }
}
