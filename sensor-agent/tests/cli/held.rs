//! Which hops a sweep holds for its cell search and clips: letting go of the hops at the
//! thermal floor changes no verdict, and the evidence clips of a range with a GSM band (whose
//! hops hold one dwell, or the GSM search's whole dwell) replay to their gaps.

use std::path::Path;

use centinela_tests::run_agent;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sensor-agent");

fn scan(args: &[&str]) -> Vec<Value> {
    let mut all = vec!["scan", "--device", "hackrf", "--json"];
    all.extend_from_slice(args);
    let out = run_agent(Path::new(BIN), &all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// A line without what differs from one run to the next: clock, event ids, wall times and the
/// count of hops held.
fn comparable(mut v: Value) -> String {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                for k in [
                    "observed_at",
                    "event_id",
                    "elapsed_s",
                    "stages",
                    "hops_held",
                ] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut v);
    v.to_string()
}

fn hops_held(lines: &[Value]) -> u64 {
    lines
        .iter()
        .find(|v| v["type"] == "health")
        .and_then(|v| v["health"]["hops_held"].as_u64())
        .expect("a health line")
}

#[test]
fn letting_go_of_quiet_hops_changes_no_verdict_of_the_colombian_plan() {
    let plan = ["--source", "sim", "--country", "CO", "--dwell-ms", "20"];
    let lean = scan(&plan);
    let mut all_args = plan.to_vec();
    all_args.push("--keep-quiet-hops");
    let all = scan(&all_args);
    let (a, b): (Vec<String>, Vec<String>) = (
        lean.iter().cloned().map(comparable).collect(),
        all.iter().cloned().map(comparable).collect(),
    );
    assert_eq!(a, b, "the same bands, cells and events");
    // Not a comparison of nothing: the demo's leaks were named, in n78 too.
    for pci in [45, 122, 579] {
        assert!(
            lean.iter().any(|v| v["kind"] == "gap"
                && v["payload"]["detector"] == "sync"
                && v["payload"]["cell"]["pci"] == pci),
            "PCI {pci} not named"
        );
    }
    // n78 alone is 41 hops on a HackRF; its one 40 MHz carrier needs a handful.
    let (held, kept_all) = (hops_held(&lean), hops_held(&all));
    assert!(kept_all >= 41, "{kept_all}");
    assert!(held <= 8, "{held} hops held at once");
}

#[test]
fn clips_of_a_range_with_a_gsm_band_replay_to_their_gaps() {
    // The demo with the GSM-era jammer off: its GSM850 and B5 cells leak.
    let tmp = tempfile::tempdir().expect("tmp");
    let scene = run_agent(Path::new(BIN), &["scene"]);
    assert!(scene.status.success());
    let text = String::from_utf8_lossy(&scene.stdout).replacen(
        "condition = \"on\"",
        "condition = \"off\"",
        1,
    );
    let path = tmp.path().join("no-jammer.toml");
    std::fs::write(&path, text).expect("scene");
    let source = format!("sim:{}", path.display());
    let clips = tmp.path().join("clips");
    let lines = scan(&[
        "--source",
        &source,
        "--bands",
        "GSM850,B5",
        "--clips",
        clips.to_str().expect("utf8"),
    ]);
    let critical: Vec<&Value> = lines
        .iter()
        .filter(|v| v["kind"] == "gap" && v["payload"]["severity"] == "critical")
        .map(|v| &v["payload"])
        .collect();
    let keys: Vec<&str> = critical
        .iter()
        .filter_map(|g| g["gap_key"].as_str())
        .collect();
    // The LTE carrier is B5's whichever band is listed first; the GSM carrier seen by energy
    // and the cell its FCCH and SCH name are two gaps.
    for want in [
        "B5/lte/881.5MHz",
        "B5/lte/pci87/881.5MHz",
        "GSM850/gsm/891.6MHz",
        "GSM850/gsm/bsic35/891.6MHz",
    ] {
        assert!(keys.contains(&want), "{want} not in {keys:?}");
    }
    let mut names: Vec<&str> = critical
        .iter()
        .filter_map(|g| g["evidence"]["clip"].as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), critical.len(), "one clip per gap: {names:?}");
    for gap in &critical {
        let clip = clips.join(gap["evidence"]["clip"].as_str().expect("clip"));
        assert_eq!(
            hardware::sigmf::file_sha512(&clip.with_extension("sigmf-data")).expect("hash"),
            gap["evidence"]["sha512"].as_str().expect("sha512"),
            "{}: the event's hash is its clip's",
            gap["gap_key"]
        );
        let replayed = run_agent(
            Path::new(BIN),
            &["replay", clip.to_str().expect("utf8"), "--json"],
        );
        assert!(
            replayed.status.success(),
            "{}",
            String::from_utf8_lossy(&replayed.stderr)
        );
        let again = String::from_utf8_lossy(&replayed.stdout);
        assert!(
            again.lines().any(|l| {
                let v: Value = serde_json::from_str(l).expect("json");
                v["kind"] == "gap"
                    && v["payload"]["gap_key"] == gap["gap_key"]
                    && v["payload"]["severity"] == "critical"
            }),
            "the clip replays to gap {}: {again}",
            gap["gap_key"]
        );
    }
}
