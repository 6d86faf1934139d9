//! The `sensor-agent` command line.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use dsp::bandplan::{self, Band};
use dsp::calib::Calibration;
use hardware::sigmf::Datatype;
use hardware::sim::Scene;
use serde_json::json;
use time::OffsetDateTime;

use crate::AgentError;
use crate::config::{Identity, PipelineConfig};
use crate::evidence::{ClipStore, clip_policy};
use crate::pipeline::{
    BandObservation, HopCapture, Observer, Pipeline, ScanPlan, SweepHealth, SweepSettings, plan,
    select_bands,
};
use crate::recording::{RecordedSweep, SweepHeader, SweepOrigin, SweepRecorder, sweep_base};
use crate::replay::{ReplayOptions, replay, write_json_line, write_text_line};
use crate::source::{SourceSpec, device_profile};
use crate::tracker::Event;

/// Centinela sensor agent: checks that prison cell-phone jammers work, band by band.
#[derive(Debug, Parser)]
#[command(name = "sensor-agent", version, about)]
pub struct Cli {
    /// Log filter for stderr (error, warn, info, debug, trace, or a tracing directive).
    #[arg(long, global = true, default_value = "info", env = "CENTINELA_LOG")]
    pub log: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the production pipeline on a SigMF recording and print observations and events.
    Replay(ReplayArgs),
    /// A recording's spectrum as rtl_power-compatible CSV.
    Psd(PsdArgs),
    /// The band plan and what a radio can and cannot cover.
    Bands(BandsArgs),
    /// Sweep the band plan with a source (the simulated facility, or a radio) and print results.
    Scan(ScanArgs),
    /// Record IQ from a source to a SigMF recording (one capture per hop).
    Record(RecordArgs),
    /// Print the built-in demo facility scene as TOML (a starting point for your own).
    Scene,
    /// Run the agent: sweep continuously and publish gap, jammer and status messages over MQTT.
    Run(RunArgs),
    /// Check an agent configuration file and print every problem at once.
    CheckConfig(CheckConfigArgs),
    /// Make the sensor's signing key: `DIR/sensor.key` (mode 0600) and `DIR/sensor.pub`; prints
    /// the public key to register on the server.
    Keygen(KeygenArgs),
}

/// `keygen` arguments.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Directory for the key pair (created with mode 0700).
    #[arg(long)]
    pub out: PathBuf,
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Agent configuration (TOML); `CENTINELA_<SECTION>_<KEY>` variables override it.
    #[arg(long)]
    pub config: PathBuf,
    /// Record every sweep as it is analysed (`scan.record`): `BASE-000000.sigmf-meta`, …
    #[arg(long, value_name = "BASE")]
    pub record: Option<PathBuf>,
}

/// `check-config` arguments.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Agent configuration (TOML).
    pub config: PathBuf,
}

fn load_agent_config(
    path: &std::path::Path,
) -> Result<crate::daemon::config::AgentConfig, AgentError> {
    let text = crate::files::read_small_text(path).map_err(AgentError::Input)?;
    crate::daemon::config::AgentConfig::load(&text, &path.display().to_string())
        .map_err(|p| AgentError::Input(p.join("\n")))
}

fn cmd_run(a: &RunArgs) -> Result<(), AgentError> {
    let mut cfg = load_agent_config(&a.config)?;
    if a.record.is_some() {
        cfg.scan.record.clone_from(&a.record);
    }
    let rt = tokio::runtime::Runtime::new()
        .map_err(|e| AgentError::Runtime(format!("starting the runtime: {e}")))?;
    rt.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("signal received: shutting down");
            let _ = tx.send(true);
        });
        crate::daemon::run(cfg, rx).await.map(|_| ())
    })
}

/// Waits for Ctrl-C or SIGTERM.
pub async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
        match term {
            Ok(mut t) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = t.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Who the observations are attributed to.
#[derive(Debug, Args, Clone)]
pub struct IdentityArgs {
    /// Facility id.
    #[arg(long, default_value = "local", env = "CENTINELA_FACILITY")]
    pub facility: String,
    /// Sensor id.
    #[arg(long, default_value = "sensor-1", env = "CENTINELA_SENSOR")]
    pub sensor: String,
    /// Zone the sensor covers.
    #[arg(long, default_value = "unassigned")]
    pub zone: String,
}

impl IdentityArgs {
    fn identity(&self) -> Identity {
        Identity {
            facility_id: self.facility.clone(),
            sensor_id: self.sensor.clone(),
            zone: self.zone.clone(),
        }
    }
}

/// Spectrum settings.
#[derive(Debug, Args, Clone)]
pub struct PipelineArgs {
    /// FFT size (power of two, 256–65536).
    #[arg(long, default_value_t = 1024)]
    pub fft: usize,
    /// Segment overlap (0 ≤ x < 1).
    #[arg(long, default_value_t = 0.5)]
    pub overlap: f64,
    /// Milliseconds averaged into one observation.
    #[arg(long, default_value_t = 20.0)]
    pub average_ms: f64,
    /// Country whose band plan to use (CO, MX, GT, EC, UY, DO); all known bands if omitted.
    #[arg(long)]
    pub country: Option<String>,
    /// Explicit bands, comma separated (B28,n78,GSM850); overrides --country.
    #[arg(long, value_delimiter = ',')]
    pub bands: Vec<String>,
    /// Hold every hop's samples for the cell search, hops at the thermal floor too (by default
    /// they are let go once their spectrum is taken); for a radio whose noise figure is not
    /// known well.
    #[arg(long)]
    pub keep_quiet_hops: bool,
}

impl PipelineArgs {
    fn pipeline(&self) -> Result<PipelineConfig, AgentError> {
        if !(self.average_ms.is_finite() && self.average_ms > 0.0) {
            return Err(AgentError::Input(format!(
                "--average-ms {} must be a positive number",
                self.average_ms
            )));
        }
        Ok(PipelineConfig {
            fft_size: self.fft,
            overlap: self.overlap,
            average_s: self.average_ms / 1e3,
            keep_quiet_hops: self.keep_quiet_hops,
            ..PipelineConfig::default()
        })
    }

    fn band_list(&self) -> Result<Vec<&'static Band>, AgentError> {
        select_bands(self.country.as_deref(), &self.bands)
    }
}

/// `replay` arguments.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The recording (`.sigmf-meta`, `.sigmf-data` or base name).
    pub file: PathBuf,
    /// JSON Lines on stdout (observations and events in the wire format).
    #[arg(long)]
    pub json: bool,
    /// The recording radio's full-scale input power (dBm at 0 dBFS), to report dBm.
    #[arg(long)]
    pub full_scale_dbm: Option<f64>,
    /// Antenna gain minus cable loss, dB (with --full-scale-dbm).
    #[arg(long, default_value_t = 0.0)]
    pub external_gain_db: f64,
    /// The recording radio's noise figure, dB (with --full-scale-dbm: jammer verdicts).
    #[arg(long)]
    pub noise_figure_db: Option<f64>,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Energy detection only: no LTE or NR cell search.
    #[arg(long)]
    pub no_cell_search: bool,
    /// Carrier-frequency offsets searched, ± kHz (cheap radios are tens of ppm off).
    #[arg(long, default_value_t = 150.0)]
    pub cfo_range_khz: f64,
    /// Seconds of each capture searched again, in one piece, for LTE cells too weak for one
    /// 80 ms window, once a window has confirmed a cell there (0: no deep search).
    #[arg(long, default_value_t = 1.0, value_parser = deep_seconds)]
    pub deep_s: f64,
    /// A recorded sweep is replayed through the sweep pipeline with its own settings, to the
    /// verdicts the sensor reached; this analyses it window by window with the full cell search
    /// instead, as a recording from another tool is (deeper than a sensor looks).
    #[arg(long)]
    pub windows: bool,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

/// `psd` arguments.
#[derive(Debug, Args)]
pub struct PsdArgs {
    /// The recording.
    pub file: PathBuf,
    /// FFT size (power of two, 256–65536).
    #[arg(long, default_value_t = 1024)]
    pub fft: usize,
    /// Segment overlap (0 ≤ x < 1).
    #[arg(long, default_value_t = 0.5)]
    pub overlap: f64,
    /// Seconds integrated per line (rtl_power's -i).
    #[arg(long, default_value_t = 1.0)]
    pub interval_s: f64,
}

/// `bands` arguments.
#[derive(Debug, Args)]
pub struct BandsArgs {
    /// Country plan (CO, MX, GT, EC, UY, DO).
    #[arg(long, default_value = "CO")]
    pub country: String,
    /// Radio profile (rtlsdr, hackrf, airspy, limesdr, usrp-b2xx, plutosdr).
    #[arg(long)]
    pub device: Option<String>,
    /// JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Where samples come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SampleFormat {
    /// 32-bit float.
    Cf32Le,
    /// 16-bit integer.
    Ci16Le,
}

/// `scan` arguments.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// `sim` (the demo facility), `sim:SCENE.toml`, or `soapy:DEVICE-ARGS` (e.g. soapy:driver=rtlsdr).
    #[arg(long, default_value = "sim")]
    pub source: String,
    /// Radio profile for tuning limits (default: the simulator's own limits, or from the driver).
    #[arg(long)]
    pub device: Option<String>,
    /// Sample rate, S/s (default: the profile's scanning rate).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Milliseconds captured per hop.
    #[arg(long, default_value_t = 10.0)]
    pub dwell_ms: f64,
    /// Gain, dB.
    #[arg(long)]
    pub gain_db: Option<f64>,
    /// Number of sweeps.
    #[arg(long, default_value_t = 1)]
    pub sweeps: u32,
    /// JSON Lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Energy and jammer verdicts only: do not name the carriers' cells.
    #[arg(long)]
    pub no_cell_search: bool,
    /// LTE downlink centres (Hz, comma-separated) to sync-search every sweep even without an
    /// energy carrier (cells hidden under a jammer).
    #[arg(long, value_delimiter = ',')]
    pub watch_hz: Vec<f64>,
    /// Record each sweep as it is analysed: `BASE-000000.sigmf-meta` and `.sigmf-data` for the
    /// first, one recording per sweep, which `replay` turns back into this very output.
    #[arg(long, value_name = "BASE")]
    pub record: Option<PathBuf>,
    /// Keep an evidence clip (SigMF) of each gap that opens at `critical` in this directory;
    /// the gap event names it and its SHA-512.
    #[arg(long, value_name = "DIR")]
    pub clips: Option<PathBuf>,
    /// Most megabytes the clips may take (the oldest go first when full).
    #[arg(long, default_value_t = 1024.0)]
    pub clips_max_mb: f64,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

/// `record` arguments.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Source, as for `scan`.
    #[arg(long, default_value = "sim")]
    pub source: String,
    /// Record whole bands hop by hop, as `scan` plans them (one SigMF capture per hop; comma
    /// separated).
    #[arg(long, conflicts_with = "center_hz")]
    pub band: Option<String>,
    /// Record one tuning at this centre, hertz.
    #[arg(long)]
    pub center_hz: Option<f64>,
    /// Sample rate, S/s (default: the profile's scanning rate, as for `scan`).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Seconds per capture (`scan`'s dwell).
    #[arg(long, default_value_t = 0.01)]
    pub seconds: f64,
    /// Gain, dB.
    #[arg(long)]
    pub gain_db: Option<f64>,
    /// Radio profile for tuning limits and noise figure.
    #[arg(long)]
    pub device: Option<String>,
    /// Sample format on disk (ci16_le is a quarter of the size but rounds the samples: the
    /// replay is of what was written).
    #[arg(long, value_enum, default_value_t = SampleFormat::Cf32Le)]
    pub datatype: SampleFormat,
    /// Analyse the sweep as well and print what `scan` prints.
    #[arg(long)]
    pub analyse: bool,
    /// With --analyse: JSON Lines on stdout.
    #[arg(long)]
    pub json: bool,
    /// Output base name (writes BASE.sigmf-meta and BASE.sigmf-data).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub pipeline: PipelineArgs,
    #[command(flatten)]
    pub identity: IdentityArgs,
}

/// Parses arguments, runs, and returns the process exit code (0, 1 runtime, 2 bad input).
pub fn run_from_args<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = run(cli.command, &mut out).and_then(|()| out.flush().map_err(AgentError::Output));
    match result {
        Ok(()) => 0,
        Err(AgentError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(e) => {
            eprintln!("sensor-agent: {e}");
            e.exit_code()
        }
    }
}

/// Runs one command, writing machine or human output to `out`.
///
/// # Errors
/// Whatever the command fails with; see [`AgentError::exit_code`].
pub fn run(command: Command, out: &mut dyn Write) -> Result<(), AgentError> {
    match command {
        Command::Replay(a) => cmd_replay(&a, out),
        Command::Psd(a) => {
            if !(a.interval_s.is_finite() && a.interval_s > 0.0) {
                return Err(AgentError::Input(format!(
                    "--interval-s {} must be positive",
                    a.interval_s
                )));
            }
            let n = crate::psd_csv::write_psd_csv(&a.file, a.fft, a.overlap, a.interval_s, out)?;
            tracing::info!(lines = n, file = %a.file.display(), "psd written");
            Ok(())
        }
        Command::Bands(a) => cmd_bands(&a, out),
        Command::Scan(a) => cmd_scan(&a, out),
        Command::Run(a) => cmd_run(&a),
        Command::CheckConfig(a) => {
            let cfg = load_agent_config(&a.config)?;
            let files = cfg.file_problems(&a.config.display().to_string());
            if !files.is_empty() {
                return Err(AgentError::Input(files.join("\n")));
            }
            writeln!(
                out,
                "{}: ok (sensor {}/{} in zone {}, broker {})",
                a.config.display(),
                cfg.sensor.facility,
                cfg.sensor.id,
                cfg.sensor.zone,
                cfg.mqtt.broker
            )
            .map_err(AgentError::Output)
        }
        Command::Record(a) => cmd_record(&a, out),
        Command::Keygen(a) => {
            let (path, public) = crate::keys::keygen(&a.out)?;
            tracing::info!(key = %path.display(), "private key written (mode 0600)");
            writeln!(out, "{public}").map_err(AgentError::Output)
        }
        Command::Scene => {
            let text =
                toml::to_string(&Scene::demo()).map_err(|e| AgentError::Input(e.to_string()))?;
            out.write_all(text.as_bytes()).map_err(AgentError::Output)
        }
    }
}

fn cmd_replay(a: &ReplayArgs, out: &mut dyn Write) -> Result<(), AgentError> {
    if !a.windows && RecordedSweep::is_sweep(&hardware::sigmf::Metadata::open(&a.file)?) {
        return replay_sweep(&a.file, a.json, out);
    }
    let calibration = a
        .full_scale_dbm
        .map(|fs| Calibration::flat(fs, a.external_gain_db))
        .transpose()?;
    let opts = ReplayOptions {
        pipeline: a.pipeline.pipeline()?,
        identity: a.identity.identity(),
        bands: a.pipeline.band_list()?,
        calibration,
        noise_figure_db: a.noise_figure_db,
        progress: !a.no_progress,
        lte_search: (!a.no_cell_search).then(|| dsp::cell::lte_search::LteSearchConfig {
            cfo_range_hz: a.cfo_range_khz * 1e3,
            ..dsp::cell::lte_search::LteSearchConfig::default()
        }),
        nr_search: (!a.no_cell_search).then(|| dsp::cell::nr_search::NrSearchConfig {
            cfo_range_hz: a.cfo_range_khz * 1e3,
            ..dsp::cell::nr_search::NrSearchConfig::default()
        }),
        deep_s: if a.no_cell_search { 0.0 } else { a.deep_s },
    };
    let json = a.json;
    let summary = replay(&a.file, &opts, |item| {
        if json {
            write_json_line(out, &item)
        } else {
            write_text_line(out, &item)
        }
    })?;
    tracing::info!(
        captures = summary.captures,
        samples = summary.samples,
        observations = summary.observations,
        events = summary.events,
        carriers = summary.carriers,
        cells = ?summary.cells,
        "replay done"
    );
    Ok(())
}

fn cmd_bands(a: &BandsArgs, out: &mut dyn Write) -> Result<(), AgentError> {
    let country = bandplan::country(&a.country)?;
    let bands = select_bands(Some(country.code), &[])?;
    let dev = device_profile(a.device.as_deref())?;
    let mut rows = Vec::new();
    let mut warnings = Vec::new();
    for b in &bands {
        let coverage = match dev {
            Some(p) => {
                let h = bandplan::plan_hops(
                    b.name,
                    b.dl_low_hz,
                    b.dl_high_hz,
                    &p.limits(),
                    p.default_sample_rate_hz,
                    0.8,
                )?;
                if let Some(w) = h.warning(p.name, &p.limits()) {
                    warnings.push(w);
                }
                let status = if h.hops.is_empty() {
                    "cannot see"
                } else if h.unreachable_hz.is_empty() {
                    "covered"
                } else {
                    "partial"
                };
                Some((status, h.hops.len()))
            }
            None => None,
        };
        rows.push((b, coverage));
    }
    if a.json {
        let v = json!({
            "country": country.code,
            "name": country.name,
            "device": dev.map(|p| p.id),
            "bands": rows.iter().map(|(b, c)| json!({
                "band": b.name,
                "technology": b.technology.as_str(),
                "duplex": b.duplex,
                "dl_low_hz": b.dl_low_hz,
                "dl_high_hz": b.dl_high_hz,
                "channels": channel_range(b),
                "coverage": c.map(|(s, _)| s),
                "hops": c.map(|(_, n)| n),
            })).collect::<Vec<_>>(),
            "warnings": warnings,
        });
        writeln!(out, "{v}").map_err(AgentError::Output)?;
        return Ok(());
    }
    let mut text = format!("{} ({}) band plan", country.name, country.code);
    if let Some(p) = dev {
        text.push_str(&format!(
            " on {}: tunes {:.0}–{:.0} MHz, {:.2} MS/s",
            p.name,
            p.min_hz / 1e6,
            p.max_hz / 1e6,
            p.default_sample_rate_hz / 1e6
        ));
    }
    text.push('\n');
    text.push_str(&format!(
        "{:<8} {:<5} {:<4} {:>17}  {:<26} {}\n",
        "band", "tech", "dupl", "downlink MHz", "channels", "coverage"
    ));
    for (b, c) in &rows {
        text.push_str(&format!(
            "{:<8} {:<5} {:<4} {:>8.1}–{:<8.1}  {:<26} {}\n",
            b.name,
            b.technology.as_str(),
            match b.duplex {
                bandplan::Duplex::Fdd => "FDD",
                bandplan::Duplex::Tdd => "TDD",
            },
            b.dl_low_hz / 1e6,
            b.dl_high_hz / 1e6,
            channel_range(b),
            c.map_or_else(String::new, |(s, n)| format!("{s} ({n} hops)")),
        ));
    }
    for w in &warnings {
        text.push_str(&format!("warning: {w}\n"));
    }
    out.write_all(text.as_bytes()).map_err(AgentError::Output)
}

fn channel_range(b: &Band) -> String {
    match b.raster {
        bandplan::Raster::Lte { .. } => b
            .earfcn_range()
            .map(|(a, z)| format!("EARFCN {a}–{z}"))
            .unwrap_or_default(),
        bandplan::Raster::Nr {
            gscn: (a, z, _),
            ssb_scs_khz,
        } => format!(
            "GSCN {a}–{z} (SSB {} kHz)",
            ssb_scs_khz
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join("/")
        ),
        bandplan::Raster::Gsm { ranges, .. } => format!(
            "ARFCN {}",
            ranges
                .iter()
                .map(|(a, z)| format!("{a}–{z}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn cmd_scan(a: &ScanArgs, out: &mut dyn Write) -> Result<(), AgentError> {
    if !(a.dwell_ms.is_finite() && a.dwell_ms > 0.0) {
        return Err(AgentError::Input(format!(
            "--dwell-ms {} must be positive",
            a.dwell_ms
        )));
    }
    let device = device_profile(a.device.as_deref())?;
    let pipeline = a.pipeline.pipeline()?;
    let bands = select_bands(
        Some(a.pipeline.country.as_deref().unwrap_or("CO")),
        &a.pipeline.bands,
    )?;
    let spec = SourceSpec::parse(&a.source)?;
    let (dev_name, limits, rate) = spec.radio(device, a.rate);
    let scan_plan = plan(&bands, &dev_name, &limits, rate, pipeline.usable_fraction())?;
    for w in &scan_plan.warnings {
        tracing::warn!("{w}");
    }
    let mut source = spec.open(None)?;
    let id = a.identity.identity();
    protocol::check_id("facility_id", &id.facility_id)
        .map_err(|e| AgentError::Input(e.to_string()))?;
    protocol::check_id("sensor_id", &id.sensor_id).map_err(|e| AgentError::Input(e.to_string()))?;
    let settings = SweepSettings {
        // One sweep is all `scan` may get: a gap opens on its first sighting.
        pipeline: PipelineConfig {
            open_after: 1,
            ..pipeline
        },
        dwell_s: a.dwell_ms / 1e3,
        gain_db: a.gain_db,
        noise_figure_db: device.map(|p| p.noise_figure_db),
        cell_search: !a.no_cell_search,
        watch_hz: a.watch_hz.clone(),
        jammer_confirm: 1,
        analysis: true,
    };
    let mut pipe = Pipeline::new(scan_plan, settings, &id)?;
    let origin = SweepOrigin::new(&id, &dev_name, device, rate);
    if let Some(dir) = &a.clips {
        pipe = pipe.with_clips(ClipStore::open(
            clip_policy(dir, a.clips_max_mb)?,
            origin.clone(),
        )?);
    }
    print_plan(out, a.json, &dev_name, rate, pipe.plan(), a.dwell_ms)?;
    for n in 0..u64::from(a.sweeps) {
        let at = OffsetDateTime::now_utc();
        let recorder = match &a.record {
            Some(base) => Some(SweepRecorder::create(
                &sweep_base(base, n),
                SweepHeader::new(&origin, pipe.plan(), pipe.settings(), n, at)
                    .with_radio_ppm(pipe.radio_ppm())
                    .with_trackers(pipe.tracker_state()),
            )?),
            None => None,
        };
        let mut lines = SweepLines::new(&id, a.json, n, recorder);
        let health = pipe.sweep(source.as_mut(), at, &mut lines)?;
        if let Some(r) = lines.recorder.take() {
            let meta = r.finish()?;
            tracing::info!("sweep {} recorded in {}", n + 1, meta.meta_path.display());
        }
        print_sweep(out, a.json, n, lines.lines, &health, pipe.open_gaps())?;
    }
    Ok(())
}

/// The lines `scan` prints for a sweep (and the replay of a recorded sweep), gathered while it
/// runs; a recorder, when set, writes each hop as it is captured.
struct SweepLines<'a> {
    id: &'a Identity,
    json: bool,
    sweep: u64,
    lines: Vec<String>,
    recorder: Option<SweepRecorder>,
    last_decile: usize,
}

impl<'a> SweepLines<'a> {
    fn new(id: &'a Identity, json: bool, sweep: u64, recorder: Option<SweepRecorder>) -> Self {
        Self {
            id,
            json,
            sweep,
            lines: Vec::new(),
            recorder,
            last_decile: 0,
        }
    }
}

impl Observer for SweepLines<'_> {
    fn hop(&mut self, hop: &HopCapture<'_>) -> Result<(), AgentError> {
        match self.recorder.as_mut() {
            Some(r) => r.hop(hop),
            None => Ok(()),
        }
    }

    fn band(&mut self, b: &BandObservation) {
        if self.json {
            let mut v = serde_json::to_value(b).unwrap_or_default();
            v["type"] = json!("band");
            v["sweep"] = json!(self.sweep);
            self.lines.push(v.to_string());
        } else {
            self.lines.push(band_text(b));
        }
    }

    fn event(&mut self, e: &Event) {
        self.lines.push(event_line(self.id, e, self.json));
    }

    fn progress(&mut self, done: usize, total: usize) {
        let decile = done * 10 / total.max(1);
        if decile != self.last_decile {
            tracing::info!("sweep {}: {done}/{total} hops", self.sweep + 1);
            self.last_decile = decile;
        }
    }
}

fn print_plan(
    out: &mut dyn Write,
    json: bool,
    device: &str,
    rate: f64,
    scan_plan: &ScanPlan,
    dwell_ms: f64,
) -> Result<(), AgentError> {
    if json {
        writeln!(
            out,
            "{}",
            json!({"type": "plan", "device": device, "sample_rate_hz": rate, "plan": scan_plan})
        )
        .map_err(AgentError::Output)
    } else {
        writeln!(
            out,
            "Scanning {} hop(s) on {device} at {:.2} MS/s, {dwell_ms} ms per hop",
            scan_plan.hop_count(),
            rate / 1e6,
        )
        .map_err(AgentError::Output)?;
        for w in &scan_plan.warnings {
            writeln!(out, "warning: {w}").map_err(AgentError::Output)?;
        }
        Ok(())
    }
}

fn print_sweep(
    out: &mut dyn Write,
    json: bool,
    n: u64,
    lines: Vec<String>,
    health: &SweepHealth,
    open_gaps: usize,
) -> Result<(), AgentError> {
    for l in lines {
        writeln!(out, "{l}").map_err(AgentError::Output)?;
    }
    if json {
        writeln!(
            out,
            "{}",
            json!({"type": "health", "sweep": n, "health": health})
        )
        .map_err(AgentError::Output)
    } else {
        writeln!(
            out,
            "sweep {}: {} hops, {:.1} Msamples in {:.1} s, {} overflow(s), {} timeout(s), {} open gap(s)",
            n + 1,
            health.hops,
            health.samples as f64 / 1e6,
            health.elapsed_s,
            health.overflows,
            health.timeouts,
            open_gaps
        )
        .map_err(AgentError::Output)
    }
}

/// `replay` of a recorded sweep: the pipeline with the recording's plan, settings, sensor and
/// clock, printing what `scan` printed when it recorded it.
fn replay_sweep(path: &std::path::Path, json: bool, out: &mut dyn Write) -> Result<(), AgentError> {
    let mut rec = RecordedSweep::open(path)?;
    let h = rec.header.clone();
    // A recording made without analysis (`record`) is analysed now, as it was recorded to be.
    let settings = SweepSettings {
        analysis: true,
        ..h.settings
    };
    let mut pipe = Pipeline::new(h.plan, settings, &h.sensor)?;
    pipe.set_radio_ppm(h.radio_ppm);
    pipe.set_tracker_state(h.trackers.unwrap_or_default());
    print_plan(
        out,
        json,
        &h.device,
        h.sample_rate_hz,
        pipe.plan(),
        pipe.settings().dwell_s * 1e3,
    )?;
    let mut lines = SweepLines::new(&h.sensor, json, h.sweep, None);
    let health = pipe.sweep(&mut rec, h.sweep_at, &mut lines)?;
    print_sweep(out, json, h.sweep, lines.lines, &health, pipe.open_gaps())
}

fn band_text(b: &BandObservation) -> String {
    let a = &b.analysis;
    let jam = a.jammers.first().map_or_else(
        || "jammer n/a".to_string(),
        |j| {
            format!(
                "jammer {:<9} rise {:>5.1} dB",
                j.assessment.state.as_str(),
                j.assessment.noise_rise_db
            )
        },
    );
    let mut s = format!(
        "{:<8} {:>8.1}–{:<8.1} MHz  floor {:>7.1} {}/Hz  {}  {} carrier(s)",
        b.band,
        b.span_hz.0 / 1e6,
        b.span_hz.1 / 1e6,
        a.floor_db_per_hz,
        a.unit.as_str(),
        jam,
        a.carriers.len()
    );
    for c in &b.cells {
        s.push_str(&format!(
            "\n    {:<5} cell {:<22} {:>10.3} MHz  RSRP {:>6.1} {}  SINR {:>5.1} dB  margin {:>5.1} dB",
            c.technology.as_str(),
            c.cell.as_ref().map_or_else(|| "?".to_string(), ToString::to_string),
            c.center_hz / 1e6,
            c.power_dbm.unwrap_or(c.power_dbfs),
            if c.power_dbm.is_some() { "dBm" } else { "dBFS" },
            c.snr_db,
            c.margin_db
        ));
    }
    for c in &a.carriers {
        s.push_str(&format!(
            "\n    {:<5} {:>10.3} MHz  bw {:>7.3} MHz  power {:>6.1} {}  margin {:>5.1} dB",
            c.technology.as_str(),
            c.center_hz / 1e6,
            c.bandwidth_hz / 1e6,
            c.power_dbm.unwrap_or(c.power_dbfs),
            if c.power_dbm.is_some() { "dBm" } else { "dBFS" },
            c.margin_db
        ));
    }
    s
}

fn event_line(id: &Identity, e: &Event, json_mode: bool) -> String {
    // The ids were checked as topic levels before the sweep; say so if one was not.
    let topic = protocol::topic(&id.facility_id, &id.sensor_id, e.kind())
        .unwrap_or_else(|err| format!("(no topic: {err})"));
    let item = crate::replay::ReplayItem::Event {
        topic,
        event: Box::new(e.clone()),
    };
    let mut buf = Vec::new();
    let _ = if json_mode {
        write_json_line(&mut buf, &item)
    } else {
        write_text_line(&mut buf, &item)
    };
    String::from_utf8_lossy(&buf).trim_end().to_string()
}

fn cmd_record(a: &RecordArgs, out: &mut dyn Write) -> Result<(), AgentError> {
    if !(a.seconds.is_finite() && a.seconds > 0.0) {
        return Err(AgentError::Input(format!(
            "--seconds {} must be positive",
            a.seconds
        )));
    }
    let device = device_profile(a.device.as_deref())?;
    let pipeline = a.pipeline.pipeline()?;
    let spec = SourceSpec::parse(&a.source)?;
    let (dev_name, limits, rate) = spec.radio(device, a.rate);
    let scan_plan = match (&a.band, a.center_hz) {
        (Some(b), _) => {
            let bands = b
                .split(',')
                .map(|b| bandplan::band(b.trim()).map_err(AgentError::from))
                .collect::<Result<Vec<_>, _>>()?;
            plan(&bands, &dev_name, &limits, rate, pipeline.usable_fraction())?
        }
        (None, Some(c)) => one_tuning_plan(c, rate, &pipeline)?,
        (None, None) => return Err(AgentError::Input("give --band or --center-hz".into())),
    };
    for w in &scan_plan.warnings {
        tracing::warn!("{w}");
    }
    if scan_plan.hop_count() == 0 {
        return Err(AgentError::Input(
            "the radio cannot reach any part of that band".into(),
        ));
    }
    let mut source = spec.open(None)?;
    let id = a.identity.identity();
    let settings = SweepSettings {
        pipeline: PipelineConfig {
            open_after: 1,
            ..pipeline
        },
        dwell_s: a.seconds,
        gain_db: a.gain_db,
        noise_figure_db: device.map(|p| p.noise_figure_db),
        // What a replay of the recording searches; this run does only with --analyse.
        cell_search: true,
        watch_hz: Vec::new(),
        jammer_confirm: 1,
        analysis: a.analyse,
    };
    let mut pipe = Pipeline::new(scan_plan, settings, &id)?;
    let origin = SweepOrigin::new(&id, &dev_name, device, rate);
    let at = OffsetDateTime::now_utc();
    let datatype = match a.datatype {
        SampleFormat::Cf32Le => Datatype::Cf32Le,
        SampleFormat::Ci16Le => Datatype::Ci16Le,
    };
    let recorder = SweepRecorder::create_as(
        &a.out,
        datatype,
        SweepHeader::new(&origin, pipe.plan(), pipe.settings(), 0, at)
            .with_radio_ppm(pipe.radio_ppm())
            .with_trackers(pipe.tracker_state()),
    )?;
    if a.analyse {
        print_plan(out, a.json, &dev_name, rate, pipe.plan(), a.seconds * 1e3)?;
    }
    let mut lines = SweepLines::new(&id, a.json, 0, Some(recorder));
    let health = pipe.sweep(source.as_mut(), at, &mut lines)?;
    if let Some(r) = lines.recorder.take() {
        let meta = r.finish()?;
        tracing::info!(
            meta = %meta.meta_path.display(),
            "recording written: {} capture(s), {:.1} Msamples",
            health.hops,
            health.samples as f64 / 1e6
        );
    }
    if a.analyse {
        print_sweep(out, a.json, 0, lines.lines, &health, pipe.open_gaps())?;
    }
    Ok(())
}

/// A plan of one tuning at `center_hz`, keeping the span the edge crop leaves.
fn one_tuning_plan(
    center_hz: f64,
    rate: f64,
    pipeline: &PipelineConfig,
) -> Result<ScanPlan, AgentError> {
    if !(center_hz.is_finite() && center_hz > 0.0) {
        return Err(AgentError::Input(format!(
            "--center-hz {center_hz} must be a positive number of hertz"
        )));
    }
    let half = rate * pipeline.usable_fraction() / 2.0;
    let (lo, hi) = (center_hz - half, center_hz + half);
    let bands: Vec<&'static Band> = bandplan::all_bands()
        .filter(|b| b.dl_low_hz < hi && b.dl_high_hz > lo)
        .collect();
    Ok(ScanPlan {
        ranges: vec![crate::pipeline::RangePlan {
            lo_hz: lo,
            hi_hz: hi,
            bands,
            hops: bandplan::HopPlan {
                band: format!("{:.3} MHz", center_hz / 1e6),
                hops: vec![bandplan::Hop {
                    center_hz,
                    sample_rate_hz: rate,
                    keep_hz: (lo, hi),
                }],
                unreachable_hz: Vec::new(),
            },
        }],
        warnings: Vec::new(),
    })
}

fn deep_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=10.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is outside 0–10 seconds")),
        Err(e) => Err(format!("{s:?} is not a number of seconds: {e}")),
    }
}
