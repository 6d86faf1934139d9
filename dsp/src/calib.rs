//! Calibration: from full-scale units (dBFS) to absolute power (dBm) at the antenna.
//!
//! A radio's conversion from input power to ADC counts depends on its gain setting and on
//! frequency. A calibration holds, for one device at one gain, a table of "input power that
//! reads 0 dBFS" against frequency (measured with a signal generator, or taken from the device
//! profile), and a constant for what lies outside the radio (antenna gain minus cable loss).

use serde::{Deserialize, Serialize};

use crate::DspError;

/// The unit of a power figure: absolute when calibrated, relative to full scale when not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerUnit {
    /// Milliwatt-referenced: calibrated.
    Dbm,
    /// Relative to the ADC's full scale: uncalibrated.
    Dbfs,
}

impl PowerUnit {
    /// `"dbm"` or `"dbfs"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dbm => "dbm",
            Self::Dbfs => "dbfs",
        }
    }
}

/// One point of a gain table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GainPoint {
    /// Frequency in hertz.
    pub freq_hz: f64,
    /// Input power at the radio's port that reads 0 dBFS, in dBm.
    pub full_scale_dbm: f64,
}

/// A per-device, per-frequency calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    points: Vec<GainPoint>,
    /// Antenna gain minus cable and connector loss, in dB: positive means the radio sees more
    /// than arrives at the antenna's reference point.
    pub external_gain_db: f64,
}

impl Calibration {
    /// Builds a calibration from table points (any order).
    ///
    /// # Errors
    /// [`DspError::InvalidConfig`] for an empty table or a non-finite figure.
    pub fn new(mut points: Vec<GainPoint>, external_gain_db: f64) -> Result<Self, DspError> {
        if points.is_empty() {
            return Err(DspError::config(
                "gain_table",
                "[]",
                "needs at least one point",
            ));
        }
        if let Some(p) = points
            .iter()
            .find(|p| !(p.freq_hz.is_finite() && p.full_scale_dbm.is_finite()))
        {
            return Err(DspError::config(
                "gain_table",
                format!("{p:?}"),
                "frequency and power must be finite",
            ));
        }
        if !external_gain_db.is_finite() {
            return Err(DspError::config(
                "external_gain_db",
                external_gain_db,
                "must be finite",
            ));
        }
        points.sort_by(|a, b| a.freq_hz.total_cmp(&b.freq_hz));
        Ok(Self {
            points,
            external_gain_db,
        })
    }

    /// A calibration that is flat in frequency.
    ///
    /// # Errors
    /// As [`Calibration::new`].
    pub fn flat(full_scale_dbm: f64, external_gain_db: f64) -> Result<Self, DspError> {
        Self::new(
            vec![GainPoint {
                freq_hz: 0.0,
                full_scale_dbm,
            }],
            external_gain_db,
        )
    }

    /// The table points in ascending frequency.
    #[must_use]
    pub fn points(&self) -> &[GainPoint] {
        &self.points
    }

    /// Input power reading 0 dBFS at `freq_hz`: linear interpolation between table points,
    /// held constant beyond the ends.
    #[must_use]
    pub fn full_scale_dbm(&self, freq_hz: f64) -> f64 {
        let p = &self.points;
        let i = p.partition_point(|g| g.freq_hz <= freq_hz);
        match i {
            0 => p[0].full_scale_dbm,
            i if i == p.len() => p[p.len() - 1].full_scale_dbm,
            i => {
                let (a, b) = (p[i - 1], p[i]);
                let t = (freq_hz - a.freq_hz) / (b.freq_hz - a.freq_hz);
                a.full_scale_dbm + t * (b.full_scale_dbm - a.full_scale_dbm)
            }
        }
    }

    /// dB to add to a dBFS figure at `freq_hz` to get dBm at the antenna reference point.
    #[must_use]
    pub fn offset_db(&self, freq_hz: f64) -> f64 {
        self.full_scale_dbm(freq_hz) - self.external_gain_db
    }

    /// Converts a dBFS figure (power or density) to dBm (or dBm/Hz).
    #[must_use]
    pub fn dbfs_to_dbm(&self, dbfs: f64, freq_hz: f64) -> f64 {
        dbfs + self.offset_db(freq_hz)
    }

    /// Scales a spectrum's linear density in place from full-scale units to milliwatts per
    /// hertz, bin by bin.
    pub fn apply(&self, spectrum: &mut crate::psd::Spectrum) {
        for i in 0..spectrum.density.len() {
            let k = crate::from_db(self.offset_db(spectrum.freq_of(i))) as f32;
            spectrum.density[i] *= k;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_between_points_and_holds_at_ends() {
        let c = Calibration::new(
            vec![
                GainPoint {
                    freq_hz: 2e9,
                    full_scale_dbm: -20.0,
                },
                GainPoint {
                    freq_hz: 1e9,
                    full_scale_dbm: -30.0,
                },
            ],
            3.0,
        )
        .expect("valid");
        assert!((c.full_scale_dbm(1.5e9) - -25.0).abs() < 1e-9);
        assert!((c.full_scale_dbm(0.5e9) - -30.0).abs() < 1e-9);
        assert!((c.full_scale_dbm(3e9) - -20.0).abs() < 1e-9);
        // −40 dBFS at 1 GHz with −30 dBm full scale and a 3 dB antenna: −73 dBm.
        assert!((c.dbfs_to_dbm(-40.0, 1e9) - -73.0).abs() < 1e-9);
    }

    #[test]
    fn empty_table_is_rejected() {
        assert!(Calibration::new(vec![], 0.0).is_err());
        assert!(Calibration::flat(f64::NAN, 0.0).is_err());
    }
}
