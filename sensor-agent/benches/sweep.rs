//! Sweep real-time factor: air time captured ÷ wall time of the whole pipeline (spectrum,
//! analysis, LTE/NR/GSM cell search, trackers) for the Colombian plan on the HackRF and USRP
//! B2xx profiles, with the simulator's own cost measured apart and left out.
//!
//! `cargo bench -p sensor-agent --bench sweep` (`SWEEP_RUNS=N` runs of a cold and a warm
//! sweep per profile, default 5; `SWEEP_PROFILES=hackrf,usrp-b2xx`, empty for none). One JSON line per profile
//! and kind of sweep on stdout; the pipeline is single-threaded, so this is one core. A factor
//! ≥ 1 means the radio never waits for the DSP.
//!
//! Then the agent's resident memory: `sensor-agent run` on the simulator (HackRF profile, the
//! Colombian plan, 20 ms dwell, cells searched, evidence clips on, no broker to reach) for
//! `SWEEP_RSS_S` seconds (default 20; 0 skips it), its peak resident set (`VmHWM`) read from
//! `/proc` until it is stopped; once as shipped and once holding every hop of a range
//! (`[pipeline] keep_quiet_hops`), the baseline of the same run.

use sensor_agent::config::{Identity, PipelineConfig};
use sensor_agent::pipeline::{Ignore, Pipeline, StageTimes, SweepSettings, plan, select_bands};
use sensor_agent::recording::MemorySweep;
use sensor_agent::source::{SourceSpec, device_profile};
use time::OffsetDateTime;

/// The peak resident set of process `pid` so far, kB (`VmHWM`).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs the agent for `seconds` with `keep_quiet_hops`, and returns its peak resident set, kB.
fn agent_rss_kb(dir: &std::path::Path, keep_quiet_hops: bool, seconds: f64) -> u64 {
    let bin = env!("CARGO_BIN_EXE_sensor-agent");
    let key = dir.join("key");
    if !key.join("sensor.key").exists() {
        let k = std::process::Command::new(bin)
            .args(["keygen", "--out"])
            .arg(&key)
            .output()
            .expect("keygen");
        assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    }
    let outbox = dir.join(format!("outbox-{keep_quiet_hops}"));
    let cfg = dir.join(format!("agent-{keep_quiet_hops}.toml"));
    let text = format!(
        "[sensor]\nfacility = \"bench\"\nid = \"s1\"\nzone = \"z\"\nkey = {key:?}\n\
         [source]\nspec = \"sim\"\ndevice = \"hackrf\"\n\
         [scan]\ncountry = \"CO\"\ndwell_ms = 20\ncell_search = true\nwatch_hz = [778e6]\n\
         [pipeline]\nkeep_quiet_hops = {keep_quiet_hops}\n\
         [mqtt]\nbroker = \"mqtt://127.0.0.1:1\"\n\
         [outbox]\ndir = {outbox:?}\n",
        key = key.join("sensor.key"),
    );
    std::fs::write(&cfg, text).expect("config");
    let mut child = std::process::Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(&cfg)
        .env("CENTINELA_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("agent");
    let started = std::time::Instant::now();
    let mut peak = 0;
    while started.elapsed().as_secs_f64() < seconds {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the agent stopped early: {status}");
        }
        peak = peak_rss_kb(child.id()).unwrap_or(peak).max(peak);
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    peak = peak_rss_kb(child.id()).unwrap_or(peak).max(peak);
    let _ = child.kill();
    let _ = child.wait();
    peak
}

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
    for profile in profiles.split(',').filter(|p| !p.is_empty()) {
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
    let rss_s: f64 = std::env::var("SWEEP_RSS_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20.0);
    if rss_s > 0.0 {
        let dir = tempfile::tempdir().expect("tmp");
        let lean = agent_rss_kb(dir.path(), false, rss_s);
        let all = agent_rss_kb(dir.path(), true, rss_s);
        println!(
            "{}",
            serde_json::json!({
                "agent_rss": "sensor-agent run, sim, hackrf, CO plan, 20 ms dwell, clips on",
                "seconds": rss_s,
                "peak_rss_mb": lean as f64 / 1024.0,
                "peak_rss_mb_keeping_quiet_hops": all as f64 / 1024.0,
                "ratio": lean as f64 / all as f64,
            })
        );
    }
}
