//! Deep LTE search: a cell too weak for one 80 ms window, next to a strong cell, found over one
//! second once the sample clock's drift (measured from the strong cell's timing) is followed.

use dsp::Complex32;
use dsp::cell::lte::Duplexing;
use dsp::cell::lte_search::{LteSearchConfig, LteSearcher, RATE_HZ, clock_error_from_timing};
use dsp::synth::{Emitter, LteContent, OfdmEmitter, add_awgn, rng};

const CLOCK_PPM: f64 = 25.0;
const STRONG: u16 = 86;
const WEAK: u16 = 142;
/// The weak cell under the strong one: about −16.5 dB SINR, where one 80 ms window fails.
const WEAK_DB: f64 = -12.0;

/// One second of two FDD cells (6 RBs) at a 40 kHz offset, as a radio whose sample clock runs
/// 25 ppm fast records it: the strong cell at −3 dB SINR per resource element, the weak one
/// `weak_db` below it.
fn capture(weak_db: f64) -> Vec<Complex32> {
    let n = RATE_HZ as usize;
    let mut x = vec![Complex32::default(); n];
    for (pci, amp, seed) in [(STRONG, 1.0, 1), (WEAK, dsp::from_db(weak_db), 2)] {
        let content = LteContent::new(pci, Duplexing::Fdd, 6, seed).expect("cell");
        let mut e = OfdmEmitter::new(content, RATE_HZ, 40e3, amp).expect("rate");
        let mut skip = vec![Complex32::default(); 5_000 * seed as usize];
        e.add_to(&mut skip);
        e.add_to(&mut x);
    }
    // The fast clock: 25 ppm more samples per second (40001 for every 40000).
    let mut y = dsp::resample::resample(&x, RATE_HZ, 0.0, RATE_HZ * (1.0 + CLOCK_PPM * 1e-6), n)
        .expect("resample");
    y.truncate(n);
    // Noise per RE 3 dB over the strong cell's RE power (72 of 128 subcarriers carry it).
    add_awgn(&mut rng(7), &mut y, 2.0 * 128.0 / 72.0);
    y
}

#[test]
fn a_cell_too_weak_for_a_window_is_found_over_a_second() {
    let x = capture(WEAK_DB);
    let mut s = LteSearcher::new(LteSearchConfig::default());
    let w = (0.08 * RATE_HZ) as usize;
    let late = (0.9 * RATE_HZ) as usize;
    let a = s.search(&x[..w], false);
    let b = s.search(&x[late..late + w], false);
    assert_eq!(a.first().map(|c| c.pci), Some(STRONG));
    assert_eq!(b.first().map(|c| c.pci), Some(STRONG));
    assert!(
        a.iter().chain(&b).all(|c| c.pci != WEAK),
        "weak cell seen in a window"
    );
    // The clock's drift from the strong cell's frame timing 0.9 s apart: 25 ppm is 43 samples.
    let ppm = clock_error_from_timing(0.0, a[0].frame_start, late as f64, b[0].frame_start)
        .expect("drift")
        * 1e6;
    eprintln!("clock {ppm:.2} ppm");
    assert!((ppm - CLOCK_PPM).abs() < 2.0, "clock {ppm} ppm");
    let deep = s.deep_search(&x, a[0].cfo_hz, ppm * 1e-6, false);
    eprintln!("deep: {deep:?}");
    let weak = deep
        .iter()
        .find(|c| c.pci == WEAK)
        .expect("weak cell in the deep search");
    assert!(weak.confirmed, "{weak:?}");
    assert!((weak.cfo_hz - 40e3).abs() < 1500.0, "{weak:?}");
    // Its SINR is 12 dB under the strong cell's, within 3 dB.
    let strong = deep.iter().find(|c| c.pci == STRONG).expect("strong");
    let gap = strong.sinr_db - weak.sinr_db;
    assert!((gap + WEAK_DB).abs() < 3.0, "SINR gap {gap}");
    // Not following the drift smears 43 samples of timing across the second: the weak cell is
    // lost.
    let blind = s.deep_search(&x, a[0].cfo_hz, 0.0, false);
    assert!(blind.iter().all(|c| c.pci != WEAK), "{blind:?}");
}
