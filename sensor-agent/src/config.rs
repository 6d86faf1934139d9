//! Pipeline settings shared by replay, scan and (later) the daemon.

use dsp::carrier::CfarConfig;
use dsp::floor::JammerThresholds;
use dsp::window::WindowKind;
use serde::{Deserialize, Serialize};

/// Settings of the spectrum pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// FFT size (power of two, 256–65536).
    pub fft_size: usize,
    /// Segment overlap, 0 ≤ overlap < 1.
    pub overlap: f64,
    /// Window.
    pub window: WindowKind,
    /// Seconds of input averaged into one observation.
    pub average_s: f64,
    /// Bins either side of the tuned centre replaced to hide the LO leak.
    pub dc_half_width_bins: usize,
    /// Fraction of the span dropped at each edge (anti-alias roll-off).
    pub edge_crop: f64,
    /// Carrier detector.
    pub cfar: CfarConfig,
    /// Jammer verdict thresholds.
    pub jammer: JammerThresholds,
    /// Observations a gap must be seen in before it opens.
    pub open_after: u32,
    /// Clean observations before an open gap closes.
    pub close_after: u32,
    /// Change of margin (dB) that makes an update event.
    pub update_delta_db: f64,
    /// Keep the samples of every hop of a range for the cell search, quiet ones too. By default
    /// a hop whose usable span shows no carrier and sits at the radio's thermal floor (known
    /// only with a calibration and a noise figure) is let go as soon as its spectrum is taken,
    /// unless it neighbours a hop with energy; set this for a radio whose noise figure is not
    /// known well enough to judge "at the floor".
    pub keep_quiet_hops: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            fft_size: 1024,
            overlap: 0.5,
            window: WindowKind::Hann,
            average_s: 0.02,
            dc_half_width_bins: 2,
            edge_crop: 0.1,
            cfar: CfarConfig::default(),
            jammer: JammerThresholds::default(),
            open_after: 2,
            close_after: 3,
            update_delta_db: 3.0,
            keep_quiet_hops: false,
        }
    }
}

impl PipelineConfig {
    /// Share of each hop's span kept after the edge crop on both sides.
    #[must_use]
    pub fn usable_fraction(&self) -> f64 {
        1.0 - 2.0 * self.edge_crop
    }

    /// Checks the values, naming the first that is wrong.
    ///
    /// # Errors
    /// A sentence naming the setting.
    pub fn check(&self) -> Result<(), String> {
        if !(self.fft_size.is_power_of_two() && (256..=65536).contains(&self.fft_size)) {
            return Err(format!(
                "fft_size {} must be a power of two, 256–65536",
                self.fft_size
            ));
        }
        if !(0.0..1.0).contains(&self.overlap) {
            return Err(format!("overlap {} must be in [0, 1)", self.overlap));
        }
        if !(self.average_s.is_finite() && self.average_s > 0.0) {
            return Err(format!("average_s {} must be positive", self.average_s));
        }
        if !(0.0..0.45).contains(&self.edge_crop) {
            return Err(format!("edge_crop {} must be in [0, 0.45)", self.edge_crop));
        }
        if self.open_after == 0 || self.close_after == 0 {
            return Err("open_after and close_after must be at least 1".into());
        }
        if !(self.update_delta_db.is_finite() && self.update_delta_db > 0.0) {
            return Err(format!(
                "update_delta_db {} must be positive",
                self.update_delta_db
            ));
        }
        Ok(())
    }
}

/// Who is observing: identifiers that go on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Facility id (topic level).
    pub facility_id: String,
    /// Sensor id (topic level).
    pub sensor_id: String,
    /// Zone the sensor covers.
    pub zone: String,
}
