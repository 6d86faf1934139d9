//! The dsp benchmarks in one binary: `cargo bench -p dsp --bench dsp -- psd` (Welch against a bare
//! FFT) and `-- search` (LTE and NR cell search).

mod cell_search;
mod welch;

criterion::criterion_main!(welch::benches, cell_search::benches);
