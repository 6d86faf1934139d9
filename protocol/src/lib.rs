//! Centinela wire format, version 1: what sensor agents publish and the central server reads.
//!
//! Topics are `centinela/v1/{facility_id}/{sensor_id}/{kind}` with kind `gap`, `jammer`,
//! `status` (retained; the Last Will sets it offline) or `spectrum`. Payloads are JSON objects
//! carrying `schema` (`centinela.gap/1`, …), a unique `event_id` (UUIDv7), `facility_id`,
//! `sensor_id` and `observed_at` (RFC 3339, UTC). Readers ignore unknown fields; a change of
//! meaning bumps the schema version.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

mod decode;
pub mod receipt;
pub mod schema;
mod secret;
pub mod signed;
mod status;

pub use decode::{DecodeError, MAX_PAYLOAD_BYTES, Message, TimeBounds, decode};
pub use receipt::{
    Outcome, RECEIPT_ROOT, RECEIPT_SCHEMA, Receipt, ReceiptError, ReceiptItem, payload_sha256,
    peek_event_id, receipt_topic,
};
pub use secret::Secret;
pub use status::{
    BandCoverage, BandSummary, CarrierSummary, SPECTRUM_SCHEMA, STATUS_SCHEMA, SensorHealth,
    SensorState, SpectrumSummary, StatusEvent,
};

/// Topic prefix and version.
pub const TOPIC_ROOT: &str = "centinela/v1";
/// Schema of gap events.
pub const GAP_SCHEMA: &str = "centinela.gap/1";
/// Schema of jammer events.
pub const JAMMER_SCHEMA: &str = "centinela.jammer/1";
/// Shortest heartbeat period a status may announce, seconds.
pub const MIN_HEARTBEAT_S: f64 = 1.0;
/// Longest heartbeat period a status may announce, seconds: a sensor that stops is seen offline
/// within a few of these.
pub const MAX_HEARTBEAT_S: f64 = 300.0;

/// The schema name carried by payloads of a kind.
#[must_use]
pub fn schema_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Gap => GAP_SCHEMA,
        Kind::Jammer => JAMMER_SCHEMA,
        Kind::Status => STATUS_SCHEMA,
        Kind::Spectrum => SPECTRUM_SCHEMA,
    }
}

/// Errors of the wire format.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An identifier holds characters not allowed in a topic level.
    #[error("{field} `{value}` must be 1–64 characters of A–Z, a–z, 0–9, `-` or `_`")]
    BadId {
        /// `facility_id` or `sensor_id`.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// A topic that is not `centinela/v1/{facility}/{sensor}/{kind}`.
    #[error("topic `{0}` is not centinela/v1/FACILITY/SENSOR/(gap|jammer|status|spectrum)")]
    BadTopic(String),
}

/// Message kinds, the last topic level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Coverage-gap events.
    Gap,
    /// Jammer health per band.
    Jammer,
    /// Sensor status (retained).
    Status,
    /// Spectrum summaries.
    Spectrum,
}

impl Kind {
    /// The topic level.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gap => "gap",
            Self::Jammer => "jammer",
            Self::Status => "status",
            Self::Spectrum => "spectrum",
        }
    }

    /// The kind whose topic level is `level`.
    #[must_use]
    pub fn parse(level: &str) -> Option<Self> {
        [Self::Gap, Self::Jammer, Self::Status, Self::Spectrum]
            .into_iter()
            .find(|k| k.as_str() == level)
    }
}

/// Checks an identifier used as a topic level.
///
/// # Errors
/// [`ProtocolError::BadId`].
pub fn check_id(field: &'static str, value: &str) -> Result<(), ProtocolError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::BadId {
            field,
            value: value.to_string(),
        })
    }
}

/// The topic of a message.
///
/// # Errors
/// [`ProtocolError::BadId`] for an identifier that cannot be a topic level.
pub fn topic(facility_id: &str, sensor_id: &str, kind: Kind) -> Result<String, ProtocolError> {
    check_id("facility_id", facility_id)?;
    check_id("sensor_id", sensor_id)?;
    Ok(format!(
        "{TOPIC_ROOT}/{facility_id}/{sensor_id}/{}",
        kind.as_str()
    ))
}

/// Splits a topic into facility, sensor and kind.
///
/// # Errors
/// [`ProtocolError::BadTopic`].
pub fn parse_topic(t: &str) -> Result<(String, String, Kind), ProtocolError> {
    let bad = || ProtocolError::BadTopic(t.to_string());
    let rest = t
        .strip_prefix(TOPIC_ROOT)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(bad)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [f, s, k] = parts.as_slice() else {
        return Err(bad());
    };
    check_id("facility_id", f).map_err(|_| bad())?;
    check_id("sensor_id", s).map_err(|_| bad())?;
    let kind = Kind::parse(k).ok_or_else(bad)?;
    Ok(((*f).to_string(), (*s).to_string(), kind))
}

/// Splits a broker URL `mqtt://HOST[:PORT]` (port 1883 when absent) or `mqtts://HOST[:PORT]`
/// (TLS; port 8883 when absent) into host and port. Whether the link is TLS is
/// [`broker_url_is_tls`].
///
/// # Errors
/// A sentence saying what is wrong with the URL.
pub fn parse_broker_url(url: &str) -> Result<(String, u16), String> {
    let bad = || format!("`{url}` must look like mqtt://HOST:PORT or mqtts://HOST:PORT");
    let (rest, default_port) = match url.strip_prefix("mqtts://") {
        Some(r) => (r, 8883),
        None => (url.strip_prefix("mqtt://").ok_or_else(bad)?, 1883),
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("`{url}`: port `{p}` is not 1–65535"))?,
        ),
        None => (rest, default_port),
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

/// Whether a broker URL asks for TLS (`mqtts://`). A `mqtt://` link is TLS too when a CA
/// certificate is configured beside it.
#[must_use]
pub fn broker_url_is_tls(url: &str) -> bool {
    url.starts_with("mqtts://")
}

/// Builds a UUIDv7 whose time is `observed_at` and whose random bits are a hash of `content`:
/// the same observation always gets the same id (replay is deterministic; ingest dedupes).
#[must_use]
pub fn event_id(observed_at: OffsetDateTime, content: &[u8]) -> Uuid {
    let ms = (observed_at.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    let mut bytes = [0u8; 10];
    let a = fnv1a64(content, 0xcbf2_9ce4_8422_2325);
    let b = fnv1a64(content, 0x8422_2325_cbf2_9ce4);
    bytes[..8].copy_from_slice(&a.to_le_bytes());
    bytes[8..].copy_from_slice(&b.to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(ms, &bytes).into_uuid()
}

fn fnv1a64(data: &[u8], basis: u64) -> u64 {
    data.iter().fold(basis, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Lifecycle of a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GapState {
    /// First confirmed.
    Open,
    /// Still there, figures changed.
    Update,
    /// Gone for enough scans.
    Closed,
}

/// How bad a gap is, from its margin.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Margin below 3 dB: a phone might sync on a good day.
    Low,
    /// 3–10 dB: a phone syncs.
    High,
    /// 10 dB or more: a phone syncs and holds a call.
    Critical,
}

impl Severity {
    /// Lowercase wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }

    /// Severity for a margin in dB.
    #[must_use]
    pub fn from_margin_db(margin_db: f64) -> Self {
        if margin_db >= 10.0 {
            Self::Critical
        } else if margin_db >= 3.0 {
            Self::High
        } else {
            Self::Low
        }
    }
}

/// What found the gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Detector {
    /// A carrier above the floor.
    Energy,
    /// A cell's synchronisation signals.
    Sync,
}

/// Radio technology, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Technology {
    /// 2G.
    Gsm,
    /// 3G.
    Umts,
    /// 4G.
    Lte,
    /// 5G.
    Nr,
    /// Unrecognised.
    Unknown,
}

impl Technology {
    /// Lowercase wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gsm => "gsm",
            Self::Umts => "umts",
            Self::Lte => "lte",
            Self::Nr => "nr",
            Self::Unknown => "unknown",
        }
    }
}

/// Identity of a cell, as far as known.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CellId {
    /// LTE or NR physical cell id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci: Option<u16>,
    /// LTE downlink EARFCN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earfcn: Option<u32>,
    /// NR-ARFCN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nr_arfcn: Option<u32>,
    /// GSM ARFCN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arfcn: Option<u32>,
    /// GSM base station identity code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsic: Option<u8>,
}

impl std::fmt::Display for CellId {
    /// The identity a technician reads: `PCI 87 EARFCN 2525`, `BSIC 35 ARFCN 240` (the BSIC as
    /// its two octal digits, NCC then BCC).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(p) = self.pci {
            parts.push(format!("PCI {p}"));
        }
        if let Some(b) = self.bsic {
            parts.push(format!("BSIC {}{}", b >> 3, b & 7));
        }
        for (name, v) in [
            ("EARFCN", self.earfcn),
            ("NR-ARFCN", self.nr_arfcn),
            ("ARFCN", self.arfcn),
        ] {
            if let Some(v) = v {
                parts.push(format!("{name} {v}"));
            }
        }
        if parts.is_empty() {
            parts.push("unidentified".into());
        }
        f.write_str(&parts.join(" "))
    }
}

/// A coverage-gap event (`centinela.gap/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GapEvent {
    /// `centinela.gap/1`.
    #[schemars(extend("const" = "centinela.gap/1"))]
    pub schema: String,
    /// Unique id (UUIDv7).
    pub event_id: Uuid,
    /// Facility.
    pub facility_id: String,
    /// Sensor.
    pub sensor_id: String,
    /// When observed (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub observed_at: OffsetDateTime,
    /// Stable key of this gap across its open, update and close events.
    pub gap_key: String,
    /// Lifecycle.
    pub state: GapState,
    /// Zone of the facility the sensor covers.
    pub zone: String,
    /// Band name (`B28`, `n78`, `GSM850`, or `unknown`).
    pub band: String,
    /// Technology.
    pub technology: Technology,
    /// Carrier centre, hertz.
    pub center_hz: f64,
    /// Occupied bandwidth, hertz.
    pub bandwidth_hz: f64,
    /// Cell identity, when the sync detector named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<CellId>,
    /// Channel power, dBm (absent when the sensor is not calibrated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_dbm: Option<f64>,
    /// Floor under the carrier in the carrier's bandwidth, dBm (absent when not calibrated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_dbm: Option<f64>,
    /// Channel power relative to the ADC's full scale, dBFS (always present).
    pub power_dbfs: f64,
    /// Floor in the carrier's bandwidth, dBFS (always present).
    pub floor_dbfs: f64,
    /// SINR over the technology's sync threshold, dB.
    pub margin_db: f64,
    /// Severity from the margin.
    pub severity: Severity,
    /// Detector.
    pub detector: Detector,
    /// The IQ the sensor kept as evidence of this gap (set when a gap opens at `critical`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
}

/// An evidence clip kept by the sensor: a SigMF recording of the hops that showed an event,
/// which `sensor-agent replay` turns back into that event. The event is signed, so the hash
/// binds the clip to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Evidence {
    /// File name of the clip's metadata (`….sigmf-meta`) in the sensor's clip directory.
    pub clip: String,
    /// SHA-512 of the clip's dataset file, lowercase hex (the recording's `core:sha512`).
    pub sha512: String,
    /// Size of the dataset file, bytes.
    pub bytes: u64,
}

/// A jammer-health event (`centinela.jammer/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct JammerEvent {
    /// `centinela.jammer/1`.
    #[schemars(extend("const" = "centinela.jammer/1"))]
    pub schema: String,
    /// Unique id (UUIDv7).
    pub event_id: Uuid,
    /// Facility.
    pub facility_id: String,
    /// Sensor.
    pub sensor_id: String,
    /// When observed (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub observed_at: OffsetDateTime,
    /// Zone of the facility the sensor covers.
    pub zone: String,
    /// Band name.
    pub band: String,
    /// `effective`, `degraded` or `down`.
    pub state: JammerStateWire,
    /// Floor over the sensor's thermal floor, dB.
    pub noise_rise_db: f64,
    /// Measured floor, dBm/Hz.
    pub floor_dbm_per_hz: f64,
    /// Fraction of the band raised by at least the effective threshold.
    pub covered_fraction: f64,
}

/// Jammer state on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum JammerStateWire {
    /// Working.
    Effective,
    /// Working poorly.
    Degraded,
    /// Not working.
    Down,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip_and_reject_bad_levels() {
        let t = topic("la-picota", "pab-a_1", Kind::Gap).expect("ok");
        assert_eq!(t, "centinela/v1/la-picota/pab-a_1/gap");
        assert_eq!(
            parse_topic(&t).expect("parse"),
            ("la-picota".into(), "pab-a_1".into(), Kind::Gap)
        );
        assert!(topic("a/b", "s", Kind::Gap).is_err());
        assert!(topic("a", "+", Kind::Gap).is_err());
        assert!(parse_topic("centinela/v1/a/b/c").is_err());
        assert!(parse_topic("centinela/v2/a/b/gap").is_err());
        assert!(parse_topic("centinela/v1/a/b/gap/x").is_err());
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtt://127.0.0.1:1884"),
            Ok(("127.0.0.1".into(), 1884))
        );
        assert_eq!(
            parse_broker_url("mqtt://broker"),
            Ok(("broker".into(), 1883))
        );
        assert!(parse_broker_url("http://x:1").is_err());
        assert!(parse_broker_url("mqtt://x:99999").is_err());
        assert!(parse_broker_url("mqtt://:1883").is_err());
        assert_eq!(
            parse_broker_url("mqtts://broker.example"),
            Ok(("broker.example".into(), 8883))
        );
        assert_eq!(
            parse_broker_url("mqtts://10.0.0.2:8884"),
            Ok(("10.0.0.2".into(), 8884))
        );
        assert!(broker_url_is_tls("mqtts://x") && !broker_url_is_tls("mqtt://x"));
        assert!(parse_broker_url("mqtts://").is_err());
    }

    #[test]
    fn event_ids_are_v7_deterministic_and_content_bound() {
        let t = OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("time");
        let a = event_id(t, b"gap B28 778");
        assert_eq!(a, event_id(t, b"gap B28 778"));
        assert_ne!(a, event_id(t, b"gap B28 779"));
        assert_eq!(a.get_version_num(), 7);
        let (secs, _) = a.get_timestamp().expect("ts").to_unix();
        assert_eq!(secs, 1_790_000_000);
    }

    #[test]
    fn gap_event_round_trips_and_ignores_unknown_fields() {
        let t = OffsetDateTime::from_unix_timestamp(1_790_000_000).expect("time");
        let e = GapEvent {
            schema: GAP_SCHEMA.into(),
            event_id: event_id(t, b"x"),
            facility_id: "f".into(),
            sensor_id: "s".into(),
            observed_at: t,
            gap_key: "B28/lte/778.0".into(),
            state: GapState::Open,
            zone: "yard".into(),
            band: "B28".into(),
            technology: Technology::Lte,
            center_hz: 778e6,
            bandwidth_hz: 9e6,
            cell: Some(CellId {
                pci: Some(210),
                earfcn: Some(9410),
                ..CellId::default()
            }),
            power_dbm: Some(-60.5),
            floor_dbm: Some(-95.0),
            power_dbfs: -30.5,
            floor_dbfs: -65.0,
            margin_db: 40.5,
            severity: Severity::Critical,
            detector: Detector::Energy,
            evidence: None,
        };
        let mut v = serde_json::to_value(&e).expect("ser");
        assert_eq!(v["observed_at"], "2026-09-21T14:13:20Z");
        assert_eq!(v["cell"], serde_json::json!({"pci": 210, "earfcn": 9410}));
        v["future_field"] = serde_json::json!(1);
        let back: GapEvent = serde_json::from_value(v).expect("de");
        assert_eq!(back, e);
    }

    #[test]
    fn severity_follows_margin() {
        assert_eq!(Severity::from_margin_db(-1.0), Severity::Low);
        assert_eq!(Severity::from_margin_db(3.0), Severity::High);
        assert_eq!(Severity::from_margin_db(12.0), Severity::Critical);
    }
}
