//! Welch PSD against physics: a naive DFT periodogram, Parseval, tones in their bins, white
//! noise at its density.

use dsp::Complex32;
use dsp::psd::{Averaging, Welch, WelchConfig, welch_once};
use dsp::synth::{add_awgn, rng, tone};
use dsp::to_db;
use dsp::window::{Window, WindowKind};
use proptest::prelude::*;

/// Straight O(N²) periodogram average, fftshifted, density-scaled: the reference.
fn naive_welch(x: &[Complex32], n: usize, hop: usize, kind: WindowKind, fs: f64) -> Vec<f64> {
    let w = Window::new(kind, n);
    let mut acc = vec![0.0f64; n];
    let mut segs = 0;
    let mut start = 0;
    while start + n <= x.len() {
        for (k, a) in acc.iter_mut().enumerate() {
            let mut s = num_complex::Complex64::default();
            for (t, (xv, wv)) in x[start..start + n].iter().zip(w.coeffs()).enumerate() {
                let ph = -2.0 * std::f64::consts::PI * (k * t) as f64 / n as f64;
                let v = num_complex::Complex64::new(f64::from(xv.re), f64::from(xv.im))
                    * f64::from(*wv);
                s += v * num_complex::Complex64::from_polar(1.0, ph);
            }
            *a += s.norm_sqr();
        }
        segs += 1;
        start += hop;
    }
    let scale = 1.0 / (fs * w.sum_sq() * segs as f64);
    (0..n).map(|i| acc[(i + n / 2) % n] * scale).collect()
}

#[test]
fn welch_matches_naive_dft_periodogram() {
    let fs = 1e6;
    let mut x = tone(256 * 6, fs, 123_456.0, 0.3, 0.2);
    add_awgn(&mut rng(3), &mut x, 0.01);
    for (overlap, hop) in [(0.0, 256), (0.5, 128), (0.75, 64)] {
        let got = welch_once(&x, 256, overlap, WindowKind::Hann, fs, 0.0).expect("welch");
        let want = naive_welch(&x, 256, hop, WindowKind::Hann, fs);
        for (i, (g, w)) in got.density.iter().zip(&want).enumerate() {
            let err_db = (to_db(f64::from(*g)) - to_db(*w)).abs();
            assert!(err_db < 0.01, "overlap {overlap} bin {i}: {g} vs {w}");
        }
    }
}

#[test]
fn streaming_in_odd_chunks_equals_one_shot() {
    let fs = 2.4e6;
    let mut x = vec![Complex32::default(); 50_000];
    add_awgn(&mut rng(9), &mut x, 1.0);
    let cfg = WelchConfig::new(1024, fs, 0.0, 8);
    let mut a = Welch::new(cfg.clone()).expect("cfg");
    let mut b = Welch::new(cfg).expect("cfg");
    let mut fa = Vec::new();
    let mut fb = Vec::new();
    a.process(&x, |f| fa.push(f.clone()));
    for chunk in x.chunks(333) {
        b.process(chunk, |f| fb.push(f.clone()));
    }
    assert_eq!(fa.len(), fb.len());
    assert!(!fa.is_empty());
    for (p, q) in fa.iter().zip(&fb) {
        assert_eq!(p.first_sample, q.first_sample);
        for (u, v) in p.density.iter().zip(&q.density) {
            assert!((u - v).abs() <= 1e-6 * u.abs().max(1e-30), "{u} vs {v}");
        }
    }
}

#[test]
fn parseval_total_power_within_0_1_db() {
    let fs = 1.92e6;
    for kind in [
        WindowKind::Rectangular,
        WindowKind::Hann,
        WindowKind::BlackmanHarris,
        WindowKind::FlatTop,
    ] {
        let mut x = tone(1 << 17, fs, -300e3, 0.5, 0.0);
        add_awgn(&mut rng(11), &mut x, 0.05);
        let mean_power: f64 =
            x.iter().map(|v| f64::from(v.norm_sqr())).sum::<f64>() / x.len() as f64;
        let f = welch_once(&x, 4096, 0.5, kind, fs, 0.0).expect("welch");
        let err = to_db(f.total_power() / mean_power);
        assert!(err.abs() < 0.1, "{kind:?}: {err} dB");
    }
}

#[test]
fn white_noise_density_within_0_2_db() {
    let fs = 2.4e6;
    let power = 1e-3;
    let mut x = vec![Complex32::default(); 1 << 20];
    add_awgn(&mut rng(21), &mut x, power);
    let f = welch_once(&x, 2048, 0.5, WindowKind::Hann, fs, 900e6).expect("welch");
    let mean: f64 = f.density.iter().map(|&d| f64::from(d)).sum::<f64>() / f.density.len() as f64;
    let want = power / fs;
    let err = to_db(mean / want);
    assert!(err.abs() < 0.2, "density off by {err} dB");
    // Every bin, not just the mean: 1000 segments averaged keep each within ±0.5 dB.
    let worst = f
        .density
        .iter()
        .map(|&d| to_db(f64::from(d) / want).abs())
        .fold(0.0, f64::max);
    assert!(worst < 0.6, "worst bin {worst} dB");
}

#[test]
fn averaging_by_time_counts_segments() {
    let cfg = WelchConfig {
        averaging: Averaging::Seconds(0.01),
        ..WelchConfig::new(1024, 2.048e6, 0.0, 1)
    };
    // 20480 samples, hop 512: (20480 − 1024) / 512 + 1 = 39 segments.
    assert_eq!(cfg.segments_per_frame(), 39);
}

#[test]
fn bad_configurations_are_rejected() {
    let ok = WelchConfig::new(1024, 1e6, 0.0, 4);
    for bad in [
        WelchConfig {
            fft_size: 1000,
            ..ok.clone()
        },
        WelchConfig {
            fft_size: 128,
            ..ok.clone()
        },
        WelchConfig {
            fft_size: 131_072,
            ..ok.clone()
        },
        WelchConfig {
            overlap: 1.0,
            ..ok.clone()
        },
        WelchConfig {
            sample_rate_hz: 0.0,
            ..ok.clone()
        },
        WelchConfig {
            averaging: Averaging::Segments(0),
            ..ok.clone()
        },
        WelchConfig {
            averaging: Averaging::Seconds(-1.0),
            ..ok.clone()
        },
    ] {
        assert!(Welch::new(bad.clone()).is_err(), "{bad:?} accepted");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn tone_lands_in_expected_bin(log2n in 8u32..=16, frac in -0.45f64..0.45, center in 0.0f64..3e9) {
        let n = 1usize << log2n;
        let fs = 2.4e6;
        let f_off = frac * fs;
        let x = tone(n * 2, fs, f_off, 1.0, 0.3);
        let frame = welch_once(&x, n, 0.5, WindowKind::Hann, fs, center).expect("welch");
        let peak = frame
            .density
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, _)| i)
            .expect("bins");
        let expect = frame.bin_of(center + f_off).expect("inside");
        prop_assert!(peak.abs_diff(expect) <= 1, "n {n}: peak {peak} expected {expect}");
        // And the tone's power (0 dBFS) is all there.
        prop_assert!(to_db(frame.total_power()).abs() < 0.1);
    }
}
