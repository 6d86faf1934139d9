//! Reading a message off the wire: topic, schema, fields and the agreement between topic and
//! payload, each failure with an error that says what and where.

use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{
    GapEvent, JammerEvent, Kind, SpectrumSummary, StatusEvent, check_id, parse_topic, schema_name,
};

/// Largest payload accepted, bytes.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Why a message was rejected.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The topic is not a Centinela v1 topic.
    #[error("topic `{0}` is not centinela/v1/FACILITY/SENSOR/(gap|jammer|status|spectrum)")]
    Topic(String),
    /// The payload is larger than [`MAX_PAYLOAD_BYTES`].
    #[error("{topic}: payload of {bytes} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit")]
    TooLarge {
        /// Topic.
        topic: String,
        /// Payload size.
        bytes: usize,
    },
    /// The payload is not a JSON object.
    #[error("{topic}: payload is not JSON: {detail}")]
    Json {
        /// Topic.
        topic: String,
        /// Parser message with line and column.
        detail: String,
    },
    /// `schema` is missing or names another kind or version.
    #[error("{topic}: schema `{found}` does not match the topic (expected `{expected}`)")]
    Schema {
        /// Topic.
        topic: String,
        /// What the topic calls for.
        expected: &'static str,
        /// What the payload says (empty when absent).
        found: String,
    },
    /// A field is missing or has the wrong type.
    #[error("{topic}: {detail}")]
    Fields {
        /// Topic.
        topic: String,
        /// Deserializer message naming the field.
        detail: String,
    },
    /// The payload's facility or sensor differs from its topic's.
    #[error("{topic}: payload {field} `{payload}` differs from the topic's `{in_topic}`")]
    Mismatch {
        /// Topic.
        topic: String,
        /// `facility_id` or `sensor_id`.
        field: &'static str,
        /// Value in the payload.
        payload: String,
        /// Value in the topic.
        in_topic: String,
    },
    /// A value is out of its range.
    #[error("{topic}: {detail}")]
    Value {
        /// Topic.
        topic: String,
        /// What is wrong.
        detail: String,
    },
    /// `observed_at` is ahead of the receiver's clock by more than the allowed skew. Not final:
    /// once that time comes the message is acceptable.
    #[error(
        "{topic}: observed_at {observed_at} is {ahead_s:.0} s ahead of this server's clock (at most {max_skew_s:.0} s allowed): is the sensor's clock right?"
    )]
    Future {
        /// Topic.
        topic: String,
        /// What the message says.
        observed_at: String,
        /// By how much it is ahead, seconds.
        ahead_s: f64,
        /// The allowed skew, seconds.
        max_skew_s: f64,
    },
    /// `observed_at` is older than the receiver keeps.
    #[error(
        "{topic}: observed_at {observed_at} is {age_days:.1} days old (at most {max_age_days:.1} days accepted)"
    )]
    TooOld {
        /// Topic.
        topic: String,
        /// What the message says.
        observed_at: String,
        /// Its age, days.
        age_days: f64,
        /// The oldest accepted, days.
        max_age_days: f64,
    },
}

/// Bounds on the time a message may claim, against the receiver's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeBounds {
    /// The receiver's clock now.
    pub now: OffsetDateTime,
    /// How far ahead of `now` an observation may be (clocks are never exactly together).
    pub max_skew: time::Duration,
    /// How old an observation may be (an agent's outbox holds events through long outages).
    pub max_age: time::Duration,
}

impl DecodeError {
    /// Short reason label, for counters.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Topic(_) => "topic",
            Self::TooLarge { .. } => "too_large",
            Self::Json { .. } => "json",
            Self::Schema { .. } => "schema",
            Self::Fields { .. } => "fields",
            Self::Mismatch { .. } => "mismatch",
            Self::Value { .. } => "value",
            Self::Future { .. } => "future",
            Self::TooOld { .. } => "too_old",
        }
    }

    /// Every reason label [`DecodeError::reason`] can return: counters take labels only from
    /// this finite set.
    pub const REASONS: [&'static str; 9] = [
        "topic",
        "too_large",
        "json",
        "schema",
        "fields",
        "mismatch",
        "value",
        "future",
        "too_old",
    ];

    /// Whether the same bytes may be accepted later (only a time ahead of the clock).
    #[must_use]
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Future { .. })
    }
}

/// A decoded, checked message.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// `…/gap`.
    Gap(GapEvent),
    /// `…/jammer`.
    Jammer(JammerEvent),
    /// `…/status`.
    Status(StatusEvent),
    /// `…/spectrum`.
    Spectrum(SpectrumSummary),
}

impl Message {
    /// Kind of the message.
    #[must_use]
    pub fn kind(&self) -> Kind {
        match self {
            Self::Gap(_) => Kind::Gap,
            Self::Jammer(_) => Kind::Jammer,
            Self::Status(_) => Kind::Status,
            Self::Spectrum(_) => Kind::Spectrum,
        }
    }

    /// The event id.
    #[must_use]
    pub fn event_id(&self) -> Uuid {
        match self {
            Self::Gap(e) => e.event_id,
            Self::Jammer(e) => e.event_id,
            Self::Status(e) => e.event_id,
            Self::Spectrum(e) => e.event_id,
        }
    }

    /// Facility and sensor.
    #[must_use]
    pub fn source(&self) -> (&str, &str) {
        match self {
            Self::Gap(e) => (&e.facility_id, &e.sensor_id),
            Self::Jammer(e) => (&e.facility_id, &e.sensor_id),
            Self::Status(e) => (&e.facility_id, &e.sensor_id),
            Self::Spectrum(e) => (&e.facility_id, &e.sensor_id),
        }
    }

    /// The zone the message says it covers (a spectrum summary names none).
    #[must_use]
    pub fn zone(&self) -> Option<&str> {
        match self {
            Self::Gap(e) => Some(&e.zone),
            Self::Jammer(e) => Some(&e.zone),
            Self::Status(e) => Some(&e.zone),
            Self::Spectrum(_) => None,
        }
    }

    /// Checks `observed_at` against the receiver's clock: not ahead by more than the skew, not
    /// older than the age bound. A Last Will (an `offline` status) is exempt from the age bound:
    /// its time is the start of the connection whose loss it announces, which may be long ago.
    ///
    /// # Errors
    /// [`DecodeError::Future`] or [`DecodeError::TooOld`].
    pub fn check_time(&self, topic: &str, b: &TimeBounds) -> Result<(), DecodeError> {
        let at = self.observed_at();
        let ahead = at - b.now;
        let shown = || {
            at.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        };
        if ahead > b.max_skew {
            return Err(DecodeError::Future {
                topic: topic.to_string(),
                observed_at: shown(),
                ahead_s: ahead.as_seconds_f64(),
                max_skew_s: b.max_skew.as_seconds_f64(),
            });
        }
        let offline = matches!(self, Self::Status(s) if s.state == crate::SensorState::Offline);
        if -ahead > b.max_age && !offline {
            return Err(DecodeError::TooOld {
                topic: topic.to_string(),
                observed_at: shown(),
                age_days: (-ahead).as_seconds_f64() / 86_400.0,
                max_age_days: b.max_age.as_seconds_f64() / 86_400.0,
            });
        }
        Ok(())
    }

    /// When observed.
    #[must_use]
    pub fn observed_at(&self) -> OffsetDateTime {
        match self {
            Self::Gap(e) => e.observed_at,
            Self::Jammer(e) => e.observed_at,
            Self::Status(e) => e.observed_at,
            Self::Spectrum(e) => e.observed_at,
        }
    }
}

fn typed<T: DeserializeOwned>(topic: &str, v: serde_json::Value) -> Result<T, DecodeError> {
    serde_json::from_value(v).map_err(|e| DecodeError::Fields {
        topic: topic.to_string(),
        detail: e.to_string(),
    })
}

/// Decodes and checks a message received on `topic`.
///
/// # Errors
/// A [`DecodeError`] naming the topic and what is wrong.
pub fn decode(topic: &str, payload: &[u8]) -> Result<Message, DecodeError> {
    let (facility, sensor, kind) =
        parse_topic(topic).map_err(|_| DecodeError::Topic(topic.to_string()))?;
    let t = || topic.to_string();
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(DecodeError::TooLarge {
            topic: t(),
            bytes: payload.len(),
        });
    }
    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| DecodeError::Json {
        topic: t(),
        detail: e.to_string(),
    })?;
    if !v.is_object() {
        return Err(DecodeError::Json {
            topic: t(),
            detail: "the payload must be a JSON object".into(),
        });
    }
    let expected = schema_name(kind);
    let found = v.get("schema").and_then(|s| s.as_str()).unwrap_or_default();
    if found != expected {
        return Err(DecodeError::Schema {
            topic: t(),
            expected,
            found: found.to_string(),
        });
    }
    let msg = match kind {
        Kind::Gap => Message::Gap(typed(topic, v)?),
        Kind::Jammer => Message::Jammer(typed(topic, v)?),
        Kind::Status => Message::Status(typed(topic, v)?),
        Kind::Spectrum => Message::Spectrum(typed(topic, v)?),
    };
    let (pf, ps) = msg.source();
    for (field, payload, in_topic) in [("facility_id", pf, &facility), ("sensor_id", ps, &sensor)] {
        if payload != in_topic {
            return Err(DecodeError::Mismatch {
                topic: t(),
                field,
                payload: payload.to_string(),
                in_topic: in_topic.clone(),
            });
        }
    }
    let value = |detail: String| DecodeError::Value { topic: t(), detail };
    let year = msg.observed_at().year();
    if !(2000..=2200).contains(&year) {
        return Err(value(format!("observed_at year {year} is out of range")));
    }
    match &msg {
        Message::Gap(g) => {
            check_text(&g.zone, "zone").map_err(value)?;
            check_band(&g.band).map_err(value)?;
            check_gap_key(&g.gap_key, &g.band).map_err(value)?;
            if !(g.center_hz > 0.0 && g.center_hz < 300e9) {
                return Err(value(format!("center_hz {} is out of range", g.center_hz)));
            }
            if !(g.bandwidth_hz >= 0.0 && g.bandwidth_hz < 1e9) {
                return Err(value(format!(
                    "bandwidth_hz {} is out of range",
                    g.bandwidth_hz
                )));
            }
            if let Some(pci) = g.cell.as_ref().and_then(|c| c.pci)
                && pci > 1007
            {
                return Err(value(format!("cell.pci {pci} is over 1007")));
            }
        }
        Message::Jammer(j) => {
            check_text(&j.zone, "zone").map_err(value)?;
            check_band(&j.band).map_err(value)?;
            if !(0.0..=1.0).contains(&j.covered_fraction) {
                return Err(value(format!(
                    "covered_fraction {} is outside 0–1",
                    j.covered_fraction
                )));
            }
        }
        Message::Status(s) => {
            check_text(&s.zone, "zone").map_err(value)?;
            if !(crate::MIN_HEARTBEAT_S..=crate::MAX_HEARTBEAT_S).contains(&s.heartbeat_s) {
                return Err(value(format!(
                    "heartbeat_s {} is outside {}–{} s",
                    s.heartbeat_s,
                    crate::MIN_HEARTBEAT_S,
                    crate::MAX_HEARTBEAT_S
                )));
            }
            if let Some(c) = s.connected_at
                && c > s.observed_at
            {
                return Err(value("connected_at is after observed_at".into()));
            }
        }
        Message::Spectrum(_) => {}
    }
    // Identifiers inside the payload must also be valid topic levels.
    check_id("facility_id", pf).map_err(|e| value(e.to_string()))?;
    check_id("sensor_id", ps).map_err(|e| value(e.to_string()))?;
    Ok(msg)
}

/// A band's name: a letter, then letters and digits, at most 16 (`B28`, `n78`, `GSM850`,
/// `PCS1900`): nothing a page or a log could take for markup.
fn check_band(band: &str) -> Result<(), String> {
    let ok = (1..=16).contains(&band.len())
        && band.starts_with(|c: char| c.is_ascii_alphabetic())
        && band.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "band `{}` is not a band name (a letter, then letters and digits, at most 16: B28, n78, GSM850)",
            band.chars().take(40).collect::<String>().escape_default()
        ))
    }
}

/// A gap's key: its band, `/`, then letters, digits, `.`, `/`, `_` and `-` (at most 128), as
/// agents make it (`B28/lte/pci45/770.0MHz`).
fn check_gap_key(key: &str, band: &str) -> Result<(), String> {
    let ok = key.len() <= 128
        && key
            .strip_prefix(band)
            .is_some_and(|r| r.starts_with('/') && r.len() > 1)
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "./_-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "gap_key `{}` is not `{band}/…` of letters, digits, . / _ - (at most 128)",
            key.chars().take(60).collect::<String>().escape_default()
        ))
    }
}

fn check_text(s: &str, field: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 128 || s.chars().any(char::is_control) {
        Err(format!(
            "{field} must be 1–128 characters without control characters"
        ))
    } else {
        Ok(())
    }
}
