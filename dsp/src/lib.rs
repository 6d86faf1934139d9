//! Pure signal processing for Centinela: the middle of the sensing pipeline.
//!
//! IQ samples come in from `hardware` (a radio, a recording or the simulator); this crate turns
//! them into calibrated spectra ([`psd::Welch`]), a noise floor and a jammer verdict per band
//! ([`floor`]), energy carriers ([`carrier`]), and knows the 3GPP band plans and channel rasters
//! ([`bandplan`]). [`synth`] and [`cell`] generate the synthetic and standard signals that tests
//! and the simulator use. Nothing here does I/O, logs, or allocates inside a processing loop.

pub mod bandplan;
pub mod calib;
pub mod carrier;
pub mod cell;
pub mod error;
pub mod floor;
pub mod psd;
pub mod resample;
pub mod synth;
pub mod window;

pub use error::DspError;
pub use num_complex::Complex32;

/// Converts a linear power ratio to decibels; zero and negative map to a very low finite value
/// so that logs of empty bins stay plottable.
#[must_use]
pub fn to_db(linear: f64) -> f64 {
    if linear > 0.0 {
        10.0 * linear.log10()
    } else {
        -400.0
    }
}

/// Converts decibels to a linear power ratio.
#[must_use]
pub fn from_db(db: f64) -> f64 {
    10f64.powf(db / 10.0)
}
