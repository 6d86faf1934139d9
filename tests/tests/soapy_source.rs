//! `SoapySource` through the real libSoapySDR, fed by our SigMF playback device module.
#![cfg(feature = "soapy")]

use std::path::Path;
use std::sync::Once;

use centinela_tests::testdata;
use dsp::Complex32;
use hardware::sigmf::SigmfSource;
use hardware::soapy::{SoapyConfig, SoapySource, sigmf_module_dir};
use hardware::{IqSource, ReadOutcome, Tuning};

static PLUGIN_PATH: Once = Once::new();

fn use_module() {
    PLUGIN_PATH.call_once(|| {
        // SAFETY: set once, before any SoapySDR call in this test binary; every test here goes
        // through this `Once` first, and nothing else in the binary reads the environment
        // concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var("SOAPY_SDR_PLUGIN_PATH", sigmf_module_dir());
        }
    });
}

fn recording(data: &Path) -> String {
    data.join("iq/lte/f1860_s1.92_g0_1s_rtlsdr.sigmf-meta")
        .display()
        .to_string()
}

fn read_n(src: &mut dyn IqSource, n: usize) -> (Vec<Complex32>, Vec<ReadOutcome>) {
    let mut out = Vec::new();
    let mut outcomes = Vec::new();
    let mut buf = vec![Complex32::default(); 4096];
    let mut timeouts = 0;
    while out.len() < n && timeouts < 3 {
        let o = src.read(&mut buf).expect("read");
        match o {
            ReadOutcome::Samples(k) | ReadOutcome::Overflow { n: k, .. } => {
                out.extend_from_slice(&buf[..k])
            }
            ReadOutcome::Timeout => timeouts += 1,
            ReadOutcome::EndOfData => break,
        }
        outcomes.push(o);
    }
    (out, outcomes)
}

#[test]
fn soapy_source_reads_through_libsoapysdr_the_same_samples_as_the_file() {
    let Some(data) = testdata() else { return };
    use_module();
    let file = recording(&data);
    let mut radio =
        SoapySource::open(SoapyConfig::new(&format!("driver=sigmf,file={file}"))).expect("open");
    assert_eq!(radio.driver_key().expect("key"), "sigmf");
    let tuned = radio.tune(&Tuning::new(1.86e9, 1.92e6)).expect("tune");
    assert_eq!(tuned.sample_rate_hz, 1.92e6);
    assert_eq!(tuned.center_hz, 1.86e9);
    let (via_soapy, outcomes) = read_n(&mut radio, 200_000);
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, ReadOutcome::Samples(_)))
    );
    let mut file_src = SigmfSource::open(Path::new(&file)).expect("file");
    let (direct, _) = read_n(&mut file_src, 200_000);
    let n = via_soapy.len().min(direct.len());
    assert!(n >= 200_000);
    assert_eq!(&via_soapy[..n], &direct[..n]);
}

#[test]
fn overflows_are_counted_with_the_samples_lost() {
    let Some(data) = testdata() else { return };
    use_module();
    let args = format!(
        "driver=sigmf,file={},overflow_every=50000,overflow_drop=777",
        recording(&data)
    );
    let mut radio = SoapySource::open(SoapyConfig::new(&args)).expect("open");
    radio.tune(&Tuning::new(1.86e9, 1.92e6)).expect("tune");
    let (got, outcomes) = read_n(&mut radio, 300_000);
    let losses: Vec<Option<u64>> = outcomes
        .iter()
        .filter_map(|o| match o {
            ReadOutcome::Overflow { lost, .. } => Some(*lost),
            _ => None,
        })
        .collect();
    // 300 000 samples delivered in runs of 50 000: five overflows, 777 samples lost each.
    assert_eq!(losses, vec![Some(777); 5], "{outcomes:?}");
    assert_eq!(radio.overflows, 5);
    assert!(got.len() >= 300_000);
}

#[test]
fn end_of_recording_is_a_timeout_and_bad_rates_are_refused() {
    let Some(data) = testdata() else { return };
    use_module();
    let file = data.join("iq/lte/f796_s1.92_bw1.2_0.08s_rtlsdr.sigmf-meta");
    let mut radio = SoapySource::open(SoapyConfig::new(&format!(
        "driver=sigmf,file={}",
        file.display()
    )))
    .expect("open");
    let err = radio.tune(&Tuning::new(796e6, 2.4e6)).expect_err("rate");
    assert!(err.to_string().contains("1920000"), "{err}");
    radio.tune(&Tuning::new(796e6, 1.92e6)).expect("tune");
    let (got, outcomes) = read_n(&mut radio, 1_000_000);
    assert_eq!(got.len(), 153_600, "0.08 s at 1.92 MS/s");
    assert!(matches!(outcomes.last(), Some(ReadOutcome::Timeout)));
    assert!(
        SoapySource::open(SoapyConfig::new(
            "driver=sigmf,file=/nonexistent.sigmf-meta"
        ))
        .is_err()
    );
}
