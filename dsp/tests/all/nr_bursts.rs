//! NR SSB search over several 20 ms SSB periods: cells too weak for one SSB are found when four
//! are summed, with the receiver's sample clock slipping, and noise gives nothing.

use dsp::Complex32;
use dsp::cell::nr_search::{NrSearchConfig, NrSearcher};
use dsp::synth::{Emitter, NrContent, OfdmEmitter, add_awgn, rng};
use rand::Rng;

const FS: f64 = 7.68e6;
const TRIALS: u64 = 20;

/// 85 ms of a 30 kHz NR carrier (SSB every 20 ms) at `sinr_db` per resource element, random
/// PCI, offset within ±100 kHz and start, recorded by a radio whose sample clock runs 20 ppm
/// fast (5.9 samples of slip over the four periods).
fn trial(seed: u64, sinr_db: f64) -> (u16, Vec<Complex32>) {
    let mut r = rng(seed);
    let pci: u16 = r.random_range(0..1008);
    let cfo: f64 = r.random_range(-100e3..100e3);
    let content = NrContent::new(pci, 1, 24, 0, seed).expect("cell");
    let mut e = OfdmEmitter::new(content, FS, cfo, 1.0)
        .expect("rate")
        .with_upconversion_phase(3.5e9 + 1234.5);
    let mut skip = vec![Complex32::default(); r.random_range(0..150_000)];
    e.add_to(&mut skip);
    let n = (0.085 * FS) as usize;
    let mut x = vec![Complex32::default(); n];
    e.add_to(&mut x);
    // 20 ppm more samples per second: 50001 for every 50000.
    let mut y =
        dsp::resample::resample(&x, FS, 0.0, FS * (1.0 + 20e-6), usize::MAX).expect("resample");
    y.truncate(n);
    let per_re = 1.0 / 288.0;
    add_awgn(
        &mut rng(seed + 9),
        &mut y,
        per_re / dsp::from_db(sinr_db) * 256.0,
    );
    (pci, y)
}

fn detection(sinr_db: f64, bursts: usize) -> usize {
    let mut s = NrSearcher::new(
        30,
        NrSearchConfig {
            bursts,
            ..NrSearchConfig::default()
        },
    );
    let mut hits = 0;
    for t in 0..TRIALS {
        let (pci, x) = trial(500 + t + (sinr_db.abs() as u64) * 100, sinr_db);
        let cells = s.search(&x, false);
        assert!(
            cells.iter().all(|c| c.pci == pci),
            "{sinr_db} dB, {bursts} bursts: {cells:?} for {pci}"
        );
        hits += usize::from(!cells.is_empty());
    }
    hits
}

#[test]
fn four_ssb_periods_find_what_one_misses() {
    let one = detection(-6.0, 1);
    let four = detection(-6.0, 4);
    eprintln!("−6 dB: one SSB {one}/{TRIALS}, four SSBs {four}/{TRIALS}");
    assert!(four >= 18, "four bursts: {four}/{TRIALS}");
    assert!(four >= one + 10, "one {one}, four {four}");
    let four_9 = detection(-9.0, 4);
    eprintln!("−9 dB: four SSBs {four_9}/{TRIALS}");
}

#[test]
fn noise_over_four_periods_gives_no_cell() {
    let mut s = NrSearcher::new(30, NrSearchConfig::default());
    for seed in 0..10 {
        let mut x = vec![Complex32::default(); (0.085 * FS) as usize];
        add_awgn(&mut rng(seed), &mut x, 1.0);
        let cells = s.search(&x, true);
        assert!(cells.is_empty(), "seed {seed}: {cells:?}");
    }
}
