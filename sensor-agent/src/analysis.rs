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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// Channel numbers derived from the centre.
    pub cell: Option<CellId>,
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
