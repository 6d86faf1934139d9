//! Kinds of capture the cell search used to miss, rebuilt by synthesis and written as SigMF
//! recordings from another tool (no Centinela extension), then run through `sensor-agent replay`
//! as an engineer would: a 20 MHz TDD carrier filling a 19.2 MS/s capture, a capture holding a
//! single 5 ms half-frame, and an SSB far (360 kHz) from its raster point, as a radio whose
//! oscillator is 100 ppm off sees it. Each must give its cell and no other.

use std::collections::BTreeSet;
use std::path::Path;

use dsp::Complex32;
use dsp::cell::lte::Duplexing;
use dsp::synth::{Emitter, LteContent, NrContent, OfdmEmitter, add_awgn, rng};
use hardware::sigmf::{Datatype, SigmfWriter};

/// Writes `x` as a one-capture cf32 recording at `centre_hz` and returns its metadata path.
fn write(dir: &Path, name: &str, x: &[Complex32], fs: f64, centre_hz: f64) -> String {
    let base = dir.join(name);
    let mut w = SigmfWriter::create(&base, Datatype::Cf32Le, fs).expect("create");
    w.set_global("core:description", serde_json::json!("synthetic capture"));
    w.start_capture(Some(centre_hz), Some("2026-12-03T12:00:00Z"));
    w.write(x).expect("write");
    w.finish().expect("finish").to_string_lossy().into_owned()
}

/// PCIs `replay` confirms in the recording, with the technology of each.
fn confirmed(path: &str) -> BTreeSet<(String, u16)> {
    let (_, lines) = crate::cells::confirmed_pcis(path);
    lines
        .iter()
        .filter(|v| v["type"] == "cells")
        .flat_map(|v| v["cells"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["search"]["confirmed"] == true)
        .filter_map(|c| {
            Some((
                c["technology"].as_str()?.to_string(),
                u16::try_from(c["search"]["pci"].as_u64()?).ok()?,
            ))
        })
        .collect()
}

/// `seconds` of one OFDM emitter at `fs` with white noise `snr_db` under its total power,
/// starting `skip_s` into its frame.
fn render(mut e: impl Emitter, fs: f64, skip_s: f64, seconds: f64, snr_db: f64) -> Vec<Complex32> {
    let mut skip = vec![Complex32::default(); (skip_s * fs) as usize];
    e.add_to(&mut skip);
    let mut x = vec![Complex32::default(); (seconds * fs) as usize];
    e.add_to(&mut x);
    add_awgn(&mut rng(7), &mut x, 10f64.powf(-snr_db / 10.0));
    x
}

#[test]
fn a_20_mhz_tdd_carrier_filling_a_19_2_ms_capture_gives_its_cell() {
    let dir = tempfile::tempdir().expect("tmp");
    let fs = 19.2e6;
    // Centred, and tuned off its centre: by 0.5 MHz neither edge is in sight (the crop keeps
    // the middle 15.4 MHz), by 2 and 3.3 MHz one is.
    for off in [0.0, 500e3, 2e6, -3.3e6] {
        let cell = LteContent::new(301, Duplexing::Tdd, 100, 1).expect("cell");
        let x = render(
            OfdmEmitter::new(cell, fs, off, 1.0).expect("rate"),
            fs,
            0.0,
            0.08,
            20.0,
        );
        let path = write(dir.path(), &format!("tdd20-{off}"), &x, fs, 2_595e6);
        let cells = confirmed(&path);
        assert_eq!(
            cells,
            BTreeSet::from([("lte".to_string(), 301)]),
            "{off}: {cells:?}"
        );
    }
    // What fills a capture without being LTE gives no cell: noise, and a noise jammer over
    // the whole band.
    let mut noise = vec![Complex32::default(); (0.08 * fs) as usize];
    add_awgn(&mut rng(11), &mut noise, 0.01);
    let path = write(dir.path(), "noise", &noise, fs, 2_595e6);
    assert_eq!(confirmed(&path), BTreeSet::new());
    let mut jammer = noise.clone();
    dsp::synth::BandNoise::new(5, fs, -9e6, 9e6, 1.0).add_to(&mut jammer);
    let path = write(dir.path(), "jammer", &jammer, fs, 2_595e6);
    assert_eq!(confirmed(&path), BTreeSet::new());
}

#[test]
fn a_single_half_frame_gives_its_cell() {
    let dir = tempfile::tempdir().expect("tmp");
    for (name, fs, dup, centre) in [
        ("fdd", 1.92e6, Duplexing::Fdd, 1_865e6),
        ("fdd-wide", 15.36e6, Duplexing::Fdd, 1_865e6),
        ("tdd", 15.36e6, Duplexing::Tdd, 2_595e6),
    ] {
        let n_rb = if fs < 2e6 { 6 } else { 50 };
        let cell = LteContent::new(77, dup, n_rb, 2).expect("cell");
        let x = render(
            OfdmEmitter::new(cell, fs, 0.0, 1.0).expect("rate"),
            fs,
            0.0031,
            0.005,
            10.0,
        );
        let path = write(dir.path(), name, &x, fs, centre);
        let cells = confirmed(&path);
        assert_eq!(
            cells,
            BTreeSet::from([("lte".to_string(), 77)]),
            "{name}: {cells:?}"
        );
    }
    // NR: the half-frame of an SSB burst, at 30 kHz in n78.
    let fs = 15.36e6;
    let cell = NrContent::new(812, 1, 24, 0, 4).expect("cell");
    let x = render(
        OfdmEmitter::new(cell, fs, 3_576e6 - 3_578e6, 1.0)
            .expect("rate")
            .with_upconversion_phase(3_576e6),
        fs,
        0.0,
        0.005,
        10.0,
    );
    let path = write(dir.path(), "nr", &x, fs, 3_578e6);
    let cells = confirmed(&path);
    assert_eq!(
        cells,
        BTreeSet::from([("nr".to_string(), 812)]),
        "{cells:?}"
    );
}

#[test]
fn an_ssb_360_khz_off_its_raster_point_is_found() {
    let dir = tempfile::tempdir().expect("tmp");
    let fs = 30.72e6;
    // GSCN 7899 (3576 MHz) in n78; the radio's oscillator 100 ppm low moves it 357.6 kHz up.
    let raster = 3_576e6;
    let shift = 357.6e3;
    let centre = raster + 4e6;
    let cell = NrContent::new(579, 1, 51, 0, 3).expect("cell");
    let x = render(
        OfdmEmitter::new(cell, fs, raster + shift - centre, 1.0)
            .expect("rate")
            .with_upconversion_phase(raster),
        fs,
        0.0,
        0.021,
        10.0,
    );
    let path = write(dir.path(), "ssb360", &x, fs, centre);
    let cells = confirmed(&path);
    assert_eq!(
        cells,
        BTreeSet::from([("nr".to_string(), 579)]),
        "{cells:?}"
    );
}
