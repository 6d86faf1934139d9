//! LTE cell search against SINR on synthetic cells (FDD and TDD, random PCI, timing and offset),
//! and false cells on jammer-only input.

use dsp::Complex32;
use dsp::cell::lte::Duplexing;
use dsp::cell::lte_search::{LteSearchConfig, LteSearcher, RATE_HZ};
use dsp::synth::{BandNoise, Emitter, LteContent, OfdmEmitter, SweptTone, add_awgn, rng};
use rand::Rng;

const TRIALS: usize = 20;

/// A 25-RB cell (5 MHz, wider than the 1.92 MS/s view) under noise at `sinr_db` per resource
/// element, with a random offset within ±120 kHz and a random start in the frame.
fn trial(seed: u64, duplexing: Duplexing, sinr_db: f64) -> (u16, f64, Vec<Complex32>) {
    let mut r = rng(seed);
    let pci: u16 = r.random_range(0..504);
    let cfo: f64 = r.random_range(-120e3..120e3);
    let skip: usize = r.random_range(0..19_200);
    let content = LteContent::new(pci, duplexing, 25, seed).expect("cell");
    // Render at 7.68 MS/s (the 5 MHz carrier fits) and bring the centre 1.92 MHz down, as the
    // agent does with a wide capture.
    let fs = 7.68e6;
    let mut e = OfdmEmitter::new(content, fs, cfo, 1.0).expect("rate");
    let mut junk = vec![Complex32::default(); skip * 4];
    e.add_to(&mut junk);
    let mut x = vec![Complex32::default(); (0.08 * fs) as usize];
    e.add_to(&mut x);
    // Signal per RE = 1/300 of the total; noise per RE at 15 kHz = density × 15 kHz.
    let per_re = 1.0 / 300.0;
    let noise_total = per_re / dsp::from_db(sinr_db) * fs / 15e3;
    add_awgn(&mut r, &mut x, noise_total);
    let y = dsp::resample::resample(&x, fs, 0.0, RATE_HZ, 1 << 20).expect("resample");
    (pci, cfo, y)
}

fn detection_rate(duplexing: Duplexing, sinr_db: f64) -> f64 {
    let mut s = LteSearcher::new(LteSearchConfig::default());
    let mut hits = 0;
    for t in 0..TRIALS {
        let (pci, cfo, y) = trial(
            1000 * (sinr_db as i64 + 20) as u64 + t as u64,
            duplexing,
            sinr_db,
        );
        let cells = s.search(&y, false);
        // A wrong PCI would be a phantom: never allowed.
        assert!(
            cells.iter().all(|c| c.pci == pci),
            "{duplexing:?} {sinr_db} dB: {cells:?} for {pci}"
        );
        if let Some(c) = cells.first() {
            assert_eq!(c.duplexing, duplexing);
            // Within a tenth of a subcarrier.
            assert!((c.cfo_hz - cfo).abs() < 1500.0, "cfo {} vs {cfo}", c.cfo_hz);
            hits += 1;
        }
    }
    hits as f64 / TRIALS as f64
}

#[test]
fn pci_found_at_minus_6_db_sinr_fdd_and_tdd() {
    for dup in [Duplexing::Fdd, Duplexing::Tdd] {
        let p = detection_rate(dup, -6.0);
        eprintln!("{dup:?} −6 dB: {:.0} %", p * 100.0);
        assert!(p >= 0.95, "{dup:?}: {p}");
    }
}

#[test]
fn detection_improves_with_sinr() {
    for dup in [Duplexing::Fdd, Duplexing::Tdd] {
        let rates: Vec<f64> = [-9.0, -3.0, 0.0, 3.0]
            .iter()
            .map(|&s| detection_rate(dup, s))
            .collect();
        eprintln!("{dup:?} at −9/−3/0/+3 dB: {rates:?}");
        for r in &rates[1..] {
            assert!((r - 1.0).abs() < 1e-9, "{dup:?}: {rates:?}");
        }
    }
}

#[test]
fn no_false_cells_on_jammer_only_input() {
    let mut s = LteSearcher::new(LteSearchConfig {
        window_s: 0.02,
        ..LteSearchConfig::default()
    });
    let n = (0.02 * RATE_HZ) as usize;
    let mut cells = 0;
    let windows = 1000;
    for w in 0..windows as u64 {
        let mut x = vec![Complex32::default(); n];
        if w % 2 == 0 {
            // Noise jammer over the whole view, plus thermal noise.
            BandNoise::new(w, RATE_HZ, -1e6, 1e6, 1.0).add_to(&mut x);
        } else {
            // A swept-tone jammer: 1 MHz in 1 ms, over noise 20 dB below it.
            SweptTone::new(RATE_HZ, -0.9e6, 0.9e6, 0.001 + (w % 7) as f64 * 1e-4, 1.0)
                .add_to(&mut x);
        }
        add_awgn(&mut rng(w + 77), &mut x, 0.01);
        cells += s.search(&x, false).len();
    }
    assert_eq!(cells, 0, "{cells} false cells in {windows} windows");
}
