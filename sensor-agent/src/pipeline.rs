//! The one sensing pipeline: plan hops per radio, capture each hop once, stitch each band's
//! spectrum, analyse it, name the cells and feed the trackers. [`Pipeline`] owns every stage;
//! the daemon (`run`), `scan`, `record` and the replay of a recorded sweep all drive it, so a
//! recorded sweep replays to the very verdicts it was recorded with.

use std::time::Instant;

use dsp::Complex32;
use dsp::bandplan::{Band, Hop, HopPlan, TuningLimits, plan_hops};
use dsp::calib::Calibration;
use dsp::floor::thermal_floor_dbm_per_hz;
use dsp::psd::{Averaging, Spectrum, Welch, WelchConfig};
use hardware::{IqSource, ReadOutcome, Tuned, Tuning};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::AgentError;
use crate::analysis::{Analysis, OffsetSearch, analyze};
use crate::config::{Identity, PipelineConfig};
use crate::tracker::{Event, GapTracker, JammerTracker};

/// A contiguous frequency range made of overlapping bands, with the hops that cover it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RangePlan {
    /// Lowest frequency, hertz.
    pub lo_hz: f64,
    /// Highest frequency, hertz.
    pub hi_hz: f64,
    /// Bands inside the range.
    #[serde(serialize_with = "band_names", deserialize_with = "bands_named")]
    pub bands: Vec<&'static Band>,
    /// Hops covering what the radio can reach.
    pub hops: HopPlan,
}

fn band_names<S: serde::Serializer>(b: &[&'static Band], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(b.iter().map(|b| b.name))
}

fn bands_named<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<&'static Band>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .map(|n| dsp::bandplan::band(n).map_err(serde::de::Error::custom))
        .collect()
}

/// A sweep plan for one radio.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanPlan {
    /// Ranges in ascending frequency.
    pub ranges: Vec<RangePlan>,
    /// Plain sentences about bands the radio cannot cover.
    pub warnings: Vec<String>,
}

impl ScanPlan {
    /// Hops in the whole plan.
    #[must_use]
    pub fn hop_count(&self) -> usize {
        self.ranges.iter().map(|r| r.hops.hops.len()).sum()
    }
}

/// The bands to sweep: those named, else the country's plan, else every band known.
///
/// # Errors
/// An unknown band or country.
pub fn select_bands(
    country: Option<&str>,
    bands: &[String],
) -> Result<Vec<&'static Band>, AgentError> {
    if !bands.is_empty() {
        return bands
            .iter()
            .map(|b| dsp::bandplan::band(b.trim()).map_err(AgentError::from))
            .collect();
    }
    match country {
        Some(c) => {
            let plan = dsp::bandplan::country(c)?;
            plan.bands
                .iter()
                .map(|b| dsp::bandplan::band(b).map_err(AgentError::from))
                .collect()
        }
        None => Ok(dsp::bandplan::all_bands().collect()),
    }
}

/// Plans a sweep of `bands` on a radio: overlapping bands (B2 inside B25, GSM850 on B5) are
/// merged so that each frequency is captured once.
///
/// # Errors
/// [`AgentError::Dsp`] for a bad rate or usable fraction.
pub fn plan(
    bands: &[&'static Band],
    device: &str,
    limits: &TuningLimits,
    sample_rate_hz: f64,
    usable_fraction: f64,
) -> Result<ScanPlan, AgentError> {
    let mut sorted: Vec<&'static Band> = bands.to_vec();
    sorted.sort_by(|a, b| a.dl_low_hz.total_cmp(&b.dl_low_hz));
    sorted.dedup_by(|a, b| a.name == b.name);
    let mut groups: Vec<(f64, f64, Vec<&'static Band>)> = Vec::new();
    for b in sorted {
        match groups.last_mut() {
            Some((_, hi, members)) if b.dl_low_hz < *hi => {
                *hi = hi.max(b.dl_high_hz);
                members.push(b);
            }
            _ => groups.push((b.dl_low_hz, b.dl_high_hz, vec![b])),
        }
    }
    let mut warnings = Vec::new();
    let mut ranges = Vec::new();
    for (lo, hi, members) in groups {
        let name = members.iter().map(|b| b.name).collect::<Vec<_>>().join("+");
        let hops = plan_hops(&name, lo, hi, limits, sample_rate_hz, usable_fraction)?;
        if let Some(w) = hops.warning(device, limits) {
            warnings.push(w);
        }
        ranges.push(RangePlan {
            lo_hz: lo,
            hi_hz: hi,
            bands: members,
            hops,
        });
    }
    Ok(ScanPlan { ranges, warnings })
}

/// Settings of a sweep: everything besides the plan and the source that decides its verdicts.
/// A recording carries them (`centinela:settings`) so that a replay reaches the same verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSettings {
    /// Spectrum pipeline settings (and the gap trackers' hysteresis).
    pub pipeline: PipelineConfig,
    /// Seconds captured per hop.
    pub dwell_s: f64,
    /// Gain, dB (None: the source's default).
    pub gain_db: Option<f64>,
    /// Noise figure to use when the source does not know its own, dB.
    pub noise_figure_db: Option<f64>,
    /// Name the energy carriers' cells by sync search (LTE PCI, NR SSB PCI, GSM BSIC).
    pub cell_search: bool,
    /// LTE downlink centres (hertz) to sync-search every sweep even without an energy carrier:
    /// a cell hidden under a jammer's floor is found only this way.
    pub watch_hz: Vec<f64>,
    /// Sweeps a jammer state must hold before it is reported.
    pub jammer_confirm: u32,
    /// Analyse what is captured (false: capture only, as `record` does by default).
    pub analysis: bool,
}

/// Counters of a sweep, for health reporting.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SweepHealth {
    /// Hops captured.
    pub hops: usize,
    /// Samples read.
    pub samples: u64,
    /// Overflow events.
    pub overflows: u64,
    /// Samples known lost in overflows.
    pub lost_samples: u64,
    /// Reads that timed out.
    pub timeouts: u64,
    /// Most hops whose samples were held at once for the cell search and clips (one range's
    /// hops with energy and their neighbours; see `[pipeline] keep_quiet_hops`).
    pub hops_held: usize,
    /// Wall time of the sweep, seconds.
    pub elapsed_s: f64,
    /// Where the wall time went (run-specific, as `elapsed_s` is).
    pub stages: StageTimes,
}

/// Wall time of a sweep by stage, seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StageTimes {
    /// Tuning and reading the source (the radio's own pace, or the simulator's cost).
    pub capture_s: f64,
    /// Observers of captured hops (recording to disk).
    pub observe_s: f64,
    /// Welch spectra, DC suppression and stitching.
    pub spectrum_s: f64,
    /// Floor, carriers and jammer verdicts.
    pub analysis_s: f64,
    /// LTE cell search.
    pub lte_s: f64,
    /// NR SSB search.
    pub nr_s: f64,
    /// GSM FCCH/SCH search.
    pub gsm_s: f64,
    /// Trackers, evidence clips and event delivery.
    pub events_s: f64,
}

impl StageTimes {
    /// Time spent in the DSP: everything but capture and observers.
    #[must_use]
    pub fn dsp_s(&self) -> f64 {
        self.spectrum_s + self.analysis_s + self.lte_s + self.nr_s + self.gsm_s + self.events_s
    }
}

/// One band's result in a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct BandObservation {
    /// Band name.
    pub band: String,
    /// When the band's range was captured.
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
    /// Span analysed, hertz.
    pub span_hz: (f64, f64),
    /// The analysis.
    #[serde(flatten)]
    pub analysis: Analysis,
    /// Cells named by sync search on the band's carriers.
    pub cells: Vec<crate::analysis::CarrierObs>,
}

/// One hop as captured, handed to [`Observer::hop`] before it is analysed.
#[derive(Debug)]
pub struct HopCapture<'a> {
    /// Index of the range in the plan.
    pub range: usize,
    /// Index of the hop in its range.
    pub index: usize,
    /// The hop as planned.
    pub planned: &'a Hop,
    /// What the source tuned to.
    pub tuned: Tuned,
    /// Wall-clock time when the capture started (run-specific: the sweep's clock is `at`).
    pub started_at: OffsetDateTime,
    /// The source's dBFS → dBm calibration at this tuning.
    pub calibration: Option<&'a Calibration>,
    /// Noise figure the verdicts use (the source's own, else the settings'), dB.
    pub noise_figure_db: Option<f64>,
    /// Overflow events during the capture.
    pub overflows: u64,
    /// The samples.
    pub samples: &'a [Complex32],
}

/// What a sweep tells the one driving it. Every method has a default that ignores it.
pub trait Observer {
    /// A hop was captured (before analysis).
    ///
    /// # Errors
    /// Whatever stops the sweep (a recording that cannot be written).
    fn hop(&mut self, _hop: &HopCapture<'_>) -> Result<(), AgentError> {
        Ok(())
    }
    /// A band was analysed.
    fn band(&mut self, _band: &BandObservation) {}
    /// A tracker reported a change.
    fn event(&mut self, _event: &Event) {}
    /// Hops done of hops in all.
    fn progress(&mut self, _done: usize, _total: usize) {}
}

/// Counters of an evidence keeper.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClipStats {
    /// Clips written.
    pub written: u64,
    /// Old clips deleted to make room.
    pub evicted: u64,
    /// Clips not kept because one alone is larger than the budget.
    pub skipped: u64,
    /// Clips that failed to write.
    pub failed: u64,
    /// Bytes the clips take now.
    pub bytes: u64,
}

/// Keeps the evidence of gaps that open critical: the pipeline hands it the hops that hold the
/// gap's carrier, as a plan of their own with the settings a replay needs.
pub trait EvidenceKeeper: std::fmt::Debug + Send {
    /// Keeps a clip of `gap` from `captures` (empty when no hop held it); what to name in the
    /// event, or `None` when no clip was kept (counted).
    fn keep(
        &mut self,
        plan: ScanPlan,
        settings: SweepSettings,
        at: OffsetDateTime,
        gap: &protocol::GapEvent,
        captures: &[HopCapture<'_>],
    ) -> Option<protocol::Evidence>;
    /// Counters so far.
    fn stats(&self) -> ClipStats;
}

/// Which hop slots of a range hold samples kept for the cell search and evidence clips.
///
/// A hop is needed when its spectrum shows energy (see [`hop_at_thermal_floor`]), when it holds
/// a watched channel, or when the GSM search (done as each GSM-band hop is captured) found a cell
/// in it. A quiet hop is kept as well when it neighbours a needed one, so an
/// NR carrier's edge and a clip's guard of floor are still there; other quiet hops are let go
/// and their slot is reused by the next hop. The slots used are the needed hops, their guards
/// and one spare.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct HopKeeping {
    /// Slots committed, from slot 0.
    kept: usize,
    /// Slot `kept` holds a quiet hop that the next hop may still make a guard.
    tentative: bool,
    /// The hop before was needed.
    after_needed: bool,
}

impl HopKeeping {
    /// The slot the next hop is captured into.
    fn slot(&self) -> usize {
        self.kept + usize::from(self.tentative)
    }

    /// Records whether the hop just captured into [`Self::slot`] is needed. True when the
    /// caller must swap slots `kept` and `kept + 1`: the new quiet hop replaces the older
    /// tentative one, which is let go.
    fn captured(&mut self, needed: bool) -> bool {
        let before_needed = std::mem::replace(&mut self.after_needed, needed);
        if needed {
            self.kept += 1 + usize::from(self.tentative);
            self.tentative = false;
            false
        } else if before_needed {
            // A guard after a needed hop.
            self.kept += 1;
            false
        } else {
            std::mem::replace(&mut self.tentative, true)
        }
    }
}

/// Half the span the LTE sync search takes around a centre (the 1.92 MS/s view), hertz.
const LTE_SYNC_HALF_SPAN_HZ: f64 = 0.6e6;

/// A hop whose level is less than this over the radio's thermal floor is at the floor, dB. A
/// carrier the range's detector reports is at least `cfar.min_snr_db` (3 dB) over the range's
/// floor, which is no lower than thermal: half of that is the slack left for the calibration.
const QUIET_RISE_DB: f64 = 1.5;

/// Whether a hop's spectrum (DC already suppressed) shows nothing a cell search could use: no
/// carrier in its usable span (without the edge crop, where a radio's filter rolls off) and a
/// floor within [`QUIET_RISE_DB`] of the radio's thermal floor. False whenever that cannot be
/// judged: no calibration, no noise figure, or no finite floor.
fn hop_at_thermal_floor(
    spec: &Spectrum,
    segments: usize,
    calibration: Option<&Calibration>,
    noise_figure_db: Option<f64>,
    cfg: &PipelineConfig,
    scratch: &mut Vec<f32>,
) -> bool {
    let (Some(cal), Some(nf)) = (calibration, noise_figure_db) else {
        return false;
    };
    let (lo, hi) = spec.span_hz();
    let (mid, half) = ((lo + hi) / 2.0, (hi - lo) / 2.0 * cfg.usable_fraction());
    let Some(usable) = spec.slice_hz(mid - half, mid + half) else {
        return false;
    };
    if !dsp::carrier::detect_carriers(&usable, segments, &cfg.cfar, scratch).is_empty() {
        return false;
    }
    let (noise, _) = dsp::carrier::cfar_threshold(&usable.density, segments, &cfg.cfar, scratch);
    if !(noise.is_finite() && noise > 0.0) {
        return false;
    }
    dsp::to_db(noise) + cal.offset_db(mid) < thermal_floor_dbm_per_hz(nf) + QUIET_RISE_DB
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ignore;

impl Observer for Ignore {}

/// One hop kept until its range's cells are searched: where its samples are in the
/// [`HeldHops`] arena and what the capture was.
#[derive(Debug, Default)]
struct HopBuffer {
    center_hz: f64,
    sample_rate_hz: f64,
    /// Its samples in the arena.
    at: std::ops::Range<usize>,
    /// What the capture was, for an evidence clip of it.
    planned: Option<Hop>,
    tuned: Option<Tuned>,
    started_at: Option<OffsetDateTime>,
    calibration: Option<Calibration>,
    noise_figure_db: Option<f64>,
    overflows: u64,
}

/// The samples of the hops a range holds, back to back in one allocation. It grows to the
/// largest range's need in the first sweep and is reused after that: no hop's buffer is freed
/// and allocated again, which on a long-running agent leaves the allocator's heap full of holes
/// (resident memory twice what is live).
#[derive(Debug, Default)]
struct HeldHops {
    arena: Vec<Complex32>,
    slots: Vec<HopBuffer>,
}

impl HeldHops {
    /// Slot `slot` made `n` samples long, right after the slot before it.
    fn slot(&mut self, slot: usize, n: usize) -> (&mut HopBuffer, &mut [Complex32]) {
        if self.slots.len() <= slot {
            self.slots.resize_with(slot + 1, HopBuffer::default);
        }
        let start = slot
            .checked_sub(1)
            .map_or(0, |before| self.slots[before].at.end);
        if self.arena.len() < start + n {
            self.arena.resize(start + n, Complex32::default());
        }
        let buf = &mut self.slots[slot];
        buf.at = start..start + n;
        (buf, &mut self.arena[start..start + n])
    }

    /// Slot `slot` and its samples.
    fn get(&self, slot: usize) -> (&HopBuffer, &[Complex32]) {
        let buf = &self.slots[slot];
        (buf, &self.arena[buf.at.clone()])
    }

    /// Keeps the first `n` samples of slot `slot` (the next slot starts after them).
    fn truncate(&mut self, slot: usize, n: usize) {
        let at = &mut self.slots[slot].at;
        at.end = at.end.min(at.start + n);
    }

    /// Moves slot `to + 1` into slot `to` (the slot after it is free again).
    fn replace(&mut self, to: usize) {
        let from = std::mem::take(&mut self.slots[to + 1]);
        let start = self.slots[to].at.start;
        let n = from.at.len();
        self.arena.copy_within(from.at.clone(), start);
        self.slots[to] = HopBuffer {
            at: start..start + n,
            ..from
        };
    }

    /// The first `count` slots.
    fn held(&self, count: usize) -> Held<'_> {
        Held {
            arena: &self.arena,
            hops: &self.slots[..count.min(self.slots.len())],
        }
    }
}

/// The hops a range held, with their samples.
#[derive(Debug, Clone, Copy)]
struct Held<'a> {
    arena: &'a [Complex32],
    hops: &'a [HopBuffer],
}

impl<'a> Held<'a> {
    fn samples(&self, hop: &HopBuffer) -> &'a [Complex32] {
        &self.arena[hop.at.clone()]
    }

    fn view(&self, hop: &HopBuffer) -> crate::analysis::CaptureView<'a> {
        crate::analysis::CaptureView {
            samples: self.samples(hop),
            sample_rate_hz: hop.sample_rate_hz,
            center_hz: hop.center_hz,
        }
    }
}

/// The sensing pipeline: source → hop plan → capture → calibrated Welch → stitching → analysis
/// (floor, jammers, carriers) → cell search → trackers → events. One value owns the plan, the
/// settings, the Welch estimator, the LTE/NR searchers, the capture buffers and the trackers,
/// and is reused sweep after sweep: `run`, `scan`, `record` and `replay` all drive it.
#[derive(Debug)]
pub struct Pipeline {
    plan: ScanPlan,
    settings: SweepSettings,
    welch: Option<Welch>,
    scratch: Vec<f32>,
    held: HeldHops,
    lte: Option<dsp::cell::lte_search::LteSearcher>,
    nr: Option<crate::analysis::NrSearchers>,
    gaps: GapTracker,
    cell_gaps: GapTracker,
    jammers: JammerTracker,
    clips: Option<Box<dyn EvidenceKeeper>>,
    cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Pipeline {
    /// A pipeline for `plan` with `settings`, putting `identity` on its events.
    ///
    /// # Errors
    /// [`AgentError::Input`] naming a bad pipeline setting.
    pub fn new(
        plan: ScanPlan,
        settings: SweepSettings,
        identity: &Identity,
    ) -> Result<Self, AgentError> {
        settings
            .pipeline
            .check()
            .map_err(|e| AgentError::Input(format!("pipeline: {e}")))?;
        if !(settings.dwell_s.is_finite()
            && settings.dwell_s > 0.0
            && settings.dwell_s <= MAX_DWELL_S)
        {
            return Err(AgentError::Input(format!(
                "dwell {} s must be a positive number of seconds, at most {MAX_DWELL_S}",
                settings.dwell_s
            )));
        }
        let search = settings.analysis && settings.cell_search;
        Ok(Self {
            welch: None,
            scratch: Vec::new(),
            held: HeldHops::default(),
            lte: search.then(|| {
                dsp::cell::lte_search::LteSearcher::new(
                    dsp::cell::lte_search::LteSearchConfig::default(),
                )
            }),
            nr: search.then(|| {
                crate::analysis::NrSearchers::new(dsp::cell::nr_search::NrSearchConfig::default())
            }),
            gaps: GapTracker::new(identity.clone(), &settings.pipeline),
            cell_gaps: GapTracker::new(identity.clone(), &settings.pipeline),
            jammers: JammerTracker::new(identity.clone(), settings.jammer_confirm.max(1)),
            clips: None,
            cancel: None,
            plan,
            settings,
        })
    }

    /// Keeps an evidence clip of each gap that opens at `critical` with `keeper`
    /// ([`crate::evidence::ClipStore`]).
    #[must_use]
    pub fn with_clips(mut self, keeper: impl EvidenceKeeper + 'static) -> Self {
        self.clips = Some(Box::new(keeper));
        self
    }

    /// The clip keeper's counters, when clips are kept.
    #[must_use]
    pub fn clip_stats(&self) -> Option<ClipStats> {
        self.clips.as_ref().map(|c| c.stats())
    }

    /// Abandons a sweep between hops once `flag` is set.
    #[must_use]
    pub fn with_cancel(mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// The plan swept.
    #[must_use]
    pub fn plan(&self) -> &ScanPlan {
        &self.plan
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &SweepSettings {
        &self.settings
    }

    /// The radio's oscillator error learnt from the SSBs found so far, ppm (see
    /// [`crate::analysis::NrSearchers`]).
    #[must_use]
    pub fn radio_ppm(&self) -> Option<f64> {
        self.nr
            .as_ref()
            .and_then(crate::analysis::NrSearchers::radio_ppm)
    }

    /// Starts from a known oscillator error (a recorded sweep's), or from none.
    pub fn set_radio_ppm(&mut self, ppm: Option<f64>) {
        if let Some(nr) = self.nr.as_mut() {
            nr.set_radio_ppm(ppm);
        }
    }

    /// What the trackers remember now (a recorded sweep carries it as it began).
    #[must_use]
    pub fn tracker_state(&self) -> crate::tracker::TrackerState {
        crate::tracker::TrackerState {
            gaps: self.gaps.tracks(),
            cell_gaps: self.cell_gaps.tracks(),
            jammers: self.jammers.tracks(),
        }
    }

    /// Starts from what the trackers remembered when a recorded sweep began.
    pub fn set_tracker_state(&mut self, state: crate::tracker::TrackerState) {
        self.gaps.restore(state.gaps);
        self.cell_gaps.restore(state.cell_gaps);
        self.jammers.restore(state.jammers);
    }

    /// Gaps open now (energy).
    #[must_use]
    pub fn open_gaps(&self) -> usize {
        self.gaps.open_count()
    }

    fn cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// Sweeps the plan once, stamping observations and events with `at`.
    ///
    /// # Errors
    /// Source failures ([`AgentError::Hardware`]), a source that stops delivering (twenty
    /// timeouts in a row), an observer's error, or [`AgentError::Cancelled`].
    pub fn sweep(
        &mut self,
        source: &mut dyn IqSource,
        at: OffsetDateTime,
        observer: &mut dyn Observer,
    ) -> Result<SweepHealth, AgentError> {
        let started = Instant::now();
        let mut health = SweepHealth::default();
        let total = self.plan.hop_count();
        if let Some(nr) = self.nr.as_mut() {
            nr.begin_sweep();
        }
        let plan = std::mem::take(&mut self.plan.ranges);
        let r = (|| -> Result<(), AgentError> {
            for (ri, range) in plan.iter().enumerate() {
                self.sweep_range(source, ri, range, at, total, &mut health, observer)?;
            }
            Ok(())
        })();
        self.plan.ranges = plan;
        r?;
        if let Some(nr) = self.nr.as_mut() {
            nr.end_sweep();
        }
        health.elapsed_s = started.elapsed().as_secs_f64();
        Ok(health)
    }

    #[allow(clippy::too_many_arguments)]
    fn sweep_range(
        &mut self,
        source: &mut dyn IqSource,
        ri: usize,
        range: &RangePlan,
        at: OffsetDateTime,
        total: usize,
        health: &mut SweepHealth,
        observer: &mut dyn Observer,
    ) -> Result<(), AgentError> {
        if range.hops.hops.is_empty() {
            return Ok(());
        }
        let cfg = self.settings.pipeline.clone();
        let analyse = self.settings.analysis;
        // Hops are kept until the range is done when cells are searched in them or when a gap
        // may need an evidence clip of its hops; see [`HopKeeping`] for which.
        let keep_all = analyse && (self.settings.cell_search || self.clips.is_some());
        let search = analyse && self.settings.cell_search;
        let gsm_range = range
            .bands
            .iter()
            .any(|b| b.technology == dsp::carrier::Technology::Gsm);
        let mut pieces: Vec<Spectrum> = Vec::with_capacity(range.hops.hops.len());
        let mut segments = usize::MAX;
        let mut calibration = None;
        let mut noise_figure_db = None;
        let mut keeping = HopKeeping::default();
        // GSM cells of every hop, searched as each is captured (in hop order, with the band
        // each was searched for): the only search that needs a GSM hop's whole dwell.
        let mut gsm_found: Vec<(&'static str, crate::analysis::CarrierObs)> = Vec::new();
        for (hi, hop) in range.hops.hops.iter().enumerate() {
            if self.cancelled() {
                return Err(AgentError::Cancelled);
            }
            let t_capture = Instant::now();
            let tuned = source.tune(&Tuning {
                center_hz: hop.center_hz,
                sample_rate_hz: hop.sample_rate_hz,
                gain_db: self.settings.gain_db,
                bandwidth_hz: None,
            })?;
            let started_at = OffsetDateTime::now_utc();
            calibration = source.calibration();
            noise_figure_db = source
                .info()
                .noise_figure_db
                .or(self.settings.noise_figure_db);
            let fs = tuned.sample_rate_hz;
            let n = hop_len(&self.settings, range, fs);
            let slot = if keep_all { keeping.slot() } else { 0 };
            let (buf, samples) = self.held.slot(slot, n);
            buf.center_hz = tuned.center_hz;
            buf.sample_rate_hz = fs;
            let overflows_before = health.overflows;
            read_exactly(source, samples, health)?;
            buf.planned = Some(*hop);
            buf.tuned = Some(tuned.clone());
            buf.started_at = Some(started_at);
            buf.calibration.clone_from(&calibration);
            buf.noise_figure_db = noise_figure_db;
            buf.overflows = health.overflows - overflows_before;
            let t_observe = Instant::now();
            health.stages.capture_s += (t_observe - t_capture).as_secs_f64();
            observer.hop(&HopCapture {
                range: ri,
                index: hi,
                planned: hop,
                tuned: tuned.clone(),
                started_at,
                calibration: calibration.as_ref(),
                noise_figure_db,
                overflows: buf.overflows,
                samples,
            })?;
            let t_spectrum = Instant::now();
            health.stages.observe_s += (t_spectrum - t_observe).as_secs_f64();
            // Held unless its spectrum shows it quiet (kept at all only when searched or clipped).
            let mut needed = true;
            if analyse {
                let w = match self.welch.as_mut() {
                    Some(w) if (w.config().sample_rate_hz - fs).abs() < 1e-3 => w,
                    _ => self.welch.insert(Welch::new(WelchConfig {
                        fft_size: cfg.fft_size,
                        overlap: cfg.overlap,
                        window: cfg.window,
                        averaging: Averaging::Segments(usize::MAX),
                        sample_rate_hz: fs,
                        center_hz: tuned.center_hz,
                    })?),
                };
                w.reset(tuned.center_hz);
                w.process(samples, |_| {});
                let mut got = None;
                w.flush(|f| got = Some((f.segments, f.to_spectrum())));
                if let Some((n, mut spec)) = got {
                    segments = segments.min(n);
                    spec.suppress_dc(tuned.center_hz, cfg.dc_half_width_bins);
                    needed = cfg.keep_quiet_hops
                        || self.settings.watch_hz.iter().any(|&f| {
                            (f - tuned.center_hz).abs() + LTE_SYNC_HALF_SPAN_HZ <= fs / 2.0
                        })
                        || !hop_at_thermal_floor(
                            &spec,
                            n,
                            calibration.as_ref(),
                            noise_figure_db,
                            &cfg,
                            &mut self.scratch,
                        );
                    if let Some(kept) = spec.slice_hz(hop.keep_hz.0, hop.keep_hz.1) {
                        pieces.push(kept);
                    }
                }
            }
            health.stages.spectrum_s += t_spectrum.elapsed().as_secs_f64();
            if search && gsm_range {
                let t_gsm = Instant::now();
                let found_before = gsm_found.len();
                let (buf, samples) = self.held.get(slot);
                let view = crate::analysis::CaptureView {
                    samples,
                    sample_rate_hz: fs,
                    center_hz: buf.center_hz,
                };
                for band in range
                    .bands
                    .iter()
                    .filter(|b| b.technology == dsp::carrier::Technology::Gsm)
                {
                    for (o, _) in crate::analysis::gsm_cells(&view, calibration.as_ref(), &[band]) {
                        gsm_found.push((band.name, o));
                    }
                }
                if gsm_found.len() > found_before {
                    // The whole dwell stays: a GSM gap's clip needs it.
                    needed = true;
                } else {
                    // What the other searches and clips use: one dwell, as in any range.
                    self.held.truncate(slot, search_len(&self.settings, fs));
                }
                health.stages.gsm_s += t_gsm.elapsed().as_secs_f64();
            }
            if keep_all && keeping.captured(needed) {
                self.held.replace(keeping.kept);
            }
            health.hops += 1;
            observer.progress(health.hops, total);
        }
        let held = if keep_all { keeping.kept } else { 0 };
        health.hops_held = health.hops_held.max(held);
        if !analyse {
            return Ok(());
        }
        let t_stitch = Instant::now();
        let Some(stitched) = Spectrum::stitch(&pieces) else {
            return Ok(());
        };
        let t_analysis = Instant::now();
        health.stages.spectrum_s += (t_analysis - t_stitch).as_secs_f64();
        let hops = self.held.held(held);
        let thermal = noise_figure_db.map(thermal_floor_dbm_per_hz);
        let mut kept: Vec<(f64, BandObservation)> = Vec::new();
        for band in &range.bands {
            let Some(slice) = stitched.slice_hz(band.dl_low_hz, band.dl_high_hz) else {
                continue;
            };
            let analysis = analyze(
                &slice,
                segments.max(1),
                calibration.as_ref(),
                thermal,
                &[*band],
                &cfg,
                &mut self.scratch,
            );
            kept.push((
                band.width_hz(),
                BandObservation {
                    band: band.name.to_string(),
                    observed_at: at,
                    span_hz: slice.span_hz(),
                    analysis,
                    cells: Vec::new(),
                },
            ));
        }
        // A carrier seen in several overlapping bands belongs to the narrowest of its technology
        // (an LTE carrier in a range with GSM850 and B5 is B5's, whichever is listed first).
        let mut order: Vec<usize> = (0..kept.len()).collect();
        order.sort_by(|&a, &b| kept[a].0.total_cmp(&kept[b].0));
        let mut claimed: Vec<(f64, dsp::carrier::Technology)> = Vec::new();
        for &i in &order {
            let band = kept[i].1.band.clone();
            kept[i].1.analysis.carriers.retain(|c| {
                let own = crate::analysis::assign_band(c.center_hz, c.technology, &range.bands);
                if c.band != band || own.is_some_and(|b| b.name != band) {
                    return false;
                }
                let dup = claimed
                    .iter()
                    .any(|&(f, t)| t == c.technology && (f - c.center_hz).abs() < 50e3);
                if !dup {
                    claimed.push((c.center_hz, c.technology));
                }
                !dup
            });
        }
        health.stages.analysis_s += t_analysis.elapsed().as_secs_f64();
        let mut all_cells = Vec::new();
        if search {
            for (_, obs) in &mut kept {
                let Some(band) = range.bands.iter().copied().find(|b| b.name == obs.band) else {
                    continue;
                };
                search_cells(
                    self.lte.as_mut(),
                    self.nr.as_mut(),
                    hops,
                    &gsm_found,
                    calibration.as_ref(),
                    band,
                    &self.settings.watch_hz,
                    obs,
                    &mut health.stages,
                );
                all_cells.extend(obs.cells.iter().cloned());
            }
        }
        let all_carriers: Vec<_> = kept
            .iter()
            .flat_map(|(_, b)| b.analysis.carriers.iter().cloned())
            .collect();
        let t_events = Instant::now();
        let mut events = Vec::new();
        for (_, obs) in &kept {
            observer.band(obs);
            for j in &obs.analysis.jammers {
                if let Some(e) = self.jammers.observe(at, &j.band, &j.assessment) {
                    events.push(e);
                }
            }
        }
        events.extend(
            self.gaps
                .observe(at, (range.lo_hz, range.hi_hz), &all_carriers),
        );
        if search {
            events.extend(
                self.cell_gaps
                    .observe(at, (range.lo_hz, range.hi_hz), &all_cells),
            );
        }
        for mut e in events {
            if let (Event::Gap(g), Some(clips)) = (&mut e, self.clips.as_mut())
                && g.state == protocol::GapState::Open
                && g.severity == protocol::Severity::Critical
            {
                g.evidence = keep_clip(
                    clips.as_mut(),
                    range,
                    &self.settings,
                    at,
                    g,
                    &all_carriers,
                    hops,
                );
            }
            observer.event(&e);
        }
        health.stages.events_s += t_events.elapsed().as_secs_f64();
        Ok(())
    }
}

/// Floor either side of a carrier that a clip keeps, hertz: the detector needs floor around a
/// carrier to see it as one.
const CLIP_GUARD_HZ: f64 = 2e6;

/// Writes the evidence clip of a gap that opened critical: the hops of its range whose kept
/// span touches its carrier (the energy carrier a named cell sits in, else the widest LTE
/// channel around it) and a guard of floor, as a recorded sweep of their own that replays to
/// the gap.
#[allow(clippy::too_many_arguments)]
fn keep_clip(
    clips: &mut dyn EvidenceKeeper,
    range: &RangePlan,
    settings: &SweepSettings,
    at: OffsetDateTime,
    gap: &protocol::GapEvent,
    carriers: &[crate::analysis::CarrierObs],
    hops: Held<'_>,
) -> Option<protocol::Evidence> {
    let (centre, half) = carriers
        .iter()
        .find(|c| (c.center_hz - gap.center_hz).abs() <= c.bandwidth_hz / 2.0)
        .map_or((gap.center_hz, gap.bandwidth_hz.max(20e6) / 2.0), |c| {
            (c.center_hz, c.bandwidth_hz / 2.0)
        });
    let (lo, hi) = (centre - half - CLIP_GUARD_HZ, centre + half + CLIP_GUARD_HZ);
    // In a range with a GSM band only the hops whose GSM search found a cell keep their whole
    // dwell. The clip of a GSM cell found by sync is those hops, with the range's bands; any
    // other gap's clip is one dwell of each hop, with the range's other bands (a GSM carrier seen
    // by energy: with its band, cells not searched). A clip's hops are all one length, the
    // length its own replay reads.
    let gsm = |b: &&'static Band| b.technology == dsp::carrier::Technology::Gsm;
    let gsm_gap = gap.technology == protocol::Technology::Gsm;
    let one_dwell =
        range.bands.iter().any(gsm) && !(gsm_gap && gap.detector == protocol::Detector::Sync);
    let whole = |h: &HopBuffer| h.at.len() == hop_len(settings, range, h.sample_rate_hz);
    let chosen: Vec<&HopBuffer> = hops
        .hops
        .iter()
        .filter(|h| {
            h.planned
                .is_some_and(|p| p.keep_hz.0 < hi && p.keep_hz.1 > lo)
                && (one_dwell || whole(h))
        })
        .collect();
    let mut plan_hops: Vec<Hop> = chosen.iter().filter_map(|h| h.planned).collect();
    plan_hops.sort_by(|a, b| a.center_hz.total_cmp(&b.center_hz));
    let (Some(first), Some(last)) = (plan_hops.first(), plan_hops.last()) else {
        tracing::warn!("no hop holds gap {}", gap.gap_key);
        return clips.keep(ScanPlan::default(), settings.clone(), at, gap, &[]);
    };
    let plan = ScanPlan {
        ranges: vec![RangePlan {
            lo_hz: first.keep_hz.0.max(range.lo_hz),
            hi_hz: last.keep_hz.1.min(range.hi_hz),
            bands: if one_dwell && !gsm_gap {
                range.bands.iter().copied().filter(|b| !gsm(b)).collect()
            } else {
                range.bands.clone()
            },
            hops: HopPlan {
                band: range.hops.band.clone(),
                hops: plan_hops.clone(),
                unreachable_hz: Vec::new(),
            },
        }],
        warnings: Vec::new(),
    };
    // One observation is all a clip holds: its gap opens on it.
    let settings = SweepSettings {
        pipeline: PipelineConfig {
            open_after: 1,
            ..settings.pipeline.clone()
        },
        jammer_confirm: 1,
        analysis: true,
        cell_search: settings.cell_search && !(one_dwell && gsm_gap),
        ..settings.clone()
    };
    let captures: Vec<HopCapture<'_>> = chosen
        .iter()
        .filter_map(|h| {
            let planned = h.planned.as_ref()?;
            let index = plan_hops
                .iter()
                .position(|p| p.center_hz == planned.center_hz)?;
            Some(HopCapture {
                range: 0,
                index,
                planned,
                tuned: h.tuned.clone()?,
                started_at: h.started_at?,
                calibration: h.calibration.as_ref(),
                noise_figure_db: h.noise_figure_db,
                overflows: h.overflows,
                samples: {
                    let x = hops.samples(h);
                    if one_dwell {
                        &x[..x.len().min(search_len(&settings, h.sample_rate_hz))]
                    } else {
                        x
                    }
                },
            })
        })
        .collect();
    clips.keep(plan, settings, at, gap, &captures)
}

/// Samples captured per hop of `range` at `sample_rate_hz`: the dwell (GSM bands dwell long
/// enough for two FCCH bursts and an SCH when cells are searched, or will be in a replay of what
/// `record` captures), and never less than one FFT.
#[must_use]
pub fn hop_len(settings: &SweepSettings, range: &RangePlan, sample_rate_hz: f64) -> usize {
    let gsm = settings.cell_search
        && range
            .bands
            .iter()
            .any(|b| b.technology == dsp::carrier::Technology::Gsm);
    if gsm {
        ((settings.dwell_s.max(GSM_DWELL_S) * sample_rate_hz) as usize)
            .max(settings.pipeline.fft_size)
    } else {
        search_len(settings, sample_rate_hz)
    }
}

/// Samples of a hop that the LTE and NR searches and evidence clips use: one dwell (a GSM hop
/// is longer only for its own search, done as it is captured), and never less than one FFT.
#[must_use]
pub fn search_len(settings: &SweepSettings, sample_rate_hz: f64) -> usize {
    ((settings.dwell_s * sample_rate_hz) as usize).max(settings.pipeline.fft_size)
}

/// Longest dwell a sweep accepts, seconds.
pub const MAX_DWELL_S: f64 = 10.0;

/// Names the cells of one band of a range: LTE around each LTE carrier's centre, NR on the
/// raster of the hops that hold an NR carrier, GSM on every ARFCN, and LTE at the watched
/// channels where energy shows nothing.
#[allow(clippy::too_many_arguments)]
fn search_cells(
    mut lte: Option<&mut dsp::cell::lte_search::LteSearcher>,
    nr: Option<&mut crate::analysis::NrSearchers>,
    hops: Held<'_>,
    gsm_found: &[(&'static str, crate::analysis::CarrierObs)],
    calibration: Option<&Calibration>,
    band: &'static Band,
    watch_hz: &[f64],
    obs: &mut BandObservation,
    stages: &mut StageTimes,
) {
    let mut nr = nr;
    for c in obs.analysis.carriers.clone() {
        let t = Instant::now();
        match c.technology {
            dsp::carrier::Technology::Lte => {
                if let Some(s) = lte.as_deref_mut() {
                    // Centred on the carrier the radio sees: its error moved the cell with it,
                    // only the centre's estimate (a bin or so) is off.
                    obs.cells.extend(lte_cells_at(
                        s,
                        hops,
                        c.center_hz,
                        calibration,
                        band,
                        OffsetSearch::Near(ENERGY_CENTRE_SLACK_HZ),
                    ));
                }
            }
            dsp::carrier::Technology::Nr => {
                let Some(searchers) = nr.as_deref_mut() else {
                    continue;
                };
                // The hops nearest the carrier's centre first, and in each the raster points
                // nearest it: the first SSB found gives the radio's oscillator error, and the
                // searches after it look only around that.
                let mut near: Vec<&HopBuffer> = hops
                    .hops
                    .iter()
                    .filter(|h| {
                        (c.center_hz - h.center_hz).abs()
                            < c.bandwidth_hz / 2.0 + h.sample_rate_hz / 2.0
                    })
                    .collect();
                near.sort_by(|a, b| {
                    (a.center_hz - c.center_hz)
                        .abs()
                        .total_cmp(&(b.center_hz - c.center_hz).abs())
                });
                for hop in near {
                    for (o, _) in crate::analysis::nr_cells_from(
                        searchers,
                        &hops.view(hop),
                        calibration,
                        &[band],
                        c.center_hz,
                    ) {
                        push_new_pci(&mut obs.cells, o);
                    }
                }
                stages.nr_s += t.elapsed().as_secs_f64();
                continue;
            }
            _ => {}
        }
        stages.lte_s += t.elapsed().as_secs_f64();
    }
    // GSM: FCCH and SCH on every ARFCN of the band in each hop, energy carrier or not (the FCCH
    // tone stands out of a floor that hides the carrier).
    let t = Instant::now();
    if band.technology == dsp::carrier::Technology::Gsm {
        for (_, o) in gsm_found.iter().filter(|(b, _)| *b == band.name) {
            let arfcn = o.cell.as_ref().and_then(|c| c.arfcn);
            if !obs
                .cells
                .iter()
                .any(|k| k.cell.as_ref().and_then(|c| c.arfcn) == arfcn)
            {
                obs.cells.push(o.clone());
            }
        }
    }
    stages.gsm_s += t.elapsed().as_secs_f64();
    let t = Instant::now();
    // Known channels: search for a cell even where energy shows nothing.
    if let Some(s) = lte {
        for &f in watch_hz {
            if !(band.dl_low_hz..=band.dl_high_hz).contains(&f)
                || band.technology != dsp::carrier::Technology::Lte
                || obs.cells.iter().any(|k| (k.center_hz - f).abs() < 1e6)
            {
                continue;
            }
            for o in lte_cells_at(s, hops, f, calibration, band, OffsetSearch::Full) {
                push_new_pci(&mut obs.cells, o);
            }
        }
    }
    stages.lte_s += t.elapsed().as_secs_f64();
}

/// Dwell of the hops of GSM bands when cells are searched: two FCCH bursts (10 or 11 TDMA
/// frames, 51 ms at most) and an SCH.
const GSM_DWELL_S: f64 = 0.06;

/// How far an LTE cell can sit from the centre of the energy carrier it was found in: the
/// centre is read off spectrum bins of about 15 kHz (1024 points at 15.36 MS/s) and the edges
/// of a carrier under a jammer, so a few bins.
const ENERGY_CENTRE_SLACK_HZ: f64 = 30e3;

/// LTE cells centred at `f` in the capture of the nearest hop that holds `f` with 0.6 MHz to
/// spare (the 1.92 MS/s sync view).
fn lte_cells_at(
    s: &mut dsp::cell::lte_search::LteSearcher,
    hops: Held<'_>,
    f: f64,
    calibration: Option<&dsp::calib::Calibration>,
    band: &'static Band,
    how: OffsetSearch,
) -> Vec<crate::analysis::CarrierObs> {
    let Some(hop) = hops
        .hops
        .iter()
        .filter(|h| (f - h.center_hz).abs() + LTE_SYNC_HALF_SPAN_HZ <= h.sample_rate_hz / 2.0)
        .min_by(|a, b| (f - a.center_hz).abs().total_cmp(&(f - b.center_hz).abs()))
    else {
        return Vec::new();
    };
    crate::analysis::lte_cells(
        s,
        &hops.view(hop),
        &[f - hop.center_hz],
        calibration,
        &[band],
        how,
    )
    .into_iter()
    .map(|(o, _)| o)
    .collect()
}

/// Adds a cell unless one with its PCI is already there.
fn push_new_pci(cells: &mut Vec<crate::analysis::CarrierObs>, o: crate::analysis::CarrierObs) {
    let pci = o.cell.as_ref().and_then(|i| i.pci);
    if !cells
        .iter()
        .any(|k| k.cell.as_ref().and_then(|i| i.pci) == pci)
    {
        cells.push(o);
    }
}

fn read_exactly(
    source: &mut dyn IqSource,
    buf: &mut [Complex32],
    health: &mut SweepHealth,
) -> Result<(), AgentError> {
    let mut got = 0;
    let mut timeouts_in_row = 0;
    while got < buf.len() {
        match source.read(&mut buf[got..])? {
            ReadOutcome::Samples(n) => {
                got += n;
                timeouts_in_row = 0;
            }
            ReadOutcome::Overflow { n, lost } => {
                health.overflows += 1;
                health.lost_samples += lost.unwrap_or(0);
                got += n;
            }
            ReadOutcome::Timeout => {
                health.timeouts += 1;
                timeouts_in_row += 1;
                if timeouts_in_row >= 20 {
                    return Err(AgentError::Runtime(format!(
                        "source `{}` stopped delivering samples (20 timeouts in a row)",
                        source.info().name
                    )));
                }
            }
            ReadOutcome::EndOfData => {
                buf[got..].fill(Complex32::default());
                return Err(AgentError::Input(format!(
                    "source `{}` ended after {got} of {} samples of a hop",
                    source.info().name,
                    buf.len()
                )));
            }
        }
    }
    health.samples += got as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `needed` through the slot bookkeeping as the sweep does, and returns the hops the
    /// held slots end up with (in slot order) and the most slots used at once.
    fn simulate(needed: &[bool]) -> (Vec<usize>, usize) {
        let mut k = HopKeeping::default();
        let mut slots: Vec<Option<usize>> = Vec::new();
        let mut most = 0;
        for (i, &n) in needed.iter().enumerate() {
            let s = k.slot();
            if slots.len() <= s {
                slots.resize(s + 1, None);
            }
            most = most.max(s + 1);
            slots[s] = Some(i);
            if k.captured(n) {
                slots[k.kept] = slots[k.kept + 1].take();
            }
        }
        (
            slots[..k.kept].iter().map(|s| s.expect("held")).collect(),
            most,
        )
    }

    #[test]
    fn the_held_hops_are_the_needed_ones_and_their_neighbours_in_order() {
        // Every pattern of twelve hops.
        for bits in 0u32..(1 << 12) {
            let needed: Vec<bool> = (0..12).map(|i| bits & (1 << i) != 0).collect();
            let want: Vec<usize> = (0..needed.len())
                .filter(|&i| {
                    needed[i]
                        || (i > 0 && needed[i - 1])
                        || needed.get(i + 1).copied().unwrap_or(false)
                })
                .collect();
            let (held, most) = simulate(&needed);
            assert_eq!(held, want, "{needed:?}");
            // Never more than the held hops and two spares (a tentative guard and the next).
            assert!(most <= want.len() + 2, "{needed:?}: {most} slots");
        }
    }

    /// A hop's calibrated spectrum: 400,000 samples at 20 MS/s of noise at `rise_db` over the
    /// thermal floor of a 6 dB noise figure, plus a tone `tone_db` over one bin's noise.
    fn hop_spectrum(rise_db: f64, tone_db: Option<f64>) -> (Spectrum, usize, Calibration) {
        let fs = 20e6;
        let cal = Calibration::flat(-20.0, 0.0).expect("calibration");
        // Thermal density in dBFS/Hz for that calibration.
        let density_dbfs_hz = thermal_floor_dbm_per_hz(6.0) + rise_db - cal.offset_db(3.5e9);
        let noise_power = 10f64.powf(density_dbfs_hz / 10.0) * fs;
        let mut x = vec![Complex32::default(); 400_000];
        dsp::synth::add_awgn(&mut dsp::synth::rng(7), &mut x, noise_power);
        if let Some(t) = tone_db {
            let bin_noise = noise_power / 1024.0;
            let amp = (bin_noise * 10f64.powf(t / 10.0)).sqrt();
            let tone = dsp::synth::tone(x.len(), fs, 4e6, amp, 0.0);
            for (v, t) in x.iter_mut().zip(&tone) {
                *v += *t;
            }
        }
        let mut w = Welch::new(WelchConfig {
            fft_size: 1024,
            overlap: 0.5,
            window: dsp::window::WindowKind::Hann,
            averaging: Averaging::Segments(usize::MAX),
            sample_rate_hz: fs,
            center_hz: 3.5e9,
        })
        .expect("welch");
        w.process(&x, |_| {});
        let mut got = None;
        w.flush(|f| got = Some((f.to_spectrum(), f.segments)));
        let (mut spec, segments) = got.expect("a spectrum");
        spec.suppress_dc(3.5e9, 2);
        (spec, segments, cal)
    }

    /// Collects the cells of every band observed.
    #[derive(Default)]
    struct Cells(Vec<crate::analysis::CarrierObs>);

    impl Observer for Cells {
        fn band(&mut self, band: &BandObservation) {
            self.0.extend(band.cells.iter().cloned());
        }
    }

    #[test]
    fn a_wrong_oscillator_error_is_forgotten_after_a_sweep_that_finds_no_ssb() {
        use crate::source::{SourceSpec, device_profile};
        let bands = select_bands(None, &["n78".to_string()]).expect("n78");
        let device = device_profile(Some("hackrf")).expect("profile");
        let spec = SourceSpec::Sim { scene: None };
        let (name, limits, rate) = spec.radio(device, None);
        let cfg = PipelineConfig::default();
        let scan_plan = plan(&bands, &name, &limits, rate, cfg.usable_fraction()).expect("plan");
        let settings = SweepSettings {
            pipeline: cfg,
            dwell_s: 0.02,
            gain_db: None,
            noise_figure_db: device.map(|p| p.noise_figure_db),
            cell_search: true,
            watch_hz: Vec::new(),
            jammer_confirm: 1,
            analysis: true,
        };
        let id = Identity {
            facility_id: "f".into(),
            sensor_id: "s".into(),
            zone: "z".into(),
        };
        let at = OffsetDateTime::now_utc();
        // The demo's n78 sweep once, played to the pipeline twice.
        let mut sweep = crate::recording::MemorySweep::default();
        let mut source = spec.open(None).expect("sim");
        Pipeline::new(
            scan_plan.clone(),
            SweepSettings {
                analysis: false,
                ..settings.clone()
            },
            &id,
        )
        .expect("pipeline")
        .sweep(source.as_mut(), at, &mut sweep)
        .expect("captured");
        let mut pipe = Pipeline::new(scan_plan, settings, &id).expect("pipeline");
        let ssb = |c: &Cells| {
            c.0.iter()
                .any(|o| o.cell.as_ref().and_then(|i| i.pci) == Some(579))
        };
        // 40 ppm is 140 kHz at 3.5 GHz: around it there is no SSB.
        pipe.set_radio_ppm(Some(40.0));
        let mut first = Cells::default();
        pipe.sweep(&mut sweep, at, &mut first).expect("sweep");
        assert!(!ssb(&first), "no SSB where the wrong error points");
        assert_eq!(pipe.radio_ppm(), None, "the wrong error is forgotten");
        let mut second = Cells::default();
        pipe.sweep(&mut sweep, at, &mut second).expect("sweep");
        assert!(ssb(&second), "the whole range finds the demo's SSB again");
        let ppm = pipe.radio_ppm().expect("learnt again");
        assert!(
            ppm.abs() < 1.0,
            "the simulated radio is on frequency: {ppm} ppm"
        );
    }

    #[test]
    fn a_hop_is_at_the_floor_only_when_calibrated_thermal_noise_is_all_it_holds() {
        let cfg = PipelineConfig::default();
        let mut scratch = Vec::new();
        let quiet = |rise, tone, cal: bool, nf: Option<f64>, scratch: &mut Vec<f32>| {
            let (spec, segments, c) = hop_spectrum(rise, tone);
            hop_at_thermal_floor(&spec, segments, cal.then_some(&c), nf, &cfg, scratch)
        };
        // Thermal noise, and noise a little over it (a radio a dB worse than its profile).
        assert!(quiet(0.0, None, true, Some(6.0), &mut scratch));
        assert!(quiet(1.0, None, true, Some(6.0), &mut scratch));
        // A carrier in it; a hop filled by a carrier or a jammer 3 dB over thermal.
        assert!(!quiet(0.0, Some(15.0), true, Some(6.0), &mut scratch));
        assert!(!quiet(3.0, None, true, Some(6.0), &mut scratch));
        // Not judged without a calibration or a noise figure: the hop is kept.
        assert!(!quiet(0.0, None, false, Some(6.0), &mut scratch));
        assert!(!quiet(0.0, None, true, None, &mut scratch));
    }
}
