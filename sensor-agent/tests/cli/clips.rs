//! Evidence clips: a gap that opens critical leaves a SigMF clip of its hops, named with its
//! SHA-512 in the gap event; `replay` of the clip reproduces the gap; a clip whose samples were
//! changed is refused; the disk budget deletes the oldest clips first.

use std::path::Path;

use centinela_tests::{python_with_sigmf, run_agent, sigmf_python_read};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sensor-agent");

fn lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

fn scan_with_clips(dir: &Path, max_mb: &str) -> Vec<Value> {
    let out = run_agent(
        Path::new(BIN),
        &[
            "scan",
            "--source",
            "sim",
            "--device",
            "hackrf",
            "--bands",
            "B4",
            "--json",
            "--clips",
            dir.to_str().expect("utf8"),
            "--clips-max-mb",
            max_mb,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lines(&out)
}

fn clip_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("clip dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".sigmf-meta"))
        .collect();
    v.sort();
    v
}

#[test]
fn a_critical_gap_leaves_a_clip_that_replays_to_it_and_cannot_be_altered() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("clips");
    let out = scan_with_clips(&dir, "1024");
    let critical: Vec<&Value> = out
        .iter()
        .filter(|v| {
            v["kind"] == "gap"
                && v["payload"]["state"] == "open"
                && v["payload"]["severity"] == "critical"
        })
        .map(|v| &v["payload"])
        .collect();
    assert!(
        !critical.is_empty(),
        "the demo's B4 leak opens critical: {out:?}"
    );
    assert_eq!(
        clip_files(&dir).len(),
        critical.len(),
        "one clip per critical gap"
    );
    for gap in &critical {
        let ev = &gap["evidence"];
        let clip = dir.join(ev["clip"].as_str().expect("the event names its clip"));
        let data = clip.with_extension("sigmf-data");
        assert_eq!(
            hardware::sigmf::file_sha512(&data).expect("hash"),
            ev["sha512"].as_str().expect("sha512"),
            "the event's hash is the clip's"
        );
        assert_eq!(
            std::fs::metadata(&data).expect("data").len(),
            ev["bytes"].as_u64().expect("bytes")
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
        let again = lines(&replayed);
        assert!(
            again.iter().any(|v| v["kind"] == "gap"
                && v["payload"]["gap_key"] == gap["gap_key"]
                && v["payload"]["state"] == "open"
                && v["payload"]["severity"] == "critical"
                && v["payload"]["observed_at"] == gap["observed_at"]),
            "the clip replays to gap {}: {again:?}",
            gap["gap_key"]
        );
        if let Some(py) = python_with_sigmf() {
            // The reference library checks `core:sha512` against the dataset as it loads.
            let v = sigmf_python_read(&py, &clip);
            assert!(v["count"].as_u64().unwrap_or(0) > 0);
        }
    }
    // One sample changed in a copy of a clip: refused, naming the hash.
    let gap = critical[0];
    let clip = dir.join(gap["evidence"]["clip"].as_str().expect("clip"));
    let forged = tmp.path().join("forged");
    std::fs::copy(&clip, forged.with_extension("sigmf-meta")).expect("copy meta");
    let mut bytes = std::fs::read(clip.with_extension("sigmf-data")).expect("data");
    bytes[1000] ^= 0x40;
    std::fs::write(forged.with_extension("sigmf-data"), bytes).expect("write");
    let refused = run_agent(
        Path::new(BIN),
        &[
            "replay",
            forged.with_extension("sigmf-meta").to_str().expect("utf8"),
            "--json",
        ],
    );
    assert_eq!(
        refused.status.code(),
        Some(2),
        "an altered clip is bad input"
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("SHA-512") && err.contains("forged"), "{err}");
    assert!(
        refused.stdout.is_empty(),
        "nothing is reported from an altered clip"
    );
}

#[test]
fn the_clip_budget_deletes_the_oldest_first_and_skips_what_cannot_fit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("clips");
    let first = scan_with_clips(&dir, "1024");
    let names = clip_files(&dir);
    assert!(
        names.len() >= 2,
        "the demo's B4 leak gives two critical gaps: {names:?}"
    );
    let largest = names
        .iter()
        .map(|n| {
            std::fs::metadata(dir.join(n).with_extension("sigmf-data"))
                .expect("m")
                .len()
        })
        .max()
        .expect("a clip");
    // Room for one clip and a half: the second run keeps its newest clip and deletes the rest.
    let budget_mb = format!("{}", (largest as f64 * 1.5 + 65536.0) / 1e6);
    let second = scan_with_clips(&dir, &budget_mb);
    let after = clip_files(&dir);
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(
        !names.contains(&after[0]),
        "the one left is the newest: {after:?}"
    );
    let named: Vec<String> = second
        .iter()
        .filter_map(|v| {
            v["payload"]["evidence"]["clip"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert!(named.contains(&after[0]), "{named:?}");
    assert!(
        first.len() == second.len(),
        "the same scene gives the same lines"
    );
    // A budget smaller than one clip keeps none, and the events say so by naming none.
    let small = tmp.path().join("small");
    let third = scan_with_clips(&small, "0.1");
    assert!(clip_files(&small).is_empty());
    assert!(
        third.iter().all(|v| v["payload"].get("evidence").is_none()),
        "no clip is named when none was kept"
    );
}
