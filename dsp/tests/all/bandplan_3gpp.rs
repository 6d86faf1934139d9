//! Channel numbers against values worked out in the 3GPP tables.

use dsp::bandplan::*;
use proptest::prelude::*;

#[test]
fn earfcn_examples_from_36_101() {
    // (EARFCN, downlink MHz, band)
    for (n, mhz, b) in [
        (300, 2140.0, "B1"),
        (1575, 1842.5, "B3"),
        (2525, 881.5, "B5"),
        (3100, 2655.0, "B7"),
        (6300, 806.0, "B20"),
        (9410, 778.0, "B28"),
        (38000, 2595.0, "B38"),
        (38400, 1895.0, "B39"),
        (36275, 2017.5, "B34"),
        (40620, 2593.0, "B41"),
        (66886, 2155.0, "B66"),
    ] {
        let (f, band) = earfcn_to_hz(n).expect("in a band");
        assert!((f - mhz * 1e6).abs() < 1.0, "{n}: {f}");
        assert_eq!(band.name, b);
        assert_eq!(hz_to_earfcn(band, f).expect("back"), n);
    }
    assert!(earfcn_to_hz(70_000).is_err());
}

#[test]
fn nr_arfcn_examples_from_38_104() {
    for (n, mhz) in [
        (123_400, 617.0),
        (151_600, 758.0),
        (376_000, 1880.0),
        (599_999, 2999.995),
        (600_000, 3000.0),
        (620_000, 3300.0),
        (632_628, 3489.42),
        (653_333, 3799.995),
        (2_016_667, 24250.08),
    ] {
        let f = nr_arfcn_to_hz(n).expect("arfcn");
        assert!((f - mhz * 1e6).abs() < 1.0, "{n}: {f}");
        assert_eq!(hz_to_nr_arfcn(f).expect("back"), n);
    }
}

#[test]
fn gscn_examples_from_38_104() {
    // Below 3 GHz: N·1200 kHz + M·50 kHz; above: 3000 MHz + N·1.44 MHz.
    for (g, mhz) in [
        (2, 1.25),
        (3, 1.35),
        (4, 1.25 + 0.1 + 1.2 - 1.2 + 0.1),
        (4517, 1807.25),
        (1901, 760.85),
        (7499, 3000.0),
        (7711, 3305.28),
        (7864, 3525.6),
        (8329, 4195.2),
        (22256, 24250.08),
    ] {
        let f = gscn_to_hz(g).expect("gscn");
        assert!((f - mhz * 1e6).abs() < 1.0, "{g}: {f} vs {mhz}");
        assert_eq!(hz_to_gscn(f, 1.0), Some(g));
    }
    // The singtel n78 capture's SSB at 3525.6 MHz is on the n78 raster.
    let n78 = band("n78").expect("n78");
    let g = gscns_within(n78, 3525.0e6, 3526.0e6);
    assert_eq!(g, vec![(7864, 3525.6e6)]);
    assert!(hz_to_gscn(3525.61e6, 1e3).is_none());
}

#[test]
fn gsm_arfcn_examples_from_45_005() {
    for (b, n, mhz) in [
        ("GSM850", 128, 869.2),
        ("GSM850", 251, 893.8),
        ("GSM900", 1, 935.2),
        ("GSM900", 124, 959.8),
        ("GSM900", 975, 925.2),
        ("GSM900", 0, 935.0),
        ("DCS1800", 512, 1805.2),
        ("DCS1800", 885, 1879.8),
        ("PCS1900", 512, 1930.2),
        ("PCS1900", 810, 1989.8),
    ] {
        let band = band(b).expect("band");
        let f = gsm_arfcn_to_hz(band, n).expect("arfcn");
        assert!((f - mhz * 1e6).abs() < 1.0, "{b} {n}: {f}");
        assert_eq!(hz_to_gsm_arfcn(band, f).expect("back"), n);
    }
    assert!(gsm_arfcn_to_hz(band("GSM850").expect("band"), 127).is_err());
}

#[test]
fn rtl_sdr_cannot_see_aws_2600_or_n78() {
    let rtl = TuningLimits {
        min_hz: 24e6,
        max_hz: 1766e6,
        max_sample_rate_hz: 2.4e6,
    };
    for name in ["B4", "B7", "n78"] {
        let b = band(name).expect("band");
        let p = plan_hops(b.name, b.dl_low_hz, b.dl_high_hz, &rtl, 2.4e6, 0.8).expect("plan");
        assert!(p.hops.is_empty(), "{name}");
        let w = p.warning("RTL-SDR", &rtl).expect("warning");
        assert!(w.contains("cannot see") && w.contains(name), "{w}");
    }
    let b28 = band("B28").expect("band");
    let p = plan_hops("B28", b28.dl_low_hz, b28.dl_high_hz, &rtl, 2.4e6, 0.8).expect("plan");
    // 45 MHz at 1.92 MHz usable per hop: 24 hops, contiguous, covering the band.
    assert_eq!(p.hops.len(), 24);
    assert!(p.unreachable_hz.is_empty());
    assert!((p.hops[0].keep_hz.0 - 758e6).abs() < 1.0);
    assert!((p.hops[23].keep_hz.1 - 803e6).abs() < 1.0);
    for w in p.hops.windows(2) {
        assert!((w[0].keep_hz.1 - w[1].keep_hz.0).abs() < 1e-3);
    }
}

proptest! {
    #[test]
    fn earfcn_round_trips(idx in 0usize..LTE_BANDS.len(), frac in 0.0f64..1.0) {
        let b = &LTE_BANDS[idx];
        let (first, last) = b.earfcn_range().expect("lte");
        let n = first + ((last - first) as f64 * frac) as u32;
        let (f, band) = earfcn_to_hz(n).expect("in table");
        prop_assert_eq!(hz_to_earfcn(band, f).expect("back"), n);
    }

    #[test]
    fn nr_arfcn_round_trips(n in 0u32..3_279_165) {
        let f = nr_arfcn_to_hz(n).expect("arfcn");
        prop_assert_eq!(hz_to_nr_arfcn(f).expect("back"), n);
    }

    #[test]
    fn gscn_round_trips(g in 2u32..26_639) {
        if let Ok(f) = gscn_to_hz(g) {
            prop_assert_eq!(hz_to_gscn(f, 1.0), Some(g));
        }
    }
}
