//! Sweeping a band plan with any [`IqSource`]: plan hops per radio, capture each hop once,
//! stitch each band's spectrum, analyse it, and feed the trackers.

use std::time::Instant;

use dsp::bandplan::{Band, HopPlan, TuningLimits, plan_hops};
use dsp::floor::thermal_floor_dbm_per_hz;
use dsp::psd::{Averaging, Spectrum, Welch, WelchConfig};
use hardware::{IqSource, ReadOutcome, Tuning};
use serde::Serialize;
use time::OffsetDateTime;

use crate::AgentError;
use crate::analysis::{Analysis, OffsetSearch, analyze};
use crate::config::PipelineConfig;
use crate::tracker::{Event, GapTracker, JammerTracker};

/// A contiguous frequency range made of overlapping bands, with the hops that cover it.
#[derive(Debug, Clone, Serialize)]
pub struct RangePlan {
    /// Lowest frequency, hertz.
    pub lo_hz: f64,
    /// Highest frequency, hertz.
    pub hi_hz: f64,
    /// Bands inside the range.
    #[serde(serialize_with = "band_names")]
    pub bands: Vec<&'static Band>,
    /// Hops covering what the radio can reach.
    pub hops: HopPlan,
}

fn band_names<S: serde::Serializer>(b: &[&'static Band], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(b.iter().map(|b| b.name))
}

/// A sweep plan for one radio.
#[derive(Debug, Clone, Serialize)]
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

/// Settings of a sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// Spectrum pipeline settings.
    pub pipeline: PipelineConfig,
    /// Seconds captured per hop.
    pub dwell_s: f64,
    /// Gain, dB (None: the source's default).
    pub gain_db: Option<f64>,
    /// Noise figure to use when the source does not know its own, dB.
    pub noise_figure_db: Option<f64>,
    /// Name the energy carriers' cells by sync search (LTE PCI, NR SSB PCI).
    pub cell_search: bool,
    /// LTE downlink centres (hertz) to sync-search every sweep even without an energy carrier:
    /// a cell hidden under a jammer's floor is found only this way.
    pub watch_hz: Vec<f64>,
    /// Set to abandon the sweep between hops (shutdown).
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
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
    /// Wall time of the sweep, seconds.
    pub elapsed_s: f64,
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

/// Sweeps the plan once. `on_band` receives each band's observation and `on_event` each event;
/// `on_hop` is told of progress (hops done, hops in all).
///
/// # Errors
/// Source failures ([`AgentError::Hardware`]), a source that stops delivering (twenty timeouts in
/// a row), or a bad pipeline setting.
#[allow(clippy::too_many_arguments)]
pub fn sweep(
    source: &mut dyn IqSource,
    scan_plan: &ScanPlan,
    opts: &SweepOptions,
    at: OffsetDateTime,
    gaps: &mut GapTracker,
    cell_gaps: &mut GapTracker,
    jammers: &mut JammerTracker,
    mut on_band: impl FnMut(&BandObservation),
    mut on_event: impl FnMut(&Event),
    mut on_hop: impl FnMut(usize, usize),
) -> Result<SweepHealth, AgentError> {
    let started = Instant::now();
    let cfg = &opts.pipeline;
    let mut health = SweepHealth::default();
    let total = scan_plan.hop_count();
    let mut welch: Option<Welch> = None;
    let mut scratch = Vec::new();
    let mut buf = Vec::new();
    let mut frame = None;
    let mut lte = opts.cell_search.then(|| {
        dsp::cell::lte_search::LteSearcher::new(dsp::cell::lte_search::LteSearchConfig::default())
    });
    let mut nr = opts.cell_search.then(|| {
        crate::analysis::NrSearchers::new(dsp::cell::nr_search::NrSearchConfig::default())
    });
    for range in &scan_plan.ranges {
        if range.hops.hops.is_empty() {
            continue;
        }
        let mut pieces: Vec<Spectrum> = Vec::with_capacity(range.hops.hops.len());
        let mut segments = usize::MAX;
        let mut hop_samples: Vec<(f64, f64, Vec<dsp::Complex32>)> = Vec::new();
        let mut calibration = None;
        for hop in &range.hops.hops {
            if opts
                .cancel
                .as_ref()
                .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
            {
                return Err(AgentError::Cancelled);
            }
            let tuned = source.tune(&Tuning {
                center_hz: hop.center_hz,
                sample_rate_hz: hop.sample_rate_hz,
                gain_db: opts.gain_db,
                bandwidth_hz: None,
            })?;
            calibration = source.calibration();
            let fs = tuned.sample_rate_hz;
            // A GSM cell shows by two FCCH bursts 10 or 11 TDMA frames apart and the SCH after
            // one: hops of GSM bands dwell long enough for that when cells are searched.
            let gsm = opts.cell_search
                && range
                    .bands
                    .iter()
                    .any(|b| b.technology == dsp::carrier::Technology::Gsm);
            let dwell_s = if gsm {
                opts.dwell_s.max(GSM_DWELL_S)
            } else {
                opts.dwell_s
            };
            let n = ((dwell_s * fs) as usize).max(cfg.fft_size);
            buf.resize(n, dsp::Complex32::default());
            read_exactly(source, &mut buf, &mut health)?;
            if opts.cell_search {
                hop_samples.push((tuned.center_hz, fs, buf.clone()));
            }
            let w = match welch.as_mut() {
                Some(w) if (w.config().sample_rate_hz - fs).abs() < 1e-3 => w,
                _ => welch.insert(Welch::new(WelchConfig {
                    fft_size: cfg.fft_size,
                    overlap: cfg.overlap,
                    window: cfg.window,
                    averaging: Averaging::Segments(usize::MAX),
                    sample_rate_hz: fs,
                    center_hz: tuned.center_hz,
                })?),
            };
            w.reset(tuned.center_hz);
            w.process(&buf, |_| {});
            w.flush(|f| frame = Some(f.clone()));
            if let Some(f) = frame.take() {
                segments = segments.min(f.segments);
                let mut spec = f.to_spectrum();
                spec.suppress_dc(tuned.center_hz, cfg.dc_half_width_bins);
                if let Some(kept) = spec.slice_hz(hop.keep_hz.0, hop.keep_hz.1) {
                    pieces.push(kept);
                }
            }
            health.hops += 1;
            on_hop(health.hops, total);
        }
        let Some(stitched) = Spectrum::stitch(&pieces) else {
            continue;
        };
        let thermal = source
            .info()
            .noise_figure_db
            .or(opts.noise_figure_db)
            .map(thermal_floor_dbm_per_hz);
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
                cfg,
                &mut scratch,
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
        // A carrier seen in several overlapping bands belongs to the narrowest of its technology.
        let mut order: Vec<usize> = (0..kept.len()).collect();
        order.sort_by(|&a, &b| kept[a].0.total_cmp(&kept[b].0));
        let mut claimed: Vec<(f64, dsp::carrier::Technology)> = Vec::new();
        for &i in &order {
            let band = kept[i].1.band.clone();
            kept[i].1.analysis.carriers.retain(|c| {
                if c.band != band {
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
        // Name the carriers that leak: LTE around each LTE carrier's centre, NR on the raster of
        // the hops that hold an NR carrier.
        let mut all_cells = Vec::new();
        for (_, obs) in &mut kept {
            let Some(band) = range.bands.iter().copied().find(|b| b.name == obs.band) else {
                continue;
            };
            for c in obs.analysis.carriers.clone() {
                match c.technology {
                    dsp::carrier::Technology::Lte => {
                        if let Some(s) = lte.as_mut() {
                            // Centred on the carrier the radio sees: its error moved the
                            // cell with it, only the centre's estimate (a bin or so) is off.
                            obs.cells.extend(lte_cells_at(
                                s,
                                &hop_samples,
                                c.center_hz,
                                calibration.as_ref(),
                                band,
                                OffsetSearch::Near(ENERGY_CENTRE_SLACK_HZ),
                            ));
                        }
                    }
                    dsp::carrier::Technology::Nr => {
                        let Some(searchers) = nr.as_mut() else {
                            continue;
                        };
                        for hop in hop_samples.iter().filter(|h| {
                            (c.center_hz - h.0).abs() < c.bandwidth_hz / 2.0 + h.1 / 2.0
                        }) {
                            let view = crate::analysis::CaptureView {
                                samples: &hop.2,
                                sample_rate_hz: hop.1,
                                center_hz: hop.0,
                            };
                            for (o, _) in crate::analysis::nr_cells(
                                searchers,
                                &view,
                                calibration.as_ref(),
                                &[band],
                            ) {
                                push_new_pci(&mut obs.cells, o);
                            }
                        }
                    }
                    _ => {}
                }
            }
            // GSM: FCCH and SCH on every ARFCN of the band in each hop, energy carrier or not
            // (the FCCH tone stands out of a floor that hides the carrier).
            if band.technology == dsp::carrier::Technology::Gsm {
                for hop in &hop_samples {
                    let view = crate::analysis::CaptureView {
                        samples: &hop.2,
                        sample_rate_hz: hop.1,
                        center_hz: hop.0,
                    };
                    for (o, _) in crate::analysis::gsm_cells(&view, calibration.as_ref(), &[band]) {
                        let arfcn = o.cell.as_ref().and_then(|c| c.arfcn);
                        if !obs
                            .cells
                            .iter()
                            .any(|k| k.cell.as_ref().and_then(|c| c.arfcn) == arfcn)
                        {
                            obs.cells.push(o);
                        }
                    }
                }
            }
            // Known channels: search for a cell even where energy shows nothing.
            if let Some(s) = lte.as_mut() {
                for &f in &opts.watch_hz {
                    if !(band.dl_low_hz..=band.dl_high_hz).contains(&f)
                        || band.technology != dsp::carrier::Technology::Lte
                        || obs.cells.iter().any(|k| (k.center_hz - f).abs() < 1e6)
                    {
                        continue;
                    }
                    for o in lte_cells_at(
                        s,
                        &hop_samples,
                        f,
                        calibration.as_ref(),
                        band,
                        OffsetSearch::Full,
                    ) {
                        push_new_pci(&mut obs.cells, o);
                    }
                }
            }
            all_cells.extend(obs.cells.iter().cloned());
        }
        let all_carriers: Vec<_> = kept
            .iter()
            .flat_map(|(_, b)| b.analysis.carriers.iter().cloned())
            .collect();
        for (_, obs) in &kept {
            on_band(obs);
            for j in &obs.analysis.jammers {
                if let Some(e) = jammers.observe(at, &j.band, &j.assessment) {
                    on_event(&e);
                }
            }
        }
        for e in gaps.observe(at, (range.lo_hz, range.hi_hz), &all_carriers) {
            on_event(&e);
        }
        if opts.cell_search {
            for e in cell_gaps.observe(at, (range.lo_hz, range.hi_hz), &all_cells) {
                on_event(&e);
            }
        }
    }
    health.elapsed_s = started.elapsed().as_secs_f64();
    Ok(health)
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
    hops: &[(f64, f64, Vec<dsp::Complex32>)],
    f: f64,
    calibration: Option<&dsp::calib::Calibration>,
    band: &'static Band,
    how: OffsetSearch,
) -> Vec<crate::analysis::CarrierObs> {
    let Some(hop) = hops
        .iter()
        .filter(|h| (f - h.0).abs() + 0.6e6 <= h.1 / 2.0)
        .min_by(|a, b| (f - a.0).abs().total_cmp(&(f - b.0).abs()))
    else {
        return Vec::new();
    };
    let view = crate::analysis::CaptureView {
        samples: &hop.2,
        sample_rate_hz: hop.1,
        center_hz: hop.0,
    };
    crate::analysis::lte_cells(s, &view, &[f - hop.0], calibration, &[band], how)
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
    buf: &mut [dsp::Complex32],
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
                    return Err(AgentError::Input(format!(
                        "source `{}` stopped delivering samples (20 timeouts in a row)",
                        source.info().name
                    )));
                }
            }
            ReadOutcome::EndOfData => {
                buf[got..].fill(dsp::Complex32::default());
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
