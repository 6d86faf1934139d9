//! Wiring of the agent: plan, source, scanning thread, outbox, MQTT link, shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hardware::IqSource;
use protocol::{BandSummary, CarrierSummary, GapState, Kind, SPECTRUM_SCHEMA, SpectrumSummary};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, watch};

use crate::AgentError;
use crate::config::{Identity, PipelineConfig};
use crate::daemon::config::AgentConfig;
use crate::daemon::outbox::{Entry, Outbox};
use crate::daemon::publisher::{self, LinkOptions, LinkStats, StatusSource, TlsFiles};
use crate::daemon::signer::Signer;
use crate::evidence::ClipStore;
use crate::pipeline::{BandObservation, Observer, Pipeline, SweepSettings, plan};
use crate::recording::{SweepHeader, SweepOrigin, SweepRecorder, sweep_base};
use crate::source::SourceSpec;
use crate::tracker::Event;

/// Where the daemon's sweeps go: each event sealed and written to the outbox (the link sends
/// it), each band kept for the spectrum summary.
struct OutboxSink<'a> {
    id: &'a Identity,
    signer: &'a Signer,
    outbox: &'a Outbox,
    wake: &'a Notify,
    keep_bands: bool,
    bands: Vec<BandObservation>,
    events: u64,
    recorder: Option<SweepRecorder>,
    /// Air time captured per range of the plan this sweep, seconds.
    air_s: Vec<f64>,
}

impl Observer for OutboxSink<'_> {
    fn hop(&mut self, hop: &crate::pipeline::HopCapture<'_>) -> Result<(), AgentError> {
        if self.air_s.len() <= hop.range {
            self.air_s.resize(hop.range + 1, 0.0);
        }
        self.air_s[hop.range] += hop.samples.len() as f64 / hop.tuned.sample_rate_hz;
        match self.recorder.as_mut() {
            Some(r) => r.hop(hop),
            None => Ok(()),
        }
    }

    fn band(&mut self, b: &BandObservation) {
        if self.keep_bands {
            self.bands.push(b.clone());
        }
    }

    fn event(&mut self, e: &Event) {
        let (kind, droppable, payload) = match e {
            Event::Gap(g) => (
                Kind::Gap,
                g.state == GapState::Update,
                serde_json::to_string(g),
            ),
            Event::Jammer(j) => (Kind::Jammer, false, serde_json::to_string(j)),
        };
        let Ok(msg) = payload else { return };
        let Ok(topic) = protocol::topic(&self.id.facility_id, &self.id.sensor_id, kind) else {
            return;
        };
        // Sealed once: every resend is these very bytes.
        let payload = match self.signer.seal_text(&topic, &msg) {
            Ok(p) => p,
            Err(err) => {
                self.outbox.count_lost();
                tracing::error!("event lost (counted in the status as outbox_dropped): {err}");
                return;
            }
        };
        // Held in memory when the disk fails; dropped (counted, logged once per episode by the
        // outbox) only when memory is full too.
        if self
            .outbox
            .push(&Entry { topic, payload }, droppable)
            .is_ok()
        {
            self.events += 1;
            self.wake.notify_one();
        }
    }
}

/// What a run did, returned after shutdown.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Sweeps completed.
    pub sweeps: u64,
    /// Events written to the outbox.
    pub events: u64,
    /// Link counters.
    pub link: LinkStats,
    /// Events still waiting in the outbox.
    pub waiting: usize,
}

/// Each band's revisit interval (since its range was last captured) and the share of that time
/// its hops were on the air, after a sweep that captured `air_s` per range.
fn band_coverage(
    plan: &crate::pipeline::ScanPlan,
    air_s: &[f64],
    last_seen: &mut Vec<Option<std::time::Instant>>,
    now: std::time::Instant,
) -> Vec<protocol::BandCoverage> {
    last_seen.resize(plan.ranges.len(), None);
    let mut out = Vec::new();
    for (i, range) in plan.ranges.iter().enumerate() {
        let air = air_s.get(i).copied().unwrap_or(0.0);
        let revisit_s = last_seen[i].map_or(0.0, |t| (now - t).as_secs_f64());
        if air > 0.0 {
            last_seen[i] = Some(now);
        }
        for b in &range.bands {
            out.push(protocol::BandCoverage {
                band: b.name.to_string(),
                revisit_s,
                observed_fraction: if revisit_s > 0.0 {
                    (air / revisit_s).min(1.0)
                } else {
                    0.0
                },
            });
        }
    }
    out
}

/// Samples in a recording (0 when it cannot be read).
fn recorded_samples(spec: &SourceSpec) -> u64 {
    match spec {
        SourceSpec::Sigmf(p) => hardware::sigmf::Metadata::open(p).map_or(0, |m| m.total_samples),
        _ => 0,
    }
}

/// Opens the configured source; the simulator as this sensor sees the scene (its position, its
/// own noise).
fn open_source(cfg: &AgentConfig, spec: &SourceSpec) -> Result<Box<dyn IqSource>, AgentError> {
    let scene = spec.scene()?.map(|mut scene| {
        if let Some(p) = cfg.sensor.position_m {
            scene.radio.position_m = p;
        }
        scene.seed ^= protocol::event_id(OffsetDateTime::UNIX_EPOCH, cfg.sensor.id.as_bytes())
            .as_u128() as u64;
        scene
    });
    spec.open(scene)
}

fn spectrum_summary(
    id: &Identity,
    at: OffsetDateTime,
    bands: &[BandObservation],
) -> SpectrumSummary {
    SpectrumSummary {
        schema: SPECTRUM_SCHEMA.into(),
        event_id: protocol::event_id(
            at,
            format!("spectrum {} {}", id.facility_id, id.sensor_id).as_bytes(),
        ),
        facility_id: id.facility_id.clone(),
        sensor_id: id.sensor_id.clone(),
        observed_at: at,
        bands: bands
            .iter()
            .map(|b| {
                let a = &b.analysis;
                let j = a.jammers.first();
                BandSummary {
                    band: b.band.clone(),
                    unit: serde_json::to_value(a.unit)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    floor_db_per_hz: a.floor_db_per_hz,
                    noise_rise_db: j.map(|j| j.assessment.noise_rise_db),
                    carriers: a
                        .carriers
                        .iter()
                        .map(|c| CarrierSummary {
                            center_hz: c.center_hz,
                            bandwidth_hz: c.bandwidth_hz,
                            power_dbfs: c.power_dbfs,
                        })
                        .collect(),
                }
            })
            .collect(),
    }
}

/// Runs the agent until `shutdown` turns true.
///
/// # Errors
/// A configuration the radio cannot run, a source that cannot be opened, an outbox directory
/// that cannot be used.
pub async fn run(
    cfg: AgentConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<RunReport, AgentError> {
    let problems = cfg.problems("configuration");
    if !problems.is_empty() {
        return Err(AgentError::Input(problems.join("\n")));
    }
    let bands = crate::pipeline::select_bands(Some(&cfg.scan.country), &cfg.scan.bands)?;
    let device = crate::source::device_profile(cfg.source.device.as_deref())?;
    let spec = SourceSpec::parse(&cfg.source.spec)?;
    // A recording scans at its own rate.
    let recorded_rate = spec.recorded_rate()?;
    let (mut dev_name, limits, mut rate) =
        spec.radio(device, cfg.source.sample_rate_hz.or(recorded_rate));
    let pipeline: PipelineConfig = cfg.pipeline.clone();
    let mut scan_plan = plan(&bands, &dev_name, &limits, rate, pipeline.usable_fraction())?;
    let mut settings = SweepSettings {
        pipeline: pipeline.clone(),
        dwell_s: cfg.scan.dwell_ms / 1e3,
        gain_db: cfg.source.gain_db,
        noise_figure_db: device.map(|p| p.noise_figure_db),
        cell_search: cfg.scan.cell_search,
        watch_hz: cfg.scan.watch_hz.clone(),
        jammer_confirm: 1,
        analysis: true,
    };
    // A sweep the agent recorded plays with its own plan, settings and clock, so the events
    // are the ones it published (sweep k at the recorded time plus k sweeps' air time).
    let mut clock: Option<(OffsetDateTime, time::Duration)> = None;
    let mut recorded_ppm: Option<f64> = None;
    let mut recorded_trackers = None;
    if let Some(h) = spec.recorded_sweep()? {
        recorded_ppm = h.radio_ppm;
        recorded_trackers.clone_from(&h.trackers);
        tracing::info!(
            "playing sweep {} recorded by {}/{} on {}: its plan and settings replace [scan] and [pipeline]",
            h.sweep,
            h.sensor.facility_id,
            h.sensor.sensor_id,
            h.device
        );
        let air_s = recorded_rate.map_or(0.0, |fs| recorded_samples(&spec) as f64 / fs);
        clock = Some((
            h.sweep_at,
            time::Duration::seconds_f64(air_s + cfg.scan.interval_s),
        ));
        scan_plan = h.plan;
        settings = SweepSettings {
            analysis: true,
            ..h.settings
        };
        dev_name = h.device;
        rate = h.sample_rate_hz;
    }
    let mut unreachable = Vec::new();
    for r in &scan_plan.ranges {
        if r.hops.warning(&dev_name, &limits).is_some() {
            unreachable.extend(r.bands.iter().map(|b| b.name.to_string()));
        }
    }
    for w in &scan_plan.warnings {
        tracing::warn!("{w}");
    }
    let key_path = cfg
        .sensor
        .key
        .as_deref()
        .ok_or_else(|| AgentError::Input("sensor.key is missing".into()))?;
    let signer = Arc::new(Signer::open(key_path)?);
    tracing::info!(
        "signing as {} (message {} was the last)",
        signer.public(),
        signer.last_seq()
    );
    let outbox = Arc::new(
        Outbox::open(&cfg.outbox.dir, cfg.outbox.max_events)
            .map_err(|e| AgentError::Input(e.to_string()))?,
    );
    let id = Identity {
        facility_id: cfg.sensor.facility.clone(),
        sensor_id: cfg.sensor.id.clone(),
        zone: cfg.sensor.zone.clone(),
    };
    let status = Arc::new(StatusSource::new(
        id.clone(),
        cfg.sensor.position_m,
        unreachable,
        cfg.mqtt.heartbeat_s,
        outbox.clone(),
        signer.clone(),
    )?);
    let (host, port) = protocol::parse_broker_url(&cfg.mqtt.broker).map_err(AgentError::Input)?;
    let read = |p: &std::path::Path| crate::files::read_small(p).map_err(AgentError::Input);
    let tls = match &cfg.mqtt.tls_ca {
        Some(ca) => Some(TlsFiles {
            ca: read(ca)?,
            client: match (&cfg.mqtt.tls_cert, &cfg.mqtt.tls_key) {
                (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                _ => None,
            },
        }),
        None => None,
    };
    let wake = Arc::new(Notify::new());
    let (qos0_tx, qos0_rx) = mpsc::channel(16);
    let (link_stop_tx, link_stop_rx) = watch::channel(false);
    let link = tokio::spawn(publisher::run(
        LinkOptions {
            host,
            port,
            credentials: cfg.mqtt.username.clone().zip(cfg.mqtt.password.clone()),
            tls,
            receipt_timeout: Duration::from_secs_f64(cfg.mqtt.receipt_timeout_s),
            server_keys: cfg.mqtt.server_key.clone(),
        },
        status.clone(),
        outbox.clone(),
        wake.clone(),
        qos0_rx,
        link_stop_rx,
    ));
    tracing::info!(
        "agent {}/{} scanning {} hop(s) on {dev_name}; outbox {}",
        id.facility_id,
        id.sensor_id,
        scan_plan.hop_count(),
        cfg.outbox.dir.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (opened_tx, opened_rx) = std::sync::mpsc::channel::<Result<(), AgentError>>();
    let scanner = {
        let stop = stop.clone();
        let outbox = outbox.clone();
        let status = status.clone();
        let wake = wake.clone();
        let cfg = cfg.clone();
        let signer = signer.clone();
        std::thread::Builder::new()
            .name(format!("scan-{}", cfg.sensor.id))
            .spawn(move || {
                // The radio lives on this thread (SoapySDR handles are not Send).
                let origin = SweepOrigin::new(&id, &dev_name, device, rate);
                let clips = if cfg.evidence.clips {
                    crate::evidence::clip_policy(
                        &cfg.evidence.dir_for(&cfg.outbox.dir),
                        cfg.evidence.max_mb,
                    )
                    .and_then(|policy| ClipStore::open(policy, origin.clone()))
                    .map(Some)
                } else {
                    Ok(None)
                };
                let mut pipe = match (Pipeline::new(scan_plan, settings, &id), clips) {
                    (Ok(p), Ok(clips)) => {
                        let mut p = p.with_cancel(stop.clone());
                        p.set_radio_ppm(recorded_ppm);
                        p.set_tracker_state(recorded_trackers.unwrap_or_default());
                        match clips {
                            Some(c) => p.with_clips(c),
                            None => p,
                        }
                    }
                    (Err(e), _) | (_, Err(e)) => {
                        let _ = opened_tx.send(Err(e));
                        return (0, 0);
                    }
                };
                let mut source = match open_source(&cfg, &spec) {
                    Ok(s) => {
                        let _ = opened_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return (0, 0);
                    }
                };
                let mut sweeps = 0u64;
                let mut events = 0u64;
                let mut last_seen: Vec<Option<std::time::Instant>> = Vec::new();
                let mut coverage: Vec<protocol::BandCoverage> = Vec::new();
                let mut spectrum_dropped = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let at = match clock {
                        Some((t0, period)) => t0 + period * (sweeps as f64),
                        None => OffsetDateTime::now_utc(),
                    };
                    let recorder = match &cfg.scan.record {
                        Some(base) => match SweepRecorder::create(
                            &sweep_base(base, sweeps),
                            SweepHeader::new(&origin, pipe.plan(), pipe.settings(), sweeps, at)
                                .with_radio_ppm(pipe.radio_ppm())
                                .with_trackers(pipe.tracker_state()),
                        ) {
                            Ok(r) => Some(r),
                            Err(e) => {
                                tracing::error!("sweep not recorded: {e}");
                                None
                            }
                        },
                        None => None,
                    };
                    let mut sink = OutboxSink {
                        id: &id,
                        signer: &signer,
                        outbox: &outbox,
                        wake: &wake,
                        keep_bands: cfg.mqtt.spectrum,
                        bands: Vec::new(),
                        events: 0,
                        recorder,
                        air_s: Vec::new(),
                    };
                    let r = pipe.sweep(source.as_mut(), at, &mut sink);
                    events += sink.events;
                    let coverage_now = std::time::Instant::now();
                    if r.is_ok() {
                        coverage =
                            band_coverage(pipe.plan(), &sink.air_s, &mut last_seen, coverage_now);
                    }
                    if let Some(rec) = sink.recorder.take()
                        && r.is_ok()
                    {
                        match rec.finish() {
                            Ok(w) => tracing::info!(
                                "sweep {} recorded in {}",
                                sweeps,
                                w.meta_path.display()
                            ),
                            Err(e) => tracing::error!("sweep not recorded: {e}"),
                        }
                    }
                    let observed = sink.bands;
                    let mut h = status
                        .health
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    match r {
                        Ok(health) => {
                            sweeps += 1;
                            h.sweeps = sweeps;
                            h.last_sweep_s = health.elapsed_s;
                            h.overflows += health.overflows;
                            h.lost_samples += health.lost_samples;
                            h.timeouts += health.timeouts;
                            h.coverage.clone_from(&coverage);
                            h.spectrum_dropped = spectrum_dropped;
                            if let Some(c) = pipe.clip_stats() {
                                h.clips_kept = c.written;
                                h.clips_evicted = c.evicted;
                                h.clips_lost = c.skipped + c.failed;
                            }
                            drop(h);
                            // Sealed only when the link can take it (a number spent on a
                            // summary never sent would show as a missing message).
                            if cfg.mqtt.spectrum && qos0_tx.capacity() == 0 {
                                // The link is slow: this summary is dropped, and counted.
                                spectrum_dropped += 1;
                            } else if cfg.mqtt.spectrum {
                                let s = spectrum_summary(&id, at, &observed);
                                let t =
                                    protocol::topic(&id.facility_id, &id.sensor_id, Kind::Spectrum);
                                if let (Ok(m), Ok(t)) = (serde_json::to_vec(&s), t) {
                                    match signer.seal(&t, &m) {
                                        Ok(p) => {
                                            let _ = qos0_tx.try_send((t, p));
                                        }
                                        Err(e) => tracing::error!("spectrum summary not sent: {e}"),
                                    }
                                }
                            }
                            tracing::debug!("sweep {sweeps} in {:.2} s", health.elapsed_s);
                        }
                        Err(AgentError::Cancelled) => break,
                        Err(e) => {
                            h.sweep_errors += 1;
                            drop(h);
                            tracing::error!("sweep failed: {e}; retrying in 2 s");
                            for _ in 0..20 {
                                if stop.load(Ordering::Relaxed) {
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    }
                    let mut pause = cfg.scan.interval_s;
                    while pause > 0.0 && !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_secs_f64(pause.min(0.1)));
                        pause -= 0.1;
                    }
                }
                (sweeps, events)
            })
            .map_err(|e| AgentError::Runtime(format!("starting the scanning thread: {e}")))?
    };
    let opened = tokio::task::spawn_blocking(move || opened_rx.recv())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_else(|| Err(AgentError::Runtime("the scanning thread ended".into())));
    if let Err(e) = opened {
        let _ = link_stop_tx.send(true);
        let _ = link.await;
        return Err(e);
    }
    let _ = shutdown.wait_for(|v| *v).await;
    tracing::info!("stopping: finishing the current sweep");
    stop.store(true, Ordering::Relaxed);
    let (sweeps, events) = tokio::task::spawn_blocking(move || scanner.join())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    wake.notify_one();
    let _ = link_stop_tx.send(true);
    let link = link.await.unwrap_or_default();
    let waiting = outbox.len();
    tracing::info!(
        "stopped after {sweeps} sweep(s); {events} event(s) written, {waiting} still in the outbox"
    );
    Ok(RunReport {
        sweeps,
        events,
        link,
        waiting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_is_the_revisit_interval_and_the_air_time_share() {
        let bands =
            crate::pipeline::select_bands(None, &["B28".into(), "n78".into()]).expect("bands");
        let limits = dsp::bandplan::TuningLimits {
            min_hz: 1e6,
            max_hz: 6e9,
            max_sample_rate_hz: 20e6,
        };
        let p = plan(&bands, "radio", &limits, 15.36e6, 0.8).expect("plan");
        assert_eq!(p.ranges.len(), 2);
        let t0 = std::time::Instant::now();
        let mut seen = Vec::new();
        // First sweep: nothing to measure a revisit against.
        let c = band_coverage(&p, &[0.1, 0.3], &mut seen, t0);
        assert!(
            c.iter()
                .all(|b| b.revisit_s == 0.0 && b.observed_fraction == 0.0)
        );
        // Two seconds later: B28 was on the air 0.1 s of them, n78 0.3 s.
        let c = band_coverage(&p, &[0.1, 0.3], &mut seen, t0 + Duration::from_secs(2));
        let get = |n: &str| c.iter().find(|b| b.band == n).expect("band").clone();
        assert!((get("B28").revisit_s - 2.0).abs() < 1e-9);
        assert!((get("B28").observed_fraction - 0.05).abs() < 1e-9);
        assert!((get("n78").observed_fraction - 0.15).abs() < 1e-9);
        // A range not captured (a failed hop) keeps its last sighting: its revisit counts from it.
        let c = band_coverage(&p, &[0.1], &mut seen, t0 + Duration::from_secs(4));
        let n78 = c.iter().find(|b| b.band == "n78").expect("n78");
        assert!((n78.revisit_s - 2.0).abs() < 1e-9, "{n78:?}");
        assert_eq!(n78.observed_fraction, 0.0);
    }
}
