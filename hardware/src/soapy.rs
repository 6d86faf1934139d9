//! Real radios through SoapySDR (feature `soapy`, needs Debian's `libsoapysdr-dev`).
//!
//! A SoapySDR receive stream must stay on the thread that opened it: open the source on the
//! radio thread and read it there. Frequency correction is applied here (the requested centre is
//! divided by 1 + ppm·10⁻⁶) so that it works with any driver.

use dsp::Complex32;
use serde::{Deserialize, Serialize};
use soapysdr::{Device, Direction, ErrorCode, RxStream};

use crate::{HwError, IqSource, ReadOutcome, SourceInfo, Tuned, Tuning};

/// How to open and set up a radio.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoapyConfig {
    /// SoapySDR device arguments: `driver=rtlsdr`, `driver=hackrf,serial=…`.
    pub args: String,
    /// Receive channel.
    #[serde(default)]
    pub channel: usize,
    /// Antenna port name, if the radio has several.
    #[serde(default)]
    pub antenna: Option<String>,
    /// Gain in dB; `None` enables automatic gain where the driver offers it.
    #[serde(default)]
    pub gain_db: Option<f64>,
    /// Analogue bandwidth in hertz; `None` lets the driver follow the sample rate.
    #[serde(default)]
    pub bandwidth_hz: Option<f64>,
    /// Local-oscillator error to correct, parts per million.
    #[serde(default)]
    pub ppm: f64,
    /// Read timeout, microseconds.
    #[serde(default = "default_timeout")]
    pub timeout_us: i64,
    /// Noise figure of this radio, dB, for the thermal floor.
    #[serde(default)]
    pub noise_figure_db: Option<f64>,
}

fn default_timeout() -> i64 {
    200_000
}

impl std::fmt::Debug for SoapyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Device arguments can carry credentials (remote SoapySDR servers): show only keys.
        let keys: Vec<&str> = self
            .args
            .split(',')
            .filter_map(|kv| kv.split('=').next())
            .collect();
        f.debug_struct("SoapyConfig")
            .field("args_keys", &keys)
            .field("channel", &self.channel)
            .field("gain_db", &self.gain_db)
            .field("ppm", &self.ppm)
            .finish_non_exhaustive()
    }
}

impl SoapyConfig {
    /// Defaults for device arguments.
    #[must_use]
    pub fn new(args: &str) -> Self {
        Self {
            args: args.into(),
            channel: 0,
            antenna: None,
            gain_db: None,
            bandwidth_hz: None,
            ppm: 0.0,
            timeout_us: default_timeout(),
            noise_figure_db: None,
        }
    }
}

/// A SoapySDR radio.
pub struct SoapySource {
    cfg: SoapyConfig,
    dev: Device,
    stream: Option<RxStream<Complex32>>,
    tuned: Option<Tuned>,
    next_time_ns: Option<i64>,
    /// Overflow events seen.
    pub overflows: u64,
}

impl std::fmt::Debug for SoapySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoapySource")
            .field("cfg", &self.cfg)
            .field("tuned", &self.tuned)
            .field("overflows", &self.overflows)
            .finish_non_exhaustive()
    }
}

impl SoapySource {
    /// Opens the device (not the stream: that happens at the first tune).
    ///
    /// # Errors
    /// [`HwError::Device`] when no device matches or the driver fails.
    pub fn open(cfg: SoapyConfig) -> Result<Self, HwError> {
        let dev = Device::new(cfg.args.as_str()).map_err(|e| HwError::Device {
            args: cfg.args.clone(),
            message: e.to_string(),
        })?;
        Ok(Self {
            cfg,
            dev,
            stream: None,
            tuned: None,
            next_time_ns: None,
            overflows: 0,
        })
    }

    /// The driver key the device reports (e.g. `rtlsdr`).
    ///
    /// # Errors
    /// [`HwError::Device`] when the driver fails.
    pub fn driver_key(&self) -> Result<String, HwError> {
        self.dev.driver_key().map_err(|e| self.err(&e))
    }

    fn err(&self, e: &soapysdr::Error) -> HwError {
        HwError::Device {
            args: self.cfg.args.clone(),
            message: e.to_string(),
        }
    }
}

impl IqSource for SoapySource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "soapy",
            name: self.cfg.args.clone(),
            noise_figure_db: self.cfg.noise_figure_db,
        }
    }

    fn tune(&mut self, t: &Tuning) -> Result<Tuned, HwError> {
        let ch = self.cfg.channel;
        let rx = Direction::Rx;
        if let Some(s) = self.stream.as_mut()
            && s.active()
        {
            let _ = s.deactivate(None);
        }
        if let Some(a) = &self.cfg.antenna {
            self.dev
                .set_antenna(rx, ch, a.as_str())
                .map_err(|e| self.err(&e))?;
        }
        self.dev
            .set_sample_rate(rx, ch, t.sample_rate_hz)
            .map_err(|e| self.err(&e))?;
        if let Some(bw) = t.bandwidth_hz.or(self.cfg.bandwidth_hz) {
            self.dev
                .set_bandwidth(rx, ch, bw)
                .map_err(|e| self.err(&e))?;
        }
        match t.gain_db.or(self.cfg.gain_db) {
            Some(g) => {
                if self.dev.has_gain_mode(rx, ch).unwrap_or(false) {
                    self.dev
                        .set_gain_mode(rx, ch, false)
                        .map_err(|e| self.err(&e))?;
                }
                self.dev.set_gain(rx, ch, g).map_err(|e| self.err(&e))?;
            }
            None => {
                if self.dev.has_gain_mode(rx, ch).unwrap_or(false) {
                    self.dev
                        .set_gain_mode(rx, ch, true)
                        .map_err(|e| self.err(&e))?;
                }
            }
        }
        let request = t.center_hz / (1.0 + self.cfg.ppm * 1e-6);
        self.dev
            .set_frequency(rx, ch, request, ())
            .map_err(|e| self.err(&e))?;
        let actual =
            self.dev.frequency(rx, ch).map_err(|e| self.err(&e))? * (1.0 + self.cfg.ppm * 1e-6);
        let rate = self.dev.sample_rate(rx, ch).map_err(|e| self.err(&e))?;
        let gain = self.dev.gain(rx, ch).ok();
        if self.stream.is_none() {
            self.stream = Some(
                self.dev
                    .rx_stream::<Complex32>(&[ch])
                    .map_err(|e| self.err(&e))?,
            );
        }
        let stream = self.stream.as_mut().ok_or_else(|| HwError::Device {
            args: self.cfg.args.clone(),
            message: "stream unavailable".into(),
        })?;
        stream.activate(None).map_err(|e| HwError::Device {
            args: self.cfg.args.clone(),
            message: e.to_string(),
        })?;
        self.next_time_ns = None;
        let tuned = Tuned {
            center_hz: actual,
            sample_rate_hz: rate,
            gain_db: gain,
        };
        self.tuned = Some(tuned.clone());
        Ok(tuned)
    }

    fn read(&mut self, buf: &mut [Complex32]) -> Result<ReadOutcome, HwError> {
        let Some(stream) = self.stream.as_mut() else {
            return Err(HwError::Tuning {
                what: "center_hz",
                value: "unset".into(),
                reason: "tune the radio before reading".into(),
            });
        };
        let rate = self.tuned.as_ref().map_or(1.0, |t| t.sample_rate_hz);
        // An overflow is reported by the driver as an error code on one read; the samples lost
        // show as a jump in the next read's timestamp. Read once more to report both together.
        let mut overflowed = false;
        for _ in 0..2 {
            match stream.read(&mut [&mut *buf], self.cfg.timeout_us) {
                Ok(n) => {
                    let t = stream.time_ns();
                    let lost = match self.next_time_ns {
                        Some(expect) if t > expect => {
                            Some(((t - expect) as f64 * rate / 1e9).round() as u64)
                        }
                        _ => None,
                    }
                    .filter(|&l| l > 0);
                    if t != 0 {
                        self.next_time_ns = Some(t + (n as f64 * 1e9 / rate).round() as i64);
                    }
                    return Ok(if overflowed || lost.is_some() {
                        self.overflows += 1;
                        ReadOutcome::Overflow { n, lost }
                    } else {
                        ReadOutcome::Samples(n)
                    });
                }
                Err(e) => match e.code {
                    ErrorCode::Timeout if overflowed => break,
                    ErrorCode::Timeout => return Ok(ReadOutcome::Timeout),
                    ErrorCode::Overflow => overflowed = true,
                    _ => {
                        return Err(HwError::Device {
                            args: self.cfg.args.clone(),
                            message: e.to_string(),
                        });
                    }
                },
            }
        }
        self.overflows += 1;
        Ok(ReadOutcome::Overflow { n: 0, lost: None })
    }
}

/// Directory holding the SigMF-playback SoapySDR module built with this crate; put it in
/// `SOAPY_SDR_PLUGIN_PATH` before the first device is opened.
#[must_use]
pub fn sigmf_module_dir() -> &'static str {
    env!("CENTINELA_SOAPY_SIGMF_MODULE_DIR")
}
