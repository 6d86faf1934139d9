//! Sweep real-time factor: air time captured ÷ wall time of the whole pipeline (spectrum,
//! analysis, LTE/NR/GSM cell search, trackers) for the Colombian plan on the HackRF and USRP
//! B2xx profiles, with the simulator's own cost measured apart and left out.
//!
//! `cargo bench -p sensor-agent --bench sweep` (`SWEEP_RUNS=N` runs of a cold and a warm
//! sweep per profile, default 5; `SWEEP_PROFILES=hackrf,usrp-b2xx`). One JSON line per profile
//! and kind of sweep on stdout; the pipeline is single-threaded, so this is one core. A factor
//! ≥ 1 means the radio never waits for the DSP.

use sensor_agent::config::{Identity, PipelineConfig};
use sensor_agent::pipeline::{Ignore, Pipeline, StageTimes, SweepSettings, plan, select_bands};
use sensor_agent::recording::MemorySweep;
use sensor_agent::source::{SourceSpec, device_profile};
use time::OffsetDateTime;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("SWEEP_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let profiles = std::env::var("SWEEP_PROFILES").unwrap_or_else(|_| "hackrf,usrp-b2xx".into());
    let id = Identity {
        facility_id: "bench".into(),
        sensor_id: "s1".into(),
        zone: "z".into(),
    };
    let bands = select_bands(Some("CO"), &[]).expect("CO plan");
    for profile in profiles.split(',') {
        let device = device_profile(Some(profile)).expect("profile");
        let spec = SourceSpec::Sim { scene: None };
        let (name, limits, rate) = spec.radio(device, None);
        let pipeline = PipelineConfig::default();
        let scan_plan =
            plan(&bands, &name, &limits, rate, pipeline.usable_fraction()).expect("plan");
        // The agent's defaults: 20 ms per hop, cells searched.
        let settings = SweepSettings {
            pipeline,
            dwell_s: 0.02,
            gain_db: None,
            noise_figure_db: device.map(|p| p.noise_figure_db),
            cell_search: true,
            watch_hz: Vec::new(),
            jammer_confirm: 1,
            analysis: true,
        };
        let at = OffsetDateTime::now_utc();
        // The simulator's cost, apart: one sweep captured into memory with analysis off.
        let mut source = spec.open(None).expect("sim");
        let mut captured = MemorySweep::default();
        let mut capture_only = Pipeline::new(
            scan_plan.clone(),
            SweepSettings {
                analysis: false,
                ..settings.clone()
            },
            &id,
        )
        .expect("pipeline");
        let sim = capture_only
            .sweep(source.as_mut(), at, &mut captured)
            .expect("simulated sweep");
        let air_s = captured.air_time_s();
        let mut pipe = Pipeline::new(scan_plan, settings, &id).expect("pipeline");
        // Each run: a cold sweep (the radio's oscillator error unknown when it starts: the NR
        // search covers ±150 kHz until its first SSB), then a warm one (the error known from
        // the cold sweep, as every sweep of a running agent after its first).
        let mut runs_of = [Vec::new(), Vec::new()];
        for k in 0..runs {
            for (w, warm) in [false, true].into_iter().enumerate() {
                if !warm {
                    pipe.set_radio_ppm(None);
                }
                let h = pipe
                    .sweep(
                        &mut captured,
                        at + time::Duration::seconds(2 * k as i64 + w as i64),
                        &mut Ignore,
                    )
                    .expect("sweep");
                eprintln!(
                    "{profile}: run {} of {runs}, {} sweep: {:.2} s",
                    k + 1,
                    if warm { "warm" } else { "cold" },
                    h.elapsed_s
                );
                runs_of[w].push((h.elapsed_s, h.stages));
            }
        }
        for (w, sweeps) in runs_of.iter().enumerate() {
            let walls: Vec<f64> = sweeps.iter().map(|s| s.0).collect();
            let wall = median(walls.clone());
            let st = |f: fn(&StageTimes) -> f64| median(sweeps.iter().map(|s| f(&s.1)).collect());
            println!(
                "{}",
                serde_json::json!({
                    "profile": profile,
                    "sweep": if w == 1 { "warm" } else { "cold" },
                    "sample_rate_hz": rate,
                    "hops": sim.hops,
                    "air_time_s": air_s,
                    "simulator_s": sim.stages.capture_s,
                    "sweep_wall_s_median": wall,
                    "sweep_wall_s": walls,
                    "real_time_factor": air_s / wall,
                    "stages_s_median": {
                        "spectrum": st(|s| s.spectrum_s),
                        "analysis": st(|s| s.analysis_s),
                        "lte_search": st(|s| s.lte_s),
                        "nr_search": st(|s| s.nr_s),
                        "gsm_search": st(|s| s.gsm_s),
                        "events": st(|s| s.events_s),
                        "replay_source": st(|s| s.capture_s),
                    },
                })
            );
        }
    }
}
