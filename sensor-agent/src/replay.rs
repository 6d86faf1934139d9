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
    /// LTE cell search settings; `None` turns LTE sync detection off.
    pub lte_search: Option<dsp::cell::lte_search::LteSearchConfig>,
    /// NR SSB search settings; `None` turns NR sync detection off.
    pub nr_search: Option<dsp::cell::nr_search::NrSearchConfig>,
    /// Seconds of each capture kept for a deep LTE search once the windows have confirmed a
    /// cell (0: none). Weak cells of the same carrier show over a second, not over 80 ms.
    pub deep_s: f64,
}

/// Where the windows of a capture confirmed an LTE cell, for the deep search.
#[derive(Debug, Clone, Copy)]
struct DeepTarget {
    /// Search centre, from the tuned centre, hertz.
    offset_hz: f64,
    /// The cell's offset from the search centre, hertz.
    cfo_hz: f64,
    /// The first cell confirmed there.
    pci: u16,
    /// (Window start at 1.92 MS/s, frame start in it) where it was first confirmed.
    first: (f64, i64),
    /// The same, the last time.
    last: Option<(f64, i64)>,
}

/// Most samples of a capture kept for the deep search (128 MiB).
const DEEP_MAX_SAMPLES: usize = 1 << 24;

/// Cells found by sync in one search window.
#[derive(Debug, Clone, Serialize)]
pub struct CellsFound {
    /// Capture index.
    pub capture: usize,
    /// Seconds from the start of the recording to the window's start.
    pub t_s: f64,
    /// Wall-clock time of the window's first sample.
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    /// Window length, seconds.
    pub window_s: f64,
    /// The cells, as leak observations with their search figures.
    pub cells: Vec<CellReport>,
}

/// One confirmed cell.
#[derive(Debug, Clone, Serialize)]
pub struct CellReport {
    /// As a leak.
    #[serde(flatten)]
    pub leak: crate::analysis::CarrierObs,
    /// Search figures (PCI, offset, scores; LTE duplexing and CP, NR SSB index and spacing).
    pub search: serde_json::Value,
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
    /// Distinct cells confirmed by sync (PCIs).
    pub cells: Vec<u16>,
}

/// A line of replay output.
#[derive(Debug, Clone)]
pub enum ReplayItem {
    /// An analysed frame.
    Observation(Box<Observation>),
    /// Cells found by sync search.
    Cells(Box<CellsFound>),
    /// An event with its topic.
    Event {
        /// MQTT topic it would go to.
        topic: String,
        /// The event.
        event: Box<Event>,
    },
}

/// Search offsets (from `centre_hz`) where an LTE carrier filling the capture may be centred
/// (see [`dsp::carrier::filling_lte_centres`]), inside an LTE band of `bands` and away from the
/// offsets already searched. The grid for a carrier whose edges are all out of sight is only
/// laid when the window holds LTE's OFDM ([`dsp::cell::holds_ofdm`]).
fn filling_offsets(
    spec: &dsp::psd::Spectrum,
    window: &[dsp::Complex32],
    fs: f64,
    centre_hz: f64,
    bands: &[&'static Band],
    searched: &[f64],
) -> Vec<f64> {
    let ofdm = || dsp::cell::holds_ofdm(window, fs, dsp::cell::lte::SCS_HZ);
    let mut out: Vec<f64> = Vec::new();
    for c in dsp::carrier::filling_lte_centres(spec, ofdm) {
        let o = c - centre_hz;
        let lte_band = bands
            .iter()
            .any(|b| b.technology == dsp::carrier::Technology::Lte && b.contains(c));
        if lte_band && searched.iter().chain(&out).all(|p| (p - o).abs() > 50e3) {
            out.push(o);
        }
    }
    out
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
    // The options are right; now what is odd about the recording.
    for w in meta.inspect()? {
        tracing::warn!("{w}");
    }
    let per_frame = welch.segments_per_frame();
    let thermal = opts.noise_figure_db.map(thermal_floor_dbm_per_hz);
    let mut gaps = GapTracker::new(id.clone(), cfg);
    let mut cell_gaps = GapTracker::new(id.clone(), cfg);
    let mut searcher = opts.lte_search.map(dsp::cell::lte_search::LteSearcher::new);
    let mut nr_searchers = opts.nr_search.map(crate::analysis::NrSearchers::new);
    let sync_on = searcher.is_some() || nr_searchers.is_some();
    let window_s = opts.lte_search.unwrap_or_default().window_s;
    // At least one LTE half-frame, at most MAX_WINDOW_SAMPLES (the rate is bounded, so is this).
    let window_n = ((window_s * fs).round() as usize)
        .clamp((0.0052 * fs).ceil() as usize + 1, MAX_WINDOW_SAMPLES);
    let mut head: Vec<dsp::Complex32> = Vec::new();
    let mut offsets: Vec<f64> = Vec::new();
    // The last spectrum in which energy showed no LTE carrier.
    let mut filling: Option<dsp::psd::Spectrum> = None;
    // The radio's oscillator error, learnt from the cells it confirms.
    let mut cfo_hint: Option<f64> = None;
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
        let mut head_start = capture_first;
        head.clear();
        // The capture's first `deep_s` for the deep search, and where the windows found cells
        // (search offset and cell offset, one per search offset).
        let deep_n = if searcher.is_some() {
            ((opts.deep_s * fs) as usize).min(DEEP_MAX_SAMPLES)
        } else {
            0
        };
        let mut deep_buf: Vec<dsp::Complex32> = Vec::new();
        let mut deep_targets: Vec<DeepTarget> = Vec::new();
        let mut windows_in_capture = 0usize;
        while !done {
            let mut windows: Vec<(u64, Vec<dsp::Complex32>)> = Vec::new();
            match src.read(&mut buf)? {
                ReadOutcome::Samples(n) | ReadOutcome::Overflow { n, .. } => {
                    summary.samples += n as u64;
                    bar.inc(n as u64);
                    welch.process(&buf[..n], |f| frames.push(f.clone()));
                    let keep = deep_n.saturating_sub(deep_buf.len()).min(n);
                    deep_buf.extend_from_slice(&buf[..keep]);
                    if sync_on {
                        head.extend_from_slice(&buf[..n]);
                        while head.len() >= window_n {
                            let rest = head.split_off(window_n);
                            windows.push((head_start, std::mem::replace(&mut head, rest)));
                            head_start += window_n as u64;
                        }
                    }
                }
                ReadOutcome::EndOfData => {
                    // A short tail still counts when it holds a quarter of a frame, or when the
                    // capture is shorter than one frame.
                    welch.flush(|f| {
                        if f.segments * 4 >= per_frame || emitted_in_capture + frames.len() == 0 {
                            frames.push(f.clone());
                        }
                    });
                    // A tail holding one LTE half-frame and the symbols around it is worth a
                    // search; so is any capture that gave no full window (NR captures are often
                    // a millisecond around one SSB).
                    let first_window = head_start == capture_first;
                    if sync_on
                        && (head.len() as f64 >= 0.0052 * fs || first_window && !head.is_empty())
                    {
                        windows.push((head_start, std::mem::take(&mut head)));
                    }
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
                // Wide captures: search LTE-shaped carriers away from the centre too.
                offsets = std::iter::once(0.0)
                    .chain(
                        analysis
                            .carriers
                            .iter()
                            .filter(|c| c.technology == dsp::carrier::Technology::Lte)
                            .map(|c| c.center_hz - tuned.center_hz)
                            .filter(|o| o.abs() > 0.5e6),
                    )
                    .collect();
                // A carrier filling the capture leaves no floor for energy detection: its
                // visible edges place it (a 20 MHz carrier in 19.2 MS/s, tuned off centre).
                filling = (!analysis
                    .carriers
                    .iter()
                    .any(|c| c.technology == dsp::carrier::Technology::Lte))
                .then(|| spec.clone());
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
                summary.events += emit_events(id, events, &mut sink)?;
            }
            if sync_on {
                for (first, window) in windows {
                    let rel = first.saturating_sub(capture_first) as f64 / fs;
                    let t_s = cap_t_s + rel;
                    let at = t0
                        + time::Duration::seconds_f64(if cap.datetime.is_some() {
                            rel
                        } else {
                            t_s
                        });
                    let view = crate::analysis::CaptureView {
                        samples: &window,
                        sample_rate_hz: fs,
                        center_hz: tuned.center_hz,
                    };
                    let mut found: Vec<(
                        crate::analysis::CarrierObs,
                        serde_json::Value,
                        Option<u16>,
                    )> = Vec::new();
                    if let Some(searcher) = searcher.as_mut() {
                        let mut offsets = if offsets.is_empty() {
                            vec![0.0]
                        } else {
                            offsets.clone()
                        };
                        if let Some(spec) = &filling {
                            offsets.extend(filling_offsets(
                                spec,
                                &window,
                                fs,
                                tuned.center_hz,
                                &opts.bands,
                                &offsets,
                            ));
                        }
                        let lte = crate::analysis::lte_cells(
                            searcher,
                            &view,
                            &offsets,
                            opts.calibration.as_ref(),
                            &opts.bands,
                            cfo_hint.map_or(
                                crate::analysis::OffsetSearch::Full,
                                crate::analysis::OffsetSearch::Hint,
                            ),
                        );
                        if let Some((_, c)) = lte.first() {
                            cfo_hint = Some(c.cfo_hz);
                        }
                        // Window start at the search rate, for the clock's drift.
                        let start = first.saturating_sub(capture_first) as f64
                            * dsp::cell::lte_search::RATE_HZ
                            / fs;
                        for (o, c) in &lte {
                            let off = o.center_hz - c.cfo_hz - tuned.center_hz;
                            match deep_targets
                                .iter_mut()
                                .find(|t| (t.offset_hz - off).abs() < 1.0)
                            {
                                Some(t) if t.pci == c.pci => t.last = Some((start, c.frame_start)),
                                Some(_) => {}
                                None => deep_targets.push(DeepTarget {
                                    offset_hz: off,
                                    cfo_hz: c.cfo_hz,
                                    pci: c.pci,
                                    first: (start, c.frame_start),
                                    last: None,
                                }),
                            }
                        }
                        found.extend(lte.into_iter().map(|(o, c)| {
                            let pci = c.pci;
                            (o, serde_json::to_value(c).unwrap_or_default(), Some(pci))
                        }));
                    }
                    if let Some(nr) = nr_searchers.as_mut() {
                        let cells = crate::analysis::nr_cells_wide(
                            nr,
                            &view,
                            opts.calibration.as_ref(),
                            &opts.bands,
                        );
                        found.extend(cells.into_iter().map(|(o, c)| {
                            let pci = c.pci;
                            (o, serde_json::to_value(c).unwrap_or_default(), Some(pci))
                        }));
                    }
                    if searcher.is_some() {
                        let gsm = crate::analysis::gsm_cells(
                            &view,
                            opts.calibration.as_ref(),
                            &opts.bands,
                        );
                        found.extend(
                            gsm.into_iter().map(|(o, c)| {
                                (o, serde_json::to_value(c).unwrap_or_default(), None)
                            }),
                        );
                    }
                    let leaks: Vec<_> = found.iter().map(|(o, _, _)| o.clone()).collect();
                    let span = (tuned.center_hz - fs / 2.0, tuned.center_hz + fs / 2.0);
                    let events = cell_gaps.observe(at, span, &leaks);
                    for pci in found.iter().filter_map(|f| f.2) {
                        if !summary.cells.contains(&pci) {
                            summary.cells.push(pci);
                        }
                    }
                    sink(ReplayItem::Cells(Box::new(CellsFound {
                        capture: ci,
                        t_s,
                        observed_at: at,
                        window_s: window.len() as f64 / fs,
                        cells: found
                            .into_iter()
                            .map(|(leak, search, _)| CellReport { leak, search })
                            .collect(),
                    })))?;
                    summary.events += emit_events(id, events, &mut sink)?;
                    windows_in_capture += 1;
                }
            }
        }
        // A deep search when the kept stretch is longer than the windows that found the cells.
        if let Some(searcher) = searcher.as_mut()
            && windows_in_capture >= 2
            && deep_buf.len() as f64 >= 2.0 * window_s * fs
        {
            let view = crate::analysis::CaptureView {
                samples: &deep_buf,
                sample_rate_hz: fs,
                center_hz: tuned.center_hz,
            };
            for t in &deep_targets {
                // The sample clock's drift, from the cell's frame timing in the first and last
                // windows that confirmed it; a cell seen once gives none and no deep search.
                let Some(clock_error) = t.last.and_then(|(start, frame)| {
                    dsp::cell::lte_search::clock_error_from_timing(
                        t.first.0, t.first.1, start, frame,
                    )
                }) else {
                    continue;
                };
                tracing::info!(
                    capture = ci,
                    seconds = deep_buf.len() as f64 / fs,
                    offset_hz = t.offset_hz,
                    clock_ppm = clock_error * 1e6,
                    "deep LTE search"
                );
                let cells = crate::analysis::lte_deep_cells(
                    searcher,
                    &view,
                    t.offset_hz,
                    t.cfo_hz,
                    clock_error,
                    opts.calibration.as_ref(),
                    &opts.bands,
                );
                for (_, c) in &cells {
                    if !summary.cells.contains(&c.pci) {
                        summary.cells.push(c.pci);
                    }
                }
                // Reported as cells, not fed to the gap tracker: one deep look is not a window
                // in its hysteresis, and a cell too weak for a window has no positive margin.
                sink(ReplayItem::Cells(Box::new(CellsFound {
                    capture: ci,
                    t_s: cap_t_s,
                    observed_at: if cap.datetime.is_some() {
                        t0
                    } else {
                        t0 + time::Duration::seconds_f64(cap_t_s)
                    },
                    window_s: deep_buf.len() as f64 / fs,
                    cells: cells
                        .into_iter()
                        .map(|(leak, c)| CellReport {
                            leak,
                            search: serde_json::to_value(c).unwrap_or_default(),
                        })
                        .collect(),
                })))?;
            }
        }
        summary.captures += 1;
    }
    bar.finish_and_clear();
    if src.non_finite() > 0 {
        tracing::warn!(
            "{}: {} sample values were NaN or infinite and were read as 0",
            meta.data_path.display(),
            src.non_finite()
        );
    }
    summary.carriers = seen_carriers.len();
    Ok(summary)
}

/// Most samples in one cell-search window (80 ms at 400 MS/s): a bound on the memory a
/// recording's sample rate can ask for.
const MAX_WINDOW_SAMPLES: usize = 32 << 20;

/// Hands each event to `sink` with its topic; returns how many.
fn emit_events(
    id: &Identity,
    events: Vec<Event>,
    sink: &mut impl FnMut(ReplayItem) -> Result<(), AgentError>,
) -> Result<usize, AgentError> {
    let n = events.len();
    for event in events {
        let topic = protocol::topic(&id.facility_id, &id.sensor_id, event.kind())
            .map_err(|e| AgentError::Input(e.to_string()))?;
        sink(ReplayItem::Event {
            topic,
            event: Box::new(event),
        })?;
    }
    Ok(n)
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
        ReplayItem::Cells(c) => {
            let mut v = serde_json::to_value(c).unwrap_or_default();
            v["type"] = json!("cells");
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
        ReplayItem::Cells(c) => {
            let mut s = format!(
                "t={:>8.3}s  cell search over {:.0} ms: {} cell(s)",
                c.t_s,
                c.window_s * 1e3,
                c.cells.len()
            );
            for r in &c.cells {
                s.push_str(&format!(
                    "\n    {:<7} {:<3} {:<22} {:>10.3} MHz  cfo {:>+8.0} Hz  RSRP {:>6.1} {}  SINR {:>5.1} dB  margin {:>5.1} dB",
                    r.leak.band,
                    r.leak.technology.as_str(),
                    r.leak
                        .cell
                        .as_ref()
                        .map_or_else(|| "?".to_string(), ToString::to_string),
                    r.leak.center_hz / 1e6,
                    r.search["cfo_hz"].as_f64().unwrap_or(0.0),
                    r.leak.power_dbm.unwrap_or(r.leak.power_dbfs),
                    if r.leak.power_dbm.is_some() { "dBm" } else { "dBFS" },
                    r.leak.snr_db,
                    r.leak.margin_db
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
