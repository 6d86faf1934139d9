//! The persistent outbox: every event is a file on disk until the server's commit receipt for it
//! arrives (a broker's acknowledgement is not enough: brokers lose what they queue when they
//! crash), so events survive broker outages, server crashes and agent restarts. Files are
//! written to a temporary name, synced and renamed, so a crash never leaves half an event. An
//! event the server refuses for good moves to `rejected/` beside a note of the reason.
//!
//! Bounded: with `max_events` waiting, a new event first drops the oldest gap *update* (a later
//! update or close of the same gap carries the current state), and only when no update is
//! waiting the oldest event of any kind. Drops are counted and reported in the status.
//!
//! A disk that cannot be written (full, or failing) does not lose events while the link is up:
//! an event that cannot be written is held in memory ([`MEMORY_EVENTS`] at most) and sent like
//! any other, and it leaves memory on its receipt; once the disk takes writes again the held
//! events are written to it. Only an event that fits neither is dropped, and counted. Each
//! episode is logged once, when it starts (with its cause) and when it ends (with its counts),
//! not once per event.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One waiting message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Topic.
    pub topic: String,
    /// JSON payload.
    pub payload: String,
}

/// Largest outbox file read back, bytes (an envelope is at most 64 KiB and a little; JSON
/// escaping can double it).
pub const MAX_ENTRY_BYTES: usize = 4 * protocol::signed::MAX_SIGNED_BYTES;

impl Entry {
    /// Reads an outbox file's bytes.
    ///
    /// # Errors
    /// A sentence saying what is wrong: too large, not JSON, not an entry, or a topic or payload
    /// that is no Centinela message's.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_ENTRY_BYTES {
            return Err(format!(
                "{} bytes is over the {MAX_ENTRY_BYTES}-byte limit",
                bytes.len()
            ));
        }
        let e: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if e.payload.len() > protocol::signed::MAX_SIGNED_BYTES {
            return Err(format!(
                "payload of {} bytes is over the {}-byte limit",
                e.payload.len(),
                protocol::signed::MAX_SIGNED_BYTES
            ));
        }
        protocol::parse_topic(&e.topic).map_err(|err| err.to_string())?;
        Ok(e)
    }
}

/// Most events held in memory while the disk cannot be written.
pub const MEMORY_EVENTS: usize = 10_000;

#[derive(Debug)]
struct State {
    next_seq: u64,
    /// seq → droppable (a gap update), for events on disk.
    index: BTreeMap<u64, bool>,
    /// Events that could not be written to disk: seq → (droppable, entry).
    memory: BTreeMap<u64, (bool, Entry)>,
    dropped: u64,
    rejected: u64,
    /// Events written to memory instead of disk, since open.
    unwritten: u64,
    /// The current episode of a disk that cannot be written: events held and dropped in it.
    episode: Option<Episode>,
}

#[derive(Debug, Default)]
struct Episode {
    held: u64,
    dropped: u64,
    said_full: bool,
}

/// The outbox directory.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    max_events: usize,
    /// Most events held in memory while the disk cannot be written.
    max_memory: usize,
    state: Mutex<State>,
}

/// Errors of the outbox.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// A file operation failed.
    #[error("outbox {path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> OutboxError + '_ {
    move |source| OutboxError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parse_name(name: &str) -> Option<(u64, bool)> {
    let stem = name.strip_suffix(".json")?;
    let (seq, tag) = stem.split_once('-')?;
    Some((seq.parse().ok()?, tag == "u"))
}

fn read_entry(path: &Path) -> Result<Entry, String> {
    let len = fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_ENTRY_BYTES as u64 {
        return Err(format!(
            "{len} bytes is over the {MAX_ENTRY_BYTES}-byte limit"
        ));
    }
    let bytes = fs::read(path).map_err(|e| e.to_string())?;
    Entry::from_bytes(&bytes)
}

impl Outbox {
    /// Opens (creating) the directory and indexes what is waiting from a previous run. Files
    /// that are not outbox entries are moved to `quarantine/` with a warning.
    ///
    /// # Errors
    /// The directory cannot be created or read.
    pub fn open(dir: &Path, max_events: usize) -> Result<Self, OutboxError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let mut index = BTreeMap::new();
        for e in fs::read_dir(dir).map_err(io(dir))? {
            let e = e.map_err(io(dir))?;
            let name = e.file_name().to_string_lossy().to_string();
            if e.path().is_dir() {
                continue;
            }
            if name.ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
                continue;
            }
            let valid = parse_name(&name).filter(|_| read_entry(&e.path()).is_ok());
            match valid {
                Some((seq, droppable)) => {
                    index.insert(seq, droppable);
                }
                None => {
                    let q = dir.join("quarantine");
                    let _ = fs::create_dir_all(&q);
                    let why = read_entry(&e.path())
                        .err()
                        .unwrap_or_else(|| "not an outbox file name".into());
                    tracing::warn!(
                        "outbox {}: `{name}` is not an outbox entry ({why}); moved to quarantine/",
                        dir.display()
                    );
                    let _ = fs::rename(e.path(), q.join(&name));
                }
            }
        }
        let next_seq = index.keys().next_back().map_or(0, |s| s + 1);
        if !index.is_empty() {
            tracing::info!(
                "outbox {}: {} event(s) waiting from a previous run",
                dir.display(),
                index.len()
            );
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            max_events: max_events.max(1),
            max_memory: MEMORY_EVENTS,
            state: Mutex::new(State {
                next_seq,
                index,
                memory: BTreeMap::new(),
                dropped: 0,
                rejected: 0,
                unwritten: 0,
                episode: None,
            }),
        })
    }

    /// The same outbox, holding at most `n` events in memory while its disk cannot be written
    /// (default [`MEMORY_EVENTS`]).
    #[must_use]
    pub fn with_memory_limit(mut self, n: usize) -> Self {
        self.max_memory = n;
        self
    }

    fn path(&self, seq: u64, droppable: bool) -> PathBuf {
        self.dir.join(format!(
            "{seq:016}-{}.json",
            if droppable { "u" } else { "e" }
        ))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a message; `droppable` marks a gap update. Returns its sequence number.
    ///
    /// An event that cannot be written to disk is held in memory instead (see the module's
    /// documentation); the disk's error is returned only when it could not be held either, and
    /// the event is then dropped and counted.
    ///
    /// # Errors
    /// Writing the file failed and memory is full: the event is not accepted.
    pub fn push(&self, entry: &Entry, droppable: bool) -> Result<u64, OutboxError> {
        let mut st = self.lock();
        while st.index.len() + st.memory.len() >= self.max_events {
            let victim = st
                .index
                .iter()
                .chain(st.memory.iter().map(|(s, (d, _))| (s, d)))
                .filter(|&(_, &d)| d)
                .map(|(&s, _)| s)
                .min()
                .or_else(|| {
                    let disk = st.index.keys().next().copied();
                    let mem = st.memory.keys().next().copied();
                    disk.into_iter().chain(mem).min()
                });
            let Some(seq) = victim else { break };
            self.forget(&mut st, seq);
            st.dropped += 1;
            tracing::warn!(
                "outbox full ({} events): dropped event {seq}",
                self.max_events
            );
        }
        let seq = st.next_seq;
        match self.write(seq, entry, droppable) {
            Ok(()) => {
                st.next_seq += 1;
                st.index.insert(seq, droppable);
                self.spill(&mut st);
                Ok(seq)
            }
            Err(e) => {
                if st.episode.is_none() {
                    tracing::error!(
                        "{e}: the disk cannot be written; events are held in memory (at most {}) and sent as usual until their receipts come; they are lost only if the agent stops before that",
                        self.max_memory
                    );
                }
                let room = st.memory.len() < self.max_memory;
                let ep = st.episode.get_or_insert_with(Episode::default);
                if room {
                    ep.held += 1;
                    st.unwritten += 1;
                    st.next_seq += 1;
                    st.memory.insert(seq, (droppable, entry.clone()));
                    return Ok(seq);
                }
                ep.dropped += 1;
                if !ep.said_full {
                    ep.said_full = true;
                    tracing::error!(
                        "outbox {}: the disk cannot be written and {} events already wait in memory: new events are dropped (counted in the status as outbox_dropped) until the disk or the link frees room",
                        self.dir.display(),
                        self.max_memory
                    );
                }
                st.dropped += 1;
                Err(e)
            }
        }
    }

    /// Writes one entry's file (temporary name, synced, renamed).
    fn write(&self, seq: u64, entry: &Entry, droppable: bool) -> Result<(), OutboxError> {
        let path = self.path(seq, droppable);
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(entry).unwrap_or_default();
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_data()?;
            fs::rename(&tmp, &path)?;
            Ok(())
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io(&path)(e)
        })
    }

    /// The disk takes writes again: what waits in memory goes to disk (oldest first), and the
    /// episode, if one ran, is said to be over.
    fn spill(&self, st: &mut State) {
        while let Some((&seq, (d, e))) = st.memory.iter().next() {
            if self.write(seq, e, *d).is_err() {
                return;
            }
            let d = *d;
            st.memory.remove(&seq);
            st.index.insert(seq, d);
        }
        if let Some(ep) = st.episode.take() {
            tracing::warn!(
                "outbox {}: the disk takes writes again; {} event(s) were held in memory meanwhile (those still waiting are now on disk), {} dropped",
                self.dir.display(),
                ep.held,
                ep.dropped
            );
        }
    }

    /// Removes `seq` wherever it waits (and its file).
    fn forget(&self, st: &mut State, seq: u64) -> Option<bool> {
        if let Some(d) = st.index.remove(&seq) {
            let _ = fs::remove_file(self.path(seq, d));
            return Some(d);
        }
        st.memory.remove(&seq).map(|(d, _)| d)
    }

    /// A waiting message by its sequence number (`None` once confirmed or dropped).
    #[must_use]
    pub fn get(&self, seq: u64) -> Option<Entry> {
        let d = {
            let st = self.lock();
            if let Some((_, e)) = st.memory.get(&seq) {
                return Some(e.clone());
            }
            *st.index.get(&seq)?
        };
        read_entry(&self.path(seq, d)).ok()
    }

    /// The server refused the message for good: move it to `rejected/` with a note of why, for
    /// a technician to look at. It is not sent again.
    pub fn reject(&self, seq: u64, reason: &str) {
        let mut st = self.lock();
        if let Some((_, e)) = st.memory.remove(&seq) {
            st.rejected += 1;
            tracing::warn!(
                "outbox {}: event {seq} refused for good, held in memory (the disk cannot be written): {reason}; its payload: {}",
                self.dir.display(),
                e.payload
            );
            return;
        }
        let Some(d) = st.index.remove(&seq) else {
            return;
        };
        st.rejected += 1;
        let p = self.path(seq, d);
        let dir = self.dir.join("rejected");
        let moved = fs::create_dir_all(&dir).and_then(|()| {
            let name = p.file_name().unwrap_or_default();
            fs::rename(&p, dir.join(name))?;
            fs::write(
                dir.join(name).with_extension("reason.txt"),
                format!("{reason}\n"),
            )
        });
        if let Err(e) = moved {
            tracing::warn!("outbox {}: moving to rejected/: {e}", p.display());
            let _ = fs::remove_file(&p);
        }
    }

    /// Messages the server refused for good, since open.
    #[must_use]
    pub fn rejected(&self) -> u64 {
        self.lock().rejected
    }

    /// The server has committed the message: forget it.
    pub fn ack(&self, seq: u64) {
        let mut st = self.lock();
        if st.memory.remove(&seq).is_some() {
            return;
        }
        if let Some(d) = st.index.remove(&seq) {
            let p = self.path(seq, d);
            if let Err(e) = fs::remove_file(&p) {
                tracing::warn!("outbox {}: {e}", p.display());
            }
        }
    }

    /// Up to `n` waiting messages with sequence numbers above `after`, oldest first.
    #[must_use]
    pub fn next_after(&self, after: Option<u64>, n: usize) -> Vec<(u64, Entry)> {
        // (seq, on disk as droppable, or the entry held in memory)
        let seqs: Vec<(u64, Result<bool, Entry>)> = {
            let st = self.lock();
            let from = after.map_or(0, |a| a + 1);
            let mut v: Vec<(u64, Result<bool, Entry>)> = st
                .index
                .range(from..)
                .take(n)
                .map(|(&s, &d)| (s, Ok(d)))
                .chain(
                    st.memory
                        .range(from..)
                        .take(n)
                        .map(|(&s, (_, e))| (s, Err(e.clone()))),
                )
                .collect();
            v.sort_by_key(|(s, _)| *s);
            v.truncate(n);
            v
        };
        let mut out = Vec::with_capacity(seqs.len());
        for (s, where_) in seqs {
            match where_ {
                Err(e) => out.push((s, e)),
                Ok(d) => {
                    if let Ok(e) = read_entry(&self.path(s, d)) {
                        out.push((s, e));
                    }
                    // Otherwise dropped or confirmed meanwhile.
                }
            }
        }
        out
    }

    /// Messages waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        let st = self.lock();
        st.index.len() + st.memory.len()
    }

    /// Events held in memory now, because the disk could not be written.
    #[must_use]
    pub fn in_memory(&self) -> usize {
        self.lock().memory.len()
    }

    /// Events written to memory instead of disk, since open.
    #[must_use]
    pub fn unwritten(&self) -> u64 {
        self.lock().unwritten
    }

    /// Counts an event lost before it reached the outbox (it could not be sealed).
    pub fn count_lost(&self) {
        self.lock().dropped += 1;
    }

    /// Whether nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages dropped since open: the outbox was full, or a message could be neither written
    /// nor held in memory, or not sealed ([`Outbox::count_lost`]).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(n: u32) -> Entry {
        Entry {
            topic: "centinela/v1/f/s/gap".into(),
            payload: format!("{{\"n\":{n}}}"),
        }
    }

    #[test]
    fn survives_reopen_and_forgets_acknowledged() {
        let dir = tempfile::tempdir().expect("dir");
        let ob = Outbox::open(dir.path(), 100).expect("open");
        let a = ob.push(&e(1), false).expect("push");
        let b = ob.push(&e(2), true).expect("push");
        ob.ack(a);
        drop(ob);
        std::fs::write(dir.path().join("junk.txt"), "x").expect("junk");
        let ob = Outbox::open(dir.path(), 100).expect("reopen");
        let waiting = ob.next_after(None, 10);
        assert_eq!(waiting, vec![(b, e(2))]);
        assert!(dir.path().join("quarantine/junk.txt").exists());
        let c = ob.push(&e(3), false).expect("push");
        assert!(c > b, "sequence continues after a restart");
    }

    #[test]
    fn refused_entries_move_aside_with_their_reason() {
        let dir = tempfile::tempdir().expect("dir");
        let ob = Outbox::open(dir.path(), 10).expect("open");
        let a = ob.push(&e(1), false).expect("push");
        assert_eq!(ob.get(a), Some(e(1)));
        ob.reject(a, "observed_at is 200 days old");
        assert_eq!(ob.get(a), None);
        assert!(ob.is_empty());
        assert_eq!(ob.rejected(), 1);
        let moved: Vec<_> = std::fs::read_dir(dir.path().join("rejected"))
            .expect("rejected/")
            .filter_map(Result::ok)
            .map(|f| f.file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(moved.len(), 2, "{moved:?}");
        drop(ob);
        let ob = Outbox::open(dir.path(), 10).expect("reopen");
        assert!(
            ob.is_empty(),
            "a refused event is not sent again after a restart"
        );
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        assert!(Entry::from_bytes(b"{").is_err());
        assert!(Entry::from_bytes(br#"{"topic":"x","payload":"{}"}"#).is_err());
        assert!(
            Entry::from_bytes(br#"{"topic":"centinela/v1/f/s/gap","payload":"{}","x":1}"#).is_err()
        );
        let big = vec![b' '; MAX_ENTRY_BYTES + 1];
        assert!(Entry::from_bytes(&big).expect_err("big").contains("limit"));
        assert!(Entry::from_bytes(br#"{"topic":"centinela/v1/f/s/gap","payload":"{}"}"#).is_ok());
    }

    #[test]
    fn when_full_drops_updates_first_then_the_oldest() {
        let dir = tempfile::tempdir().expect("dir");
        let ob = Outbox::open(dir.path(), 3).expect("open");
        let open = ob.push(&e(1), false).expect("push");
        let upd = ob.push(&e(2), true).expect("push");
        let close = ob.push(&e(3), false).expect("push");
        let next = ob.push(&e(4), false).expect("push");
        let left: Vec<u64> = ob.next_after(None, 10).iter().map(|(s, _)| *s).collect();
        assert_eq!(left, vec![open, close, next], "the update went first");
        assert!(!left.contains(&upd));
        let last = ob.push(&e(5), false).expect("push");
        let left: Vec<u64> = ob.next_after(None, 10).iter().map(|(s, _)| *s).collect();
        assert_eq!(left, vec![close, next, last], "then the oldest");
        assert_eq!(ob.dropped(), 2);
        assert_eq!(ob.len(), 3);
    }
}
