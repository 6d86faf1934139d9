//! The agent's configuration file (`agent.toml`), with `CENTINELA_<SECTION>_<KEY>` environment
//! overrides (for example `CENTINELA_MQTT_BROKER=mqtt://10.0.0.5:1883`) and a check that
//! reports every problem at once.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::PipelineConfig;

/// The whole agent configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Who and where the sensor is.
    pub sensor: SensorSection,
    /// The radio.
    pub source: SourceSection,
    /// What to scan.
    #[serde(default)]
    pub scan: ScanSection,
    /// Spectrum pipeline and thresholds.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Broker connection.
    pub mqtt: MqttSection,
    /// Persistent outbox.
    #[serde(default)]
    pub outbox: OutboxSection,
    /// Evidence clips.
    #[serde(default)]
    pub evidence: EvidenceSection,
}

/// Evidence clips: the IQ of each gap that opens at `critical`, kept as a SigMF recording that
/// `sensor-agent replay` turns back into the gap (see [`crate::evidence`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceSection {
    /// Keep clips.
    pub clips: bool,
    /// Directory (default: `clips` inside the outbox directory).
    pub dir: Option<PathBuf>,
    /// Most megabytes the clips may take; the oldest are deleted first when full.
    pub max_mb: f64,
}

impl Default for EvidenceSection {
    fn default() -> Self {
        Self {
            clips: true,
            dir: None,
            max_mb: 1024.0,
        }
    }
}

impl EvidenceSection {
    /// The clip directory for an outbox in `outbox_dir`.
    #[must_use]
    pub fn dir_for(&self, outbox_dir: &std::path::Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| outbox_dir.join("clips"))
    }
}

/// Identity and place of the sensor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorSection {
    /// Facility id (topic level).
    pub facility: String,
    /// Sensor id (topic level).
    pub id: String,
    /// Zone of the facility it covers.
    pub zone: String,
    /// Position in the facility's plan, metres (x east, y north).
    #[serde(default)]
    pub position_m: Option<[f64; 2]>,
    /// The sensor's private key (PKCS#8 PEM, mode 0600), as `sensor-agent keygen --out DIR`
    /// writes it. Every message is signed with it; the message counter (`seq`) lives beside it.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// The radio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// `sim` (the demo facility, seen from `sensor.position_m`), `sim:SCENE.toml`,
    /// `sigmf:RECORDING.sigmf-meta` (a sweep recorded with `sensor-agent record --band`, played
    /// again each sweep; the scan rate is the recording's), `soapy:DEVICE-ARGS` (for example
    /// `soapy:driver=rtlsdr`).
    pub spec: String,
    /// Device profile for tuning limits and noise figure (`rtl-sdr`, `hackrf`, `b210`, …).
    #[serde(default)]
    pub device: Option<String>,
    /// Sample rate while scanning, hertz.
    #[serde(default)]
    pub sample_rate_hz: Option<f64>,
    /// Gain, dB.
    #[serde(default)]
    pub gain_db: Option<f64>,
}

/// What to scan and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanSection {
    /// Country band plan (`CO`, `MX`, `GT`, `EC`, `UY`, `DO`).
    pub country: String,
    /// Explicit bands instead of the country plan.
    pub bands: Vec<String>,
    /// Capture per hop, milliseconds.
    pub dwell_ms: f64,
    /// Pause between sweeps, seconds.
    pub interval_s: f64,
    /// Name cells by sync search.
    pub cell_search: bool,
    /// Downlink centres (hertz) to sync-search every sweep even when energy shows nothing there:
    /// the operators' known channels around the facility, where a cell may hide under a jammer.
    pub watch_hz: Vec<f64>,
    /// Record every sweep as it is analysed, one SigMF recording per sweep
    /// (`BASE-000000.sigmf-meta`, …): for a technician to replay what the sensor saw. A sweep
    /// is about 8 bytes per sample captured; mind the disk.
    pub record: Option<std::path::PathBuf>,
}

impl Default for ScanSection {
    fn default() -> Self {
        Self {
            country: "CO".into(),
            bands: Vec::new(),
            dwell_ms: 20.0,
            interval_s: 0.0,
            cell_search: true,
            watch_hz: Vec::new(),
            record: None,
        }
    }
}

/// Broker connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSection {
    /// `mqtt://HOST:PORT`, or `mqtts://HOST:PORT` (TLS, with `tls_ca`).
    pub broker: String,
    /// Username.
    #[serde(default)]
    pub username: Option<String>,
    /// Password.
    #[serde(default)]
    pub password: Option<protocol::Secret>,
    /// CA certificate (PEM): when set, the link uses TLS (rustls) and checks the broker's
    /// certificate against it and the broker's host name.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// Client key (PEM).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Seconds between heartbeats (retained status with health figures).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_s: f64,
    /// Publish a spectrum summary per sweep (QoS 0).
    #[serde(default)]
    pub spectrum: bool,
    /// Seconds to wait for the server's commit receipt of an event before sending it again
    /// (the wait doubles with each try, up to five minutes).
    #[serde(default = "default_receipt_timeout")]
    pub receipt_timeout_s: f64,
    /// The server's receipt key (`ed25519:…`, as the server prints it at start and
    /// `central-server receipt-key` shows it), or a list of them (a group of servers with keys
    /// of their own). An event leaves the outbox only on a receipt signed with one of them.
    #[serde(default, deserialize_with = "one_or_many_keys")]
    pub server_key: Vec<protocol::signed::PublicKey>,
}

/// `"ed25519:…"` or `["ed25519:…", …]`.
fn one_or_many_keys<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<protocol::signed::PublicKey>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let texts = match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    };
    texts
        .iter()
        .map(|t| t.parse().map_err(serde::de::Error::custom))
        .collect()
}

fn default_heartbeat() -> f64 {
    10.0
}

fn default_receipt_timeout() -> f64 {
    15.0
}

/// Persistent outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxSection {
    /// Directory.
    pub dir: PathBuf,
    /// Most events kept; see [`crate::daemon::outbox`] for what goes when full.
    pub max_events: usize,
}

impl Default for OutboxSection {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("centinela-outbox"),
            max_events: 100_000,
        }
    }
}

const SECTIONS: [&str; 6] = ["sensor", "source", "scan", "pipeline", "mqtt", "outbox"];

/// Applies `CENTINELA_<SECTION>_<KEY>=value` overrides to a parsed TOML document. Values are
/// read as TOML (numbers, booleans, arrays) and otherwise taken as strings.
fn apply_env(doc: &mut toml::Table, vars: impl Iterator<Item = (String, String)>) {
    for (k, v) in vars {
        let Some(rest) = k.strip_prefix("CENTINELA_") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let Some(section) = SECTIONS
            .iter()
            .find(|s| lower.starts_with(&format!("{s}_")))
        else {
            continue;
        };
        let key = &lower[section.len() + 1..];
        let value = toml::from_str::<toml::Table>(&format!("v = {v}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or(toml::Value::String(v));
        let entry = doc
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = entry {
            t.insert(key.to_string(), value);
        }
    }
}

impl AgentConfig {
    /// Parses a configuration with the process's environment overrides.
    ///
    /// # Errors
    /// Every problem, each naming the file and the setting.
    pub fn load(text: &str, origin: &str) -> Result<Self, Vec<String>> {
        Self::load_with_env(text, origin, std::env::vars())
    }

    /// Parses a configuration with the given environment overrides.
    ///
    /// # Errors
    /// Every problem, each naming the file and the setting.
    pub fn load_with_env(
        text: &str,
        origin: &str,
        env: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, Vec<String>> {
        let mut doc: toml::Table =
            toml::from_str(text).map_err(|e| vec![format!("{origin}: {e}")])?;
        apply_env(&mut doc, env);
        let c: Self = doc
            .try_into()
            .map_err(|e: toml::de::Error| vec![format!("{origin}: {}", e.message())])?;
        let p = c.problems(origin);
        if p.is_empty() { Ok(c) } else { Err(p) }
    }

    /// Problems of the files the configuration names, beyond its text (`check-config` and
    /// `run` look at them): the key file must exist, be private and hold a key.
    #[must_use]
    pub fn file_problems(&self, origin: &str) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(k) = &self.sensor.key
            && let Err(e) = crate::keys::load_key(k)
        {
            p.push(format!(
                "{origin}: sensor.key: {e} (a sensor's key is made with `sensor-agent keygen --out DIR`)"
            ));
        }
        p
    }

    /// Every problem of the configuration.
    #[must_use]
    pub fn problems(&self, origin: &str) -> Vec<String> {
        let mut p = Vec::new();
        let mut push = |s: String| p.push(format!("{origin}: {s}"));
        if let Err(e) = protocol::check_id("facility_id", &self.sensor.facility) {
            push(format!("sensor.facility: {e}"));
        }
        if let Err(e) = protocol::check_id("sensor_id", &self.sensor.id) {
            push(format!("sensor.id: {e}"));
        }
        if self.sensor.zone.trim().is_empty() {
            push("sensor.zone must not be empty".into());
        }
        if self.sensor.key.is_none() {
            push(
                "sensor.key is missing: every message is signed; create a key with `sensor-agent keygen --out DIR`, set key = \"DIR/sensor.key\" and register the public key it prints in the server's configuration".into(),
            );
        }
        if let Some(pos) = self.sensor.position_m
            && !pos.iter().all(|v| v.is_finite())
        {
            push("sensor.position_m must be two finite numbers".into());
        }
        match crate::source::SourceSpec::parse(&self.source.spec) {
            Ok(spec) => {
                if let Some(p) = spec.problem() {
                    push(format!("source.spec: {p}"));
                }
            }
            Err(e) => push(format!("source.spec: {e}")),
        }
        if let Err(e) = crate::source::device_profile(self.source.device.as_deref()) {
            push(format!("source.device: {e}"));
        }
        if let Some(r) = self.source.sample_rate_hz
            && !(r.is_finite() && r > 0.0)
        {
            push(format!("source.sample_rate_hz {r} must be positive"));
        }
        if let Err(e) = crate::pipeline::select_bands(Some(&self.scan.country), &self.scan.bands) {
            push(format!("scan: {e}"));
        }
        if !(self.evidence.max_mb.is_finite() && self.evidence.max_mb > 0.0) {
            push(format!(
                "evidence.max_mb {} must be a positive number",
                self.evidence.max_mb
            ));
        }
        if !(self.scan.dwell_ms.is_finite() && self.scan.dwell_ms > 0.0) {
            push(format!(
                "scan.dwell_ms {} must be positive",
                self.scan.dwell_ms
            ));
        }
        if !(self.scan.interval_s.is_finite() && self.scan.interval_s >= 0.0) {
            push(format!(
                "scan.interval_s {} must be zero or more",
                self.scan.interval_s
            ));
        }
        for f in &self.scan.watch_hz {
            if !(f.is_finite() && *f > 1e6) {
                push(format!("scan.watch_hz: {f} is not a frequency in hertz"));
            }
        }
        if let Err(e) = self.pipeline.check() {
            push(format!("pipeline: {e}"));
        }
        if let Err(e) = protocol::parse_broker_url(&self.mqtt.broker) {
            push(format!("mqtt.broker: {e}"));
        }
        if self.mqtt.username.is_some() != self.mqtt.password.is_some() {
            push("mqtt.username and mqtt.password go together".into());
        }
        for (name, f) in [
            ("tls_ca", &self.mqtt.tls_ca),
            ("tls_cert", &self.mqtt.tls_cert),
            ("tls_key", &self.mqtt.tls_key),
        ] {
            if let Some(f) = f {
                match crate::files::read_small_text(f) {
                    Ok(t) if t.contains("-----BEGIN ") => {}
                    Ok(_) => push(format!("mqtt.{name}: `{}` is not a PEM file", f.display())),
                    Err(e) => push(format!("mqtt.{name}: {e}")),
                }
            }
        }
        if self.mqtt.tls_cert.is_some() != self.mqtt.tls_key.is_some() {
            push("mqtt.tls_cert and mqtt.tls_key go together (client authentication)".into());
        }
        if self.mqtt.tls_cert.is_some() && self.mqtt.tls_ca.is_none() {
            push("mqtt.tls_cert needs mqtt.tls_ca (the CA that signs the broker)".into());
        }
        if protocol::broker_url_is_tls(&self.mqtt.broker) && self.mqtt.tls_ca.is_none() {
            push(format!(
                "mqtt.broker `{}` is TLS: set mqtt.tls_ca (the CA that signs the broker's certificate)",
                self.mqtt.broker
            ));
        }
        if !(protocol::MIN_HEARTBEAT_S..=protocol::MAX_HEARTBEAT_S).contains(&self.mqtt.heartbeat_s)
        {
            push(format!(
                "mqtt.heartbeat_s {} must be {}–{} seconds",
                self.mqtt.heartbeat_s,
                protocol::MIN_HEARTBEAT_S,
                protocol::MAX_HEARTBEAT_S
            ));
        }
        if !(self.mqtt.receipt_timeout_s.is_finite()
            && (1.0..=3600.0).contains(&self.mqtt.receipt_timeout_s))
        {
            push(format!(
                "mqtt.receipt_timeout_s {} must be 1–3600 seconds",
                self.mqtt.receipt_timeout_s
            ));
        }
        if self.mqtt.server_key.is_empty() {
            push(
                "mqtt.server_key is missing: an event leaves the outbox only on a receipt the server signed; set server_key = \"ed25519:…\" as the server prints it (`central-server receipt-key`, or the sensor's credentials file from `central-server broker-config`)".into(),
            );
        }
        if self.outbox.max_events == 0 {
            push("outbox.max_events must be at least 1".into());
        }
        if self.outbox.dir.as_os_str().is_empty() {
            push("outbox.dir must not be empty".into());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_committed_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("agent.example.toml");
        let text = std::fs::read_to_string(&path).expect("example exists");
        let c = AgentConfig::load_with_env(&text, "agent.example.toml", std::iter::empty())
            .unwrap_or_else(|e| panic!("{e:#?}"));
        assert_eq!(c.scan.country, "CO");
        assert!(c.sensor.position_m.is_some());
    }

    #[test]
    fn env_overrides_win() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("agent.example.toml"),
        )
        .expect("example");
        let env = [
            ("CENTINELA_MQTT_BROKER", "mqtt://10.0.0.5:1884"),
            ("CENTINELA_SENSOR_ID", "yard-2"),
            ("CENTINELA_SCAN_DWELL_MS", "40"),
            ("CENTINELA_TESTDATA", "/elsewhere"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = AgentConfig::load_with_env(&text, "x", env.into_iter()).expect("ok");
        assert_eq!(c.mqtt.broker, "mqtt://10.0.0.5:1884");
        assert_eq!(c.sensor.id, "yard-2");
        assert_eq!(c.scan.dwell_ms, 40.0);
    }

    #[test]
    fn the_broker_password_never_shows_in_debug() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("agent.example.toml"),
        )
        .expect("example");
        let env = [
            ("CENTINELA_MQTT_USERNAME", "yard-1"),
            ("CENTINELA_MQTT_PASSWORD", "s3cret-broker-pass"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let c = AgentConfig::load_with_env(&text, "x", env.into_iter()).expect("ok");
        assert_eq!(
            c.mqtt.password.as_ref().map(protocol::Secret::expose),
            Some("s3cret-broker-pass")
        );
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn every_problem_at_once() {
        let text = r#"
[sensor]
facility = "la picota"
id = "s/1"
zone = ""
[source]
spec = "usb:0"
device = "walkie-talkie"
[scan]
country = "XX"
dwell_ms = -1
[mqtt]
broker = "tcp://x"
heartbeat_s = 0
[outbox]
max_events = 0
"#;
        let e =
            AgentConfig::load_with_env(text, "agent.toml", std::iter::empty()).expect_err("bad");
        assert!(e.len() >= 9, "{e:#?}");
        assert!(e.iter().all(|m| m.starts_with("agent.toml: ")), "{e:#?}");
        for needle in [
            "sensor.facility",
            "sensor.id",
            "sensor.zone",
            "sensor.key",
            "source.spec",
            "source.device",
            "scan:",
            "scan.dwell_ms",
            "mqtt.broker",
            "mqtt.heartbeat_s",
            "outbox.max_events",
        ] {
            assert!(e.iter().any(|m| m.contains(needle)), "{needle}: {e:#?}");
        }
        let unknown = AgentConfig::load_with_env(
            "[sensor]\nfacility='f'\nid='s'\nzone='z'\ncolour='red'\n[source]\nspec='sim'\n[mqtt]\nbroker='mqtt://h:1'\n",
            "a.toml",
            std::iter::empty(),
        )
        .expect_err("unknown field");
        assert!(unknown[0].contains("colour"), "{unknown:?}");
    }
}
