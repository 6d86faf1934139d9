//! Cell search on the shared recordings through `sensor-agent replay`: the expected PCIs of the
//! index, no phantom cells, nothing on noise.

use std::collections::BTreeSet;
use std::path::Path;

use centinela_tests::{index, run_agent, testdata};

const BIN: &str = env!("CARGO_BIN_EXE_sensor-agent");

fn confirmed_cells(path: &str) -> Vec<serde_json::Value> {
    let (_, lines) = confirmed_pcis(path);
    lines
        .iter()
        .filter(|v| v["type"] == "cells")
        .flat_map(|v| v["cells"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["search"]["confirmed"] == true)
        .collect()
}

/// The PCIs `replay --json` confirms in a recording, and its JSON lines.
pub(crate) fn confirmed_pcis(path: &str) -> (BTreeSet<u16>, Vec<serde_json::Value>) {
    let out = run_agent(Path::new(BIN), &["replay", path, "--json", "--no-progress"]);
    assert!(
        out.status.success(),
        "{path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let pcis = lines
        .iter()
        .filter(|v| v["type"] == "cells")
        .flat_map(|v| v["cells"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["search"]["confirmed"] == true)
        .filter_map(|c| c["search"]["pci"].as_u64().map(|p| p as u16))
        .collect();
    (pcis, lines)
}

#[test]
fn lte_recordings_yield_their_cells_and_no_phantoms() {
    let Some(data) = testdata() else { return };
    let (mut expected_total, mut found_total) = (0, 0);
    for row in index(&data).into_iter().filter(|r| r.tech != "nr") {
        let path = data
            .join("iq")
            .join(format!("{}.sigmf-meta", row.recording));
        let (pcis, lines) = confirmed_pcis(path.to_str().expect("utf8"));
        // Windows in which each PCI was confirmed.
        let windows: Vec<BTreeSet<u16>> = lines
            .iter()
            .filter(|v| v["type"] == "cells")
            .map(|v| {
                v["cells"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["search"]["confirmed"] == true)
                    .filter_map(|c| c["search"]["pci"].as_u64().map(|p| p as u16))
                    .collect()
            })
            .collect();
        let allowed: BTreeSet<u16> = row.pcis.iter().chain(&row.soft_pcis).copied().collect();
        // A PCI the index does not list must be a steady cell, not a one-off: confirmed
        // independently (SSS and CRS) in at least half of the search windows of the recording.
        // Chance coincidences do not repeat; real cells the reference scanner missed do (the
        // third sector of the f2645 site, PCI 23, next to 21 and 22). A recording too short
        // for four windows cannot show that; there each of the three stages must stand far
        // above its threshold instead (PSS ratio 10, SSS z 18 and CRS z 15, against 1e-9 false
        // alarms per search, 6 and 6): f816 holds PCI 433, 11 dB under PCI 57 with its own
        // frame timing, which the reference scanner did not list.
        let strongest = |p: u16, key: &str| -> f64 {
            lines
                .iter()
                .filter(|v| v["type"] == "cells")
                .flat_map(|v| v["cells"].as_array().cloned().unwrap_or_default())
                .filter(|c| c["search"]["pci"] == p && c["search"]["confirmed"] == true)
                .filter_map(|c| c["search"][key].as_f64())
                .fold(f64::NEG_INFINITY, f64::max)
        };
        for p in pcis.difference(&allowed) {
            let seen = windows.iter().filter(|w| w.contains(p)).count();
            let (pss, sss, crs) = (
                strongest(*p, "pss_ratio"),
                strongest(*p, "sss_z"),
                strongest(*p, "crs_z"),
            );
            let steady = seen * 2 >= windows.len() && windows.len() >= 4;
            let overwhelming = windows.len() < 4 && pss >= 10.0 && sss >= 18.0 && crs >= 15.0;
            assert!(
                steady || overwhelming,
                "{}: phantom cell {p} (in {seen} of {} windows, PSS {pss:.1}, SSS z {sss:.1}, \
                 CRS z {crs:.1}; index lists {allowed:?})",
                row.recording,
                windows.len()
            );
            eprintln!(
                "{}: also PCI {p}, confirmed in {seen} of {} windows (PSS {pss:.1}, SSS z \
                 {sss:.1}, CRS z {crs:.1})",
                row.recording,
                windows.len()
            );
        }
        match row.grade.as_str() {
            "N" => assert!(pcis.is_empty(), "{}: noise gave {pcis:?}", row.recording),
            "A" => {
                let hits = row.pcis.iter().filter(|p| pcis.contains(p)).count();
                assert_eq!(
                    hits,
                    row.pcis.len(),
                    "{}: expected {:?}, got {pcis:?}",
                    row.recording,
                    row.pcis
                );
                expected_total += row.pcis.len();
                found_total += hits;
            }
            _ => {}
        }
        eprintln!(
            "{}: {pcis:?} (expected {:?}, soft {:?})",
            row.recording, row.pcis, row.soft_pcis
        );
    }
    eprintln!("grade-A recall: {found_total}/{expected_total}");
    // Every expected PCI (PCI 142 of f1860, 10 dB under PCI 86 at about −17 dB SINR, only
    // through the deep search over the whole second).
    assert_eq!(found_total, expected_total, "grade-A recall");
}

#[test]
fn a_confirmed_cell_becomes_a_sync_gap_event_with_its_pci() {
    let Some(data) = testdata() else { return };
    let path = data.join("iq/lte/f1890_s1.92_g0_1s_rtlsdr.sigmf-meta");
    let (pcis, lines) = confirmed_pcis(path.to_str().expect("utf8"));
    assert!(pcis.contains(&253));
    let ev = lines
        .iter()
        .find(|v| v["type"] == "event" && v["payload"]["detector"] == "sync")
        .expect("a sync gap event");
    let p = &ev["payload"];
    assert_eq!(p["state"], "open");
    assert_eq!(p["technology"], "lte");
    assert_eq!(p["cell"]["pci"], 253);
    // 1890 MHz TDD is band 39 (1880–1920 MHz): EARFCN 38250 + 10 × (1890 − 1880) ± the offset.
    assert_eq!(p["band"], "B39");
    let earfcn = p["cell"]["earfcn"].as_u64().expect("earfcn");
    assert!((38_349..=38_350).contains(&earfcn), "{earfcn}");
    assert!(p["margin_db"].as_f64().expect("margin") > 6.0);
}

#[test]
fn nr_recordings_yield_their_ssb_pcis() {
    let Some(data) = testdata() else { return };
    for row in index(&data).into_iter().filter(|r| r.tech == "nr") {
        let path = data
            .join("iq")
            .join(format!("{}.sigmf-meta", row.recording));
        let cells = confirmed_cells(path.to_str().expect("utf8"));
        let pcis: BTreeSet<u16> = cells
            .iter()
            .filter_map(|c| c["search"]["pci"].as_u64().map(|p| p as u16))
            .collect();
        for p in &row.pcis {
            assert!(
                pcis.contains(p),
                "{}: expected NR PCI {p}, got {pcis:?}",
                row.recording
            );
        }
        for c in &cells {
            assert_eq!(c["technology"], "nr");
            let pci = c["search"]["pci"].as_u64().expect("pci") as u16;
            if !row.pcis.contains(&pci) && !row.soft_pcis.contains(&pci) {
                // A cell the index does not list must carry overwhelming independent evidence:
                // its PBCH DM-RS far above every other PCI's (the singtel capture also holds an
                // SSB of a neighbouring n78 carrier at 3561.6 MHz, PCI 398).
                let z = c["search"]["dmrs_z"].as_f64().expect("z");
                assert!(
                    z >= 10.0,
                    "{}: unlisted PCI {pci} with DM-RS z {z}",
                    row.recording
                );
                eprintln!(
                    "{}: also PCI {pci} at {} Hz (DM-RS z {z:.1})",
                    row.recording, c["center_hz"]
                );
            }
        }
    }
}
