//! Energy carriers: CFAR detection over a PSD, contiguous bins grouped into carriers with a
//! centre, an occupied bandwidth, a channel power and a technology guess from the width.
//!
//! The detector is a constant-false-alarm-rate test: the noise mean is estimated from a low
//! percentile of the density (corrected for that percentile's bias under the Welch estimate's
//! chi-square statistics), and a bin is "occupied" when it exceeds the mean by the factor that
//! gives the configured false-alarm probability for the number of averaged segments.

use serde::{Deserialize, Serialize};

use crate::psd::Spectrum;
use crate::{DspError, to_db};

/// Radio access technology, as on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Technology {
    /// 2G.
    Gsm,
    /// 3G WCDMA.
    Umts,
    /// 4G.
    Lte,
    /// 5G NR.
    Nr,
    /// Not recognised.
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

/// CFAR detector settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CfarConfig {
    /// Probability that a noise-only bin exceeds the threshold.
    pub pfa: f64,
    /// A carrier must also be at least this far (dB) above the floor on average.
    pub min_snr_db: f64,
    /// Percentile of the density used to estimate the noise floor.
    pub floor_percentile: f64,
    /// Occupied runs separated by at most this many hertz are one carrier.
    pub merge_gap_hz: f64,
    /// Narrower groups are dropped (in hertz).
    pub min_width_hz: f64,
}

impl Default for CfarConfig {
    fn default() -> Self {
        Self {
            pfa: 1e-4,
            min_snr_db: 3.0,
            floor_percentile: 0.2,
            merge_gap_hz: 30e3,
            min_width_hz: 5e3,
        }
    }
}

impl CfarConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`DspError::InvalidConfig`] naming the bad field.
    pub fn validate(&self) -> Result<(), DspError> {
        if !(self.pfa > 0.0 && self.pfa < 0.5) {
            return Err(DspError::config("pfa", self.pfa, "must be within (0, 0.5)"));
        }
        if !(0.01..=0.5).contains(&self.floor_percentile) {
            return Err(DspError::config(
                "floor_percentile",
                self.floor_percentile,
                "must be within 0.01..0.5",
            ));
        }
        if !self.min_snr_db.is_finite() || self.merge_gap_hz < 0.0 || self.min_width_hz < 0.0 {
            return Err(DspError::config(
                "min_snr_db",
                self.min_snr_db,
                "thresholds must be finite and widths non-negative",
            ));
        }
        Ok(())
    }
}

/// A carrier found by energy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Carrier {
    /// Centre of the occupied bandwidth, hertz.
    pub center_hz: f64,
    /// 99 % occupied bandwidth (noise subtracted), hertz.
    pub bandwidth_hz: f64,
    /// Lowest and highest bin centre above threshold, hertz.
    pub extent_hz: (f64, f64),
    /// Channel power above the floor, dB in the spectrum's unit (dBFS or dBm).
    pub power_db: f64,
    /// Mean density over the floor inside the carrier, dB.
    pub snr_db: f64,
    /// Peak density, dB/Hz.
    pub peak_density_db: f64,
    /// Floor density under the carrier, dB/Hz.
    pub floor_density_db: f64,
    /// Technology guessed from the width.
    pub technology: Technology,
    /// Nominal channel bandwidth matching the width, if any, hertz.
    pub channel_bw_hz: Option<f64>,
}

/// Nominal occupied widths: (technology, channel bandwidth, occupied bandwidth) in hertz.
const NOMINAL: &[(Technology, f64, f64)] = &[
    (Technology::Gsm, 200e3, 200e3),
    (Technology::Lte, 1.4e6, 1.08e6),
    (Technology::Lte, 3e6, 2.7e6),
    (Technology::Umts, 5e6, 3.84e6),
    (Technology::Lte, 5e6, 4.5e6),
    (Technology::Lte, 10e6, 9.0e6),
    (Technology::Lte, 15e6, 13.5e6),
    (Technology::Lte, 20e6, 18.0e6),
    (Technology::Nr, 20e6, 19.08e6),
    (Technology::Nr, 25e6, 23.94e6),
    (Technology::Nr, 30e6, 28.8e6),
    (Technology::Nr, 40e6, 38.16e6),
    (Technology::Nr, 50e6, 47.88e6),
    (Technology::Nr, 60e6, 58.32e6),
    (Technology::Nr, 70e6, 68.04e6),
    (Technology::Nr, 80e6, 78.12e6),
    (Technology::Nr, 90e6, 88.2e6),
    (Technology::Nr, 100e6, 98.28e6),
];

/// Guesses the technology from an occupied bandwidth: the nearest nominal width within ±8 %
/// (GSM within 60–350 kHz); wider than 20 MHz without a match is NR; else unknown.
/// LTE and NR share 5–20 MHz widths: there the guess is LTE, which cell search may overturn.
#[must_use]
pub fn guess_technology(bandwidth_hz: f64) -> (Technology, Option<f64>) {
    if (60e3..350e3).contains(&bandwidth_hz) {
        return (Technology::Gsm, Some(200e3));
    }
    let best = NOMINAL
        .iter()
        .filter(|(t, _, _)| *t != Technology::Gsm)
        .map(|&(t, ch, occ)| (t, ch, ((bandwidth_hz - occ) / occ).abs()))
        .min_by(|a, b| a.2.total_cmp(&b.2));
    match best {
        Some((t, ch, err)) if err <= 0.08 => (t, Some(ch)),
        _ if (20.5e6..=100.5e6).contains(&bandwidth_hz) => (Technology::Nr, None),
        _ => (Technology::Unknown, None),
    }
}

/// Upper-tail standard normal quantile (Abramowitz & Stegun 26.2.23, |error| < 4.5e-4).
fn normal_upper_quantile(p: f64) -> f64 {
    let (q, sign) = if p > 0.5 { (1.0 - p, -1.0) } else { (p, 1.0) };
    let t = (-2.0 * q.ln()).sqrt();
    let z = t
        - (2.515_517 + 0.802_853 * t + 0.010_328 * t * t)
            / (1.0 + 1.432_788 * t + 0.189_269 * t * t + 0.001_308 * t * t * t);
    sign * z
}

/// Quantile of a mean of `k` unit exponentials (Gamma(k, 1/k)) at upper-tail probability `p`,
/// by the Wilson–Hilferty transform. Exact formula −ln p for k = 1.
pub(crate) fn gamma_mean_quantile(k: f64, p: f64) -> f64 {
    if k <= 1.0 {
        return -p.ln();
    }
    let z = normal_upper_quantile(p);
    let c = 1.0 / (9.0 * k);
    (1.0 - c + z * c.sqrt()).powi(3).max(1e-6)
}

/// Noise mean and detection threshold (linear density) for a spectrum averaged over
/// `segments` Welch segments.
#[must_use]
pub fn cfar_threshold(
    density: &[f32],
    segments: usize,
    cfg: &CfarConfig,
    scratch: &mut Vec<f32>,
) -> (f64, f64) {
    // 50 %-overlapped Hann segments are not independent: about 0.9 of a degree of freedom each.
    let k = (segments as f64 * 0.9).max(1.0);
    let floor = f64::from(crate::floor::percentile(
        density,
        cfg.floor_percentile,
        scratch,
    ));
    let mean = floor / gamma_mean_quantile(k, 1.0 - cfg.floor_percentile);
    let factor = gamma_mean_quantile(k, cfg.pfa);
    (mean, mean * factor)
}

/// Finds the carriers in a spectrum (density linear, NaN bins ignored).
#[must_use]
pub fn detect_carriers(
    spectrum: &Spectrum,
    segments: usize,
    cfg: &CfarConfig,
    scratch: &mut Vec<f32>,
) -> Vec<Carrier> {
    let (noise, threshold) = cfar_threshold(&spectrum.density, segments, cfg, scratch);
    if !(noise.is_finite() && noise > 0.0) {
        return Vec::new();
    }
    let bin = spectrum.bin_hz;
    let gap_bins = (cfg.merge_gap_hz / bin).floor() as usize;
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, &d) in spectrum.density.iter().enumerate() {
        if d.is_nan() || f64::from(d) <= threshold {
            continue;
        }
        match runs.last_mut() {
            Some((_, end)) if i - *end <= gap_bins + 1 => *end = i,
            _ => runs.push((i, i)),
        }
    }
    runs.into_iter()
        .filter_map(|(a, b)| carrier_from_run(spectrum, a, b, noise, cfg))
        .collect()
}

fn carrier_from_run(
    s: &Spectrum,
    a: usize,
    b: usize,
    noise: f64,
    cfg: &CfarConfig,
) -> Option<Carrier> {
    let bin = s.bin_hz;
    if ((b - a + 1) as f64) * bin < cfg.min_width_hz {
        return None;
    }
    let dens = |i: usize| f64::from(s.density[i]).max(0.0);
    let excess: Vec<f64> = (a..=b).map(|i| (dens(i) - noise).max(0.0)).collect();
    let total: f64 = excess.iter().sum();
    let mean = (a..=b).map(dens).sum::<f64>() / (b - a + 1) as f64;
    let snr_db = to_db(mean / noise);
    if total <= 0.0 || snr_db < cfg.min_snr_db {
        return None;
    }
    // 0.5 % and 99.5 % points of the cumulative excess power, interpolated within a bin.
    let edge = |target: f64| -> f64 {
        let mut acc = 0.0;
        for (j, &e) in excess.iter().enumerate() {
            if acc + e >= target && e > 0.0 {
                let frac = (target - acc) / e;
                return s.freq_of(a + j) - bin / 2.0 + frac * bin;
            }
            acc += e;
        }
        s.freq_of(b) + bin / 2.0
    };
    let lo = edge(0.005 * total);
    let hi = edge(0.995 * total);
    let bandwidth_hz = (hi - lo).max(bin);
    let (technology, channel_bw_hz) = guess_technology(bandwidth_hz);
    let peak = (a..=b).map(dens).fold(0.0, f64::max);
    Some(Carrier {
        center_hz: (lo + hi) / 2.0,
        bandwidth_hz,
        extent_hz: (s.freq_of(a), s.freq_of(b)),
        power_db: to_db(total * bin),
        snr_db,
        peak_density_db: to_db(peak),
        floor_density_db: to_db(noise),
        technology,
        channel_bw_hz,
    })
}

/// Where LTE carriers wider than most of a capture could be centred.
///
/// A carrier that fills most of a capture leaves too little noise for a floor estimate, so
/// energy detection finds nothing (a 20 MHz carrier in a 19.2 MS/s capture, tuned a little off
/// its centre). Its visible edges still place it: the plateau is the spectrum's median level, an
/// edge is where the (5-bin smoothed) density falls more than 10 dB below it, and for every LTE
/// bandwidth whose occupied width (resource blocks × 180 kHz + the DC subcarrier) is at least
/// the plateau's visible width, the centre follows from the edge seen (or both). Only plateaus
/// covering at least 60 % of the span are considered; narrower carriers are energy detection's.
/// Returned centres (hertz) are good to a couple of bins, for a search over its offset range.
/// When no edge is seen at all and the capture holds LTE's OFDM (`ofdm`, asked only then; see
/// [`crate::cell::holds_ofdm`]), the centre can be anywhere the widest carrier still covers the
/// span: a grid of centres 300 kHz apart (a search covers ±150 kHz) across it.
#[must_use]
pub fn filling_lte_centres(spec: &Spectrum, ofdm: impl FnOnce() -> bool) -> Vec<f64> {
    const OCCUPIED_RB: [usize; 6] = [6, 15, 25, 50, 75, 100];
    const GRID_HZ: f64 = 300e3;
    const PSS_HALF_HZ: f64 = 0.47e6;
    let n = spec.density.len();
    if n < 32 {
        return Vec::new();
    }
    let smooth: Vec<f32> = (0..n)
        .map(|i| {
            let (a, b) = (i.saturating_sub(2), (i + 3).min(n));
            let mean = spec.density[a..b]
                .iter()
                .map(|&d| f64::from(d))
                .sum::<f64>()
                / (b - a) as f64;
            to_db(mean) as f32
        })
        .collect();
    let mut sorted: Vec<f32> = smooth.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.len() < n / 2 {
        return Vec::new();
    }
    sorted.sort_by(f32::total_cmp);
    let plateau = sorted[sorted.len() / 2];
    let inside = |v: f32| v >= plateau - 6.0;
    let (Some(lo), Some(hi)) = (
        smooth.iter().position(|&v| inside(v)),
        smooth.iter().rposition(|&v| inside(v)),
    ) else {
        return Vec::new();
    };
    if ((hi - lo + 1) as f64) < 0.6 * n as f64 {
        return Vec::new();
    }
    // An edge is seen when the density outside it drops 10 dB under the plateau.
    let low_out = |r: std::ops::Range<usize>| {
        r.clone().count() >= 2
            && smooth[r]
                .iter()
                .all(|&v| v < plateau - 10.0 || !v.is_finite())
    };
    let left = (lo >= 3 && low_out(0..lo - 1)).then(|| spec.freq_of(lo) - spec.bin_hz / 2.0);
    let right = (hi + 3 < n && low_out(hi + 2..n)).then(|| spec.freq_of(hi) + spec.bin_hz / 2.0);
    let visible = (hi - lo + 1) as f64 * spec.bin_hz;
    let (span_lo, span_hi) = spec.span_hz();
    let slack = 3.0 * spec.bin_hz;
    let mut ofdm = Some(ofdm);
    let mut holds_ofdm = None;
    let mut out: Vec<f64> = Vec::new();
    for w in OCCUPIED_RB.map(|rb| rb as f64 * 180e3 + 15e3) {
        if w + slack < visible {
            continue;
        }
        let centre = match (left, right) {
            (Some(l), Some(r)) if (r - l - w).abs() <= slack => Some(0.5 * (l + r)),
            (Some(_), Some(_)) => None,
            // The other edge lies beyond the span.
            (Some(l), None) if l + w + slack >= span_hi => Some(l + w / 2.0),
            (None, Some(r)) if r - w - slack <= span_lo => Some(r - w / 2.0),
            (None, None) if w + slack >= span_hi - span_lo => {
                // No edge seen: the centre lies anywhere the carrier still covers the span.
                // Only worth the searches when the capture holds LTE's OFDM at all.
                if *holds_ofdm.get_or_insert_with(|| ofdm.take().is_some_and(|f| f())) {
                    let half = (w - (span_hi - span_lo)).max(0.0) / 2.0;
                    let k = (half / GRID_HZ).ceil() as i64;
                    for i in -k..=k {
                        let c = 0.5 * (span_lo + span_hi) + i as f64 * GRID_HZ;
                        if !out.iter().any(|o| (o - c).abs() < slack) {
                            out.push(c);
                        }
                    }
                }
                None
            }
            _ => None,
        };
        if let Some(c) = centre
            && !out.iter().any(|o| (o - c).abs() < slack)
        {
            out.push(c);
        }
    }
    // A search needs the centre's synchronisation signals (±0.47 MHz) inside the span.
    out.retain(|c| c - PSS_HALF_HZ >= span_lo && c + PSS_HALF_HZ <= span_hi);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cropped Welch spectrum of a 20 MHz LTE carrier `offset_hz` from the centre of a
    /// 19.2 MS/s capture, 20 dB over the noise (or noise alone).
    fn filled(offset_hz: Option<f64>) -> Spectrum {
        use crate::synth::{Emitter, LteContent, OfdmEmitter, add_awgn, rng};
        let fs = 19.2e6;
        let mut x = vec![num_complex::Complex32::default(); 192_000];
        if let Some(off) = offset_hz {
            let cell = LteContent::new(7, crate::cell::lte::Duplexing::Fdd, 100, 1).expect("cell");
            OfdmEmitter::new(cell, fs, off, 1.0)
                .expect("rate")
                .add_to(&mut x);
        }
        add_awgn(&mut rng(3), &mut x, 0.01);
        let frame = crate::psd::welch_once(&x, 1024, 0.5, crate::window::WindowKind::Hann, fs, 0.0)
            .expect("welch");
        let mut spec = frame.to_spectrum();
        spec.crop_edges(0.05);
        spec
    }

    #[test]
    fn a_carrier_filling_the_capture_is_placed_by_its_visible_edge() {
        for off in [500e3, -1.3e6, 2.5e6] {
            let centres = filling_lte_centres(&filled(Some(off)), || true);
            assert!(
                centres.iter().any(|c| (c - off).abs() < 40e3),
                "{off}: {centres:?}"
            );
            // 20 MHz is the only bandwidth that fills 19.2 MS/s: one candidate.
            assert_eq!(centres.len(), 1, "{off}: {centres:?}");
        }
        // Noise alone: at most the capture's own centre, which is searched anyway.
        let noise = filling_lte_centres(&filled(None), || false);
        assert!(noise.is_empty(), "{noise:?}");
        // Tuned 500 kHz off a 20 MHz carrier, a 10 % crop hides both edges: a grid 300 kHz
        // apart over the ±1.3 MHz the centre can be in.
        let mut spec = filled(Some(500e3));
        spec.crop_edges(0.06);
        assert!(filling_lte_centres(&spec, || false).is_empty());
        let grid = filling_lte_centres(&spec, || true);
        assert!(grid.iter().any(|c| (c - 500e3).abs() <= 150e3), "{grid:?}");
        assert!((5..=11).contains(&grid.len()), "{grid:?}");
    }

    #[test]
    fn widths_map_to_technologies() {
        assert_eq!(guess_technology(190e3).0, Technology::Gsm);
        assert_eq!(guess_technology(1.07e6), (Technology::Lte, Some(1.4e6)));
        assert_eq!(guess_technology(17.8e6), (Technology::Lte, Some(20e6)));
        assert_eq!(guess_technology(3.8e6), (Technology::Umts, Some(5e6)));
        assert_eq!(guess_technology(97e6), (Technology::Nr, Some(100e6)));
        assert_eq!(guess_technology(10e3).0, Technology::Unknown);
    }

    #[test]
    fn gamma_quantile_matches_exponential_and_narrows_with_averaging() {
        assert!((gamma_mean_quantile(1.0, 1e-3) - 6.9078).abs() < 1e-3);
        let q10 = gamma_mean_quantile(10.0, 1e-3);
        let q100 = gamma_mean_quantile(100.0, 1e-3);
        // Chi-square(200)/200 at 0.999 is 1.3297 (tables).
        assert!((q100 - 1.3297).abs() < 0.01, "{q100}");
        assert!(q10 > q100 && q100 > 1.0);
    }
}
