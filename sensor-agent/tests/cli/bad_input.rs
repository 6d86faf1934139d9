//! Bad input of every kind: one line on stderr naming the file and the problem, exit code 2,
//! never a panic.

use std::path::Path;

use std::time::Duration;

use centinela_tests::{run_agent, run_agent_within, write_recording};

const BIN: &str = env!("CARGO_BIN_EXE_sensor-agent");

const GOOD_META: &str = r#"{"global":{"core:datatype":"cf32_le","core:sample_rate":1000000,"core:version":"1.2.0"},"captures":[{"core:sample_start":0,"core:frequency":806000000}],"annotations":[]}"#;

fn expect_bad(args: &[&str], needles: &[&str]) {
    // Every bad recording is refused at once: a hang or a memory blow-up is a failure too.
    let out = run_agent_within(Path::new(BIN), args, Duration::from_secs(20));
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

/// The metadata of a recording with `global` and `captures` as given (JSON text).
fn meta(global_extra: &str, captures: &str) -> String {
    format!(
        r#"{{"global":{{"core:datatype":"cf32_le","core:sample_rate":1000000,"core:version":"1.2.0"{global_extra}}},"captures":{captures},"annotations":[]}}"#
    )
}

/// Every field a recording declares is bounded before it sizes anything: each of these got no
/// clean error before (a sample rate of 1 or 5e-324 grew to 24 GB, 10^6 captures or a FIFO ran
/// past 30 s, a garbage datetime became 1970, a negative frequency gave events with negative
/// `center_hz`, header bytes near 2^64 wrapped a check). Each is exit 2 and one line naming the
/// file and the field.
#[test]
fn replay_bounds_every_field_a_recording_declares() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let samples = vec![0x3fu8; 8 * 4096];
    let cap0 = r#"[{"core:sample_start":0,"core:frequency":806000000}]"#;
    let rate = |r: &str| meta("", cap0).replace("1000000", r);
    let many = |n: usize| {
        let caps: Vec<String> = (0..n)
            .map(|i| format!(r#"{{"core:sample_start":{i}}}"#))
            .collect();
        meta("", &format!("[{}]", caps.join(",")))
    };
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("rate1", rate("1"), vec!["core:sample_rate", "1000 to"]),
        ("rate_tiny", rate("5e-324"), vec!["core:sample_rate"]),
        ("rate_huge", rate("1e12"), vec!["core:sample_rate"]),
        ("rate_text", rate("\"fast\""), vec!["core:sample_rate"]),
        (
            "rate_neg",
            rate("-2000000"),
            vec!["core:sample_rate", "positive"],
        ),
        ("caps_many", many(20_000), vec!["captures", "20000 entries"]),
        (
            "caps_million",
            many(1_000_000),
            vec!["metadata file", "bytes"],
        ),
        (
            "dt_garbage",
            meta(
                "",
                r#"[{"core:sample_start":0,"core:datetime":"yesterday at noon"}]"#,
            ),
            vec!["captures[0].core:datetime", "RFC 3339"],
        ),
        (
            "dt_number",
            meta(
                "",
                r#"[{"core:sample_start":0,"core:datetime":1790000000}]"#,
            ),
            vec!["captures[0].core:datetime", "string"],
        ),
        (
            "freq_neg",
            meta(
                "",
                r#"[{"core:sample_start":0,"core:frequency":-806000000}]"#,
            ),
            vec!["captures[0].core:frequency"],
        ),
        (
            "freq_huge",
            meta("", r#"[{"core:sample_start":0,"core:frequency":1e308}]"#),
            vec!["captures[0].core:frequency"],
        ),
        (
            "hdr_2_64",
            meta(
                "",
                r#"[{"core:sample_start":0,"core:header_bytes":18446744073709551615}]"#,
            ),
            vec!["header bytes", "core:header_bytes"],
        ),
        (
            "hdr_wrap",
            meta(
                "",
                r#"[{"core:sample_start":0,"core:header_bytes":9223372036854775808},{"core:sample_start":1,"core:header_bytes":9223372036854775808}]"#,
            ),
            vec!["more than 2^64", "header bytes"],
        ),
        (
            "start_huge",
            meta("", r#"[{"core:sample_start":18446744073709551615}]"#),
            vec!["core:sample_start", "holds only"],
        ),
        (
            "start_order",
            meta("", r#"[{"core:sample_start":10},{"core:sample_start":5}]"#),
            vec!["captures[1].core:sample_start", "does not follow"],
        ),
        (
            "start_neg",
            meta("", r#"[{"core:sample_start":-1}]"#),
            vec!["captures[0].core:sample_start"],
        ),
        (
            "version2",
            meta("", cap0).replace("1.2.0", "2.0.0"),
            vec!["core:version", "1.x"],
        ),
        (
            "channels",
            meta(",\"core:num_channels\":2", cap0),
            vec!["core:num_channels"],
        ),
        (
            "dtype_real",
            meta("", cap0).replace("cf32_le", "rf32_le"),
            vec!["unsupported datatype `rf32_le`"],
        ),
        (
            "no_global",
            r#"{"captures":[{"core:sample_start":0}]}"#.into(),
            vec!["global"],
        ),
        (
            "caps_object",
            meta("", r#"{"core:sample_start":0}"#),
            vec!["captures"],
        ),
        ("caps_empty", meta("", "[]"), vec!["`captures` is empty"]),
        (
            "deep_json",
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)),
            vec!["invalid JSON"],
        ),
        (
            "not_utf8",
            String::from_utf8_lossy(b"{\"global\":\xff}").into_owned(),
            vec!["invalid JSON"],
        ),
    ];
    for (name, m, needles) in &cases {
        let p = write_recording(d, name, m, &samples);
        let mut want = vec![*name];
        want.extend(needles.iter().copied());
        expect_bad(&["replay", p.to_str().expect("utf8"), "--json"], &want);
    }
    // Data files that are no recordings: empty, a FIFO, a device.
    let p = write_recording(d, "empty", &meta("", cap0), &[]);
    expect_bad(
        &["replay", p.to_str().expect("utf8")],
        &["empty.sigmf-data", "no samples"],
    );
    let p = write_recording(d, "fifo", &meta("", cap0), &[]);
    std::fs::remove_file(d.join("fifo.sigmf-data")).expect("rm");
    let made = std::process::Command::new("mkfifo")
        .arg(d.join("fifo.sigmf-data"))
        .status()
        .expect("mkfifo");
    assert!(made.success());
    expect_bad(
        &["replay", p.to_str().expect("utf8")],
        &["fifo.sigmf-data", "not a regular file"],
    );
    let p = write_recording(d, "zero", &meta("", cap0), &[]);
    std::fs::remove_file(d.join("zero.sigmf-data")).expect("rm");
    std::os::unix::fs::symlink("/dev/zero", d.join("zero.sigmf-data")).expect("symlink");
    expect_bad(
        &["replay", p.to_str().expect("utf8")],
        &["zero.sigmf-data", "not a regular file"],
    );
    std::fs::create_dir(d.join("dirmeta.sigmf-meta")).expect("dir");
    std::fs::write(d.join("dirmeta.sigmf-data"), &samples).expect("data");
    expect_bad(
        &[
            "replay",
            d.join("dirmeta.sigmf-meta").to_str().expect("utf8"),
        ],
        &["dirmeta.sigmf-meta", "not a regular file"],
    );
    // The agent's `sigmf:` source and `psd` read through the same checks.
    let p = write_recording(d, "psd_rate", &rate("1"), &samples);
    expect_bad(
        &["psd", p.to_str().expect("utf8")],
        &["psd_rate.sigmf-meta", "core:sample_rate"],
    );
}

/// A recording that is valid but odd is replayed, with a warning that says what is odd: NaN and
/// infinite samples (read as 0, counted), 8-bit data declared as cf32, data that is all zeros.
#[test]
fn odd_but_valid_recordings_replay_with_a_warning() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let cap0 = r#"[{"core:sample_start":0,"core:frequency":806000000}]"#;
    let mut nan = Vec::new();
    for i in 0..4096u32 {
        let v = if i % 64 == 0 {
            f32::NAN
        } else if i % 64 == 1 {
            f32::INFINITY
        } else {
            ((i % 7) as f32 - 3.0) / 10.0
        };
        nan.extend_from_slice(&v.to_le_bytes());
        nan.extend_from_slice(&(-v).to_le_bytes());
    }
    // What an RTL-SDR writes (cu8 around 127.5), declared as cf32.
    let bytes8: Vec<u8> = (0..8 * 4096u32)
        .map(|i| if i % 2 == 0 { 127 } else { 128 } + (i % 3) as u8)
        .collect();
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        ("nan", nan, &["NaN or infinite", "read as 0"]),
        ("bytes8", bytes8, &["is the data really `cf32_le`"]),
        ("zeros", vec![0u8; 8 * 4096], &["all zero"]),
    ];
    for (name, data, needles) in cases {
        let p = write_recording(d, name, &meta("", cap0), &data);
        let out = run_agent_within(
            Path::new(BIN),
            &["replay", p.to_str().expect("utf8")],
            Duration::from_secs(30),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{name}: {err}");
        for n in needles {
            assert!(err.contains(n), "{name}: `{n}` not in {err}");
        }
        assert!(err.contains(&format!("{name}.sigmf-data")), "{name}: {err}");
    }
    // A plain recording gets no warning.
    let mut plain = Vec::new();
    for i in 0..4096u32 {
        let v = ((i * 7919 % 201) as f32 - 100.0) / 400.0;
        plain.extend_from_slice(&v.to_le_bytes());
        plain.extend_from_slice(&(v * 0.5).to_le_bytes());
    }
    let p = write_recording(d, "plain", &meta("", cap0), &plain);
    let out = run_agent_within(
        Path::new(BIN),
        &["replay", p.to_str().expect("utf8")],
        Duration::from_secs(30),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        !err.contains("WARN"),
        "no warning for a plain recording: {err}"
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

/// A failure no input could have avoided is exit 1, not 2: here the evidence clip directory
/// cannot be made (under /proc nothing can).
#[test]
fn runtime_failures_are_exit_1() {
    let out = run_agent(
        Path::new(BIN),
        &[
            "scan",
            "--source",
            "sim",
            "--bands",
            "B4",
            "--clips",
            "/proc/centinela-clips",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("evidence clip directory /proc/centinela-clips"),
        "{err}"
    );
}

/// A recorded sweep's settings size what its replay reads: a dwell edited in the metadata (a
/// million seconds, or merely other than what was captured) is refused at once, naming it.
#[test]
fn a_recorded_sweep_whose_settings_disagree_with_its_captures_is_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let base = dir.path().join("one");
    let out = run_agent(
        Path::new(BIN),
        &[
            "record",
            "--source",
            "sim",
            "--center-hz",
            "806e6",
            "--rate",
            "1e6",
            "--seconds",
            "0.01",
            "--out",
            base.to_str().expect("utf8"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta_path = base.with_extension("sigmf-meta");
    let text = std::fs::read_to_string(&meta_path).expect("meta");
    for (dwell, needle) in [(1e6, "dwell_s"), (0.02, "holds 10000 samples")] {
        let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
        v["global"]["centinela:settings"]["dwell_s"] = serde_json::json!(dwell);
        let edited = dir.path().join(format!("edited-{dwell}"));
        std::fs::write(edited.with_extension("sigmf-meta"), v.to_string()).expect("write");
        std::fs::copy(
            base.with_extension("sigmf-data"),
            edited.with_extension("sigmf-data"),
        )
        .expect("copy");
        expect_bad(
            &[
                "replay",
                edited.with_extension("sigmf-meta").to_str().expect("utf8"),
            ],
            &[needle],
        );
    }
}
