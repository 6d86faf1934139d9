//! Commit receipts (`centinela.receipt/1`): the server's word that an event is in its database.
//!
//! A broker's PUBACK only says the broker has the message; brokers lose queued messages when they
//! crash, drop them when a queue is full, and answer "no matching subscribers" (0x10) when the
//! server's session is gone. So an agent keeps each event in its outbox until a receipt for it
//! arrives, and sends again what has none within its timeout.
//!
//! Receipts go to `centinela/receipt/v1/{facility_id}/{sensor_id}`, a tree apart from the
//! agents' `centinela/v1/…` so that sensors never publish there (the broker's rights, issue of
//! authentication, keep it the server's alone). The server publishes one receipt per sensor per
//! committed batch (QoS 1, not retained). Each item names the event, what the server did with
//! it, and the SHA-256 of the payload bytes it received: an agent acts on an item only when that
//! digest is the digest of its own bytes, so a copy of an event id with other content (a forgery,
//! or a bug) never clears the agent's real event.
//!
//! Receipts are signed by the server ([`seal_receipt`]): the same [`crate::signed`] envelope as
//! the sensors' messages, with the server's own Ed25519 key, over the receipt topic. An agent
//! holds the server's public key (pinned in its configuration) and acts only on a receipt that
//! verifies with it ([`open_signed`]): whoever can publish on a receipt topic (any client of a
//! broker without topic rights, an insider on the broker) cannot make it delete an event. The
//! envelope's `seq` is the server's own count (it starts at the server's clock, in
//! microseconds, so it grows across restarts); agents do not check it: a receipt only ever says
//! what was true when the server committed, so a copy of an old one changes nothing.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::signed::{Envelope, PublicKey, SensorKey, SignedError};
use crate::{ProtocolError, check_id};

/// Schema of receipts.
pub const RECEIPT_SCHEMA: &str = "centinela.receipt/1";
/// Topic prefix of receipts.
pub const RECEIPT_ROOT: &str = "centinela/receipt/v1";
/// Largest receipt accepted by an agent, bytes.
pub const MAX_RECEIPT_BYTES: usize = 256 * 1024;
/// Most items in one receipt: a batch's items for one sensor go in as many receipts as needed,
/// each well under the envelope's message limit.
pub const MAX_RECEIPT_ITEMS: usize = 64;

/// What the server did with one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Committed now.
    Stored,
    /// Already committed, with these very bytes.
    Duplicate,
    /// The event id is already committed with other bytes: this delivery can never be stored.
    Conflict,
    /// Refused for good (the reason says why); sending it again changes nothing.
    Rejected,
    /// Refused for now: its time is ahead of the server's clock by more than the allowed skew.
    /// It will be accepted once that time comes; send it again later.
    Deferred,
}

impl Outcome {
    /// Whether the event is in the server's database (the agent may forget it).
    #[must_use]
    pub fn committed(self) -> bool {
        matches!(self, Self::Stored | Self::Duplicate)
    }
}

/// One delivery's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReceiptItem {
    /// The delivery's `event_id`.
    pub event_id: Uuid,
    /// What the server did.
    pub outcome: Outcome,
    /// SHA-256 of the payload bytes the server received, lowercase hex.
    pub sha256: String,
    /// Why, for `rejected`, `deferred` and `conflict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A commit receipt (`centinela.receipt/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Receipt {
    /// `centinela.receipt/1`.
    #[schemars(extend("const" = "centinela.receipt/1"))]
    pub schema: String,
    /// Facility the receipt is addressed to.
    pub facility_id: String,
    /// Sensor the receipt is addressed to.
    pub sensor_id: String,
    /// When the server committed (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub committed_at: OffsetDateTime,
    /// Outcomes, in the order the deliveries arrived.
    pub items: Vec<ReceiptItem>,
}

/// The receipt topic of a sensor.
///
/// # Errors
/// [`ProtocolError::BadId`] for an identifier that cannot be a topic level.
pub fn receipt_topic(facility_id: &str, sensor_id: &str) -> Result<String, ProtocolError> {
    check_id("facility_id", facility_id)?;
    check_id("sensor_id", sensor_id)?;
    Ok(format!("{RECEIPT_ROOT}/{facility_id}/{sensor_id}"))
}

/// SHA-256 of payload bytes, lowercase hex (the `sha256` of a [`ReceiptItem`]).
#[must_use]
pub fn payload_sha256(payload: &[u8]) -> String {
    let d = Sha256::digest(payload);
    let mut s = String::with_capacity(64);
    for b in d {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Why a receipt was not accepted by an agent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReceiptError {
    /// Over [`MAX_RECEIPT_BYTES`].
    #[error("receipt of {0} bytes is over the {MAX_RECEIPT_BYTES}-byte limit")]
    TooLarge(usize),
    /// Not a receipt.
    #[error("receipt is not a centinela.receipt/1 JSON object: {0}")]
    Malformed(String),
    /// Not signed by the server: a bare receipt, or no envelope at all.
    #[error("receipt is not signed by the server: {0}")]
    Unsigned(String),
    /// Signed, but not by a key of the server's that this agent holds (forged, or the server's
    /// key changed and the agent's configuration was not told).
    #[error("receipt's signature does not verify with the server's key ({0})")]
    BadSignature(String),
    /// Addressed to another sensor.
    #[error("receipt addressed to {facility}/{sensor}, not to this sensor")]
    Misaddressed {
        /// Facility in the receipt.
        facility: String,
        /// Sensor in the receipt.
        sensor: String,
    },
}

impl Receipt {
    /// Reads a receipt addressed to `facility_id`/`sensor_id`.
    ///
    /// # Errors
    /// [`ReceiptError`].
    pub fn decode(
        payload: &[u8],
        facility_id: &str,
        sensor_id: &str,
    ) -> Result<Self, ReceiptError> {
        if payload.len() > MAX_RECEIPT_BYTES {
            return Err(ReceiptError::TooLarge(payload.len()));
        }
        let r: Self =
            serde_json::from_slice(payload).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
        if r.schema != RECEIPT_SCHEMA {
            return Err(ReceiptError::Malformed(format!("schema `{}`", r.schema)));
        }
        if r.facility_id != facility_id || r.sensor_id != sensor_id {
            return Err(ReceiptError::Misaddressed {
                facility: r.facility_id,
                sensor: r.sensor_id,
            });
        }
        Ok(r)
    }
}

impl ReceiptError {
    /// A short, finite label for counters.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::TooLarge(_) => "too_large",
            Self::Malformed(_) => "malformed",
            Self::Unsigned(_) => "unsigned",
            Self::BadSignature(_) => "bad_signature",
            Self::Misaddressed { .. } => "misaddressed",
        }
    }
}

/// The server's signed receipt for `topic` (a sensor's receipt topic), numbered `seq`.
///
/// # Errors
/// A receipt too large to seal (more than [`MAX_RECEIPT_ITEMS`] items with long reasons).
pub fn seal_receipt(
    key: &SensorKey,
    topic: &str,
    seq: u64,
    receipt: &Receipt,
) -> Result<Vec<u8>, SignedError> {
    let json = serde_json::to_vec(receipt).map_err(|e| SignedError::Malformed {
        field: "msg",
        why: e.to_string(),
    })?;
    key.seal(topic, seq, &json)
}

/// Opens a signed receipt that arrived on `topic`: its signature must verify, for that topic,
/// with one of `keys` (the server's), and it must be addressed to `facility_id`/`sensor_id`.
///
/// # Errors
/// [`ReceiptError`]: unsigned, a signature that does not verify, or a receipt that is bad or
/// addressed elsewhere.
pub fn open_signed(
    payload: &[u8],
    topic: &str,
    keys: &[PublicKey],
    facility_id: &str,
    sensor_id: &str,
) -> Result<Receipt, ReceiptError> {
    if payload.len() > MAX_RECEIPT_BYTES {
        return Err(ReceiptError::TooLarge(payload.len()));
    }
    let env = Envelope::open(payload).map_err(|e| match e {
        SignedError::Unsigned(why) => ReceiptError::Unsigned(why),
        other => ReceiptError::Unsigned(other.to_string()),
    })?;
    if !keys.iter().any(|k| env.verify_with(k, topic).is_ok()) {
        return Err(ReceiptError::BadSignature(format!("signed by {}", env.key)));
    }
    Receipt::decode(env.msg, facility_id, sensor_id)
}

/// The `event_id` of a payload (a signed envelope's message, or a bare message) that may be
/// malformed in other ways, for a receipt of its
/// rejection. `None` when there is none to read.
#[must_use]
pub fn peek_event_id(payload: &[u8]) -> Option<Uuid> {
    #[derive(Deserialize)]
    struct Peek {
        event_id: Uuid,
    }
    if payload.len() > crate::signed::MAX_SIGNED_BYTES {
        return None;
    }
    serde_json::from_slice::<Peek>(crate::signed::message_bytes(payload))
        .ok()
        .map(|p| p.event_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_is_sha256() {
        // FIPS 180-2 test vector.
        assert_eq!(
            payload_sha256(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn receipts_round_trip_and_check_their_address() {
        let r = Receipt {
            schema: RECEIPT_SCHEMA.into(),
            facility_id: "f".into(),
            sensor_id: "s".into(),
            committed_at: OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("t"),
            items: vec![ReceiptItem {
                event_id: Uuid::nil(),
                outcome: Outcome::Stored,
                sha256: payload_sha256(b"x"),
                reason: None,
            }],
        };
        let bytes = serde_json::to_vec(&r).expect("json");
        assert_eq!(Receipt::decode(&bytes, "f", "s"), Ok(r));
        assert!(matches!(
            Receipt::decode(&bytes, "f", "other"),
            Err(ReceiptError::Misaddressed { .. })
        ));
        assert!(matches!(
            Receipt::decode(b"{}", "f", "s"),
            Err(ReceiptError::Malformed(_))
        ));
        assert_eq!(
            receipt_topic("f", "s").as_deref(),
            Ok("centinela/receipt/v1/f/s")
        );
        assert!(receipt_topic("f", "+").is_err());
    }

    #[test]
    fn only_a_receipt_the_server_signed_for_this_topic_opens() {
        let server = SensorKey::from_seed(&[1; 32]);
        let other = SensorKey::from_seed(&[2; 32]);
        let r = Receipt {
            schema: RECEIPT_SCHEMA.into(),
            facility_id: "f".into(),
            sensor_id: "s".into(),
            committed_at: OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("t"),
            items: vec![ReceiptItem {
                event_id: Uuid::nil(),
                outcome: Outcome::Stored,
                sha256: payload_sha256(b"x"),
                reason: None,
            }],
        };
        let topic = receipt_topic("f", "s").expect("topic");
        let keys = [server.public()];
        let signed = seal_receipt(&server, &topic, 7, &r).expect("seal");
        assert_eq!(open_signed(&signed, &topic, &keys, "f", "s"), Ok(r.clone()));
        let bare = serde_json::to_vec(&r).expect("json");
        assert!(
            signed.len() - bare.len() < 260,
            "a signature costs {} bytes",
            signed.len() - bare.len()
        );
        assert!(matches!(
            open_signed(&bare, &topic, &keys, "f", "s"),
            Err(ReceiptError::Unsigned(_))
        ));
        let forged = seal_receipt(&other, &topic, 7, &r).expect("seal");
        assert!(matches!(
            open_signed(&forged, &topic, &keys, "f", "s"),
            Err(ReceiptError::BadSignature(_))
        ));
        // The server's receipt for another sensor, moved to this sensor's topic.
        let theirs = receipt_topic("f", "t").expect("topic");
        let mut moved = r;
        moved.sensor_id = "t".into();
        let moved = seal_receipt(&server, &theirs, 8, &moved).expect("seal");
        assert!(matches!(
            open_signed(&moved, &topic, &keys, "f", "s"),
            Err(ReceiptError::BadSignature(_))
        ));
        let mut flipped = signed.clone();
        let at = flipped.len() - 10;
        flipped[at] ^= 1;
        assert!(open_signed(&flipped, &topic, &keys, "f", "s").is_err());
    }

    #[test]
    fn event_ids_are_peeked_from_otherwise_bad_payloads() {
        let id = "0199a0e4-6c00-7000-8000-000000000001";
        let p = format!("{{\"event_id\":\"{id}\",\"schema\":\"nonsense\"}}");
        assert_eq!(
            peek_event_id(p.as_bytes()).map(|u| u.to_string()),
            Some(id.into())
        );
        assert_eq!(peek_event_id(b"{not json"), None);
    }
}
