//! Bad input of every kind: one line on stderr naming the file and the problem, exit code 2,
//! never a panic.

use std::path::Path;

use centinela_tests::{run_agent, write_recording};

const BIN: &str = env!("CARGO_BIN_EXE_sensor-agent");

const GOOD_META: &str = r#"{"global":{"core:datatype":"cf32_le","core:sample_rate":1000000,"core:version":"1.2.0"},"captures":[{"core:sample_start":0,"core:frequency":806000000}],"annotations":[]}"#;

fn expect_bad(args: &[&str], needles: &[&str]) {
    let out = run_agent(Path::new(BIN), args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: stderr {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one line, got {err}");
    for n in needles {
        assert!(err.contains(n), "{args:?}: `{n}` not in {err}");
    }
}

#[test]
fn replay_rejects_each_kind_of_bad_recording() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let samples = vec![0u8; 8 * 4096];

    // Missing data file.
    let p = write_recording(d, "nodata", GOOD_META, &samples);
    std::fs::remove_file(d.join("nodata.sigmf-data")).expect("rm");
    expect_bad(
        &["replay", p.to_str().expect("utf8")],
        &["nodata.sigmf-data", "No such file"],
    );

    // Missing recording altogether.
    let missing = d.join("absent.sigmf-meta");
    expect_bad(
        &["replay", missing.to_str().expect("utf8")],
        &["absent.sigmf-meta"],
    );

    // Truncated data: half a sample at the end.
    let mut short = samples.clone();
    short.truncate(8 * 100 + 5);
    let p = write_recording(d, "trunc", GOOD_META, &short);
    expect_bad(
        &["replay", p.to_str().expect("utf8")],
        &["trunc.sigmf-data", "truncated", "805"],
    );

    // Unknown datatype.
    let meta = GOOD_META.replace("cf32_le", "cf48_q");
    let p = write_recording(d, "dtype", &meta, &samples);
    expect_bad(
        &["replay", p.to_str().expect("utf8")],
        &["dtype.sigmf-meta", "unsupported datatype `cf48_q`"],
    );

    // Bad JSON.
    let p = write_recording(d, "json", "{\"global\": {", &samples);
    expect_bad(
        &["replay", p.to_str().expect("utf8")],
        &["json.sigmf-meta", "invalid JSON", "line 1"],
    );

    // Sample rate zero.
    let meta = GOOD_META.replace("1000000", "0");
    let p = write_recording(d, "rate0", &meta, &samples);
    expect_bad(
        &["replay", p.to_str().expect("utf8")],
        &["rate0.sigmf-meta", "core:sample_rate", "positive"],
    );

    // Header larger than the file.
    let meta = GOOD_META.replace(
        "\"core:sample_start\":0,",
        "\"core:sample_start\":0,\"core:header_bytes\":1000000,",
    );
    let p = write_recording(d, "header", &meta, &samples);
    expect_bad(
        &["replay", p.to_str().expect("utf8")],
        &["header.sigmf-data", "header bytes"],
    );

    // A required field of the wrong type.
    let meta = GOOD_META.replace("806000000", "\"806 MHz\"");
    let p = write_recording(d, "freq", &meta, &samples);
    expect_bad(
        &["replay", p.to_str().expect("utf8")],
        &["freq.sigmf-meta", "captures[0].core:frequency"],
    );

    // A good one passes, to show the fixtures are otherwise right.
    let p = write_recording(d, "good", GOOD_META, &samples);
    let out = run_agent(
        Path::new(BIN),
        &["replay", p.to_str().expect("utf8"), "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_options_are_exit_2_with_a_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let p = write_recording(dir.path(), "ok", GOOD_META, &vec![0u8; 8 * 4096]);
    let p = p.to_str().expect("utf8");
    expect_bad(
        &["replay", p, "--fft", "1000"],
        &["fft_size", "power of two"],
    );
    expect_bad(&["replay", p, "--country", "ZZ"], &["unknown country `ZZ`"]);
    expect_bad(&["replay", p, "--bands", "B999"], &["unknown band `B999`"]);
    expect_bad(&["replay", p, "--facility", "a/b"], &["facility_id", "a/b"]);
    expect_bad(&["psd", p, "--overlap", "1.5"], &["overlap"]);
    expect_bad(
        &["bands", "--device", "toaster"],
        &["unknown device `toaster`"],
    );
    expect_bad(
        &["scan", "--source", "sim:/nonexistent/scene.toml"],
        &["/nonexistent/scene.toml"],
    );
    expect_bad(
        &["scan", "--source", "carrier-pigeon"],
        &["unknown source `carrier-pigeon`"],
    );
    let out = run_agent(Path::new(BIN), &["replay"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn bands_says_what_an_rtl_sdr_cannot_see() {
    let out = run_agent(
        Path::new(BIN),
        &["bands", "--country", "CO", "--device", "rtlsdr"],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for b in ["B4", "B66", "B7", "B41", "n78"] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("warning:") && l.contains("cannot see") && l.contains(b)),
            "no warning for {b}:\n{text}"
        );
    }
    assert!(
        text.lines()
            .any(|l| l.starts_with("B28") && l.contains("covered")),
        "{text}"
    );
    let out = run_agent(
        Path::new(BIN),
        &["bands", "--country", "CO", "--device", "hackrf", "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(0));
    assert!(
        v["bands"]
            .as_array()
            .expect("bands")
            .iter()
            .all(|b| b["coverage"] == "covered")
    );
}
