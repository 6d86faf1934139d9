//! The fuzz targets in a short, bounded run: every committed corpus entry (`tests/fuzz/corpus`,
//! grown by long AFL++ runs), then seeded mutations of them. A panic is a crash; an input that
//! takes over a second is a hang. `CENTINELA_FUZZ_EXECS` sets the mutations per target (default
//! 30,000, about a second each); the long runs are AFL++'s (see `tests/fuzz/README.md`).

use std::path::Path;
use std::time::{Duration, Instant};

use centinela_tests::fuzz::{Mutator, TARGETS};

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).expect("read corpus file"),
            )
        })
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no corpus for {name} in {}",
        dir.display()
    );
    files
}

fn run_one(name: &str, f: fn(&[u8]), input: &[u8], what: &str) -> Duration {
    let t0 = Instant::now();
    let r = std::panic::catch_unwind(|| f(input));
    let took = t0.elapsed();
    if r.is_err() {
        let dump = std::env::temp_dir().join(format!("centinela-fuzz-{name}-crash"));
        let _ = std::fs::write(&dump, input);
        panic!(
            "{name}: {what} crashed the target; input saved to {}",
            dump.display()
        );
    }
    assert!(
        took < Duration::from_secs(1),
        "{name}: {what} took {took:?} (a hang)"
    );
    took
}

#[test]
fn every_target_survives_its_corpus_and_seeded_mutations() {
    let execs: usize = std::env::var("CENTINELA_FUZZ_EXECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    for (name, f) in TARGETS {
        let seeds = corpus(name);
        for (file, input) in &seeds {
            run_one(name, f, input, &format!("corpus entry {file}"));
        }
        let mut m = Mutator::new(0x00c0_ffee ^ name.len() as u64);
        let mut slowest = Duration::ZERO;
        let t0 = Instant::now();
        for i in 0..execs {
            let (_, a) = &seeds[i % seeds.len()];
            let (_, b) = &seeds[(i * 7 + 3) % seeds.len()];
            let input = m.mutate(a, b, 16 * 1024);
            slowest = slowest.max(run_one(name, f, &input, &format!("mutation {i}")));
        }
        eprintln!(
            "{name}: {} corpus entries and {execs} mutations in {:.2} s, slowest {slowest:?}",
            seeds.len(),
            t0.elapsed().as_secs_f64()
        );
    }
}
