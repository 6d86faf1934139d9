//! Recorded sweeps: SigMF recordings that carry, in the `centinela` extension namespace,
//! everything the [`Pipeline`](crate::pipeline::Pipeline) needs to reach the same verdicts
//! again — the hop plan, the settings, the sensor, the sweep's clock, and per capture the hop,
//! gain, calibration and noise figure. The fields are listed in README ("Recorded sweeps").
//!
//! [`SweepRecorder`] writes one recording per sweep as the pipeline captures it (samples as
//! `cf32_le`, exactly what was analysed); [`RecordedSweep`] reads one back and is the
//! [`IqSource`] a replay sweeps, tuned hop by hop to the recorded captures.

use std::path::{Path, PathBuf};

use dsp::Complex32;
use dsp::calib::Calibration;
use hardware::sigmf::{Datatype, Metadata, SigmfSource, SigmfWriter, Written};
use hardware::{HwError, IqSource, ReadOutcome, SourceInfo, Tuned, Tuning};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use crate::AgentError;
use crate::config::Identity;
use crate::pipeline::{HopCapture, ScanPlan, SweepSettings};

/// The extension's name in `core:extensions` and the prefix of its keys.
pub const EXTENSION: &str = "centinela";
/// The extension's version.
pub const EXTENSION_VERSION: &str = "1.0.0";
/// `centinela:schema` of a recorded sweep.
pub const SWEEP_SCHEMA: &str = "centinela.sweep/1";

/// What a recorded sweep holds besides its samples: the `centinela:` global fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepHeader {
    /// [`SWEEP_SCHEMA`].
    pub schema: String,
    /// The sensor that recorded it.
    pub sensor: Identity,
    /// The radio as planned (a profile's name, or the source's).
    pub device: String,
    /// The device profile's id, when one was given.
    pub profile: Option<String>,
    /// Sample rate of the plan, hertz.
    pub sample_rate_hz: f64,
    /// The hop plan swept.
    pub plan: ScanPlan,
    /// The settings swept with.
    pub settings: SweepSettings,
    /// Index of the sweep in its run (0 first).
    pub sweep: u64,
    /// The sweep's clock: every observation and event of the sweep carries this time.
    #[serde(with = "time::serde::rfc3339")]
    pub sweep_at: OffsetDateTime,
    /// Set when the recording is an evidence clip: the gap it shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<Value>,
    /// The radio's oscillator error (ppm) the pipeline had learnt from earlier SSBs when the
    /// sweep began (it narrows the NR search); a replay starts from it too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub radio_ppm: Option<f64>,
    /// What the trackers remembered when the sweep began (absent before a run's first sweep
    /// and in clips): a replay starts from it, so the sweep's gap and jammer events are the
    /// live sweep's whatever its index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trackers: Option<crate::tracker::TrackerState>,
}

/// Who records: the sensor and its radio, as every sweep header and clip names them.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepOrigin {
    /// The sensor.
    pub sensor: Identity,
    /// The radio's name as planned.
    pub device: String,
    /// The device profile's id.
    pub profile: Option<String>,
    /// Scanning rate, hertz.
    pub sample_rate_hz: f64,
}

impl SweepOrigin {
    /// The sensor `sensor` on the radio `device` (a profile's name or the source's), profile
    /// `profile`, scanning at `sample_rate_hz`.
    #[must_use]
    pub fn new(
        sensor: &Identity,
        device: &str,
        profile: Option<&hardware::profile::DeviceProfile>,
        sample_rate_hz: f64,
    ) -> Self {
        Self {
            sensor: sensor.clone(),
            device: device.to_string(),
            profile: profile.map(|p| p.id.to_string()),
            sample_rate_hz,
        }
    }
}

impl SweepHeader {
    /// The header of sweep `sweep` of `pipeline`, clocked `at`.
    #[must_use]
    pub fn new(
        origin: &SweepOrigin,
        plan: &ScanPlan,
        settings: &SweepSettings,
        sweep: u64,
        at: OffsetDateTime,
    ) -> Self {
        Self {
            schema: SWEEP_SCHEMA.into(),
            sensor: origin.sensor.clone(),
            device: origin.device.clone(),
            profile: origin.profile.clone(),
            sample_rate_hz: origin.sample_rate_hz,
            plan: plan.clone(),
            settings: settings.clone(),
            sweep,
            sweep_at: at,
            clip: None,
            radio_ppm: None,
            trackers: None,
        }
    }

    /// The same header with the oscillator error the sweep starts from.
    #[must_use]
    pub fn with_radio_ppm(self, radio_ppm: Option<f64>) -> Self {
        Self { radio_ppm, ..self }
    }

    /// The same header with the trackers' state the sweep starts from (none when they have
    /// seen nothing yet).
    #[must_use]
    pub fn with_trackers(self, trackers: crate::tracker::TrackerState) -> Self {
        Self {
            trackers: (trackers != crate::tracker::TrackerState::default()).then_some(trackers),
            ..self
        }
    }
}

/// Per-capture `centinela:` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureHeader {
    /// Index of the range in the plan.
    pub range: usize,
    /// Index of the hop in its range.
    pub hop: usize,
    /// Centre the plan asked for, hertz (`core:frequency` is what the radio tuned to).
    pub planned_center_hz: f64,
    /// Gain the radio reported, dB.
    pub gain_db: Option<f64>,
    /// The radio's dBFS → dBm calibration at this tuning.
    pub calibration: Option<Calibration>,
    /// Noise figure the verdicts used, dB.
    pub noise_figure_db: Option<f64>,
    /// Overflow events while capturing.
    pub overflows: u64,
}

fn prefixed(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (format!("{EXTENSION}:{k}"), v))
            .collect(),
        _ => Map::new(),
    }
}

fn unprefixed(m: &Map<String, Value>) -> Value {
    Value::Object(
        m.iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(EXTENSION)
                    .and_then(|r| r.strip_prefix(':'))
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect(),
    )
}

/// Writes one recording of a sweep as the pipeline captures it.
#[derive(Debug)]
pub struct SweepRecorder {
    writer: SigmfWriter,
    header: SweepHeader,
}

impl SweepRecorder {
    /// Creates `BASE.sigmf-data`; the metadata is written by [`SweepRecorder::finish`].
    ///
    /// # Errors
    /// [`AgentError::Hardware`] when the file cannot be created.
    pub fn create(base: &Path, header: SweepHeader) -> Result<Self, AgentError> {
        Self::create_as(base, Datatype::Cf32Le, header)
    }

    /// As [`SweepRecorder::create`], in another sample format (`ci16_le` rounds the samples).
    ///
    /// # Errors
    /// As [`SweepRecorder::create`].
    pub fn create_as(
        base: &Path,
        datatype: Datatype,
        header: SweepHeader,
    ) -> Result<Self, AgentError> {
        if let Some(dir) = base.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                AgentError::Runtime(format!("recording directory {}: {e}", dir.display()))
            })?;
        }
        let writer = SigmfWriter::create(base, datatype, header.sample_rate_hz)?;
        Ok(Self { writer, header })
    }

    /// Appends a captured hop as a capture of its own.
    ///
    /// # Errors
    /// [`AgentError::Hardware`] on a write failure.
    pub fn hop(&mut self, hop: &HopCapture<'_>) -> Result<(), AgentError> {
        let head = CaptureHeader {
            range: hop.range,
            hop: hop.index,
            planned_center_hz: hop.planned.center_hz,
            gain_db: hop.tuned.gain_db,
            calibration: hop.calibration.cloned(),
            noise_figure_db: hop.noise_figure_db,
            overflows: hop.overflows,
        };
        let when = hop
            .started_at
            .format(&time::format_description::well_known::Rfc3339)
            .ok();
        self.writer.start_capture_with(
            Some(hop.tuned.center_hz),
            when.as_deref(),
            prefixed(serde_json::to_value(&head).unwrap_or(Value::Null)),
        );
        self.writer.write(hop.samples)?;
        Ok(())
    }

    /// Writes the metadata; returns its path and the dataset's SHA-512.
    ///
    /// # Errors
    /// [`AgentError::Hardware`] on a write failure.
    pub fn finish(mut self) -> Result<Written, AgentError> {
        let h = &self.header;
        self.writer.set_global(
            "core:description",
            json!(format!(
                "Centinela sweep {} of {}/{} on {}",
                h.sweep, h.sensor.facility_id, h.sensor.sensor_id, h.device
            )),
        );
        self.writer.set_global("core:hw", json!(h.device));
        self.writer.set_global(
            "core:extensions",
            json!([{"name": EXTENSION, "version": EXTENSION_VERSION, "optional": true}]),
        );
        for (k, v) in prefixed(serde_json::to_value(&self.header).unwrap_or(Value::Null)) {
            self.writer.set_global(&k, v);
        }
        Ok(self.writer.finish_written()?)
    }
}

/// The path of sweep `n`'s recording for `--record BASE`: `BASE-NNNNNN`.
#[must_use]
pub fn sweep_base(base: &Path, n: u64) -> PathBuf {
    let mut s = base.as_os_str().to_owned();
    s.push(format!("-{n:06}"));
    PathBuf::from(s)
}

/// A recorded sweep opened for replay: its header, and a source that plays its captures.
#[derive(Debug)]
pub struct RecordedSweep {
    /// The `centinela:` global fields.
    pub header: SweepHeader,
    source: SigmfSource,
    captures: Vec<CaptureHeader>,
    current: Option<usize>,
}

impl RecordedSweep {
    /// Whether a recording's metadata declares a Centinela sweep.
    #[must_use]
    pub fn is_sweep(meta: &Metadata) -> bool {
        meta.extensions.contains_key(&format!("{EXTENSION}:schema"))
    }

    /// Opens a recorded sweep, checking its dataset against its `core:sha512` when it has one.
    ///
    /// # Errors
    /// As [`SigmfSource::open`]; [`HwError::Metadata`] when the `centinela:` fields are missing,
    /// of another schema, or do not match the captures; [`HwError::Data`] when the dataset is
    /// not the one the metadata's hash names.
    pub fn open(path: &Path) -> Result<Self, AgentError> {
        let source = SigmfSource::open(path)?;
        let meta = source.metadata();
        let bad = |message: String| HwError::Metadata {
            path: meta.meta_path.clone(),
            message,
        };
        if let Some(want) = &meta.sha512 {
            let got = hardware::sigmf::file_sha512(&meta.data_path)?;
            if !got.eq_ignore_ascii_case(want) {
                return Err(HwError::Data {
                    path: meta.data_path.clone(),
                    message: format!(
                        "its SHA-512 is {}… but `core:sha512` says {}…: the samples are not the ones recorded",
                        &got[..16],
                        want.chars().take(16).collect::<String>()
                    ),
                }
                .into());
            }
        }
        let schema = meta
            .extensions
            .get(&format!("{EXTENSION}:schema"))
            .and_then(Value::as_str)
            .ok_or_else(|| bad("not a Centinela sweep: no `global.centinela:schema`".into()))?;
        if schema != SWEEP_SCHEMA {
            return Err(bad(format!(
                "`global.centinela:schema` is `{schema}`; this agent reads `{SWEEP_SCHEMA}`"
            ))
            .into());
        }
        let header: SweepHeader = serde_json::from_value(unprefixed(&meta.extensions))
            .map_err(|e| bad(format!("`global.centinela:*`: {e}")))?;
        if (header.sample_rate_hz - meta.sample_rate_hz).abs() > 1e-6 * meta.sample_rate_hz {
            return Err(bad(format!(
                "`global.centinela:sample_rate_hz` {} differs from `core:sample_rate` {}",
                header.sample_rate_hz, meta.sample_rate_hz
            ))
            .into());
        }
        header
            .settings
            .pipeline
            .check()
            .map_err(|e| bad(format!("`global.centinela:settings`: {e}")))?;
        if !(header.settings.dwell_s > 0.0
            && header.settings.dwell_s <= crate::pipeline::MAX_DWELL_S)
        {
            return Err(bad(format!(
                "`global.centinela:settings.dwell_s` {} is not a dwell of 0–{} s",
                header.settings.dwell_s,
                crate::pipeline::MAX_DWELL_S
            ))
            .into());
        }
        let mut captures = Vec::with_capacity(meta.captures.len());
        for (i, c) in meta.captures.iter().enumerate() {
            let h: CaptureHeader = serde_json::from_value(unprefixed(&c.extensions))
                .map_err(|e| bad(format!("`captures[{i}].centinela:*`: {e}")))?;
            let Some(range) = header.plan.ranges.get(h.range) else {
                return Err(bad(format!(
                    "`captures[{i}].centinela:range` {} is not a range of the plan",
                    h.range
                ))
                .into());
            };
            if range.hops.hops.get(h.hop).map(|p| p.center_hz) != Some(h.planned_center_hz) {
                return Err(bad(format!(
                    "`captures[{i}]` is not hop {} of range {} of the plan",
                    h.hop, h.range
                ))
                .into());
            }
            // The settings size what a replay reads: they must agree with what was recorded.
            let want = crate::pipeline::hop_len(&header.settings, range, meta.sample_rate_hz);
            if c.sample_count != want as u64 {
                return Err(bad(format!(
                    "`captures[{i}]` holds {} samples but the recorded settings capture {want} per hop of its range",
                    c.sample_count
                ))
                .into());
            }
            captures.push(h);
        }
        Ok(Self {
            header,
            source,
            captures,
            current: None,
        })
    }

    /// The recording's metadata.
    #[must_use]
    pub fn metadata(&self) -> &Metadata {
        self.source.metadata()
    }
}

/// The capture after `current` (wrapping round) whose hop was planned at `centre_hz`: how a
/// played-back sweep follows the pipeline's tuning, hop after hop and sweep after sweep.
fn next_planned(
    planned: &[f64],
    current: Option<usize>,
    centre_hz: f64,
    what: &str,
) -> Result<usize, HwError> {
    let n = planned.len();
    let from = current.map_or(0, |c| c + 1);
    (0..n)
        .map(|k| (from + k) % n)
        .find(|&i| planned[i] == centre_hz)
        .ok_or_else(|| HwError::Tuning {
            what: "center_hz",
            value: centre_hz.to_string(),
            reason: format!("no hop of the {what} sweep was planned there"),
        })
}

impl IqSource for RecordedSweep {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "sigmf",
            name: self.source.metadata().meta_path.display().to_string(),
            noise_figure_db: self
                .current
                .and_then(|i| self.captures.get(i))
                .and_then(|c| c.noise_figure_db),
        }
    }

    /// Moves to the next capture (after the current one, wrapping round) that recorded the
    /// hop planned at the requested centre.
    fn tune(&mut self, t: &Tuning) -> Result<Tuned, HwError> {
        let planned: Vec<f64> = self.captures.iter().map(|c| c.planned_center_hz).collect();
        let idx = next_planned(&planned, self.current, t.center_hz, "recorded")?;
        let tuned = self.source.tune_capture(idx, t.sample_rate_hz)?;
        self.current = Some(idx);
        Ok(Tuned {
            gain_db: self.captures[idx].gain_db,
            ..tuned
        })
    }

    fn read(&mut self, buf: &mut [Complex32]) -> Result<ReadOutcome, HwError> {
        self.source.read(buf)
    }

    fn calibration(&self) -> Option<Calibration> {
        self.current
            .and_then(|i| self.captures.get(i))
            .and_then(|c| c.calibration.clone())
    }
}

/// A sweep captured into memory: an [`Observer`](crate::pipeline::Observer) that keeps every
/// hop, and then the [`IqSource`] that plays them back, as [`RecordedSweep`] plays a file.
/// Benchmarks use it to time the pipeline without the simulator's cost.
#[derive(Debug, Default)]
pub struct MemorySweep {
    hops: Vec<MemoryHop>,
    current: Option<usize>,
    read: usize,
}

#[derive(Debug)]
struct MemoryHop {
    planned_center_hz: f64,
    tuned: Tuned,
    calibration: Option<Calibration>,
    noise_figure_db: Option<f64>,
    samples: Vec<Complex32>,
}

impl MemorySweep {
    /// Samples held.
    #[must_use]
    pub fn samples(&self) -> u64 {
        self.hops.iter().map(|h| h.samples.len() as u64).sum()
    }

    /// Seconds of air time held.
    #[must_use]
    pub fn air_time_s(&self) -> f64 {
        self.hops
            .iter()
            .map(|h| h.samples.len() as f64 / h.tuned.sample_rate_hz)
            .sum()
    }
}

impl crate::pipeline::Observer for MemorySweep {
    fn hop(&mut self, hop: &HopCapture<'_>) -> Result<(), AgentError> {
        self.hops.push(MemoryHop {
            planned_center_hz: hop.planned.center_hz,
            tuned: hop.tuned.clone(),
            calibration: hop.calibration.cloned(),
            noise_figure_db: hop.noise_figure_db,
            samples: hop.samples.to_vec(),
        });
        Ok(())
    }
}

impl IqSource for MemorySweep {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "memory",
            name: "captured sweep".into(),
            noise_figure_db: self
                .current
                .and_then(|i| self.hops.get(i))
                .and_then(|h| h.noise_figure_db),
        }
    }

    fn tune(&mut self, t: &Tuning) -> Result<Tuned, HwError> {
        let planned: Vec<f64> = self.hops.iter().map(|h| h.planned_center_hz).collect();
        let idx = next_planned(&planned, self.current, t.center_hz, "captured")?;
        self.current = Some(idx);
        self.read = 0;
        Ok(self.hops[idx].tuned.clone())
    }

    fn read(&mut self, buf: &mut [Complex32]) -> Result<ReadOutcome, HwError> {
        let Some(h) = self.current.and_then(|i| self.hops.get(i)) else {
            return Ok(ReadOutcome::EndOfData);
        };
        let left = &h.samples[self.read.min(h.samples.len())..];
        if left.is_empty() {
            return Ok(ReadOutcome::EndOfData);
        }
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.read += n;
        Ok(ReadOutcome::Samples(n))
    }

    fn calibration(&self) -> Option<Calibration> {
        self.current
            .and_then(|i| self.hops.get(i))
            .and_then(|h| h.calibration.clone())
    }
}
