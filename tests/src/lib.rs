//! Shared helpers for the end-to-end scenarios: where the shared recordings are, how to run the
//! `sensor-agent` binary, and small fixture writers.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The folder of shared test data: `CENTINELA_TESTDATA`, else `../shared/data` beside the
/// checkout. `None` (with a message on stderr) when absent, unless `CENTINELA_REQUIRE_TESTDATA`
/// is set, in which case it panics: CI must have the data.
#[must_use]
pub fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("CENTINELA_TESTDATA").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
        PathBuf::from,
    );
    if dir.join("iq/INDEX.md").is_file() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CENTINELA_REQUIRE_TESTDATA").is_none(),
        "shared test data required but not found at {}",
        dir.display()
    );
    eprintln!(
        "SKIP: shared test data not found at {} (set CENTINELA_TESTDATA)",
        dir.display()
    );
    None
}

/// One row of `iq/INDEX.md`.
#[derive(Debug, Clone)]
pub struct IndexRow {
    /// Path relative to `iq/`, without extension.
    pub recording: String,
    /// `lte`, `nr` or `none`.
    pub tech: String,
    /// SigMF datatype.
    pub datatype: String,
    /// Sample rate.
    pub rate: f64,
    /// Centre frequency, if stated.
    pub center_hz: Option<f64>,
    /// Expected PCIs.
    pub pcis: Vec<u16>,
    /// Soft PCIs.
    pub soft_pcis: Vec<u16>,
    /// A, B or N.
    pub grade: String,
}

fn pci_list(s: &str) -> Vec<u16> {
    s.trim()
        .trim_matches(['[', ']'])
        .split(',')
        .filter_map(|x| x.trim().parse().ok())
        .collect()
}

/// Parses the recordings table of `iq/INDEX.md`.
///
/// # Panics
/// When the index cannot be read.
#[must_use]
pub fn index(data: &Path) -> Vec<IndexRow> {
    let text = std::fs::read_to_string(data.join("iq/INDEX.md")).expect("read INDEX.md");
    text.lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("| recording") && !l.starts_with("|---"))
        .filter_map(|l| {
            let c: Vec<&str> = l.split('|').map(str::trim).collect();
            if c.len() < 10 {
                return None;
            }
            Some(IndexRow {
                recording: c[1].to_string(),
                tech: c[2].to_string(),
                datatype: c[3].to_string(),
                rate: c[4].parse().ok()?,
                center_hz: c[5].parse().ok(),
                pcis: pci_list(c[6]),
                soft_pcis: pci_list(c[7]),
                grade: c[8].to_string(),
            })
        })
        .collect()
}

/// Runs `sensor-agent` with arguments.
///
/// # Panics
/// When the binary cannot be started.
#[must_use]
pub fn run_agent(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .env("CENTINELA_LOG", "warn")
        .output()
        .expect("start sensor-agent")
}

/// Writes a SigMF pair from raw parts (for bad-input fixtures).
///
/// # Panics
/// On I/O errors.
pub fn write_recording(dir: &Path, name: &str, meta: &str, data: &[u8]) -> PathBuf {
    let base = dir.join(name);
    std::fs::write(base.with_extension("sigmf-meta"), meta).expect("write meta");
    std::fs::write(base.with_extension("sigmf-data"), data).expect("write data");
    base.with_extension("sigmf-meta")
}
