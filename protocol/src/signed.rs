//! Signed envelopes (`centinela.signed/1`): which sensor sent a message, in what order, and that
//! not one byte of it changed on the way.
//!
//! Each sensor holds an Ed25519 key pair. Every payload it publishes is an envelope around the
//! message, the message kept verbatim:
//!
//! ```json
//! {"signed":"centinela.signed/1","key":"ed25519:<public key, base64>","seq":41,
//!  "sig":"<signature, base64>","msg":{"schema":"centinela.gap/1", …}}
//! ```
//!
//! The signature covers, in this order and separated by a newline: the envelope's schema name,
//! the MQTT topic, `seq` in decimal, `key`, and the exact bytes of `msg` as they stand in the
//! payload. So a message cannot be moved to another topic, renumbered, attributed to another key
//! or altered. `seq` is the sensor's own counter: it only grows, across restarts, so a copy of an
//! old message is told from a new one and a gap in the numbers shows messages that never came.
//!
//! The signature travels inside the payload rather than in MQTT v5 user properties: every broker
//! and bridge keeps a payload as it is (properties are dropped by MQTT 3.1.1 bridges, and the
//! Last Will and retained messages would need their own handling), and the stored payload alone
//! is the evidence an auditor re-verifies.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Schema name of the envelope; the first line of what is signed.
pub const SIGNED_SCHEMA: &str = "centinela.signed/1";
/// Prefix of a public key's text form.
pub const KEY_PREFIX: &str = "ed25519:";
/// Largest envelope: a message of [`crate::MAX_PAYLOAD_BYTES`] and what wraps it.
pub const MAX_SIGNED_BYTES: usize = crate::MAX_PAYLOAD_BYTES + 512;

/// What is wrong with a signed payload or a key. `reason()` is a short, finite label for metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignedError {
    /// The payload is not an envelope at all (an unsigned message, or not JSON).
    #[error("not a signed envelope: {0}")]
    Unsigned(String),
    /// An envelope whose fields are wrong.
    #[error("malformed envelope: {field}: {why}")]
    Malformed {
        /// The field at fault.
        field: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The signature does not verify for these topic, seq, key and bytes.
    #[error("the signature does not verify")]
    BadSignature,
    /// A key that cannot be read.
    #[error("bad key: {0}")]
    Key(String),
}

impl SignedError {
    /// A short label for counting (a finite set).
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unsigned(_) => "unsigned",
            Self::Malformed { .. } => "bad_envelope",
            Self::BadSignature => "bad_signature",
            Self::Key(_) => "bad_key",
        }
    }

    /// Every label `reason()` can return.
    pub const REASONS: [&'static str; 4] = ["unsigned", "bad_envelope", "bad_signature", "bad_key"];
}

/// A sensor's public key: what the server's registry holds and an envelope names.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// The 32 bytes of the key.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{KEY_PREFIX}{}", B64.encode(self.0.as_bytes()))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = SignedError;

    /// Parses `ed25519:<base64 of 32 bytes>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse::<KeyId>()?.parse()
    }
}

/// The key an envelope names: its 32 bytes as sent, not yet known to be a point of Ed25519
/// (finding that out costs a square root). A receiver that knows the sensor's key compares the
/// bytes ([`KeyId::is`]) and verifies with the key it parsed once ([`Envelope::verify_with`]).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// Whether these are the bytes of `key`.
    #[must_use]
    pub fn is(&self, key: &PublicKey) -> bool {
        self.0 == key.to_bytes()
    }

    /// The key these bytes name.
    ///
    /// # Errors
    /// [`SignedError::Key`] when they are not a point of Ed25519.
    pub fn parse(&self) -> Result<PublicKey, SignedError> {
        VerifyingKey::from_bytes(&self.0)
            .map(PublicKey)
            .map_err(|_| SignedError::Key("not a point of Ed25519".into()))
    }
}

impl FromStr for KeyId {
    type Err = SignedError;

    /// Reads `ed25519:<base64 of 32 bytes>`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let b64 = s
            .strip_prefix(KEY_PREFIX)
            .ok_or_else(|| SignedError::Key(format!("a public key starts with `{KEY_PREFIX}`")))?;
        let bytes = B64
            .decode(b64)
            .map_err(|e| SignedError::Key(format!("public key is not base64: {e}")))?;
        bytes.try_into().map(Self).map_err(|b: Vec<u8>| {
            SignedError::Key(format!("a public key is 32 bytes, not {}", b.len()))
        })
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{KEY_PREFIX}{}", B64.encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A sensor's private key. Its `Debug` shows only the public half; the secret is zeroed when
/// dropped (ed25519-dalek's `zeroize`).
pub struct SensorKey(SigningKey);

impl fmt::Debug for SensorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SensorKey({}, secret hidden)", self.public())
    }
}

impl SensorKey {
    /// A new key from the operating system's randomness.
    ///
    /// # Errors
    /// When the system has no randomness to give.
    pub fn generate() -> Result<Self, SignedError> {
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut())
            .map_err(|e| SignedError::Key(format!("no system randomness: {e}")))?;
        Ok(Self(SigningKey::from_bytes(&seed)))
    }

    /// The key whose 32-byte secret is `seed` (RFC 8032). For keys derived elsewhere and for
    /// tests; a sensor's own key comes from [`SensorKey::generate`].
    #[must_use]
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// Reads a PKCS#8 PEM private key (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey
    /// -algorithm ed25519` writes it).
    ///
    /// # Errors
    /// When the text is not an Ed25519 PKCS#8 key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, SignedError> {
        SigningKey::from_pkcs8_pem(pem)
            .map(Self)
            .map_err(|e| SignedError::Key(format!("not an Ed25519 PKCS#8 PEM private key: {e}")))
    }

    /// The key as PKCS#8 v1 PEM, the form OpenSSL writes and reads (v2, with the public key
    /// inside, is refused by OpenSSL 3.0). Zeroed when dropped.
    ///
    /// # Errors
    /// Never in practice (encoding a valid key).
    pub fn to_pkcs8_pem(&self) -> Result<zeroize::Zeroizing<String>, SignedError> {
        ed25519_dalek::pkcs8::KeypairBytes {
            secret_key: self.0.to_bytes(),
            public_key: None,
        }
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| SignedError::Key(format!("encoding the key: {e}")))
    }

    /// The public half.
    #[must_use]
    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The envelope to publish on `topic`: `msg` (a JSON object, kept verbatim) signed with
    /// sequence number `seq`.
    ///
    /// # Errors
    /// When `msg` is not a JSON object, or `topic` holds a newline.
    pub fn seal(&self, topic: &str, seq: u64, msg: &[u8]) -> Result<Vec<u8>, SignedError> {
        sealable(topic, msg)?;
        let key = self.public().to_string();
        let sig = self.0.sign(&signed_bytes(topic, seq, &key, msg));
        let head = format!(
            r#"{{"signed":"{SIGNED_SCHEMA}","key":"{key}","seq":{seq},"sig":"{}","msg":"#,
            B64.encode(sig.to_bytes())
        );
        let mut out = Vec::with_capacity(head.len() + msg.len() + 1);
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(msg);
        out.push(b'}');
        Ok(out)
    }
}

/// Whether `msg` on `topic` can be sealed: `msg` a JSON object of at most
/// [`crate::MAX_PAYLOAD_BYTES`], `topic` without a newline.
///
/// # Errors
/// `Malformed`, naming `msg` or `topic`.
pub fn sealable(topic: &str, msg: &[u8]) -> Result<(), SignedError> {
    check_msg(msg)?;
    if msg.len() > crate::MAX_PAYLOAD_BYTES {
        return Err(SignedError::Malformed {
            field: "msg",
            why: format!(
                "{} bytes is over the {}-byte limit",
                msg.len(),
                crate::MAX_PAYLOAD_BYTES
            ),
        });
    }
    if topic.contains('\n') {
        return Err(SignedError::Malformed {
            field: "topic",
            why: "holds a newline".into(),
        });
    }
    Ok(())
}

fn check_msg(msg: &[u8]) -> Result<(), SignedError> {
    let first = msg.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(SignedError::Malformed {
            field: "msg",
            why: "a message is a JSON object".into(),
        });
    }
    Ok(())
}

/// What a signature covers.
fn signed_bytes(topic: &str, seq: u64, key: &str, msg: &[u8]) -> Vec<u8> {
    let head = format!("{SIGNED_SCHEMA}\n{topic}\n{seq}\n{key}\n");
    let mut v = Vec::with_capacity(head.len() + msg.len());
    v.extend_from_slice(head.as_bytes());
    v.extend_from_slice(msg);
    v
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    signed: &'a str,
    key: &'a str,
    seq: u64,
    sig: &'a str,
    #[serde(borrow)]
    msg: &'a RawValue,
}

/// An envelope as read from a payload, not yet verified: the message's bytes are borrowed from
/// the payload exactly as they came.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The key that says it signed (its bytes; see [`KeyId`]).
    pub key: KeyId,
    /// The sensor's sequence number.
    pub seq: u64,
    /// The message, verbatim.
    pub msg: &'a [u8],
    key_text: &'a str,
    sig: Signature,
}

impl<'a> Envelope<'a> {
    /// Reads an envelope. Says `Unsigned` for a payload that is not one (no `signed` field).
    ///
    /// # Errors
    /// `Unsigned` or `Malformed`, naming the field.
    pub fn open(payload: &'a [u8]) -> Result<Self, SignedError> {
        if payload.len() > MAX_SIGNED_BYTES {
            return Err(SignedError::Malformed {
                field: "envelope",
                why: format!(
                    "{} bytes is over the {MAX_SIGNED_BYTES}-byte limit",
                    payload.len()
                ),
            });
        }
        let w: Wire<'a> = serde_json::from_slice(payload).map_err(|e| {
            // An object with a `signed` field is a broken envelope; anything else is unsigned.
            let looks_signed =
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(payload)
                    .is_ok_and(|m| m.contains_key("signed"));
            if looks_signed {
                SignedError::Malformed {
                    field: "envelope",
                    why: e.to_string(),
                }
            } else {
                SignedError::Unsigned(e.to_string())
            }
        })?;
        if w.signed != SIGNED_SCHEMA {
            return Err(SignedError::Malformed {
                field: "signed",
                why: format!("unknown envelope `{}`", w.signed.escape_default()),
            });
        }
        let key: KeyId = w
            .key
            .parse()
            .map_err(|e: SignedError| SignedError::Malformed {
                field: "key",
                why: e.to_string(),
            })?;
        let sig = B64
            .decode(w.sig)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| SignedError::Malformed {
                field: "sig",
                why: "a signature is 64 bytes in base64".into(),
            })?;
        let msg = w.msg.get().as_bytes();
        check_msg(msg)?;
        Ok(Self {
            key,
            seq: w.seq,
            msg,
            key_text: w.key,
            sig,
        })
    }

    /// Checks the signature for `topic` (strict Ed25519: no malleable or small-order forms).
    ///
    /// # Errors
    /// `BadSignature`.
    pub fn verify(&self, topic: &str) -> Result<(), SignedError> {
        let key = self.key.parse().map_err(|e| SignedError::Malformed {
            field: "key",
            why: e.to_string(),
        })?;
        self.verify_with(&key, topic)
    }

    /// [`Envelope::verify`] with `key`, parsed once by the receiver: `BadSignature` when the
    /// envelope names another key.
    ///
    /// # Errors
    /// `BadSignature`.
    pub fn verify_with(&self, key: &PublicKey, topic: &str) -> Result<(), SignedError> {
        if !self.key.is(key) {
            return Err(SignedError::BadSignature);
        }
        key.0
            .verify_strict(
                &signed_bytes(topic, self.seq, self.key_text, self.msg),
                &self.sig,
            )
            .map_err(|_| SignedError::BadSignature)
    }
}

/// The message inside a stored payload without checking its signature (for reading what was
/// stored: ingest verified it on arrival and `central-server audit` verifies it again). A
/// payload that is no envelope is returned whole.
#[must_use]
pub fn message_bytes(payload: &[u8]) -> &[u8] {
    Envelope::open(payload).map_or(payload, |e| e.msg)
}

/// The envelope as a JSON Schema: `msg` is one of the message kinds' schemas.
#[derive(JsonSchema)]
#[schemars(title = "centinela.signed/1", deny_unknown_fields)]
#[allow(dead_code)] // a description for schemars, never built
pub(crate) struct EnvelopeSchema {
    /// Always `centinela.signed/1`.
    #[schemars(regex(pattern = r"^centinela\.signed/1$"))]
    signed: String,
    /// The signing key: `ed25519:` and the 32-byte public key in base64.
    #[schemars(regex(pattern = r"^ed25519:[A-Za-z0-9+/]{43}=$"))]
    key: String,
    /// The sensor's sequence number: grows by one per message, across restarts.
    seq: u64,
    /// Ed25519 signature (64 bytes, base64) over `centinela.signed/1`, the topic, `seq` in
    /// decimal, `key` and the bytes of `msg` as they stand in the payload, each followed by a
    /// newline but the last.
    #[schemars(regex(pattern = r"^[A-Za-z0-9+/]{86}==$"))]
    sig: String,
    /// The message (gap, jammer, status or spectrum), verbatim.
    msg: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "centinela/v1/f/s/gap";
    const MSG: &[u8] = br#"{"schema":"centinela.gap/1","x": 1.50}"#;

    #[test]
    fn a_sealed_message_opens_verbatim_and_verifies() {
        let k = SensorKey::generate().expect("key");
        let p = k.seal(TOPIC, 7, MSG).expect("seal");
        let e = Envelope::open(&p).expect("open");
        assert_eq!(e.msg, MSG, "the message's bytes, spaces and all");
        assert_eq!(e.seq, 7);
        assert!(e.key.is(&k.public()));
        e.verify(TOPIC).expect("verifies");
    }

    #[test]
    fn every_changed_byte_fails_to_verify_or_to_open() {
        let k = SensorKey::generate().expect("key");
        let p = k.seal(TOPIC, 7, MSG).expect("seal");
        for i in 0..p.len() {
            let mut q = p.clone();
            q[i] ^= 0x01;
            if let Ok(e) = Envelope::open(&q) {
                assert!(
                    e.verify(TOPIC).is_err(),
                    "byte {i} changed ({:?}) still verifies",
                    String::from_utf8_lossy(&q)
                );
            }
        }
    }

    #[test]
    fn verifying_with_the_receivers_key_refuses_an_envelope_naming_another() {
        let (k, other) = (
            SensorKey::generate().expect("key"),
            SensorKey::generate().expect("key"),
        );
        let sealed = k.seal(TOPIC, 7, MSG).expect("seal");
        let e = Envelope::open(&sealed).expect("open");
        e.verify_with(&k.public(), TOPIC).expect("its own key");
        assert_eq!(
            e.verify_with(&other.public(), TOPIC),
            Err(SignedError::BadSignature)
        );
        // Bytes that are no point of Ed25519 are read, and refused when verified.
        let zero = sealed_with_key(
            &sealed,
            "ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        );
        let z = Envelope::open(&zero).expect("32 bytes are read");
        assert!(matches!(
            z.verify(TOPIC),
            Err(SignedError::Malformed { field: "key", .. }) | Err(SignedError::BadSignature)
        ));
        assert_eq!(
            z.verify_with(&k.public(), TOPIC),
            Err(SignedError::BadSignature)
        );
    }

    /// `sealed` with its `key` field replaced by `key`.
    fn sealed_with_key(sealed: &[u8], key: &str) -> Vec<u8> {
        let text = String::from_utf8(sealed.to_vec()).expect("utf8");
        let start = text.find("\"key\":\"").expect("key field") + 7;
        let end = start + text[start..].find('"').expect("end");
        format!("{}{key}{}", &text[..start], &text[end..]).into_bytes()
    }

    #[test]
    fn another_topic_seq_or_key_does_not_verify() {
        let k = SensorKey::generate().expect("key");
        let other = SensorKey::generate().expect("key");
        let p = k.seal(TOPIC, 7, MSG).expect("seal");
        let e = Envelope::open(&p).expect("open");
        assert_eq!(
            e.verify("centinela/v1/f/s2/gap"),
            Err(SignedError::BadSignature)
        );
        // Renumbered: the same signature under seq 8.
        let s = String::from_utf8(p.clone()).expect("utf8");
        let renumbered = s.replacen(r#""seq":7"#, r#""seq":8"#, 1);
        let e = Envelope::open(renumbered.as_bytes()).expect("open");
        assert_eq!(e.verify(TOPIC), Err(SignedError::BadSignature));
        // Claimed by another key.
        let claimed = s.replacen(&k.public().to_string(), &other.public().to_string(), 1);
        let e = Envelope::open(claimed.as_bytes()).expect("open");
        assert_eq!(e.verify(TOPIC), Err(SignedError::BadSignature));
    }

    #[test]
    fn unsigned_and_malformed_envelopes_are_told_apart() {
        let e = Envelope::open(MSG).expect_err("a bare message");
        assert_eq!(e.reason(), "unsigned");
        for (bad, field) in [
            (
                r#"{"signed":"centinela.signed/2","key":"ed25519:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","seq":1,"sig":"","msg":{}}"#,
                "signed",
            ),
            (
                r#"{"signed":"centinela.signed/1","key":"rsa:abc","seq":1,"sig":"","msg":{}}"#,
                "key",
            ),
        ] {
            match Envelope::open(bad.as_bytes()) {
                Err(SignedError::Malformed { field: f, .. }) => assert_eq!(f, field, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        let k = SensorKey::generate().expect("key");
        let p = String::from_utf8(k.seal(TOPIC, 1, MSG).expect("seal")).expect("utf8");
        let spaced = p.replacen(r#"{"signed""#, r#"{ "more": 0, "signed""#, 1);
        assert_eq!(
            Envelope::open(spaced.as_bytes())
                .expect_err("extra field")
                .reason(),
            "bad_envelope",
            "an envelope with an extra field, wherever it stands, is a bad envelope"
        );
        let extra = p.replacen(r#""seq":1"#, r#""seq":1,"more":0"#, 1);
        assert_eq!(
            Envelope::open(extra.as_bytes())
                .expect_err("extra field")
                .reason(),
            "bad_envelope"
        );
        let array = p
            .replacen(r#""msg":{"#, r#""msg":[{"#, 1)
            .replacen("}}", "}]}", 1);
        assert!(Envelope::open(array.as_bytes()).is_err(), "{array}");
        assert!(k.seal(TOPIC, 1, b"[1]").is_err(), "a message is an object");
        assert!(k.seal("a\nb", 1, MSG).is_err(), "no newline in a topic");
    }

    #[test]
    fn the_message_and_its_event_id_are_read_through_an_envelope() {
        let key = SensorKey::from_seed(&[3; 32]);
        let msg = br#"{"event_id":"01a1b2c3-0000-7000-8000-000000000001","x":1}"#;
        let p = key.seal("centinela/v1/f/s/gap", 1, msg).expect("seal");
        assert_eq!(message_bytes(&p), msg);
        assert_eq!(message_bytes(msg), msg, "a bare message is itself");
        let id = "01a1b2c3-0000-7000-8000-000000000001";
        assert_eq!(
            crate::peek_event_id(&p).map(|u| u.to_string()).as_deref(),
            Some(id)
        );
        assert_eq!(
            crate::peek_event_id(msg).map(|u| u.to_string()).as_deref(),
            Some(id)
        );
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(crate::MAX_PAYLOAD_BYTES));
        assert!(
            key.seal("t", 1, big.as_bytes()).is_err(),
            "too large to seal"
        );
    }

    #[test]
    fn keys_round_trip_through_pem_and_text_and_hide_their_secret() {
        let k = SensorKey::generate().expect("key");
        let pem = k.to_pkcs8_pem().expect("pem");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SensorKey::from_pkcs8_pem(&pem).expect("parse");
        assert_eq!(back.public(), k.public());
        let text = k.public().to_string();
        assert_eq!(text.parse::<PublicKey>().expect("parse"), k.public());
        let debug = format!("{k:?}");
        let secret_b64 = B64.encode(k.0.to_bytes());
        assert!(!debug.contains(&secret_b64), "{debug}");
        assert!(
            !debug.contains(pem.lines().nth(1).expect("body")),
            "{debug}"
        );
        assert!(debug.contains(&text), "{debug}");
        assert!("ed25519:AAAA".parse::<PublicKey>().is_err());
        assert!(
            SensorKey::from_pkcs8_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
    }
}
