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
            "0.02",
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
        // 45 MHz at 1.92 MHz usable per hop: 24 captures of 48 000 samples.
        assert_eq!(v["frequencies"].as_array().map(Vec::len), Some(24));
        assert_eq!(v["count"], 24 * 48_000);
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
    // Every hop is inside the 10 MHz LTE carrier at 778 MHz or not: the hops that fall inside
    // see a flat, fully occupied spectrum (no edges to find), the one that straddles its edge
    // sees a carrier in B28.
    assert!(
        text.lines().any(|l| l.contains("\"band\":\"B28\"")),
        "no B28 carrier in the replay"
    );
}
