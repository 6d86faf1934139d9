//! Cross-check of the NR SSB search against waveforms built by py3gpp, an implementation we did
//! not write: random PCIs, offsets and timing, SINR −6, −3, 0, 3 and 10 dB per resource element.

use std::process::Command;

use centinela_tests::{output_ok, python_with_py3gpp};
use dsp::Complex32;
use dsp::cell::nr_search::{NrSearchConfig, NrSearcher};

#[test]
fn nr_pci_matches_py3gpp_waveforms() {
    let Some(py) = python_with_py3gpp() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("py/nr_ssb_py3gpp.py");
    output_ok(
        Command::new(&py)
            .arg(&script)
            .arg(dir.path())
            .args(["100", "2026"]),
        "python py3gpp",
    );
    let manifest: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).expect("manifest"))
            .expect("json");
    assert_eq!(manifest.len(), 100);
    let mut s = NrSearcher::new(30, NrSearchConfig::default());
    let mut right = std::collections::BTreeMap::<i64, (usize, usize)>::new();
    for case in &manifest {
        let bytes =
            std::fs::read(dir.path().join(case["file"].as_str().expect("file"))).expect("data");
        let x: Vec<Complex32> = bytes
            .chunks_exact(8)
            .map(|b| {
                Complex32::new(
                    f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                    f32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                )
            })
            .collect();
        let pci = case["pci"].as_u64().expect("pci") as u16;
        let sinr = case["sinr_db"].as_f64().expect("sinr") as i64;
        let cfo = case["cfo_hz"].as_f64().expect("cfo");
        let cells = s.search(&x, false);
        // Never a wrong PCI.
        assert!(cells.iter().all(|c| c.pci == pci), "{case}: {cells:?}");
        let e = right.entry(sinr).or_default();
        e.1 += 1;
        if let Some(c) = cells.first() {
            assert!((c.cfo_hz - cfo).abs() < 3e3, "{case}: cfo {}", c.cfo_hz);
            assert_eq!(c.i_ssb, 0, "{case}");
            e.0 += 1;
        }
    }
    eprintln!("PCI right by SINR (dB): {right:?}");
    // One SSB per waveform (no accumulation over bursts): measured 0/20 at −6 dB and 9/20 at
    // −3 dB on this seed; the floors below guard against regressions, not a goal.
    for (sinr, (ok, n)) in &right {
        let min = match *sinr {
            s if s >= 3 => *n,
            0 => n * 9 / 10,
            -3 => n * 3 / 10,
            _ => 0,
        };
        assert!(*ok >= min, "{sinr} dB: {ok}/{n}");
    }
}
