//! SigMF written by us reads back identically, and the reference Python library validates and
//! reads it the same way.

use centinela_tests::{python_with_sigmf, sigmf_python_read};
use dsp::Complex32;
use dsp::synth::tone;
use hardware::sigmf::{Datatype, SigmfSource, SigmfWriter};
use hardware::{IqSource, ReadOutcome, Tuning};

fn write_two_hops(base: &std::path::Path, datatype: Datatype) -> (Vec<Complex32>, Vec<Complex32>) {
    let fs = 1.92e6;
    let a = tone(3000, fs, 100e3, 0.5, 0.0);
    let b = tone(2000, fs, -250e3, 0.25, 1.0);
    let mut w = SigmfWriter::create(base, datatype, fs).expect("create");
    w.set_global("core:description", serde_json::json!("round trip"));
    w.start_capture(Some(806e6), Some("2026-11-26T12:00:00Z"));
    w.write(&a).expect("write");
    w.start_capture(Some(808e6), None);
    w.write(&b).expect("write");
    w.finish().expect("finish");
    (a, b)
}

fn read_capture(src: &mut SigmfSource) -> Vec<Complex32> {
    let mut out = Vec::new();
    let mut buf = vec![Complex32::default(); 777];
    loop {
        match src.read(&mut buf).expect("read") {
            ReadOutcome::Samples(n) => out.extend_from_slice(&buf[..n]),
            ReadOutcome::EndOfData => return out,
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn writer_and_reader_round_trip_multi_capture_recordings() {
    let dir = tempfile::tempdir().expect("tmp");
    for (dt, tol) in [(Datatype::Cf32Le, 0.0), (Datatype::Ci16Le, 1.0 / 32768.0)] {
        let base = dir.path().join(dt.as_str());
        let (a, b) = write_two_hops(&base, dt);
        let mut src = SigmfSource::open(&base).expect("open");
        let meta = src.metadata().clone();
        assert_eq!(meta.captures.len(), 2);
        assert_eq!(meta.total_samples, 5000);
        assert_eq!(meta.captures[1].sample_start, 3000);
        assert_eq!(
            meta.captures[0].datetime.as_deref(),
            Some("2026-11-26T12:00:00Z")
        );
        // Tuning to a capture's centre selects it.
        let t = src.tune(&Tuning::new(808e6, 1.92e6)).expect("tune");
        assert_eq!(t.center_hz, 808e6);
        let got_b = read_capture(&mut src);
        src.tune(&Tuning::new(806.1e6, 1.92e6)).expect("tune");
        let got_a = read_capture(&mut src);
        for (got, want) in [(got_a, a.clone()), (got_b, b.clone())] {
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).norm() <= tol * 1.5, "{g} vs {w}");
            }
        }
        assert!(src.tune(&Tuning::new(900e6, 1.92e6)).is_err());
        assert!(src.tune(&Tuning::new(806e6, 2.4e6)).is_err());
    }
}

#[test]
fn python_sigmf_validates_and_reads_what_we_write() {
    let Some(py) = python_with_sigmf() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tmp");
    for dt in [Datatype::Cf32Le, Datatype::Ci16Le] {
        let base = dir.path().join(format!("py-{}", dt.as_str()));
        let (a, _) = write_two_hops(&base, dt);
        let v = sigmf_python_read(&py, &base.with_extension("sigmf-meta"));
        assert_eq!(v["count"], 5000);
        assert_eq!(v["datatype"], dt.as_str());
        assert_eq!(v["sample_rate"], 1.92e6);
        assert_eq!(v["frequencies"], serde_json::json!([806e6, 808e6]));
        assert_eq!(v["starts"], serde_json::json!([0, 3000]));
        // Python scales ci16 by 1/32768 like we do: the same samples.
        for (i, pair) in v["head"].as_array().expect("head").iter().enumerate() {
            let re = pair[0].as_f64().expect("re");
            let im = pair[1].as_f64().expect("im");
            assert!((re - f64::from(a[i].re)).abs() < 1e-4, "{dt:?} sample {i}");
            assert!((im - f64::from(a[i].im)).abs() < 1e-4, "{dt:?} sample {i}");
        }
    }
}
