//! LTE cell search speed: 20 ms of 1.92 MS/s with a cell in it, over the default ±150 kHz
//! offset range, at a known offset (replay's later windows), and over ±30 kHz around an energy
//! carrier's centre (the agent's sweep). The ratio of 20 ms to the time taken is the real-time
//! factor.
//!
//! `cargo bench -p dsp --bench dsp -- search`

use criterion::{Criterion, Throughput, criterion_group};
use dsp::Complex32;
use dsp::cell::lte::Duplexing;
use dsp::cell::lte_search::{LteSearchConfig, LteSearcher, RATE_HZ};
use dsp::synth::{Emitter, LteContent, OfdmEmitter, add_awgn, rng};

fn input() -> Vec<Complex32> {
    let content = LteContent::new(301, Duplexing::Fdd, 6, 1).expect("cell");
    let mut e = OfdmEmitter::new(content, RATE_HZ, 42e3, 1.0).expect("rate");
    let mut x = vec![Complex32::default(); (0.02 * RATE_HZ) as usize];
    e.add_to(&mut x);
    add_awgn(&mut rng(2), &mut x, 1.0);
    x
}

fn bench(c: &mut Criterion) {
    let x = input();
    let mut g = c.benchmark_group("lte_search_20ms");
    g.throughput(Throughput::Elements(x.len() as u64));
    g.sample_size(20);
    let mut s = LteSearcher::new(LteSearchConfig {
        window_s: 0.02,
        ..LteSearchConfig::default()
    });
    assert_eq!(s.search(&x, false).first().map(|c| c.pci), Some(301));
    g.bench_function("full_range_150khz", |b| b.iter(|| s.search(&x, false)));
    g.bench_function("near_known_offset", |b| {
        b.iter(|| s.search_near(&x, Some(42e3), false))
    });
    // The agent's search of an energy carrier: centred on the carrier the radio sees, ±30 kHz.
    g.bench_function("energy_carrier_30khz", |b| {
        b.iter(|| s.search_around(&x, 40e3, 30e3, false))
    });
    g.finish();
}

/// NR: 20 ms of a 30.72 MS/s capture holding a 30 kHz SSB; one raster point searched (resample
/// to 7.68 MS/s around it, then PSS/SSS/DM-RS over ±150 kHz).
fn bench_nr(c: &mut Criterion) {
    use dsp::cell::nr_search::{NrSearchConfig, NrSearcher};
    use dsp::synth::NrContent;
    let fs = 30.72e6;
    let content = NrContent::new(579, 1, 51, 0, 3).expect("cell");
    let mut e = OfdmEmitter::new(content, fs, 2e6 + 21e3, 1.0).expect("rate");
    let mut x = vec![Complex32::default(); (0.02 * fs) as usize];
    e.add_to(&mut x);
    add_awgn(&mut rng(4), &mut x, 0.5);
    let mut s = NrSearcher::new(30, NrSearchConfig::default());
    let y = dsp::resample::resample(&x, fs, 2e6, s.rate_hz(), usize::MAX).expect("resample");
    assert_eq!(s.search(&y, false).first().map(|c| c.pci), Some(579));
    let mut g = c.benchmark_group("nr_search_20ms_30.72msps");
    g.throughput(Throughput::Elements(x.len() as u64));
    g.sample_size(20);
    g.bench_function("one_raster_point", |b| {
        b.iter(|| {
            let y =
                dsp::resample::resample(&x, fs, 2e6, s.rate_hz(), usize::MAX).expect("resample");
            s.search(&y, false)
        });
    });
    // The radio's oscillator error known from an earlier SSB: ±22.5 kHz around it.
    assert_eq!(
        s.search_around(&y, 21e3, 22.5e3, false)
            .first()
            .map(|c| c.pci),
        Some(579)
    );
    g.bench_function("one_raster_point_known_offset", |b| {
        b.iter(|| {
            let y =
                dsp::resample::resample(&x, fs, 2e6, s.rate_hz(), usize::MAX).expect("resample");
            s.search_around(&y, 21e3, 22.5e3, false)
        });
    });
    g.finish();
}

criterion_group!(benches, bench, bench_nr);
