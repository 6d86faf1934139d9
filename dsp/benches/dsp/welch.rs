//! Welch pipeline throughput against a bare rustfft loop over the same input, in one run so that
//! the ratio holds on a noisy shared machine.
//!
//! `cargo bench -p dsp --bench dsp -- psd`; samples/s are printed by criterion as element throughput.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use dsp::Complex32;
use dsp::psd::{Averaging, Welch, WelchConfig};
use dsp::synth::{add_awgn, rng};
use dsp::window::WindowKind;
use rustfft::FftPlanner;

const SAMPLES: usize = 1 << 20;

fn input() -> Vec<Complex32> {
    let mut x = vec![Complex32::default(); SAMPLES];
    add_awgn(&mut rng(1), &mut x, 1.0);
    x
}

fn bench(c: &mut Criterion) {
    let x = input();
    let mut g = c.benchmark_group("psd");
    g.throughput(Throughput::Elements(SAMPLES as u64));
    for n in [1024usize, 2048, 4096] {
        // Baseline: one in-place FFT per N input samples, nothing else.
        let fft = FftPlanner::<f32>::new().plan_fft_forward(n);
        let mut work = vec![Complex32::default(); n];
        let mut scratch = vec![Complex32::default(); fft.get_inplace_scratch_len()];
        g.bench_with_input(BenchmarkId::new("bare_fft", n), &n, |b, &n| {
            b.iter(|| {
                for seg in x.chunks_exact(n) {
                    work.copy_from_slice(seg);
                    fft.process_with_scratch(&mut work, &mut scratch);
                }
                std::hint::black_box(&work);
            });
        });
        for (label, overlap) in [("welch_overlap0", 0.0), ("welch_overlap50", 0.5)] {
            let mut w = Welch::new(WelchConfig {
                fft_size: n,
                overlap,
                window: WindowKind::Hann,
                averaging: Averaging::Segments(64),
                sample_rate_hz: 2.4e6,
                center_hz: 0.0,
            })
            .expect("config");
            g.bench_with_input(BenchmarkId::new(label, n), &n, |b, _| {
                b.iter(|| {
                    let mut frames = 0usize;
                    w.process(&x, |_| frames += 1);
                    std::hint::black_box(frames);
                });
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
