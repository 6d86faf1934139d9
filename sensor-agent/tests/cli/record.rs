//! `record` and `scan --record` from the simulator hop by hop: valid SigMF (checked by the Python
//! reference library) that replays to the scene's cell, and to the very verdicts of the sweep
//! that recorded it.

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
            "--windows",
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

/// The equivalence check: a live sweep of every band of the Colombian plan, recorded
/// with `scan --record`, replays through `replay` to byte-identical output (plan, bands, cells,
/// events), on two device profiles. Only the health line's wall times are run-specific.
#[test]
fn a_recorded_sweep_replays_to_the_live_verdicts_on_every_colombian_band() {
    let dir = tempfile::tempdir().expect("tmp");
    for device in ["hackrf", "usrp-b2xx"] {
        let base = dir.path().join(device);
        let live = run_agent(
            Path::new(BIN),
            &[
                "scan",
                "--source",
                "sim",
                "--device",
                device,
                "--country",
                "CO",
                "--sweeps",
                "1",
                "--json",
                "--record",
                base.to_str().expect("utf8"),
            ],
        );
        assert!(
            live.status.success(),
            "{}",
            String::from_utf8_lossy(&live.stderr)
        );
        let meta = dir.path().join(format!("{device}-000000.sigmf-meta"));
        let replayed = run_agent(
            Path::new(BIN),
            &["replay", meta.to_str().expect("utf8"), "--json"],
        );
        assert!(
            replayed.status.success(),
            "{}",
            String::from_utf8_lossy(&replayed.stderr)
        );
        let (live, replayed) = (
            String::from_utf8_lossy(&live.stdout).to_string(),
            String::from_utf8_lossy(&replayed.stdout).to_string(),
        );
        let comparable = |text: &str| -> Vec<String> {
            text.lines()
                .map(|l| {
                    let mut v: serde_json::Value = serde_json::from_str(l).expect("json line");
                    if v["type"] == "health" {
                        let h = v["health"].as_object_mut().expect("health");
                        // Run-specific by definition: wall times.
                        h.remove("elapsed_s");
                        h.remove("stages");
                        v.to_string()
                    } else {
                        l.to_string()
                    }
                })
                .collect()
        };
        let (a, b) = (comparable(&live), comparable(&replayed));
        assert_eq!(a.len(), b.len(), "{device}: line counts differ");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x, y, "{device}: replay differs from the live sweep");
        }
        // Not a comparison of nothing: every band of the plan was judged, and the demo's
        // leaks were found and named.
        let lines: Vec<serde_json::Value> = a
            .iter()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let bands: std::collections::BTreeSet<&str> = lines
            .iter()
            .filter(|v| v["type"] == "band")
            .filter_map(|v| v["band"].as_str())
            .collect();
        for b in [
            "B28", "B5", "GSM850", "B2", "B25", "PCS1900", "B4", "B66", "B7", "B38", "B41", "n78",
        ] {
            assert!(
                bands.contains(b),
                "{device}: band {b} not judged: {bands:?}"
            );
        }
        let gaps = lines
            .iter()
            .filter(|v| v["kind"] == "gap" && v["payload"]["state"] == "open")
            .count();
        let jammers = lines.iter().filter(|v| v["kind"] == "jammer").count();
        assert!(
            gaps >= 3 && jammers >= 5,
            "{device}: {gaps} gaps, {jammers} jammer events"
        );
        assert!(
            lines.iter().any(|v| v["kind"] == "gap"
                && v["payload"]["detector"] == "sync"
                && v["payload"]["cell"]["pci"] == 45),
            "{device}: the B4 cell was not named"
        );
        if let Some(py) = python_with_sigmf() {
            let v = sigmf_python_read(&py, &meta);
            let hops = lines
                .iter()
                .find(|v| v["type"] == "health")
                .and_then(|v| v["health"]["hops"].as_u64());
            assert_eq!(
                v["frequencies"].as_array().map(Vec::len) as Option<usize>,
                hops.map(|h| h as usize)
            );
        }
    }
}

/// `record` (capture only) and its replay agree on every hop's length, GSM hops included (they
/// dwell long enough for the FCCH and SCH when cells will be searched), and the replay names
/// the demo's B4 cell as `scan` does.
#[test]
fn a_capture_only_recording_replays_every_band_of_the_plan() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = dir.path().join("co");
    let out = run_agent(
        Path::new(BIN),
        &[
            "record",
            "--source",
            "sim",
            "--band",
            "GSM850,B5,B4",
            "--device",
            "hackrf",
            "--out",
            base.to_str().expect("utf8"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replayed = run_agent(
        Path::new(BIN),
        &[
            "replay",
            base.with_extension("sigmf-meta").to_str().expect("utf8"),
            "--json",
        ],
    );
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&replayed.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let bands: Vec<&str> = lines
        .iter()
        .filter(|v| v["type"] == "band")
        .filter_map(|v| v["band"].as_str())
        .collect();
    for b in ["GSM850", "B5", "B4"] {
        assert!(bands.contains(&b), "{b} not judged: {bands:?}");
    }
    assert!(
        lines
            .iter()
            .any(|v| v["kind"] == "gap" && v["payload"]["cell"]["pci"] == 45),
        "the B4 cell is named"
    );
}

/// A later sweep starts from the oscillator error the pipeline learnt from the SSB of the first
/// (its NR search narrowed by it); the recording carries it, and the replay of that sweep judges
/// every band as the live sweep did, cells included.
#[test]
fn a_later_sweep_records_the_oscillator_error_it_started_from_and_replays_to_its_bands() {
    let dir = tempfile::tempdir().expect("tmp");
    let live = scan_recorded(&dir.path().join("n78"), "n78", 2);
    let global = |k: u32| -> serde_json::Value {
        let meta = dir.path().join(format!("n78-{k:06}.sigmf-meta"));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(meta).expect("meta")).expect("json");
        v["global"].clone()
    };
    assert!(global(0).get("centinela:radio_ppm").is_none());
    let ppm = global(1)["centinela:radio_ppm"]
        .as_f64()
        .expect("radio_ppm");
    // The simulated radio is exact: what the SSB measured is the base station's own error.
    assert!(ppm.abs() < 0.5, "{ppm}");
    let meta = dir.path().join("n78-000001.sigmf-meta");
    let replayed = run_agent(
        Path::new(BIN),
        &["replay", meta.to_str().expect("utf8"), "--json"],
    );
    assert!(
        replayed.status.success(),
        "{}",
        String::from_utf8_lossy(&replayed.stderr)
    );
    let bands = |text: &str, sweep: u64| -> Vec<serde_json::Value> {
        text.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
            .filter(|v| v["type"] == "band" && v["sweep"] == sweep)
            .collect()
    };
    let replayed = String::from_utf8_lossy(&replayed.stdout);
    let (a, b) = (bands(&live, 1), bands(&replayed, 1));
    assert!(!a.is_empty());
    assert_eq!(a, b);
    // Not a comparison of nothing: the n78 cell is named in the later sweep.
    assert!(
        a.iter()
            .flat_map(|v| v["cells"].as_array().cloned().unwrap_or_default())
            .any(|c| c["cell"]["pci"].is_u64()),
        "{a:?}"
    );
}

/// Every sweep of a run replays to its live lines, not only the first: a recorded sweep carries
/// what the gap and jammer trackers remembered when it began (`centinela:trackers`). Sweeps
/// after the first report no new gap or jammer, and neither do their replays (a replay from
/// empty trackers would open every gap again).
#[test]
fn every_sweep_of_a_run_replays_to_its_own_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let live = scan_recorded(&dir.path().join("s"), "B28,B4,n78", 3);
    let comparable = |l: &str| -> String {
        let mut v: serde_json::Value = serde_json::from_str(l).expect("json line");
        if v["type"] == "health" {
            let h = v["health"].as_object_mut().expect("health");
            h.remove("elapsed_s");
            h.remove("stages");
        }
        v.to_string()
    };
    // The live lines after the plan, one group per sweep (each ends with its health line).
    let mut sweeps: Vec<Vec<String>> = vec![Vec::new()];
    for l in live.lines().skip(1) {
        let c = comparable(l);
        let end = c.contains("\"type\":\"health\"");
        sweeps.last_mut().expect("a sweep").push(c);
        if end {
            sweeps.push(Vec::new());
        }
    }
    sweeps.pop();
    assert_eq!(sweeps.len(), 3);
    for (k, want) in sweeps.iter().enumerate() {
        let meta = dir.path().join(format!("s-{k:06}.sigmf-meta"));
        let replayed = run_agent(
            Path::new(BIN),
            &["replay", meta.to_str().expect("utf8"), "--json"],
        );
        assert!(
            replayed.status.success(),
            "{}",
            String::from_utf8_lossy(&replayed.stderr)
        );
        let got: Vec<String> = String::from_utf8_lossy(&replayed.stdout)
            .lines()
            .skip(1)
            .map(comparable)
            .collect();
        assert_eq!(&got, want, "sweep {k} replays to other lines");
        let events = got
            .iter()
            .filter(|l| l.contains("\"type\":\"event\""))
            .count();
        if k == 0 {
            assert!(events >= 5, "sweep 0: {events} events");
        } else {
            assert_eq!(events, 0, "sweep {k}: nothing new after the first sweep");
        }
    }
}

/// `scan --record BASE` of `bands` on the HackRF profile for `sweeps` sweeps: its JSON lines.
fn scan_recorded(base: &Path, bands: &str, sweeps: u32) -> String {
    let live = run_agent(
        Path::new(BIN),
        &[
            "scan",
            "--source",
            "sim",
            "--device",
            "hackrf",
            "--bands",
            bands,
            "--sweeps",
            &sweeps.to_string(),
            "--json",
            "--record",
            base.to_str().expect("utf8"),
        ],
    );
    assert!(
        live.status.success(),
        "{}",
        String::from_utf8_lossy(&live.stderr)
    );
    String::from_utf8_lossy(&live.stdout).to_string()
}
