//! From a spectrum to what matters: carriers with their band, cell channel numbers and leak
//! margin, and a jammer verdict for each band the spectrum covers.

use dsp::bandplan::{self, Band};
use dsp::calib::{Calibration, PowerUnit};
use dsp::carrier::{Carrier, Technology, detect_carriers};
use dsp::floor::{JammerAssessment, assess_jammer};
use dsp::psd::Spectrum;
use dsp::to_db;
use protocol::CellId;
use serde::Serialize;

use crate::config::PipelineConfig;

/// The SINR (dB) at which a phone synchronises to a cell of each technology: the zero of the
/// leak margin. LTE and NR PSS/SSS are found near −6 dB; GSM needs about +6 dB on its FCCH/SCH;
/// WCDMA's spreading gain lets a phone acquire a pilot around −18 dB Ec/Io.
#[must_use]
pub fn sync_threshold_db(tech: Technology) -> f64 {
    match tech {
        Technology::Lte | Technology::Nr => -6.0,
        Technology::Gsm => 6.0,
        Technology::Umts => -18.0,
        Technology::Unknown => 0.0,
    }
}

/// Maps the DSP technology to the wire one.
#[must_use]
pub fn wire_technology(t: Technology) -> protocol::Technology {
    match t {
        Technology::Gsm => protocol::Technology::Gsm,
        Technology::Umts => protocol::Technology::Umts,
        Technology::Lte => protocol::Technology::Lte,
        Technology::Nr => protocol::Technology::Nr,
        Technology::Unknown => protocol::Technology::Unknown,
    }
}

/// The band a carrier belongs to: among the candidate bands containing its centre, those of its
/// technology first (WCDMA shares LTE's band numbers), then the narrowest.
#[must_use]
pub fn assign_band(
    center_hz: f64,
    tech: Technology,
    bands: &[&'static Band],
) -> Option<&'static Band> {
    let want = match tech {
        Technology::Umts => Technology::Lte,
        t => t,
    };
    bands
        .iter()
        .copied()
        .filter(|b| b.contains(center_hz))
        .min_by(|a, b| {
            let key = |x: &Band| (x.technology != want, x.width_hz());
            let (ka, kb) = (key(a), key(b));
            ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1))
        })
}

/// A carrier as observed, with its leak figures.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct CarrierObs {
    /// Band name, or `unknown`.
    pub band: String,
    /// Technology guessed from the width.
    pub technology: Technology,
    /// Centre, hertz.
    pub center_hz: f64,
    /// 99 % occupied bandwidth, hertz.
    pub bandwidth_hz: f64,
    /// Nominal channel bandwidth, hertz, if the width matches one.
    pub channel_bw_hz: Option<f64>,
    /// Channel power, dBFS.
    pub power_dbfs: f64,
    /// Floor in the carrier's bandwidth, dBFS.
    pub floor_dbfs: f64,
    /// Channel power, dBm, when calibrated.
    pub power_dbm: Option<f64>,
    /// Floor in the carrier's bandwidth, dBm, when calibrated.
    pub floor_dbm: Option<f64>,
    /// Mean in-channel density over the floor, dB.
    pub snr_db: f64,
    /// SNR over the technology's sync threshold, dB.
    pub margin_db: f64,
    /// Channel numbers derived from the centre; the PCI too when found by sync.
    pub cell: Option<CellId>,
    /// `energy` (a carrier above the floor) or `sync` (a confirmed cell).
    pub detector: protocol::Detector,
}

/// A band's jammer verdict with the share of the band it is based on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandJammer {
    /// Band name.
    pub band: String,
    /// Fraction of the band's downlink this spectrum covered.
    pub observed_fraction: f64,
    /// The verdict and its figures.
    #[serde(flatten)]
    pub assessment: JammerAssessment,
}

/// Everything one spectrum says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Unit of absolute figures: `dbm` when calibrated, else `dbfs`.
    pub unit: PowerUnit,
    /// Estimated noise floor density, dB(unit)/Hz.
    pub floor_db_per_hz: f64,
    /// Carriers found.
    pub carriers: Vec<CarrierObs>,
    /// Jammer verdicts (only with calibration and a known noise figure).
    pub jammers: Vec<BandJammer>,
}

fn cell_numbers(band: Option<&Band>, center_hz: f64) -> Option<CellId> {
    let b = band?;
    let id = match b.technology {
        Technology::Lte => CellId {
            earfcn: bandplan::hz_to_earfcn(b, center_hz).ok(),
            ..CellId::default()
        },
        Technology::Gsm => CellId {
            arfcn: bandplan::hz_to_gsm_arfcn(b, center_hz).ok(),
            ..CellId::default()
        },
        _ => return None,
    };
    (id != CellId::default()).then_some(id)
}

/// Analyses a spectrum in full-scale density units.
///
/// `calibration` turns figures into dBm; with it and `thermal_dbm_per_hz` (the radio's kTB + NF)
/// each band in `bands` that the spectrum covers (at least half of it, or 1 MHz) gets a jammer
/// verdict.
#[must_use]
pub fn analyze(
    spectrum: &Spectrum,
    segments: usize,
    calibration: Option<&Calibration>,
    thermal_dbm_per_hz: Option<f64>,
    bands: &[&'static Band],
    cfg: &PipelineConfig,
    scratch: &mut Vec<f32>,
) -> Analysis {
    let carriers_raw: Vec<Carrier> = detect_carriers(spectrum, segments, &cfg.cfar, scratch);
    let (noise, _) = dsp::carrier::cfar_threshold(&spectrum.density, segments, &cfg.cfar, scratch);
    let floor_dbfs_hz = to_db(noise);
    let mid = |a: f64, b: f64| (a + b) / 2.0;
    let (lo, hi) = spectrum.span_hz();
    let offset_at = |f: f64| calibration.map(|c| c.offset_db(f));
    let carriers = carriers_raw
        .into_iter()
        .map(|c| {
            let band = assign_band(c.center_hz, c.technology, bands);
            let floor_dbfs = c.floor_density_db + 10.0 * c.bandwidth_hz.log10();
            let off = offset_at(c.center_hz);
            CarrierObs {
                band: band.map_or_else(|| "unknown".to_string(), |b| b.name.to_string()),
                technology: c.technology,
                center_hz: c.center_hz,
                bandwidth_hz: c.bandwidth_hz,
                channel_bw_hz: c.channel_bw_hz,
                power_dbfs: c.power_db,
                floor_dbfs,
                power_dbm: off.map(|o| c.power_db + o),
                floor_dbm: off.map(|o| floor_dbfs + o),
                snr_db: c.snr_db,
                margin_db: c.snr_db - sync_threshold_db(c.technology),
                cell: cell_numbers(band, c.center_hz),
                detector: protocol::Detector::Energy,
            }
        })
        .collect();
    let mut jammers = Vec::new();
    if let (Some(cal), Some(thermal)) = (calibration, thermal_dbm_per_hz) {
        for b in bands {
            let Some(slice) = spectrum.slice_hz(b.dl_low_hz, b.dl_high_hz) else {
                continue;
            };
            let (a, z) = slice.span_hz();
            let covered = (z.min(b.dl_high_hz) - a.max(b.dl_low_hz)).max(0.0);
            let fraction = covered / b.width_hz();
            if fraction < 0.5 && covered < 1e6 {
                continue;
            }
            let dbm: Vec<f32> = (0..slice.density.len())
                .map(|i| {
                    let f = slice.freq_of(i);
                    (to_db(f64::from(slice.density[i])) + cal.offset_db(f)) as f32
                })
                .collect();
            if let Some(assessment) = assess_jammer(&dbm, thermal, &cfg.jammer, scratch) {
                jammers.push(BandJammer {
                    band: b.name.to_string(),
                    observed_fraction: fraction.min(1.0),
                    assessment,
                });
            }
        }
    }
    let unit = if calibration.is_some() {
        PowerUnit::Dbm
    } else {
        PowerUnit::Dbfs
    };
    Analysis {
        unit,
        floor_db_per_hz: floor_dbfs_hz + offset_at(mid(lo, hi)).unwrap_or(0.0),
        carriers,
        jammers,
    }
}

/// A cell found by sync as a leak observation: power and floor are the signal and
/// noise-plus-interference (per resource element, or per channel for GSM) in dBFS, and the
/// margin is the SNR over the technology's sync threshold.
fn sync_leak(
    band: Option<&Band>,
    technology: Technology,
    (center_hz, bandwidth_hz): (f64, f64),
    (power_dbfs, floor_dbfs, snr_db): (f64, f64, f64),
    cell: CellId,
    calibration: Option<&Calibration>,
) -> CarrierObs {
    let o = calibration.map(|c| c.offset_db(center_hz));
    CarrierObs {
        band: band.map_or_else(|| "unknown".to_string(), |b| b.name.to_string()),
        technology,
        center_hz,
        bandwidth_hz,
        channel_bw_hz: None,
        power_dbfs,
        floor_dbfs,
        power_dbm: o.map(|o| power_dbfs + o),
        floor_dbm: o.map(|o| floor_dbfs + o),
        snr_db,
        margin_db: snr_db - sync_threshold_db(technology),
        cell: Some(cell),
        detector: protocol::Detector::Sync,
    }
}

/// A stretch of one capture: samples, rate and tuned centre.
#[derive(Debug, Clone, Copy)]
pub struct CaptureView<'a> {
    /// Complex baseband samples.
    pub samples: &'a [dsp::Complex32],
    /// Their rate, hertz.
    pub sample_rate_hz: f64,
    /// The tuned centre, hertz.
    pub center_hz: f64,
}

/// Which cell offsets an LTE search at a frequency covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OffsetSearch {
    /// The whole configured range (a nominal channel seen by a radio of unknown error).
    Full,
    /// The radio's known offset first, the whole range when that finds nothing.
    Hint(f64),
    /// Only this far either side of the search centre: the centre of an energy carrier, which
    /// the radio's error has moved along with the cell.
    Near(f64),
}

/// Searches a capture for LTE cells around each offset (0 = the capture's centre), returning
/// each confirmed cell as a leak observation: power and floor per resource element (RSRP and
/// noise-plus-interference), SNR the CRS SINR, margin over the −6 dB sync threshold.
#[must_use]
pub fn lte_cells(
    searcher: &mut dsp::cell::lte_search::LteSearcher,
    capture: &CaptureView<'_>,
    offsets_hz: &[f64],
    calibration: Option<&Calibration>,
    bands: &[&'static Band],
    how: OffsetSearch,
) -> Vec<(CarrierObs, dsp::cell::lte_search::LteCell)> {
    use dsp::cell::lte_search::RATE_HZ;
    let mut out: Vec<(CarrierObs, dsp::cell::lte_search::LteCell)> = Vec::new();
    let max_out = (searcher.config().window_s * RATE_HZ) as usize;
    // One FFT of the capture serves every offset searched.
    let Ok(resampler) = dsp::resample::Resampler::for_output(
        capture.samples,
        capture.sample_rate_hz,
        RATE_HZ,
        max_out,
    ) else {
        return out;
    };
    // A narrow capture with nothing at its centre may still hold a cell whose centre is off the
    // tuning (a hop of a sweep): search a 250 kHz grid across it as well (the offset range of
    // each search spans the gaps). Wide captures rely on the energy carriers as candidates.
    let reach = capture.sample_rate_hz / 2.0 - 0.6e6;
    let grid: Vec<f64> =
        if capture.sample_rate_hz <= 4e6 && reach > 0.0 && !matches!(how, OffsetSearch::Near(_)) {
            let k = (reach / 250e3).floor() as i64;
            (-k..=k)
                .filter(|&i| i != 0)
                .map(|i| i as f64 * 250e3)
                .collect()
        } else {
            Vec::new()
        };
    search_offsets(
        searcher,
        capture,
        offsets_hz,
        calibration,
        bands,
        how,
        &resampler,
        &mut out,
    );
    if out.is_empty() {
        search_offsets(
            searcher,
            capture,
            &grid,
            calibration,
            bands,
            how,
            &resampler,
            &mut out,
        );
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn search_offsets(
    searcher: &mut dsp::cell::lte_search::LteSearcher,
    capture: &CaptureView<'_>,
    offsets_hz: &[f64],
    calibration: Option<&Calibration>,
    bands: &[&'static Band],
    how: OffsetSearch,
    resampler: &dsp::resample::Resampler,
    out: &mut Vec<(CarrierObs, dsp::cell::lte_search::LteCell)>,
) {
    use dsp::cell::lte_search::RATE_HZ;
    for &off in offsets_hz {
        let Ok(y) = resampler.extract(off, RATE_HZ, usize::MAX) else {
            continue;
        };
        let found = match how {
            OffsetSearch::Full => searcher.search(&y, false),
            // Near the radio's known offset first (cheap); the whole range when that finds
            // nothing.
            OffsetSearch::Hint(h) => {
                let found = searcher.search_near(&y, Some(h), false);
                if found.is_empty() {
                    searcher.search(&y, false)
                } else {
                    found
                }
            }
            OffsetSearch::Near(half) => searcher.search_around(&y, 0.0, half, false),
        };
        for cell in found {
            if !out.iter().any(|(_, c)| c.pci == cell.pci) {
                out.push((
                    lte_leak(capture.center_hz + off, &cell, calibration, bands),
                    cell,
                ));
            }
        }
    }
}

/// A confirmed LTE cell as a leak observation, its search centre at `search_hz`.
fn lte_leak(
    search_hz: f64,
    cell: &dsp::cell::lte_search::LteCell,
    calibration: Option<&Calibration>,
    bands: &[&'static Band],
) -> CarrierObs {
    let freq = search_hz + cell.cfo_hz;
    // The band of the cell's duplexing (2.6 GHz holds FDD B7 and TDD B38/B41).
    let duplex = match cell.duplexing {
        dsp::cell::lte::Duplexing::Fdd => bandplan::Duplex::Fdd,
        dsp::cell::lte::Duplexing::Tdd => bandplan::Duplex::Tdd,
    };
    let same_duplex: Vec<&'static Band> = bands
        .iter()
        .copied()
        .filter(|b| b.duplex == duplex)
        .collect();
    let band = assign_band(freq, Technology::Lte, &same_duplex)
        .filter(|b| b.technology == Technology::Lte);
    let earfcn = band.and_then(|b| bandplan::hz_to_earfcn(b, freq).ok());
    sync_leak(
        band,
        Technology::Lte,
        (freq, 1.08e6),
        (cell.rsrp_dbfs, cell.noise_dbfs, cell.sinr_db),
        CellId {
            pci: Some(cell.pci),
            earfcn,
            ..CellId::default()
        },
        calibration,
    )
}

/// A deep LTE search over a whole stretch of a capture (typically a second) around
/// `offset_hz` from its centre, near `cfo_hz` (the offset of a cell the windows confirmed),
/// with the sample clock's `clock_error`: the cells too weak for one window. See
/// [`dsp::cell::lte_search::LteSearcher::deep_search`].
#[must_use]
pub fn lte_deep_cells(
    searcher: &mut dsp::cell::lte_search::LteSearcher,
    capture: &CaptureView<'_>,
    offset_hz: f64,
    cfo_hz: f64,
    clock_error: f64,
    calibration: Option<&Calibration>,
    bands: &[&'static Band],
) -> Vec<(CarrierObs, dsp::cell::lte_search::LteCell)> {
    use dsp::cell::lte_search::RATE_HZ;
    let Ok(y) = dsp::resample::resample(
        capture.samples,
        capture.sample_rate_hz,
        offset_hz,
        RATE_HZ,
        usize::MAX,
    ) else {
        return Vec::new();
    };
    let search_hz = capture.center_hz + offset_hz;
    searcher
        .deep_search(&y, cfo_hz, clock_error, false)
        .into_iter()
        .map(|cell| (lte_leak(search_hz, &cell, calibration, bands), cell))
        .collect()
}

/// NR SSB searchers, one per subcarrier spacing.
#[derive(Debug)]
pub struct NrSearchers {
    by_scs: Vec<(u32, dsp::cell::nr_search::NrSearcher)>,
    /// The radio's oscillator error (ppm), learnt from the last SSB found above 3 GHz (where
    /// every search centre is a raster point): later searches look only within
    /// [`KNOWN_OFFSET_HALF_HZ`] of it, scaled to their frequency.
    radio_ppm: Option<f64>,
    /// One capture's spectrum per searcher rate, the FFT plans and the resampled view, kept
    /// from capture to capture: a sweep's NR hops share their lengths, so after the first
    /// nothing is planned or allocated again.
    resamplers: Vec<(f64, dsp::resample::Resampler)>,
    workspace: dsp::resample::ResampleWorkspace,
    view: Vec<dsp::Complex32>,
    /// This sweep: searches narrowed by a known error, and SSBs found.
    narrowed: usize,
    found: usize,
}

/// Offsets searched either side of the one a known oscillator error predicts: 22.5 kHz is
/// 6 ppm at 3.8 GHz (a radio's drift between sweeps and the base station's 0.05 ppm, many
/// times over), three hypotheses of a 30 kHz SSB instead of 21.
pub const KNOWN_OFFSET_HALF_HZ: f64 = 22.5e3;

impl NrSearchers {
    /// Searchers for 15 and 30 kHz SSBs.
    #[must_use]
    pub fn new(cfg: dsp::cell::nr_search::NrSearchConfig) -> Self {
        Self {
            by_scs: [15, 30]
                .into_iter()
                .map(|s| (s, dsp::cell::nr_search::NrSearcher::new(s, cfg)))
                .collect(),
            radio_ppm: None,
            resamplers: Vec::new(),
            workspace: dsp::resample::ResampleWorkspace::default(),
            view: Vec::new(),
            narrowed: 0,
            found: 0,
        }
    }

    /// The oscillator error learnt so far, ppm.
    #[must_use]
    pub fn radio_ppm(&self) -> Option<f64> {
        self.radio_ppm
    }

    /// Sets (or forgets) the oscillator error: a replay starts from what the recording's sweep
    /// started from.
    pub fn set_radio_ppm(&mut self, ppm: Option<f64>) {
        self.radio_ppm = ppm.filter(|p| p.is_finite());
    }

    /// A sweep begins.
    pub fn begin_sweep(&mut self) {
        self.narrowed = 0;
        self.found = 0;
    }

    /// A sweep ended: when it searched only around the learnt error and found no SSB at all, the
    /// error is forgotten (the radio drifted, or the error was wrong) and the next sweep searches
    /// the whole offset range again.
    pub fn end_sweep(&mut self) {
        if self.narrowed > 0 && self.found == 0 && self.radio_ppm.is_some() {
            tracing::info!(
                "no SSB within ±{:.1} kHz of the learnt oscillator error ({:.2} ppm): the next \
                 sweep searches the whole offset range",
                KNOWN_OFFSET_HALF_HZ / 1e3,
                self.radio_ppm.unwrap_or_default()
            );
            self.radio_ppm = None;
        }
    }
}

/// Searches a capture for NR SSBs on the synchronisation raster of the NR bands (of `bands`)
/// that contain the capture's centre, wherever a whole SSB fits in the capture. Below 3 GHz one
/// search per 1.2 MHz raster group covers its three points (the offset range spans them).
#[must_use]
pub fn nr_cells(
    searchers: &mut NrSearchers,
    capture: &CaptureView<'_>,
    calibration: Option<&Calibration>,
    bands: &[&'static Band],
) -> Vec<(CarrierObs, dsp::cell::nr_search::NrCell)> {
    nr_cells_shifted(searchers, capture, calibration, bands, &[0.0], None)
}

/// [`nr_cells`], the raster points nearest `from_hz` first (an energy carrier's centre, where
/// its SSB most often is): once one SSB gives the radio's oscillator error, the capture's other
/// points are searched only around it.
#[must_use]
pub fn nr_cells_from(
    searchers: &mut NrSearchers,
    capture: &CaptureView<'_>,
    calibration: Option<&Calibration>,
    bands: &[&'static Band],
    from_hz: f64,
) -> Vec<(CarrierObs, dsp::cell::nr_search::NrCell)> {
    nr_cells_shifted(
        searchers,
        capture,
        calibration,
        bands,
        &[0.0],
        Some(from_hz),
    )
}

/// Search centres, from each raster point, that widen the offset range of [`nr_cells_wide`]
/// threefold: a point's own search covers ±150 kHz, these two the next 300 kHz either side.
pub const NR_WIDE_SHIFTS_HZ: [f64; 2] = [-300e3, 300e3];

/// [`nr_cells`], and when that finds no SSB although the capture holds NR's OFDM (the
/// cyclic-prefix correlation of 15 or 30 kHz symbols, [`dsp::cell::holds_ofdm`]),
/// again at 300 kHz either side of every raster point: SSBs up to 450 kHz off their point, as
/// a radio whose oscillator is 100 ppm off sees them at 3.5 GHz. For recordings of unknown
/// radios; the agent's profiles stay well inside ±150 kHz.
#[must_use]
pub fn nr_cells_wide(
    searchers: &mut NrSearchers,
    capture: &CaptureView<'_>,
    calibration: Option<&Calibration>,
    bands: &[&'static Band],
) -> Vec<(CarrierObs, dsp::cell::nr_search::NrCell)> {
    let found = nr_cells(searchers, capture, calibration, bands);
    if !found.is_empty() {
        return found;
    }
    let n = capture
        .samples
        .len()
        .min((0.021 * capture.sample_rate_hz) as usize);
    let ofdm = [15e3, 30e3]
        .iter()
        .any(|&scs| dsp::cell::holds_ofdm(&capture.samples[..n], capture.sample_rate_hz, scs));
    if !ofdm {
        return found;
    }
    nr_cells_shifted(
        searchers,
        capture,
        calibration,
        bands,
        &NR_WIDE_SHIFTS_HZ,
        None,
    )
}

/// [`nr_cells`] with each raster point's search centred `shifts_hz` away from it.
fn nr_cells_shifted(
    searchers: &mut NrSearchers,
    capture: &CaptureView<'_>,
    calibration: Option<&Calibration>,
    bands: &[&'static Band],
    shifts_hz: &[f64],
    from_hz: Option<f64>,
) -> Vec<(CarrierObs, dsp::cell::nr_search::NrCell)> {
    let fs = capture.sample_rate_hz;
    let lo = capture.center_hz - fs / 2.0;
    let hi = capture.center_hz + fs / 2.0;
    let mut nr_bands: Vec<&'static Band> = bands
        .iter()
        .copied()
        .filter(|b| b.technology == Technology::Nr && b.contains(capture.center_hz))
        .collect();
    if nr_bands.is_empty() {
        return Vec::new();
    }
    nr_bands.sort_by(|a, b| a.width_hz().total_cmp(&b.width_hz()));
    // Trim the capture so that its length maps exactly onto every searcher's rate.
    let mut out: Vec<(CarrierObs, dsp::cell::nr_search::NrCell)> = Vec::new();
    // The resamplers (by index) that hold this capture.
    let mut loaded: Vec<usize> = Vec::new();
    // Above 3 GHz each search centre is a raster point: a known oscillator error narrows the
    // search, and each SSB found there measures it again.
    let raster_exact = capture.center_hz >= 3e9;
    let mut known = searchers.radio_ppm.filter(|_| raster_exact);
    let mut learnt: Option<f64> = None;
    for band in &nr_bands {
        let bandplan::Raster::Nr { ssb_scs_khz, .. } = band.raster else {
            continue;
        };
        for &scs in ssb_scs_khz {
            let Some((_, searcher)) = searchers.by_scs.iter_mut().find(|(s, _)| *s == scs) else {
                continue;
            };
            let rate = searcher.rate_hz();
            let half_ssb = 120.0 * f64::from(scs) * 1e3;
            let mut points: Vec<f64> = bandplan::gscns_within(band, lo + half_ssb, hi - half_ssb)
                .into_iter()
                .map(|(_, f)| f)
                .collect();
            if capture.center_hz < 3e9 {
                points = points
                    .into_iter()
                    .map(|f| (f / 1.2e6).round() * 1.2e6 + 150e3)
                    .collect();
                points.dedup_by(|a, b| (*a - *b).abs() < 1.0);
            }
            if let Some(c) = from_hz {
                points.sort_by(|a, b| (a - c).abs().total_cmp(&(b - c).abs()));
            }
            // This rate's resampler (kept from capture to capture), loaded with this capture once.
            let at = match searchers
                .resamplers
                .iter()
                .position(|(r, _)| (*r - rate).abs() < 1.0)
            {
                Some(i) => i,
                None => {
                    searchers
                        .resamplers
                        .push((rate, dsp::resample::Resampler::default()));
                    searchers.resamplers.len() - 1
                }
            };
            if !loaded.contains(&at) {
                let Some((_, q)) = ratio_parts(rate / fs) else {
                    continue;
                };
                // One SSB period (and a little) is all a search uses.
                let keep = capture.samples.len().min((0.021 * fs) as usize);
                let n = keep - keep % q as usize;
                searchers.resamplers[at].1.load(
                    &capture.samples[..n],
                    fs,
                    &mut searchers.workspace,
                );
                loaded.push(at);
            }
            let resampler = &searchers.resamplers[at].1;
            for (p, f) in points
                .iter()
                .flat_map(|&p| shifts_hz.iter().map(move |d| (p, p + d)))
            {
                if known.is_some() && f != p {
                    continue;
                }
                if resampler
                    .extract_into(
                        f - capture.center_hz,
                        rate,
                        usize::MAX,
                        &mut searchers.workspace,
                        &mut searchers.view,
                    )
                    .is_err()
                {
                    continue;
                }
                let y = &searchers.view;
                if known.is_some() {
                    searchers.narrowed += 1;
                }
                let cells = match known {
                    Some(ppm) => searcher.search_around(
                        y,
                        p * (1.0 + ppm * 1e-6) - f,
                        KNOWN_OFFSET_HALF_HZ,
                        false,
                    ),
                    None => searcher.search(y, false),
                };
                searchers.found += cells.len();
                for cell in cells {
                    let ssb_hz = f + cell.cfo_hz;
                    if raster_exact {
                        learnt = Some((ssb_hz - p) / p * 1e6);
                        // The rest of this capture too is searched around it.
                        known = known.or(learnt);
                    }
                    let band = assign_band(ssb_hz, Technology::Nr, &nr_bands);
                    let obs = sync_leak(
                        band,
                        Technology::Nr,
                        (ssb_hz, 240.0 * f64::from(scs) * 1e3),
                        (cell.rsrp_dbfs, cell.noise_dbfs, cell.sinr_db),
                        CellId {
                            pci: Some(cell.pci),
                            nr_arfcn: bandplan::hz_to_nr_arfcn(ssb_hz).ok(),
                            ..CellId::default()
                        },
                        calibration,
                    );
                    match out.iter_mut().find(|(_, c)| c.pci == cell.pci) {
                        Some(prev) if prev.1.sinr_db < cell.sinr_db => *prev = (obs, cell),
                        Some(_) => {}
                        None => out.push((obs, cell)),
                    }
                }
            }
        }
    }
    if learnt.is_some() {
        searchers.radio_ppm = learnt;
    }
    out
}

/// Searches a capture for GSM carriers by their FCCH bursts on every ARFCN of the GSM bands (of
/// `bands`) that contain the capture's centre and fit inside it.
#[must_use]
pub fn gsm_cells(
    capture: &CaptureView<'_>,
    calibration: Option<&Calibration>,
    bands: &[&'static Band],
) -> Vec<(CarrierObs, dsp::cell::gsm::GsmCell)> {
    let fs = capture.sample_rate_hz;
    let mut out = Vec::new();
    for band in bands
        .iter()
        .filter(|b| b.technology == Technology::Gsm && b.contains(capture.center_hz))
    {
        let bandplan::Raster::Gsm { ranges, .. } = band.raster else {
            continue;
        };
        let arfcns: Vec<(u32, f64)> = ranges
            .iter()
            .flat_map(|&(a, b)| a..=b)
            .filter_map(|n| bandplan::gsm_arfcn_to_hz(band, n).ok().map(|f| (n, f)))
            .filter(|&(_, f)| (f - capture.center_hz).abs() + 170e3 < 0.45 * fs)
            .collect();
        let freqs: Vec<f64> = arfcns.iter().map(|a| a.1).collect();
        let cfg = dsp::cell::gsm::FcchConfig::default();
        for mut cell in
            dsp::cell::gsm::find_fcch(capture.samples, fs, capture.center_hz, &freqs, &cfg)
        {
            cell.bsic = dsp::cell::gsm::decode_bsic(capture.samples, fs, capture.center_hz, &cell)
                .map(|d| d.info.bsic);
            let arfcn = arfcns
                .iter()
                .find(|a| (a.1 - cell.carrier_hz).abs() < 1.0)
                .map(|a| a.0);
            let o = calibration.map(|c| c.offset_db(cell.carrier_hz));
            let floor = cell.power_dbfs - cell.tone_snr_db;
            out.push((
                CarrierObs {
                    band: band.name.to_string(),
                    technology: Technology::Gsm,
                    center_hz: cell.carrier_hz + cell.cfo_hz,
                    bandwidth_hz: 200e3,
                    channel_bw_hz: Some(200e3),
                    power_dbfs: cell.power_dbfs,
                    floor_dbfs: floor,
                    power_dbm: o.map(|o| cell.power_dbfs + o),
                    floor_dbm: o.map(|o| floor + o),
                    snr_db: cell.tone_snr_db,
                    margin_db: cell.tone_snr_db - sync_threshold_db(Technology::Gsm),
                    cell: Some(CellId {
                        arfcn,
                        bsic: cell.bsic,
                        ..CellId::default()
                    }),
                    detector: protocol::Detector::Sync,
                },
                cell,
            ));
        }
    }
    out
}

fn ratio_parts(ratio: f64) -> Option<(u64, u64)> {
    (1..=100_000u64).find_map(|q| {
        let p = (ratio * q as f64).round();
        (p >= 1.0 && (p / q as f64 - ratio).abs() < 1e-9 * ratio).then_some((p as u64, q))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_are_assigned_by_technology_then_narrowness() {
        let all: Vec<&'static Band> = bandplan::all_bands().collect();
        let name = |f, t| assign_band(f, t, &all).map(|b| b.name);
        assert_eq!(name(881.5e6, Technology::Lte), Some("B5"));
        assert_eq!(name(881.6e6, Technology::Gsm), Some("GSM850"));
        assert_eq!(name(1960e6, Technology::Lte), Some("B2"));
        assert_eq!(name(2180e6, Technology::Lte), Some("B66"));
        assert_eq!(name(2655e6, Technology::Lte), Some("B7"));
        assert_eq!(name(3500e6, Technology::Nr), Some("n78"));
        assert_eq!(name(100e6, Technology::Lte), None);
    }
}
