//! GSM downlink structure relevant to finding a cell (TS 45.002, TS 45.004).

/// GSM symbol rate, 1625/6 kbit/s.
pub const SYMBOL_RATE_HZ: f64 = 1_625_000.0 / 6.0;
/// The FCCH is a pure tone this far above the carrier: a quarter of the symbol rate (67.708 kHz).
pub const FCCH_OFFSET_HZ: f64 = SYMBOL_RATE_HZ / 4.0;
/// Symbols per timeslot (156.25, so eight slots are 1250).
pub const SYMBOLS_PER_FRAME: f64 = 1250.0;
/// TDMA frames in a control multiframe.
pub const FRAMES_PER_MULTIFRAME: u32 = 51;
/// Useful symbols of the FCCH burst (all zero bits).
pub const FCCH_SYMBOLS: f64 = 148.0;

/// Whether TDMA frame `fn_` of the 51-multiframe carries the FCCH in timeslot 0.
#[must_use]
pub fn is_fcch_frame(fn_: u32) -> bool {
    matches!(fn_ % FRAMES_PER_MULTIFRAME, 0 | 10 | 20 | 30 | 40)
}

/// Whether TDMA frame `fn_` of the 51-multiframe carries the SCH in timeslot 0 (the frame after
/// each FCCH).
#[must_use]
pub fn is_sch_frame(fn_: u32) -> bool {
    matches!(fn_ % FRAMES_PER_MULTIFRAME, 1 | 11 | 21 | 31 | 41)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fcch_is_67_7_khz_and_five_per_multiframe() {
        assert!((FCCH_OFFSET_HZ - 67_708.33).abs() < 0.01);
        assert_eq!((0..51).filter(|&f| is_fcch_frame(f)).count(), 5);
    }
}

/// A GSM carrier confirmed by its frequency-correction bursts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GsmCell {
    /// Carrier frequency searched (the ARFCN's downlink), hertz.
    pub carrier_hz: f64,
    /// FCCH bursts seen.
    pub fcch_bursts: usize,
    /// Offset of the tone from carrier + 67.7 kHz, hertz (the radio's and the cell's error).
    pub cfo_hz: f64,
    /// Mean power in the 200 kHz channel, dB full scale.
    pub power_dbfs: f64,
    /// Tone power over the noise around it during the bursts, dB.
    pub tone_snr_db: f64,
    /// The base station identity code, when an SCH was decoded (see [`decode_bsic`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bsic: Option<u8>,
    /// Where each FCCH burst was seen, seconds from the start of the input (to within a
    /// quarter of a burst).
    #[serde(skip)]
    pub fcch_starts_s: Vec<f64>,
}

/// FCCH detector settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct FcchConfig {
    /// Offsets searched, ± hertz.
    pub cfo_range_hz: f64,
    /// A frame is an FCCH candidate when this share of the channel's power is in the tone.
    pub min_tone_fraction: f64,
}

impl Default for FcchConfig {
    fn default() -> Self {
        Self {
            cfo_range_hz: 30e3,
            min_tone_fraction: 0.4,
        }
    }
}

/// Finds FCCH bursts of GSM carriers at `carriers_hz` (absolute) in `x` (rate `fs`, centre
/// `center_hz`). A carrier is confirmed when two bursts are seen 10 or 11 TDMA frames apart (the
/// 51-multiframe's FCCH spacing), with the tone at one frequency: a swept or CW jammer does not
/// keep that rhythm.
#[must_use]
pub fn find_fcch(
    x: &[num_complex::Complex32],
    fs: f64,
    center_hz: f64,
    carriers_hz: &[f64],
    cfg: &FcchConfig,
) -> Vec<GsmCell> {
    use rustfft::FftPlanner;
    // Frames of about a quarter burst, so that a burst fills at least two whole frames.
    let burst_s = FCCH_SYMBOLS / SYMBOL_RATE_HZ;
    let n = ((burst_s / 3.0 * fs) as usize).next_power_of_two() / 2;
    let n = n.max(64);
    let hop = n / 2;
    if x.len() < 4 * n {
        return Vec::new();
    }
    let fft = FftPlanner::<f32>::new().plan_fft_forward(n);
    let window: Vec<f32> = crate::window::Window::new(crate::window::WindowKind::Hann, n)
        .coeffs()
        .to_vec();
    let bin_hz = fs / n as f64;
    let frames: Vec<Vec<f32>> = (0..=(x.len() - n) / hop)
        .map(|f| {
            let mut b: Vec<num_complex::Complex32> = x[f * hop..f * hop + n]
                .iter()
                .zip(&window)
                .map(|(v, w)| v * *w)
                .collect();
            fft.process(&mut b);
            b.iter().map(num_complex::Complex32::norm_sqr).collect()
        })
        .collect();
    let bin = |f_abs: f64| -> Option<usize> {
        let k = ((f_abs - center_hz) / bin_hz).round() as i64;
        (k.abs() < (n / 2) as i64 - 1).then(|| k.rem_euclid(n as i64) as usize)
    };
    let frame_s = SYMBOLS_PER_FRAME / SYMBOL_RATE_HZ;
    let mut out = Vec::new();
    for &fc in carriers_hz {
        let tone = fc + FCCH_OFFSET_HZ;
        let lo = fc - 100e3;
        let hi = fc + 100e3;
        let (Some(_), Some(_)) = (bin(lo), bin(hi)) else {
            continue;
        };
        let ch_bins: Vec<usize> = {
            let a = ((lo - center_hz) / bin_hz).round() as i64;
            let b = ((hi - center_hz) / bin_hz).round() as i64;
            (a..=b).map(|k| k.rem_euclid(n as i64) as usize).collect()
        };
        let t_lo = ((tone - cfg.cfo_range_hz - center_hz) / bin_hz).round() as i64;
        let t_hi = ((tone + cfg.cfo_range_hz - center_hz) / bin_hz).round() as i64;
        if t_hi.abs() >= (n / 2) as i64 - 1 || t_lo.abs() >= (n / 2) as i64 - 1 {
            continue;
        }
        let mut hits: Vec<(f64, i64, f64, f64)> = Vec::new();
        let mut power = 0f64;
        for (fi, p) in frames.iter().enumerate() {
            let total: f64 = ch_bins.iter().map(|&k| f64::from(p[k])).sum();
            power += total;
            let (kbest, pbest) = (t_lo..=t_hi)
                .map(|k| {
                    // The Hann main lobe: three bins.
                    let e: f64 = (k - 1..=k + 1)
                        .map(|j| f64::from(p[j.rem_euclid(n as i64) as usize]))
                        .sum();
                    (k, e)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((0, 0.0));
            // Power centroid of the main lobe: the tone's frequency to a fraction of a bin.
            let at = |j: i64| f64::from(p[j.rem_euclid(n as i64) as usize]);
            let centroid = ((kbest - 1) as f64 * at(kbest - 1)
                + kbest as f64 * at(kbest)
                + (kbest + 1) as f64 * at(kbest + 1))
                / pbest.max(1e-30);
            if total > 0.0 && pbest / total >= cfg.min_tone_fraction {
                hits.push((
                    fi as f64 * hop as f64 / fs,
                    kbest,
                    pbest / (total - pbest).max(1e-30),
                    centroid,
                ));
            }
        }
        // Group frames into bursts (contiguous in time); a burst lasts 546 µs, several frames,
        // where GMSK data only now and then puts a frame's power in one place. Then look for the
        // FCCH rhythm between any two bursts.
        let mut groups: Vec<(f64, f64, i64, f64, usize, f64)> = Vec::new();
        for h in hits {
            match groups.last_mut() {
                // Same burst: the next frame, and the tone has not moved (a sweep moves).
                Some(g) if h.0 - g.1 <= 1.5 * hop as f64 / fs && (h.1 - g.2).abs() <= 1 => {
                    g.1 = h.0;
                    g.4 += 1;
                    g.5 += h.3;
                    if h.2 > g.3 {
                        g.3 = h.2;
                    }
                }
                _ => groups.push((h.0, h.0, h.1, h.2, 1, h.3)),
            }
        }
        let min_frames = ((burst_s * fs / hop as f64) * 0.5).floor().max(2.0) as usize;
        // (start, bin, tone SNR, mean centroid).
        let bursts: Vec<(f64, i64, f64, f64)> = groups
            .into_iter()
            .filter(|g| g.4 >= min_frames)
            .map(|g| (g.0, g.2, g.3, g.5 / g.4 as f64))
            .collect();
        let rhythm = bursts.iter().enumerate().any(|(i, a)| {
            bursts[i + 1..].iter().any(|b| {
                let frames_apart = (b.0 - a.0) / frame_s;
                ((frames_apart - 10.0).abs() < 0.3 || (frames_apart - 11.0).abs() < 0.3)
                    && (b.1 - a.1).abs() <= 1
            })
        });
        if !rhythm {
            continue;
        }
        let k_mean = bursts.iter().map(|b| b.3).sum::<f64>() / bursts.len() as f64;
        let snr = bursts.iter().map(|b| b.2).sum::<f64>() / bursts.len() as f64;
        let win_power: f64 = window.iter().map(|w| f64::from(w * w)).sum::<f64>() * n as f64;
        out.push(GsmCell {
            carrier_hz: fc,
            fcch_bursts: bursts.len(),
            cfo_hz: center_hz + k_mean * bin_hz - tone,
            power_dbfs: crate::to_db(power / frames.len() as f64 / win_power),
            tone_snr_db: crate::to_db(snr),
            bsic: None,
            fcch_starts_s: bursts.iter().map(|b| b.0).collect(),
        });
    }
    // A strong carrier's skirt and bursts show in its neighbours' channels; a carrier within
    // 400 kHz of one 6 dB stronger is that leakage, not a cell.
    let strong: Vec<(f64, f64)> = out.iter().map(|c| (c.carrier_hz, c.power_dbfs)).collect();
    out.retain(|c| {
        !strong.iter().any(|&(f, p)| {
            (f - c.carrier_hz).abs() > 1.0
                && (f - c.carrier_hz).abs() <= 400e3
                && p >= c.power_dbfs + 6.0
        })
    });
    out
}

/// Decodes the SCH that follows each FCCH burst of `cell` (found by [`find_fcch`] in the same
/// `x`, rate `fs`, centre `center_hz`): the BSIC of the first SCH whose parity checks and whose
/// code word the received bits agree with.
#[must_use]
pub fn decode_bsic(
    x: &[num_complex::Complex32],
    fs: f64,
    center_hz: f64,
    cell: &GsmCell,
) -> Option<super::gsm_sch::SchDecode> {
    let rate = 4.0 * SYMBOL_RATE_HZ;
    // The FCCH tone at 0 Hz: there GMSK is close to BPSK of the bits.
    let offset = cell.carrier_hz - center_hz + cell.cfo_hz + FCCH_OFFSET_HZ;
    let y = crate::resample::resample(x, fs, offset, rate, usize::MAX).ok()?;
    // A symbol-long moving average: the noise of four samples' bandwidth (1.08 MHz) down to
    // about a symbol rate's; the blur it adds to GMSK is part of the channel the SCH training
    // sequence measures.
    let y: Vec<num_complex::Complex32> = (0..y.len().saturating_sub(3))
        .map(|i| y[i..i + 4].iter().sum::<num_complex::Complex32>() * 0.25)
        .collect();
    // The SCH burst starts one TDMA frame after its FCCH burst; the FCCH start is known to
    // a fraction of a burst.
    let frame_samples = SYMBOLS_PER_FRAME * 4.0;
    let search = 48 * 4;
    cell.fcch_starts_s.iter().find_map(|&t| {
        let expected = (t * rate + frame_samples).round() as usize;
        super::gsm_sch::decode_sch(&y, expected, search)
    })
}

#[cfg(test)]
mod fcch_tests {
    use super::*;
    use crate::synth::{Emitter, GsmEmitter, SweptTone, add_awgn, rng};

    #[test]
    fn fcch_found_on_its_arfcn_with_offset_and_not_on_others() {
        let fs = 1.92e6;
        let mut x = vec![num_complex::Complex32::default(); (0.12 * fs) as usize];
        // A carrier 300 kHz above centre, 12 kHz off (radio error), SNR 10 dB in its channel.
        GsmEmitter::new(4, fs, 300e3 + 12e3, 1.0).add_to(&mut x);
        add_awgn(&mut rng(5), &mut x, 0.1 * fs / 200e3);
        let cells = find_fcch(
            &x,
            fs,
            900e6,
            &[900.3e6, 899.5e6, 900.1e6],
            &FcchConfig::default(),
        );
        assert_eq!(cells.len(), 1, "{cells:?}");
        assert!((cells[0].carrier_hz - 900.3e6).abs() < 1.0);
        assert!((cells[0].cfo_hz - 12e3).abs() < 2e3, "{}", cells[0].cfo_hz);
        assert!(cells[0].fcch_bursts >= 2);
    }

    #[test]
    fn swept_and_noise_jammers_give_no_fcch() {
        let fs = 1.92e6;
        for seed in 0..10 {
            let mut x = vec![num_complex::Complex32::default(); (0.12 * fs) as usize];
            SweptTone::new(fs, -0.9e6, 0.9e6, 0.001 + seed as f64 * 3e-4, 1.0).add_to(&mut x);
            add_awgn(&mut rng(seed), &mut x, 0.5);
            let carriers: Vec<f64> = (-4..=4).map(|k| 900e6 + f64::from(k) * 200e3).collect();
            let cells = find_fcch(&x, fs, 900e6, &carriers, &FcchConfig::default());
            assert!(cells.is_empty(), "seed {seed}: {cells:?}");
        }
    }
}

#[cfg(test)]
mod sch_tests {
    use super::*;
    use crate::synth::{Emitter, GsmEmitter, add_awgn, rng};

    /// A BCCH carrier 300 kHz off centre and 9 kHz off frequency, at `snr_db` in its 200 kHz
    /// channel, over 120 ms (several SCH bursts).
    fn capture(bsic: u8, snr_db: f64, seed: u64) -> (Vec<num_complex::Complex32>, f64) {
        let fs = 1.92e6;
        let mut x = vec![num_complex::Complex32::default(); (0.12 * fs) as usize];
        GsmEmitter::new(seed, fs, 300e3 + 9e3, 1.0)
            .with_bsic(bsic)
            .add_to(&mut x);
        add_awgn(
            &mut rng(seed + 100),
            &mut x,
            crate::from_db(-snr_db) * fs / 200e3,
        );
        (x, fs)
    }

    /// At 3 dB in the channel (about 12 % of the coded bits wrong before decoding; at 0 dB the
    /// parity fails).
    #[test]
    fn the_bsic_is_decoded_from_the_sch_after_the_fcch() {
        let mut decoded = 0;
        for (i, bsic) in [0o00u8, 0o27, 0o63, 0o70, 0o11].into_iter().enumerate() {
            let (x, fs) = capture(bsic, 3.0, i as u64);
            let cells = find_fcch(&x, fs, 900e6, &[900.3e6], &FcchConfig::default());
            assert_eq!(cells.len(), 1, "{bsic}: {cells:?}");
            let d = decode_bsic(&x, fs, 900e6, &cells[0]).expect("an SCH");
            eprintln!("BSIC {bsic:o}: {d:?}");
            assert_eq!(d.info.bsic, bsic);
            // The SCH frames are 1, 11, 21, 31, 41 of the multiframe: T3' is 0 to 4.
            assert!(d.info.t3p <= 4);
            decoded += 1;
        }
        assert_eq!(decoded, 5);
    }

    #[test]
    fn no_bsic_from_a_carrier_without_sch_structure() {
        // Noise in the channel where the FCCH bursts were: every SCH attempt fails.
        let (x, fs) = capture(0o27, 10.0, 9);
        let cells = find_fcch(&x, fs, 900e6, &[900.3e6], &FcchConfig::default());
        let mut noise = vec![num_complex::Complex32::default(); x.len()];
        add_awgn(&mut rng(77), &mut noise, 1.0);
        assert!(decode_bsic(&noise, fs, 900e6, &cells[0]).is_none());
    }
}
