//! `record` from the simulator hop by hop: valid SigMF (checked by the Python reference library)
//! that replays to the scene's cell.

use std::path::Path;

use centinela_tests::{python_with_sigmf, run_agent, sigmf_python_read};

const BIN: &str = env!("CARGO_BIN_EXE_sensor-agent");

#[test]
fn recorded_sweep_is_valid_sigmf_and_replays_to_the_scene() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = dir.path().join("b28");
    let base_s = base.to_str().expect("utf8");
    let out = run_agent(
        Path::new(BIN),
        &[
            "record",
            "--source",
            "sim",
            "--band",
            "B28",
            "--device",
            "rtlsdr",
            "--rate",
            "2.4e6",
            "--seconds",
            "0.05",
            "--out",
            base_s,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = base.with_extension("sigmf-meta");
    if let Some(py) = python_with_sigmf() {
        let v = sigmf_python_read(&py, &meta);
        // 45 MHz at 1.92 MHz usable per hop: 24 captures of 120 000 samples.
        assert_eq!(v["frequencies"].as_array().map(Vec::len), Some(24));
        assert_eq!(v["count"], 24 * 120_000);
    }
    let out = run_agent(
        Path::new(BIN),
        &[
            "replay",
            meta.to_str().expect("utf8"),
            "--json",
            "--no-progress",
            "--country",
            "CO",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let captures: std::collections::BTreeSet<u64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|v| v["type"] == "observation")
        .filter_map(|v| v["capture"].as_u64())
        .collect();
    assert_eq!(captures.len(), 24);
    // The demo's B28 cell sits under the degraded jammer's floor: no hop shows it by energy,
    // and the hop holding its centre (778 MHz) names it by sync.
    let cells: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .filter(|v| v["type"] == "cells")
        .flat_map(|v| v["cells"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(
        cells
            .iter()
            .any(|c| c["band"] == "B28" && c["cell"]["pci"] == 210),
        "PCI 210 not found: {cells:?}"
    );
    assert!(cells.iter().all(|c| c["cell"]["pci"] == 210), "{cells:?}");
}
