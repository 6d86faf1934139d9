//! `sensor-agent replay`: the production pipeline over a SigMF recording, deterministically.
//!
//! Each capture is read in order; every `average_s` of samples becomes a Welch frame, which is
//! DC-cleaned, edge-cropped and analysed; the trackers turn the observations into the events the
//! agent would publish. Time is the recording's (`core:datetime` of the capture, or the Unix
//! epoch when the recording has none) plus the sample offset, so the same file always gives the
//! same output, event ids included.

use std::io::Write;
use std::path::Path;

use dsp::bandplan::Band;
use dsp::calib::Calibration;
use dsp::floor::thermal_floor_dbm_per_hz;
use dsp::psd::{Averaging, PsdFrame, Welch, WelchConfig};
use hardware::sigmf::SigmfSource;
use hardware::{IqSource, ReadOutcome};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::AgentError;
use crate::analysis::{Analysis, analyze};
use crate::config::{Identity, PipelineConfig};
use crate::tracker::{Event, GapTracker, JammerTracker};

/// What replay needs besides the file.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Spectrum pipeline settings.
    pub pipeline: PipelineConfig,
    /// Identifiers put on events.
    pub identity: Identity,
    /// Bands to assign carriers to and judge jammers in.
    pub bands: Vec<&'static Band>,
    /// dBFS → dBm, when the recording's radio was calibrated.
    pub calibration: Option<Calibration>,
    /// The recording radio's noise figure, for jammer verdicts.
    pub noise_figure_db: Option<f64>,
    /// Show a progress bar on stderr (drawn only when stderr is a terminal).
    pub progress: bool,
}

/// One analysed frame of a recording.
#[derive(Debug, Clone, Serialize)]
pub struct Observation {
    /// Capture index.
    pub capture: usize,
    /// Seconds from the start of the recording.
    pub t_s: f64,
    /// Wall-clock time of the frame's first sample.
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    /// Tuned centre, hertz.
    pub center_hz: f64,
    /// Analysed span after edge crop, hertz.
    pub span_hz: (f64, f64),
    /// Welch segments averaged.
    pub segments: usize,
    /// The analysis.
    #[serde(flatten)]
    pub analysis: Analysis,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplaySummary {
    /// Captures read.
    pub captures: usize,
    /// Samples read.
    pub samples: u64,
    /// Observations produced.
    pub observations: usize,
    /// Events produced.
    pub events: usize,
    /// Distinct carriers seen (by band and rounded centre).
    pub carriers: usize,
}

/// A line of replay output.
#[derive(Debug, Clone)]
pub enum ReplayItem {
    /// An analysed frame.
    Observation(Box<Observation>),
    /// An event with its topic.
    Event {
        /// MQTT topic it would go to.
        topic: String,
        /// The event.
        event: Box<Event>,
    },
}

fn start_time(datetime: Option<&str>) -> OffsetDateTime {
    datetime
        .and_then(|d| OffsetDateTime::parse(d, &Rfc3339).ok())
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Runs the pipeline over a recording, handing each observation and event to `sink` in order.
///
/// # Errors
/// [`AgentError::Hardware`] when the recording cannot be opened or read (bad input: exit 2),
/// [`AgentError::Dsp`] for a bad pipeline setting, [`AgentError::Input`] for a bad identity.
pub fn replay(
    path: &Path,
    opts: &ReplayOptions,
    mut sink: impl FnMut(ReplayItem) -> Result<(), AgentError>,
) -> Result<ReplaySummary, AgentError> {
    let id = &opts.identity;
    for (field, v) in [("facility", &id.facility_id), ("sensor", &id.sensor_id)] {
        protocol::check_id(
            if field == "facility" {
                "facility_id"
            } else {
                "sensor_id"
            },
            v,
        )
        .map_err(|e| AgentError::Input(e.to_string()))?;
    }
    let mut src = SigmfSource::open(path)?;
    let meta = src.metadata().clone();
    let fs = meta.sample_rate_hz;
    let cfg = &opts.pipeline;
    let mut welch = Welch::new(WelchConfig {
        fft_size: cfg.fft_size,
        overlap: cfg.overlap,
        window: cfg.window,
        averaging: Averaging::Seconds(cfg.average_s),
        sample_rate_hz: fs,
        center_hz: 0.0,
    })?;
    let per_frame = welch.segments_per_frame();
    let thermal = opts.noise_figure_db.map(thermal_floor_dbm_per_hz);
    let mut gaps = GapTracker::new(id.clone(), cfg);
    let mut jammers = JammerTracker::new(id.clone(), cfg.open_after);
    let bar = progress_bar(opts.progress, meta.total_samples);
    let mut summary = ReplaySummary::default();
    let mut seen_carriers = std::collections::BTreeSet::new();
    let mut scratch = Vec::new();
    let mut buf = vec![dsp::Complex32::default(); 1 << 16];
    let mut frames: Vec<PsdFrame> = Vec::new();
    for ci in 0..meta.captures.len() {
        let tuned = src.select_capture(ci)?;
        let cap = &meta.captures[ci];
        let t0 = start_time(cap.datetime.as_deref());
        let cap_t_s = cap.sample_start as f64 / fs;
        welch.reset(tuned.center_hz);
        let capture_first = welch.next_frame_first_sample();
        let mut emitted_in_capture = 0usize;
        let mut done = false;
        while !done {
            match src.read(&mut buf)? {
                ReadOutcome::Samples(n) | ReadOutcome::Overflow { n, .. } => {
                    summary.samples += n as u64;
                    bar.inc(n as u64);
                    welch.process(&buf[..n], |f| frames.push(f.clone()));
                }
                ReadOutcome::EndOfData => {
                    // A short tail still counts when it holds a quarter of a frame, or when the
                    // capture is shorter than one frame.
                    welch.flush(|f| {
                        if f.segments * 4 >= per_frame || emitted_in_capture + frames.len() == 0 {
                            frames.push(f.clone());
                        }
                    });
                    done = true;
                }
                ReadOutcome::Timeout => {}
            }
            for frame in frames.drain(..) {
                emitted_in_capture += 1;
                let rel = frame.first_sample.saturating_sub(capture_first) as f64 / fs;
                let t_s = cap_t_s + rel;
                let at = t0
                    + time::Duration::seconds_f64(if cap.datetime.is_some() { rel } else { t_s });
                let mut spec = frame.to_spectrum();
                spec.suppress_dc(tuned.center_hz, cfg.dc_half_width_bins);
                spec.crop_edges(cfg.edge_crop);
                let analysis = analyze(
                    &spec,
                    frame.segments,
                    opts.calibration.as_ref(),
                    thermal,
                    &opts.bands,
                    cfg,
                    &mut scratch,
                );
                for c in &analysis.carriers {
                    seen_carriers.insert((c.band.clone(), (c.center_hz / 100e3).round() as i64));
                }
                let span = spec.span_hz();
                let mut events = gaps.observe(at, span, &analysis.carriers);
                for j in &analysis.jammers {
                    events.extend(jammers.observe(at, &j.band, &j.assessment));
                }
                summary.observations += 1;
                sink(ReplayItem::Observation(Box::new(Observation {
                    capture: ci,
                    t_s,
                    observed_at: at,
                    center_hz: tuned.center_hz,
                    span_hz: span,
                    segments: frame.segments,
                    analysis,
                })))?;
                for event in events {
                    summary.events += 1;
                    let topic = protocol::topic(&id.facility_id, &id.sensor_id, event.kind())
                        .map_err(|e| AgentError::Input(e.to_string()))?;
                    sink(ReplayItem::Event {
                        topic,
                        event: Box::new(event),
                    })?;
                }
            }
        }
        summary.captures += 1;
    }
    bar.finish_and_clear();
    summary.carriers = seen_carriers.len();
    Ok(summary)
}

fn progress_bar(enabled: bool, len: u64) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} replay [{bar:30}] {percent:>3}% {human_pos}/{human_len} samples, eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Writes replay items as JSON Lines: `{"type":"observation",…}` and
/// `{"type":"event","topic":…,"kind":…,"payload":…}`.
///
/// # Errors
/// [`AgentError::Output`] when writing fails.
pub fn write_json_line(out: &mut dyn Write, item: &ReplayItem) -> Result<(), AgentError> {
    let v = match item {
        ReplayItem::Observation(o) => {
            let mut v = serde_json::to_value(o).unwrap_or_default();
            v["type"] = json!("observation");
            v
        }
        ReplayItem::Event { topic, event } => {
            let mut v = serde_json::to_value(event).unwrap_or_default();
            v["type"] = json!("event");
            v["topic"] = json!(topic);
            v
        }
    };
    serde_json::to_writer(&mut *out, &v).map_err(|e| AgentError::Output(e.into()))?;
    out.write_all(b"\n").map_err(AgentError::Output)
}

/// Writes a replay item as a line of text for people.
///
/// # Errors
/// [`AgentError::Output`] when writing fails.
pub fn write_text_line(out: &mut dyn Write, item: &ReplayItem) -> Result<(), AgentError> {
    let line = match item {
        ReplayItem::Observation(o) => {
            let unit = o.analysis.unit.as_str();
            let mut s = format!(
                "t={:>8.3}s  {:>10.3} MHz  floor {:>7.1} {unit}/Hz  {} carrier(s)",
                o.t_s,
                o.center_hz / 1e6,
                o.analysis.floor_db_per_hz,
                o.analysis.carriers.len()
            );
            for c in &o.analysis.carriers {
                s.push_str(&format!(
                    "\n    {:<7} {:<7} {:>10.3} MHz  bw {:>7.3} MHz  snr {:>5.1} dB  margin {:>5.1} dB",
                    c.band,
                    c.technology.as_str(),
                    c.center_hz / 1e6,
                    c.bandwidth_hz / 1e6,
                    c.snr_db,
                    c.margin_db
                ));
            }
            for j in &o.analysis.jammers {
                s.push_str(&format!(
                    "\n    jammer {:<7} {:<9} rise {:>5.1} dB",
                    j.band,
                    j.assessment.state.as_str(),
                    j.assessment.noise_rise_db
                ));
            }
            s
        }
        ReplayItem::Event { topic, event } => match event.as_ref() {
            Event::Gap(g) => format!(
                "EVENT {topic}: gap {:?} {} {} {:.3} MHz margin {:.1} dB ({:?})",
                g.state,
                g.band,
                g.technology.as_str(),
                g.center_hz / 1e6,
                g.margin_db,
                g.severity
            ),
            Event::Jammer(j) => format!(
                "EVENT {topic}: jammer {} {:?} rise {:.1} dB",
                j.band, j.state, j.noise_rise_db
            ),
        },
    };
    writeln!(out, "{line}").map_err(AgentError::Output)
}
