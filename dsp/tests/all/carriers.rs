//! Carrier detection on synthetic LTE-like and GSM-like carriers, and the noise floor.

use dsp::Complex32;
use dsp::carrier::{CfarConfig, Technology, detect_carriers};
use dsp::cell::lte::Duplexing;
use dsp::psd::welch_once;
use dsp::synth::{BandNoise, Emitter, GsmEmitter, LteContent, OfdmEmitter, add_awgn, rng};
use dsp::window::WindowKind;
use proptest::prelude::*;

fn spectrum(x: &[Complex32], fs: f64, n: usize) -> (dsp::psd::Spectrum, usize) {
    let f = welch_once(x, n, 0.5, WindowKind::Hann, fs, 0.0).expect("welch");
    (f.to_spectrum(), f.segments)
}

#[test]
fn lte_like_carriers_have_their_centre_and_width() {
    let fs = 30.72e6;
    let mut x = vec![Complex32::default(); 1 << 19];
    add_awgn(&mut rng(1), &mut x, 1e-4);
    // A 10 MHz LTE channel (9 MHz occupied) 5 MHz below centre and a 1.4 MHz one above.
    BandNoise::new(2, fs, -9.5e6, -0.5e6, 0.1).add_to(&mut x);
    BandNoise::new(3, fs, 8.46e6, 9.54e6, 0.01).add_to(&mut x);
    let (s, segs) = spectrum(&x, fs, 4096);
    let mut scratch = Vec::new();
    let c = detect_carriers(&s, segs, &CfarConfig::default(), &mut scratch);
    assert_eq!(c.len(), 2, "{c:#?}");
    let bin = fs / 4096.0;
    assert!(
        (c[0].center_hz - -5e6).abs() < 2.0 * bin,
        "{}",
        c[0].center_hz
    );
    assert!(
        (c[0].bandwidth_hz - 9e6).abs() < 0.02 * 9e6,
        "{}",
        c[0].bandwidth_hz
    );
    assert_eq!(
        (c[0].technology, c[0].channel_bw_hz),
        (Technology::Lte, Some(10e6))
    );
    assert!((c[1].center_hz - 9e6).abs() < 2.0 * bin);
    assert_eq!(
        (c[1].technology, c[1].channel_bw_hz),
        (Technology::Lte, Some(1.4e6))
    );
    // Channel power: 0.1 → −10 dBFS and 0.01 → −20 dBFS, within 0.2 dB.
    assert!((c[0].power_db - -10.0).abs() < 0.2, "{}", c[0].power_db);
    assert!((c[1].power_db - -20.0).abs() < 0.2, "{}", c[1].power_db);
}

#[test]
fn real_lte_waveform_is_classified_as_lte_5_mhz() {
    let fs = 7.68e6;
    let cell = LteContent::new(77, Duplexing::Fdd, 25, 4).expect("cell");
    let mut e = OfdmEmitter::new(cell, fs, 1e6, 0.1).expect("rate");
    let mut x = vec![Complex32::default(); 1 << 18];
    e.add_to(&mut x);
    add_awgn(&mut rng(5), &mut x, 1e-5);
    let (s, segs) = spectrum(&x, fs, 2048);
    let c = detect_carriers(&s, segs, &CfarConfig::default(), &mut Vec::new());
    assert_eq!(c.len(), 1, "{c:#?}");
    assert!((c[0].center_hz - 1e6).abs() < 20e3, "{}", c[0].center_hz);
    assert_eq!(c[0].technology, Technology::Lte);
    assert_eq!(c[0].channel_bw_hz, Some(5e6));
}

#[test]
fn gsm_like_carriers_are_gsm() {
    let fs = 1.92e6;
    let mut x = vec![Complex32::default(); 1 << 19];
    add_awgn(&mut rng(1), &mut x, 1e-5);
    GsmEmitter::new(8, fs, -400e3, 0.01).add_to(&mut x);
    GsmEmitter::new(9, fs, 200e3, 0.001).add_to(&mut x);
    let (s, segs) = spectrum(&x, fs, 2048);
    let c = detect_carriers(&s, segs, &CfarConfig::default(), &mut Vec::new());
    assert_eq!(c.len(), 2, "{c:#?}");
    for (got, want) in c.iter().zip([-400e3, 200e3]) {
        assert_eq!(got.technology, Technology::Gsm, "{got:?}");
        // GMSK's spectrum is centred on the carrier; FCCH bursts pull it up a little.
        assert!(
            (got.center_hz - want).abs() < 15e3,
            "{} vs {want}",
            got.center_hz
        );
        assert!(
            (100e3..320e3).contains(&got.bandwidth_hz),
            "{}",
            got.bandwidth_hz
        );
    }
}

#[test]
fn noise_alone_gives_no_carrier() {
    let fs = 2.4e6;
    for seed in 0..20 {
        let mut x = vec![Complex32::default(); 1 << 17];
        add_awgn(&mut rng(seed), &mut x, 1.0);
        let (s, segs) = spectrum(&x, fs, 1024);
        let c = detect_carriers(&s, segs, &CfarConfig::default(), &mut Vec::new());
        assert!(c.is_empty(), "seed {seed}: {c:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn higher_threshold_never_adds_detections(seed in 0u64..1000, snr_step in 0.5f64..10.0) {
        let fs = 1.92e6;
        let mut x = vec![Complex32::default(); 1 << 16];
        add_awgn(&mut rng(seed), &mut x, 1.0);
        BandNoise::new(seed + 1, fs, 100e3, 500e3, 0.5).add_to(&mut x);
        GsmEmitter::new(seed + 2, fs, -500e3, 0.05).add_to(&mut x);
        let (s, segs) = spectrum(&x, fs, 1024);
        let lo = CfarConfig::default();
        let hi = CfarConfig { min_snr_db: lo.min_snr_db + snr_step, pfa: lo.pfa / 10.0, ..lo };
        let a = detect_carriers(&s, segs, &lo, &mut Vec::new());
        let b = detect_carriers(&s, segs, &hi, &mut Vec::new());
        let occupied = |v: &[dsp::carrier::Carrier]| v.iter().map(|c| c.extent_hz.1 - c.extent_hz.0).sum::<f64>();
        prop_assert!(occupied(&b) <= occupied(&a) + 1.0);
    }
}

/// The emitters carry real sync signals: a matched filter for the LTE PSS of the cell's
/// N_ID^(2) peaks every 5 ms, and the other two roots do not.
#[test]
fn lte_emitter_carries_its_pss_every_5_ms() {
    use dsp::cell::lte;
    use rustfft::FftPlanner;
    let fs = 1.92e6;
    let pci = 3 * 40 + 2;
    let cell = LteContent::new(pci, Duplexing::Fdd, 6, 9).expect("cell");
    let mut e = OfdmEmitter::new(cell, fs, 0.0, 1.0).expect("rate");
    let mut x = vec![Complex32::default(); 19_200 * 2];
    e.add_to(&mut x);
    // Time-domain PSS templates: 62 subcarriers around DC, 128-point IFFT.
    let ifft = FftPlanner::<f32>::new().plan_fft_inverse(128);
    let template = |n2: u8| {
        let mut g = vec![Complex32::default(); 128];
        for (n, v) in lte::pss(n2).iter().enumerate() {
            let k = lte::sync_subcarrier(n);
            g[k.rem_euclid(128) as usize] = *v;
        }
        ifft.process(&mut g);
        g
    };
    let corr = |t: &[Complex32]| -> Vec<f32> {
        (0..x.len() - 128)
            .map(|i| {
                x[i..i + 128]
                    .iter()
                    .zip(t)
                    .map(|(a, b)| a * b.conj())
                    .sum::<Complex32>()
                    .norm()
            })
            .collect()
    };
    let right = corr(&template(2));
    let peak = right.iter().copied().fold(0.0, f32::max);
    // Local maxima above 60 % of the highest.
    let peaks: Vec<usize> = (1..right.len() - 1)
        .filter(|&i| right[i] > 0.6 * peak && right[i] >= right[i - 1] && right[i] > right[i + 1])
        .collect();
    assert!(peaks.len() >= 3, "{peaks:?}");
    // The PSS body of slot 0's last symbol starts at (10 + 128) + 5 × (9 + 128) + 9 = 832.
    assert_eq!(peaks[0], 832, "{peaks:?}");
    for w in peaks.windows(2) {
        assert_eq!(w[1] - w[0], 9600, "PSS every 5 ms at 1.92 MS/s: {peaks:?}");
    }
    for wrong in [0, 1] {
        let c = corr(&template(wrong));
        let m = c.iter().copied().fold(0.0, f32::max);
        assert!(m < 0.5 * peak, "root {wrong}: {m} vs {peak}");
    }
}

/// The GSM emitter's FCCH bursts are a tone 67.7 kHz above the carrier.
#[test]
fn gsm_emitter_fcch_is_a_tone_at_67_7_khz() {
    let fs = 1.0833e6; // four samples per GSM symbol
    let mut x = vec![Complex32::default(); (fs * 0.0047) as usize];
    GsmEmitter::new(3, fs, 0.0, 1.0).add_to(&mut x);
    // Frame 0, timeslot 0 is an FCCH burst: samples 40..560 lie inside it.
    let burst = &x[40..552];
    let f = welch_once(burst, 512, 0.0, WindowKind::Hann, fs, 0.0).expect("psd");
    let peak = (0..f.density.len())
        .max_by(|&a, &b| f.density[a].total_cmp(&f.density[b]))
        .expect("bins");
    let got = f.freq_of(peak);
    assert!(
        (got - dsp::cell::gsm::FCCH_OFFSET_HZ).abs() < 2.0 * f.bin_hz(),
        "{got}"
    );
    // Nearly all the burst's power is in that tone's main lobe.
    let lobe: f64 = (peak - 2..=peak + 2)
        .map(|i| f64::from(f.density[i]))
        .sum::<f64>()
        * f.bin_hz();
    assert!(lobe / f.total_power() > 0.95);
}
