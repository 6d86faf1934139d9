//! Every shared recording through `sensor-agent replay` and `psd`: opens, reads, analyses, and
//! gives the same output twice.

use std::path::Path;

use centinela_tests::{index, run_agent, testdata};
use hardware::sigmf::SigmfSource;
use hardware::{IqSource, ReadOutcome};

const BIN: &str = env!("CARGO_BIN_EXE_sensor-agent");

fn recording(data: &Path, name: &str) -> String {
    data.join("iq")
        .join(format!("{name}.sigmf-meta"))
        .display()
        .to_string()
}

#[test]
fn every_shared_recording_opens_and_reads_as_indexed() {
    let Some(data) = testdata() else { return };
    let rows = index(&data);
    assert!(rows.len() >= 17, "INDEX.md lists {} recordings", rows.len());
    for row in rows {
        let path = recording(&data, &row.recording);
        let mut src = SigmfSource::open(Path::new(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        let meta = src.metadata().clone();
        assert_eq!(meta.datatype.as_str(), row.datatype, "{path}");
        assert!((meta.sample_rate_hz - row.rate).abs() < 1.0, "{path}");
        let center = meta.captures[0].frequency_hz;
        match row.center_hz {
            Some(f) => assert!((center.expect("centre") - f).abs() < 1.0, "{path}"),
            None => assert_eq!(center, None, "{path}: baseband recording"),
        }
        // Read it all: the sample count matches the file, samples are finite and not silent,
        // and offset-binary data is centred (mean well below the RMS).
        let data_len = std::fs::metadata(&meta.data_path).expect("data").len();
        let headers: u64 = meta.captures.iter().map(|c| c.header_bytes).sum();
        let expect = (data_len - headers) / meta.datatype.sample_bytes() as u64;
        let mut buf = vec![dsp::Complex32::default(); 1 << 16];
        let (mut n, mut sum, mut power) = (0u64, num_complex::Complex64::default(), 0f64);
        loop {
            match src.read(&mut buf).expect("read") {
                ReadOutcome::Samples(k) => {
                    for x in &buf[..k] {
                        assert!(x.re.is_finite() && x.im.is_finite());
                        sum += num_complex::Complex64::new(f64::from(x.re), f64::from(x.im));
                        power += f64::from(x.norm_sqr());
                    }
                    n += k as u64;
                }
                ReadOutcome::EndOfData => break,
                other => panic!("{path}: unexpected {other:?}"),
            }
        }
        assert_eq!(n, expect, "{path}");
        let mean = sum.norm() / n as f64;
        let rms = (power / n as f64).sqrt();
        assert!(rms > 1e-4, "{path}: rms {rms}");
        assert!(mean < 0.5 * rms, "{path}: DC {mean} vs rms {rms}");
    }
}

#[test]
fn replay_of_every_recording_emits_wire_format_and_is_deterministic() {
    let Some(data) = testdata() else { return };
    for row in index(&data) {
        let path = recording(&data, &row.recording);
        let a = run_agent(
            Path::new(BIN),
            &["replay", &path, "--json", "--no-progress"],
        );
        assert!(
            a.status.success(),
            "{path}: {}",
            String::from_utf8_lossy(&a.stderr)
        );
        let b = run_agent(
            Path::new(BIN),
            &["replay", &path, "--json", "--no-progress"],
        );
        assert_eq!(a.stdout, b.stdout, "{path}: replay is not deterministic");
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&a.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        let obs: Vec<_> = lines
            .iter()
            .filter(|v| v["type"] == "observation")
            .collect();
        assert!(!obs.is_empty(), "{path}: no observation");
        for o in &obs {
            assert_eq!(
                o["unit"], "dbfs",
                "{path}: uncalibrated replay must say dbfs"
            );
            assert!(o["floor_db_per_hz"].as_f64().is_some_and(f64::is_finite));
        }
        for e in lines.iter().filter(|v| v["type"] == "event") {
            let p = &e["payload"];
            assert_eq!(p["schema"], "centinela.gap/1");
            assert!(
                e["topic"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("centinela/v1/local/sensor-1/"))
            );
            let id = uuid::Uuid::parse_str(p["event_id"].as_str().expect("id")).expect("uuid");
            assert_eq!(id.get_version_num(), 7);
            assert!(p["margin_db"].as_f64().is_some_and(|m| m > 0.0));
        }
        if row.grade == "N" {
            let carriers: usize = obs
                .iter()
                .map(|o| o["carriers"].as_array().map_or(0, Vec::len))
                .sum();
            assert_eq!(carriers, 0, "{path}: noise-only recording shows carriers");
        }
    }
}

#[test]
fn wideband_nr_capture_shows_its_carrier_in_n78() {
    let Some(data) = testdata() else { return };
    let path = recording(&data, "nr/singtel_n78_100MHz_ssb_v2");
    let out = run_agent(
        Path::new(BIN),
        &[
            "replay",
            &path,
            "--json",
            "--no-progress",
            "--country",
            "CO",
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let obs: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("line")).expect("json");
    let carriers = obs["carriers"].as_array().expect("carriers");
    // The 100 MHz NR carrier (98.28 MHz occupied) around 3500 MHz.
    let nr = carriers
        .iter()
        .find(|c| c["technology"] == "nr")
        .unwrap_or_else(|| panic!("no NR carrier in {carriers:?}"));
    assert_eq!(nr["band"], "n78");
    let bw = nr["bandwidth_hz"].as_f64().expect("bw");
    assert!((85e6..100e6).contains(&bw), "bandwidth {bw}");
    let c = nr["center_hz"].as_f64().expect("centre");
    assert!((c - 3500e6).abs() < 2e6, "centre {c}");
}

#[test]
fn psd_csv_is_rtl_power_shaped() {
    let Some(data) = testdata() else { return };
    let path = recording(&data, "lte/f1890_s1.92_g0_1s_rtlsdr");
    let out = run_agent(
        Path::new(BIN),
        &["psd", &path, "--fft", "512", "--interval-s", "0.25"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    // 1 s at 0.25 s per line.
    assert_eq!(lines.len(), 4, "{text}");
    for l in lines {
        let f: Vec<&str> = l.split(", ").collect();
        assert_eq!(f.len(), 6 + 512);
        assert_eq!(f[0].len(), 10, "date {}", f[0]);
        assert_eq!(f[1].len(), 8, "time {}", f[1]);
        let lo: f64 = f[2].parse().expect("lo");
        let hi: f64 = f[3].parse().expect("hi");
        let step: f64 = f[4].parse().expect("step");
        assert!((lo - (1890e6 - 0.96e6)).abs() < 1.0 && (hi - (1890e6 + 0.96e6)).abs() < 1.0);
        assert!((step - 1.92e6 / 512.0).abs() < 0.01);
        let samples: u64 = f[5].parse().expect("samples");
        assert!((470_000..=480_000).contains(&samples), "{samples}");
        // Per-bin powers sum to the recording's power (Parseval on real data).
        let total: f64 = f[6..]
            .iter()
            .map(|v| 10f64.powf(v.parse::<f64>().expect("dB") / 10.0))
            .sum();
        assert!(total > 1e-4 && total < 2.0, "{total}");
    }
}
