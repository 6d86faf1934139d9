//! The sensor's signature on everything it publishes: each message is sealed in a
//! [`protocol::signed`] envelope with the sensor's key and the next number of its persisted
//! [`Sequence`]. Events are sealed once, when they enter the outbox, so every resend is the same
//! bytes (the server tells a resend from a replay by them); statuses and spectrum summaries are
//! sealed when they are sent.

use std::path::Path;

use protocol::signed::{PublicKey, SensorKey};

use crate::AgentError;
use crate::daemon::sequence::{Sequence, SequenceError};

/// A sensor's key and its message counter.
#[derive(Debug)]
pub struct Signer {
    key: SensorKey,
    seq: Sequence,
}

/// Why a message could not be sealed (it is then not sent, and no number is used).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The counter could not be stored.
    #[error("the message counter: {0}")]
    Sequence(#[from] SequenceError),
    /// The message is not one that can be sealed.
    #[error("sealing: {0}")]
    Envelope(#[from] protocol::signed::SignedError),
}

impl Signer {
    /// A signer over `key` counting in `seq`.
    #[must_use]
    pub fn new(key: SensorKey, seq: Sequence) -> Self {
        Self { key, seq }
    }

    /// Loads the key at `key_path` (refused when others may read it) and opens its counter
    /// beside it (`seq` in the key's directory: a new key starts a new count).
    ///
    /// # Errors
    /// [`AgentError::Input`] naming the key or counter file and what is wrong.
    pub fn open(key_path: &Path) -> Result<Self, AgentError> {
        let key = crate::keys::load_key(key_path)?;
        let dir = key_path.parent().unwrap_or_else(|| Path::new("."));
        let seq = Sequence::open(dir).map_err(|e| AgentError::Input(e.to_string()))?;
        Ok(Self { key, seq })
    }

    /// The public key the server's registry must hold for this sensor.
    #[must_use]
    pub fn public(&self) -> PublicKey {
        self.key.public()
    }

    /// The last sequence number used.
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.seq.last()
    }

    /// Seals `msg` (a JSON object) for `topic` with the next sequence number.
    ///
    /// # Errors
    /// The counter cannot be stored, or `msg` is not a sealable message.
    pub fn seal(&self, topic: &str, msg: &[u8]) -> Result<Vec<u8>, SealError> {
        // Check before a number is spent on a message that cannot be sealed.
        protocol::signed::sealable(topic, msg)?;
        let n = self.seq.next()?;
        Ok(self.key.seal(topic, n, msg)?)
    }

    /// As [`Signer::seal`], as text (an envelope of a JSON message is UTF-8).
    ///
    /// # Errors
    /// As [`Signer::seal`].
    pub fn seal_text(&self, topic: &str, msg: &str) -> Result<String, SealError> {
        let v = self.seal(topic, msg.as_bytes())?;
        // The envelope is ASCII around the message's own UTF-8 bytes.
        Ok(String::from_utf8(v).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::signed::Envelope;

    #[test]
    fn sealed_messages_verify_and_number_up_across_reopening() {
        let dir = tempfile::tempdir().expect("tmp");
        let key = SensorKey::from_seed(&[7; 32]);
        let s = Signer::new(key, Sequence::open(dir.path()).expect("seq"));
        let t = "centinela/v1/f/s/gap";
        let a = s.seal(t, br#"{"a":1}"#).expect("seal");
        let b = s.seal(t, br#"{"a":1}"#).expect("seal");
        let (ea, eb) = (
            Envelope::open(&a).expect("a"),
            Envelope::open(&b).expect("b"),
        );
        assert_eq!((ea.seq, eb.seq), (1, 2));
        ea.verify(t).expect("verifies");
        assert!(ea.verify("centinela/v1/f/other/gap").is_err());
        assert!(s.seal(t, b"[1]").is_err(), "not an object");
        assert_eq!(s.last_seq(), 2, "a refused message spends no number");
        drop(s);
        let s = Signer::new(
            SensorKey::from_seed(&[7; 32]),
            Sequence::open(dir.path()).expect("seq"),
        );
        let c = s.seal(t, br#"{"a":1}"#).expect("seal");
        assert_eq!(Envelope::open(&c).expect("c").seq, 3);
    }
}
