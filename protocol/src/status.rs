//! Sensor status (`centinela.status/1`, retained, also the Last Will) and spectrum summaries
//! (`centinela.spectrum/1`, QoS 0).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// Schema of status messages.
pub const STATUS_SCHEMA: &str = "centinela.status/1";
/// Schema of spectrum summaries.
pub const SPECTRUM_SCHEMA: &str = "centinela.spectrum/1";

/// Whether a sensor is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SensorState {
    /// Connected and scanning.
    Online,
    /// Gone: published by the agent on a clean shutdown, or by the broker as its Last Will.
    Offline,
}

impl SensorState {
    /// Lowercase wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }
}

/// Health figures of a running agent, sent with each heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SensorHealth {
    /// Seconds since the agent started.
    pub uptime_s: f64,
    /// Sweeps completed since start.
    pub sweeps: u64,
    /// Wall time of the last sweep, seconds.
    pub last_sweep_s: f64,
    /// Receive overflows since start.
    pub overflows: u64,
    /// Samples known lost in overflows since start.
    pub lost_samples: u64,
    /// Reads that timed out since start.
    pub timeouts: u64,
    /// Events waiting in the outbox.
    pub queue_depth: u64,
    /// Events dropped, since start: the outbox was full, or an event could be neither written
    /// to disk nor held in memory (its memory queue full too), or not sealed.
    pub outbox_dropped: u64,
    /// Sweeps that failed (source errors) since start.
    pub sweep_errors: u64,
    /// Events sent again because no commit receipt came in time, since start.
    #[serde(default)]
    pub resent: u64,
    /// Events the server refused for good (moved to the outbox's `rejected/`), since start.
    #[serde(default)]
    pub server_rejected: u64,
    /// Receipts or receipt items that did not match an event of this sensor (another client's
    /// bytes under one of its event ids, or a forged receipt), since start.
    #[serde(default)]
    pub receipt_mismatches: u64,
    /// Receipts not signed with the server's key (unsigned or forged), ignored, since start.
    #[serde(default)]
    pub receipts_refused: u64,
    /// Events the outbox could not write to disk (full disk, I/O error), kept in memory
    /// instead until their receipt, since start.
    #[serde(default)]
    pub outbox_unwritten: u64,
    /// Events held in memory now (written nowhere else: lost if the agent stops before their
    /// receipt comes).
    #[serde(default)]
    pub outbox_in_memory: u64,
    /// Evidence clips kept (one per gap that opened critical), since start.
    #[serde(default)]
    pub clips_kept: u64,
    /// Old clips deleted to keep within the disk budget, since start.
    #[serde(default)]
    pub clips_evicted: u64,
    /// Clips not kept (larger than the whole budget, or a write that failed), since start.
    #[serde(default)]
    pub clips_lost: u64,
    /// Summaries of the spectrum not sent because the link was slow, since start.
    #[serde(default)]
    pub spectrum_dropped: u64,
    /// How often each band is looked at, and for how much of the time.
    #[serde(default)]
    pub coverage: Vec<BandCoverage>,
}

/// How a sensor covers one band: a band is watched only while its hops are captured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BandCoverage {
    /// Band name.
    pub band: String,
    /// Seconds between the last two observations of the band (the sweep period, as run).
    pub revisit_s: f64,
    /// Share of that time the band's hops were being captured (air time ÷ revisit), 0–1.
    pub observed_fraction: f64,
}

/// A sensor's status (`centinela.status/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct StatusEvent {
    /// `centinela.status/1`.
    #[schemars(extend("const" = "centinela.status/1"))]
    pub schema: String,
    /// Unique id (UUIDv7).
    pub event_id: Uuid,
    /// Facility.
    pub facility_id: String,
    /// Sensor.
    pub sensor_id: String,
    /// When this status was written (RFC 3339, UTC). For a Last Will, the time of the connection
    /// whose loss it announces.
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub observed_at: OffsetDateTime,
    /// Online or offline.
    pub state: SensorState,
    /// Start of the MQTT connection this status belongs to (RFC 3339, UTC). A Last Will from
    /// an older connection, delivered late, does not mark a newer connection offline.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub connected_at: Option<OffsetDateTime>,
    /// Zone the sensor covers.
    pub zone: String,
    /// Position in the facility's plan, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position_m: Option<[f64; 2]>,
    /// Agent version.
    pub agent_version: String,
    /// Seconds between heartbeats; the server marks the sensor offline after three missed.
    pub heartbeat_s: f64,
    /// Planned bands the radio cannot reach.
    #[serde(default)]
    pub unreachable_bands: Vec<String>,
    /// Health figures.
    pub health: SensorHealth,
    /// The sequence number of this connection's Last Will: sealed at connect, sent only when the
    /// connection ends, so until then it is a number held in reserve, not a missing message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub will_seq: Option<u64>,
}

/// One carrier in a spectrum summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CarrierSummary {
    /// Centre, hertz.
    pub center_hz: f64,
    /// Occupied bandwidth, hertz.
    pub bandwidth_hz: f64,
    /// Channel power, dBFS.
    pub power_dbfs: f64,
}

/// One band in a spectrum summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BandSummary {
    /// Band name.
    pub band: String,
    /// `dbm` when the sensor is calibrated, else `dbfs`.
    pub unit: String,
    /// Floor density in that unit per hertz.
    pub floor_db_per_hz: f64,
    /// Floor over the thermal floor, dB (absent when not calibrated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_rise_db: Option<f64>,
    /// Carriers above the floor.
    pub carriers: Vec<CarrierSummary>,
}

/// A summary of one sweep's spectrum (`centinela.spectrum/1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SpectrumSummary {
    /// `centinela.spectrum/1`.
    #[schemars(extend("const" = "centinela.spectrum/1"))]
    pub schema: String,
    /// Unique id (UUIDv7).
    pub event_id: Uuid,
    /// Facility.
    pub facility_id: String,
    /// Sensor.
    pub sensor_id: String,
    /// When the sweep started (RFC 3339, UTC).
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub observed_at: OffsetDateTime,
    /// Bands of the sweep.
    pub bands: Vec<BandSummary>,
}
