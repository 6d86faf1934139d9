//! The [`IqSource`] trait: tune, read into the caller's buffer, and report what happened.

use dsp::Complex32;
use dsp::calib::Calibration;
use serde::Serialize;

use crate::HwError;

/// A tuning request.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tuning {
    /// Centre frequency, hertz.
    pub center_hz: f64,
    /// Sample rate, hertz.
    pub sample_rate_hz: f64,
    /// Receive gain, dB; `None` leaves the source's setting (or automatic gain).
    pub gain_db: Option<f64>,
    /// Analogue filter bandwidth, hertz; `None` lets the source choose.
    pub bandwidth_hz: Option<f64>,
}

impl Tuning {
    /// A request for a centre and rate, other settings left alone.
    #[must_use]
    pub fn new(center_hz: f64, sample_rate_hz: f64) -> Self {
        Self {
            center_hz,
            sample_rate_hz,
            gain_db: None,
            bandwidth_hz: None,
        }
    }
}

/// What the source actually tuned to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tuned {
    /// Centre frequency, hertz (0 for a baseband recording without one).
    pub center_hz: f64,
    /// Sample rate, hertz.
    pub sample_rate_hz: f64,
    /// Gain in effect, dB, if known.
    pub gain_db: Option<f64>,
}

/// The result of one read. Radio conditions are outcomes, not errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    /// `n` samples were written to the start of the buffer.
    Samples(usize),
    /// The radio dropped samples before the `n` written now; `lost` is the count when the driver
    /// can tell (hardware timestamps), else `None`.
    Overflow {
        /// Samples written.
        n: usize,
        /// Samples lost, when known.
        lost: Option<u64>,
    },
    /// Nothing arrived within the source's timeout.
    Timeout,
    /// A recording (or the current capture of one) has no more samples.
    EndOfData,
}

/// Facts about a source for logs, status and calibration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceInfo {
    /// `sigmf`, `sim`, `soapy`.
    pub kind: &'static str,
    /// File path, device arguments or scene name.
    pub name: String,
    /// The radio's noise figure in dB, when known (for the thermal floor).
    pub noise_figure_db: Option<f64>,
}

/// A blocking source of complex baseband samples, used from one thread.
pub trait IqSource {
    /// Facts about the source.
    fn info(&self) -> SourceInfo;

    /// Tunes (or, for a recording, selects what matches the request).
    ///
    /// # Errors
    /// [`HwError::Tuning`] when the request cannot be honoured; driver errors for radios.
    fn tune(&mut self, tuning: &Tuning) -> Result<Tuned, HwError>;

    /// Reads up to `buf.len()` samples.
    ///
    /// # Errors
    /// I/O or driver failures; never for overflow, timeout or end of data.
    fn read(&mut self, buf: &mut [Complex32]) -> Result<ReadOutcome, HwError>;

    /// dBFS → dBm conversion at the current tuning, when the source knows it.
    fn calibration(&self) -> Option<Calibration> {
        None
    }
}
