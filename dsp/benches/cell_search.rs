//! LTE cell search speed: 20 ms of 1.92 MS/s with a cell in it, over the default ±150 kHz
//! offset range and over ±15 kHz around a known offset (the agent's steady state). The ratio
//! of 20 ms to the time taken is the real-time factor.
//!
//! `cargo bench -p dsp --bench cell_search`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
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
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
