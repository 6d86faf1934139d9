//! The simulated facility: jammer verdicts, calibrated powers and leaks against the scene's
//! own ground truth.

use dsp::bandplan::{self, Band};
use dsp::floor::JammerState;
use hardware::sim::{JammerCondition, JammerWaveform, Scene, SimJammer, SimSource};
use hardware::{IqSource, ReadOutcome, Tuning};
use sensor_agent::config::{Identity, PipelineConfig};
use sensor_agent::pipeline::{BandObservation, Observer, Pipeline, SweepSettings, plan};
use sensor_agent::tracker::Event;
use time::OffsetDateTime;

fn id() -> Identity {
    Identity {
        facility_id: "demo".into(),
        sensor_id: "s1".into(),
        zone: "pabellon-a".into(),
    }
}

/// Every band observation and event of a sweep.
#[derive(Default)]
struct Seen {
    bands: Vec<BandObservation>,
    events: Vec<Event>,
}

impl Observer for Seen {
    fn band(&mut self, b: &BandObservation) {
        self.bands.push(b.clone());
    }
    fn event(&mut self, e: &Event) {
        self.events.push(e.clone());
    }
}

fn run_scan(scene: Scene, bands: &[&str]) -> (Vec<BandObservation>, Vec<Event>) {
    run_scan_with(scene, bands, false)
}

fn run_scan_with(
    scene: Scene,
    bands: &[&str],
    cell_search: bool,
) -> (Vec<BandObservation>, Vec<Event>) {
    let bands: Vec<&'static Band> = bands
        .iter()
        .map(|b| bandplan::band(b).expect("band"))
        .collect();
    let limits = bandplan::TuningLimits {
        min_hz: 1e6,
        max_hz: 6e9,
        max_sample_rate_hz: 61.44e6,
    };
    let cfg = PipelineConfig {
        open_after: 1,
        ..PipelineConfig::default()
    };
    let p = plan(&bands, "sim", &limits, 15.36e6, 0.8).expect("plan");
    let mut src = SimSource::new(scene).expect("scene");
    let settings = SweepSettings {
        pipeline: cfg,
        // Cell search needs a half-frame and the symbols around it.
        dwell_s: if cell_search { 0.012 } else { 0.004 },
        gain_db: None,
        noise_figure_db: None,
        cell_search,
        watch_hz: Vec::new(),
        jammer_confirm: 1,
        analysis: true,
    };
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("t");
    let mut pipe = Pipeline::new(p, settings, &id()).expect("pipeline");
    let mut seen = Seen::default();
    pipe.sweep(&mut src, at, &mut seen).expect("sweep");
    let Seen { bands: obs, events } = seen;
    (obs, events)
}

fn jammer_state(obs: &[BandObservation], band: &str) -> JammerState {
    obs.iter()
        .find(|o| o.band == band)
        .and_then(|o| o.analysis.jammers.first())
        .unwrap_or_else(|| panic!("no verdict for {band}"))
        .assessment
        .state
}

#[test]
fn jammer_states_follow_the_scene() {
    let base = Scene::demo();
    for (condition, loss_db, want) in [
        (JammerCondition::On, 0.0, JammerState::Effective),
        (JammerCondition::Degraded, 60.0, JammerState::Degraded),
        (JammerCondition::Off, 0.0, JammerState::Down),
    ] {
        let mut scene = base.clone();
        scene.jammers = vec![SimJammer {
            name: "test".into(),
            position_m: [60.0, 60.0],
            bands_hz: vec![[758e6, 803e6]],
            eirp_dbm_per_band: 33.0,
            condition,
            degraded_loss_db: loss_db,
            waveform: JammerWaveform::Noise,
            sweep_period_s: 0.005,
        }];
        // Rise at the sensor, from the scene's own propagation model.
        let truth = scene.jammer_power_dbm(&scene.jammers[0], [758e6, 803e6])
            - 10.0 * 45e6f64.log10()
            - (dsp::floor::KT_DBM_PER_HZ + scene.radio.noise_figure_db);
        let (obs, _) = run_scan(scene, &["B28"]);
        let got = jammer_state(&obs, "B28");
        assert_eq!(got, want, "{condition:?}: truth rise {truth:.1} dB");
        let rise = obs[0].analysis.jammers[0].assessment.noise_rise_db;
        if truth.is_finite() {
            // The 10th-percentile floor of Welch estimates sits a little under the mean.
            assert!(
                (rise - truth).abs() < 1.5,
                "{condition:?}: rise {rise:.2} vs truth {truth:.2}"
            );
        } else {
            assert!(rise.abs() < 1.0, "no jammer: rise {rise}");
        }
    }
}

#[test]
fn a_jammer_covering_half_a_band_is_degraded_not_effective() {
    let mut scene = Scene::demo();
    scene.jammers = vec![SimJammer {
        name: "half".into(),
        position_m: [60.0, 60.0],
        bands_hz: vec![[869e6, 881e6]],
        eirp_dbm_per_band: 33.0,
        condition: JammerCondition::On,
        degraded_loss_db: 0.0,
        waveform: JammerWaveform::Noise,
        sweep_period_s: 0.005,
    }];
    let (obs, _) = run_scan(scene, &["B5"]);
    let j = &obs[0].analysis.jammers[0].assessment;
    // The open half sets the 10th-percentile floor (no rise), but most of the band is raised:
    // degraded, with the hole showing in the figures.
    assert_eq!(j.state, JammerState::Degraded, "{j:?}");
    assert!(j.noise_rise_db < 6.0, "{j:?}");
    // Raised: the 12 MHz jammed, plus the 5.5 MHz of the B5 cell (876.5–886.5 MHz) outside it.
    assert!((0.65..0.75).contains(&j.covered_fraction), "{j:?}");
}

#[test]
fn calibrated_cell_power_matches_the_scene() {
    let scene = Scene::demo();
    let (obs, _) = run_scan(scene.clone(), &["B4", "B7", "n78"]);
    for (band, cell) in [("B4", 4), ("B7", 5), ("n78", 6)] {
        let truth = scene.cell_power_dbm(&scene.cells[cell]);
        let o = obs.iter().find(|o| o.band == band).expect("band");
        assert_eq!(
            o.analysis.carriers.len(),
            1,
            "{band}: {:?}",
            o.analysis.carriers
        );
        let c = &o.analysis.carriers[0];
        let got = c.power_dbm.expect("calibrated");
        // Channel power above the floor, 99 % of it inside the occupied bandwidth: within 0.5 dB.
        assert!(
            (got - truth).abs() < 0.5,
            "{band}: {got:.2} dBm vs truth {truth:.2} dBm"
        );
        assert!(
            (c.center_hz - scene.cells[cell].center_hz).abs() < 100e3,
            "{band}: {}",
            c.center_hz
        );
    }
}

#[test]
fn demo_facility_leaks_where_the_scene_says_and_nowhere_else() {
    let scene = Scene::demo();
    let (_, events) = run_scan(scene.clone(), bandplan::country("CO").expect("CO").bands);
    let leaking: std::collections::BTreeSet<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Gap(g) => Some(g.band.clone()),
            Event::Jammer(_) => None,
        })
        .collect();
    // Truth: a cell leaks by energy where its in-band power density beats the jammed floor.
    let mut truth = std::collections::BTreeSet::new();
    for c in &scene.cells {
        let bw = if c.bandwidth_hz > 0.0 {
            0.9 * c.bandwidth_hz
        } else {
            200e3
        };
        let cell_density = scene.cell_power_dbm(c) - 10.0 * bw.log10();
        let jam_density = scene
            .jammers
            .iter()
            .flat_map(|j| j.bands_hz.iter().map(move |b| (j, *b)))
            .filter(|(_, b)| (b[0]..=b[1]).contains(&c.center_hz))
            .map(|(j, b)| scene.jammer_power_dbm(j, b) - 10.0 * (b[1] - b[0]).log10())
            .fold(
                dsp::floor::KT_DBM_PER_HZ + scene.radio.noise_figure_db,
                |a, d| 10.0 * (10f64.powf(a / 10.0) + 10f64.powf(d / 10.0)).log10(),
            );
        if cell_density - jam_density > 6.0 {
            let band = sensor_agent::analysis::assign_band(
                c.center_hz,
                c.technology,
                &bandplan::all_bands().collect::<Vec<_>>(),
            )
            .expect("band");
            truth.insert(band.name.to_string());
        }
    }
    assert!(!truth.is_empty());
    assert_eq!(leaking, truth);
    // And the jammer events say which bands are covered.
    let states: std::collections::BTreeMap<String, protocol::JammerStateWire> = events
        .iter()
        .filter_map(|e| match e {
            Event::Jammer(j) => Some((j.band.clone(), j.state)),
            Event::Gap(_) => None,
        })
        .collect();
    assert_eq!(states["B5"], protocol::JammerStateWire::Effective);
    assert_eq!(states["B2"], protocol::JammerStateWire::Effective);
    // The failing perimeter jammer still raises B28 by ~35 dB: "effective" by noise rise, and
    // yet its cell leaks below the floor (see the sync-only test).
    assert_eq!(states["B28"], protocol::JammerStateWire::Effective);
    assert_eq!(states["n78"], protocol::JammerStateWire::Down);
}

#[test]
fn the_simulator_is_deterministic_from_its_seed() {
    let read = |seed: u64| {
        let mut scene = Scene::demo();
        scene.seed = seed;
        let mut s = SimSource::new(scene).expect("scene");
        let mut out = Vec::new();
        for f in [778e6, 881.5e6] {
            s.tune(&Tuning::new(f, 3.84e6)).expect("tune");
            let mut buf = vec![dsp::Complex32::default(); 20_000];
            assert_eq!(
                s.read(&mut buf).expect("read"),
                ReadOutcome::Samples(20_000)
            );
            out.extend(buf);
        }
        out
    };
    assert_eq!(read(1), read(1));
    assert_ne!(read(1), read(2));
}

/// A recording of the simulated facility replays to the cells the scene holds, found by their
/// synchronisation signals: LTE PCI and GSM ARFCN, with sync gap events.
#[test]
fn replay_of_a_simulated_recording_names_the_scene_cells() {
    use hardware::sigmf::{Datatype, SigmfWriter};
    use sensor_agent::replay::{ReplayItem, ReplayOptions, replay};
    let mut scene = Scene::demo();
    scene.jammers.clear();
    let dir = tempfile::tempdir().expect("tmp");
    let base = dir.path().join("sim");
    let mut src = SimSource::new(scene.clone()).expect("scene");
    let mut w = SigmfWriter::create(&base, Datatype::Cf32Le, 3.84e6).expect("writer");
    // The B5 LTE cell (881.5 MHz, PCI 87) and the GSM850 carrier (891.6 MHz, ARFCN 240).
    for f in [881.5e6, 891.6e6] {
        src.tune(&Tuning::new(f, 3.84e6)).expect("tune");
        w.start_capture(Some(f), Some("2026-11-26T12:00:00Z"));
        let mut buf = vec![dsp::Complex32::default(); (0.17 * 3.84e6) as usize];
        src.read(&mut buf).expect("read");
        w.write(&buf).expect("write");
    }
    w.finish().expect("finish");
    let opts = ReplayOptions {
        pipeline: PipelineConfig::default(),
        identity: id(),
        bands: bandplan::all_bands().collect(),
        calibration: None,
        noise_figure_db: None,
        progress: false,
        lte_search: Some(dsp::cell::lte_search::LteSearchConfig::default()),
        nr_search: Some(dsp::cell::nr_search::NrSearchConfig::default()),
        deep_s: 0.0,
    };
    let mut cells = Vec::new();
    let mut sync_gaps = Vec::new();
    replay(&base, &opts, |item| {
        match item {
            ReplayItem::Cells(c) => cells.extend(c.cells.iter().map(|r| r.leak.clone())),
            ReplayItem::Event { event, .. } => {
                if let Event::Gap(g) = *event
                    && g.detector == protocol::Detector::Sync
                {
                    sync_gaps.push(g);
                }
            }
            ReplayItem::Observation(_) => {}
        }
        Ok(())
    })
    .expect("replay");
    let lte: Vec<_> = cells
        .iter()
        .filter(|c| c.technology == dsp::carrier::Technology::Lte)
        .collect();
    assert!(
        !lte.is_empty()
            && lte
                .iter()
                .all(|c| c.cell.as_ref().and_then(|i| i.pci) == Some(87)),
        "{lte:?}"
    );
    assert!(
        lte.iter()
            .all(|c| c.band == "B5" && c.cell.as_ref().and_then(|i| i.earfcn) == Some(2525))
    );
    let gsm: Vec<_> = cells
        .iter()
        .filter(|c| c.technology == dsp::carrier::Technology::Gsm)
        .collect();
    assert!(!gsm.is_empty(), "no GSM carrier found by FCCH");
    assert!(
        gsm.iter()
            .all(|c| c.band == "GSM850" && c.cell.as_ref().and_then(|i| i.arfcn) == Some(240)),
        "{gsm:?}"
    );
    // Its BSIC from the SCH: the scene's, and never another (a window may end before the SCH
    // that follows its last FCCH).
    let bsic = scene
        .cells
        .iter()
        .find(|c| c.technology == dsp::carrier::Technology::Gsm)
        .map(|c| (c.pci & 63) as u8);
    let decoded: Vec<Option<u8>> = gsm
        .iter()
        .map(|c| c.cell.as_ref().and_then(|i| i.bsic))
        .collect();
    assert!(decoded.contains(&bsic), "{decoded:?} vs {bsic:?}");
    assert!(
        decoded.iter().all(|b| b.is_none() || *b == bsic),
        "{decoded:?}"
    );
    assert!(
        sync_gaps
            .iter()
            .any(|g| g.cell.as_ref().and_then(|c| c.pci) == Some(87)
                && g.state == protocol::GapState::Open)
    );
    assert!(
        sync_gaps
            .iter()
            .any(|g| g.cell.as_ref().and_then(|c| c.arfcn) == Some(240))
    );
}

/// The demo's B28 cell sits 2 dB under the degraded jammer's floor: energy detection cannot see
/// it, cell search finds it and names it, with a positive margin (a phone could camp on it).
#[test]
fn demo_leak_found_only_by_sync_search() {
    use hardware::sigmf::{Datatype, SigmfWriter};
    use sensor_agent::replay::{ReplayItem, ReplayOptions, replay};
    let scene = Scene::demo();
    let b28 = &scene.cells[0];
    assert_eq!(b28.pci, 210);
    let dir = tempfile::tempdir().expect("tmp");
    let base = dir.path().join("b28");
    let mut src = SimSource::new(scene.clone()).expect("scene");
    let fs = 15.36e6;
    let mut w = SigmfWriter::create(&base, Datatype::Cf32Le, fs).expect("writer");
    src.tune(&Tuning::new(b28.center_hz, fs)).expect("tune");
    w.start_capture(Some(b28.center_hz), Some("2026-11-26T12:00:00Z"));
    let mut buf = vec![dsp::Complex32::default(); (0.17 * fs) as usize];
    src.read(&mut buf).expect("read");
    w.write(&buf).expect("write");
    w.finish().expect("finish");
    let opts = ReplayOptions {
        pipeline: PipelineConfig::default(),
        identity: id(),
        bands: vec![bandplan::band("B28").expect("B28")],
        calibration: src.calibration(),
        noise_figure_db: Some(scene.radio.noise_figure_db),
        progress: false,
        lte_search: Some(dsp::cell::lte_search::LteSearchConfig::default()),
        nr_search: None,
        deep_s: 0.0,
    };
    let (mut energy, mut sync) = (Vec::new(), Vec::new());
    replay(&base, &opts, |item| {
        match item {
            ReplayItem::Observation(o) => energy.extend(o.analysis.carriers.clone()),
            ReplayItem::Cells(c) => sync.extend(c.cells.iter().map(|r| r.leak.clone())),
            ReplayItem::Event { .. } => {}
        }
        Ok(())
    })
    .expect("replay");
    assert!(energy.is_empty(), "energy saw {energy:?}");
    assert!(!sync.is_empty(), "sync search missed the B28 cell");
    for c in &sync {
        assert_eq!(c.cell.as_ref().and_then(|i| i.pci), Some(210));
        assert_eq!(c.band, "B28");
        assert!(
            c.snr_db < 0.0 && c.margin_db > 0.0,
            "SINR {} margin {}",
            c.snr_db,
            c.margin_db
        );
    }
}

/// The sweep names the cells behind the carriers it finds: the scene's PCIs, with sync gaps.
#[test]
fn sweep_names_the_leaking_cells() {
    let scene = Scene::demo();
    let (obs, events) = run_scan_with(scene.clone(), &["B4", "B7", "n78"], true);
    for (band, cell) in [("B4", 4), ("B7", 5), ("n78", 6)] {
        let o = obs.iter().find(|o| o.band == band).expect("band");
        let pcis: Vec<Option<u16>> = o
            .cells
            .iter()
            .map(|c| c.cell.as_ref().and_then(|i| i.pci))
            .collect();
        assert_eq!(
            pcis,
            vec![Some(scene.cells[cell].pci)],
            "{band}: {:?}",
            o.cells
        );
        assert!(o.cells[0].margin_db > 10.0);
    }
    let sync: Vec<u16> = events
        .iter()
        .filter_map(|e| match e {
            Event::Gap(g) if g.detector == protocol::Detector::Sync => {
                g.cell.as_ref().and_then(|c| c.pci)
            }
            _ => None,
        })
        .collect();
    assert_eq!(sync.len(), 3, "{sync:?}");
}

/// A radio 40 ppm off (90 kHz at 2.1 GHz): the energy carriers move with the cells, and the
/// search around each carrier's centre (±30 kHz, not the whole ±150 kHz) still names them.
#[test]
fn sweep_names_the_cells_of_a_radio_far_off_frequency() {
    let mut scene = Scene::demo();
    scene.radio.ppm = 40.0;
    let (obs, _) = run_scan_with(scene.clone(), &["B4", "B7"], true);
    for (band, cell) in [("B4", 4), ("B7", 5)] {
        let o = obs.iter().find(|o| o.band == band).expect("band");
        let found: Vec<(Option<u16>, f64)> = o
            .cells
            .iter()
            .map(|c| (c.cell.as_ref().and_then(|i| i.pci), c.center_hz))
            .collect();
        assert_eq!(found.len(), 1, "{band}: {found:?}");
        assert_eq!(found[0].0, Some(scene.cells[cell].pci), "{band}");
        // Where the radio sees it: 40 ppm below the true centre.
        let seen = scene.cells[cell].center_hz * (1.0 - 40e-6);
        assert!(
            (found[0].1 - seen).abs() < 2e3,
            "{band}: {found:?} vs {seen}"
        );
    }
}

/// The sweep names GSM cells by FCCH and SCH: ARFCN and BSIC of the scene's GSM850 carrier
/// (its hops dwell 60 ms for that, the others 12 ms).
#[test]
fn sweep_names_the_gsm_cell_with_its_bsic() {
    let mut scene = Scene::demo();
    scene.jammers.clear();
    let (obs, events) = run_scan_with(scene.clone(), &["GSM850"], true);
    let want = scene
        .cells
        .iter()
        .find(|c| c.technology == dsp::carrier::Technology::Gsm)
        .map(|c| (c.pci & 63) as u8)
        .expect("a GSM cell");
    let o = obs.iter().find(|o| o.band == "GSM850").expect("band");
    // (The B5 LTE cell inside GSM850's range is named too, as LTE.)
    let ids: Vec<(Option<u32>, Option<u8>)> = o
        .cells
        .iter()
        .filter(|c| c.technology == dsp::carrier::Technology::Gsm)
        .map(|c| {
            let id = c.cell.as_ref();
            (id.and_then(|i| i.arfcn), id.and_then(|i| i.bsic))
        })
        .collect();
    assert_eq!(ids, vec![(Some(240), Some(want))], "{:?}", o.cells);
    // It leaks (no jammer here): a sync gap that carries the BSIC.
    assert!(events.iter().any(|e| matches!(e,
        Event::Gap(g) if g.detector == protocol::Detector::Sync
            && g.cell.as_ref().and_then(|c| c.bsic) == Some(want))));
}
