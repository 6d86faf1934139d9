//! Noise floor per band and the jammer verdict that follows from it.
//!
//! A jammer raises the floor of the bands it covers. The floor is a low percentile of the
//! calibrated density (robust to carriers occupying part of the band); the noise rise is that
//! floor over the sensor's own thermal floor, kTB plus its noise figure.

use serde::{Deserialize, Serialize};

use crate::DspError;

/// Boltzmann's constant × 290 K in dBm/Hz (−173.98).
pub const KT_DBM_PER_HZ: f64 = -173.975;

/// The receiver's own noise density in dBm/Hz for a noise figure in dB.
#[must_use]
pub fn thermal_floor_dbm_per_hz(noise_figure_db: f64) -> f64 {
    KT_DBM_PER_HZ + noise_figure_db
}

/// The `p`-th percentile (0..=1) of `values_db`, NaNs ignored, using `scratch` to avoid
/// allocating. Returns NaN when no finite value is present.
pub fn percentile(values_db: &[f32], p: f64, scratch: &mut Vec<f32>) -> f32 {
    scratch.clear();
    scratch.extend(values_db.iter().copied().filter(|v| v.is_finite()));
    if scratch.is_empty() {
        return f32::NAN;
    }
    let k = ((scratch.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize;
    let (_, v, _) = scratch.select_nth_unstable_by(k, f32::total_cmp);
    *v
}

/// Jammer health of one band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JammerState {
    /// The floor is raised by at least the effective threshold across the band.
    Effective,
    /// Raised, but not enough (or not across the whole band) to stop a phone syncing.
    Degraded,
    /// No meaningful rise: the band is open.
    Down,
}

impl JammerState {
    /// `"effective"`, `"degraded"` or `"down"`, as on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Effective => "effective",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }
}

/// Thresholds that turn a noise rise into a [`JammerState`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JammerThresholds {
    /// Percentile of the band's density taken as its floor (0..1). Low, so that a hole in the
    /// jamming shows even when carriers or the jammer fill the rest.
    pub floor_percentile: f64,
    /// Rise in dB at or above which the jammer is effective.
    pub effective_rise_db: f64,
    /// Rise in dB at or above which the jammer is at least degraded.
    pub degraded_rise_db: f64,
}

impl Default for JammerThresholds {
    fn default() -> Self {
        Self {
            floor_percentile: 0.1,
            effective_rise_db: 20.0,
            degraded_rise_db: 6.0,
        }
    }
}

impl JammerThresholds {
    /// Checks the thresholds.
    ///
    /// # Errors
    /// [`DspError::InvalidConfig`] naming the bad field.
    pub fn validate(&self) -> Result<(), DspError> {
        if !(0.0..=1.0).contains(&self.floor_percentile) {
            return Err(DspError::config(
                "floor_percentile",
                self.floor_percentile,
                "must be within 0..1",
            ));
        }
        if !(self.degraded_rise_db.is_finite()
            && self.effective_rise_db.is_finite()
            && self.degraded_rise_db > 0.0
            && self.effective_rise_db > self.degraded_rise_db)
        {
            return Err(DspError::config(
                "effective_rise_db",
                self.effective_rise_db,
                "needs 0 < degraded_rise_db < effective_rise_db",
            ));
        }
        Ok(())
    }
}

/// The figures behind a jammer verdict.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct JammerAssessment {
    /// The verdict.
    pub state: JammerState,
    /// Floor minus thermal floor, dB.
    pub noise_rise_db: f64,
    /// Measured floor, dBm/Hz.
    pub floor_dbm_per_hz: f64,
    /// Sensor's thermal floor, dBm/Hz.
    pub thermal_dbm_per_hz: f64,
    /// Median density of the band over the thermal floor, dB.
    pub median_rise_db: f64,
    /// Fraction of the band's bins at least `effective_rise_db` above thermal.
    pub covered_fraction: f64,
}

/// Judges a band from its calibrated density in dBm/Hz (bins of that band only).
/// Returns `None` when the band holds no finite bin.
#[must_use]
pub fn assess_jammer(
    band_density_dbm_per_hz: &[f32],
    thermal_dbm_per_hz: f64,
    th: &JammerThresholds,
    scratch: &mut Vec<f32>,
) -> Option<JammerAssessment> {
    let floor = f64::from(percentile(
        band_density_dbm_per_hz,
        th.floor_percentile,
        scratch,
    ));
    if !floor.is_finite() {
        return None;
    }
    let median = f64::from(percentile(band_density_dbm_per_hz, 0.5, scratch));
    let finite = scratch.len();
    let covered = band_density_dbm_per_hz
        .iter()
        .filter(|&&d| f64::from(d) - thermal_dbm_per_hz >= th.effective_rise_db)
        .count();
    let rise = floor - thermal_dbm_per_hz;
    let median_rise = median - thermal_dbm_per_hz;
    let state = if rise >= th.effective_rise_db {
        JammerState::Effective
    } else if rise >= th.degraded_rise_db || median_rise >= th.effective_rise_db {
        // Either raised but weak, or strong over most of the band with holes in it.
        JammerState::Degraded
    } else {
        JammerState::Down
    };
    Some(JammerAssessment {
        state,
        noise_rise_db: rise,
        floor_dbm_per_hz: floor,
        thermal_dbm_per_hz,
        median_rise_db: median_rise,
        covered_fraction: covered as f64 / finite.max(1) as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_ignores_nan_and_orders() {
        let mut s = Vec::new();
        let v = [5.0, f32::NAN, 1.0, 3.0, 2.0, 4.0];
        assert_eq!(percentile(&v, 0.0, &mut s), 1.0);
        assert_eq!(percentile(&v, 0.5, &mut s), 3.0);
        assert_eq!(percentile(&v, 1.0, &mut s), 5.0);
        assert!(percentile(&[f32::NAN], 0.5, &mut s).is_nan());
    }

    #[test]
    fn states_follow_the_rise() {
        let th = JammerThresholds::default();
        let thermal = thermal_floor_dbm_per_hz(6.0);
        let mut s = Vec::new();
        let at = |rise: f32| vec![thermal as f32 + rise; 100];
        let st = |v: &[f32], s: &mut Vec<f32>| assess_jammer(v, thermal, &th, s).map(|a| a.state);
        assert_eq!(st(&at(30.0), &mut s), Some(JammerState::Effective));
        assert_eq!(st(&at(10.0), &mut s), Some(JammerState::Degraded));
        assert_eq!(st(&at(1.0), &mut s), Some(JammerState::Down));
        // Jammed over 80 % of the band, open over 20 %: the hole makes it degraded.
        let mut holed = at(30.0);
        holed[..20].fill(thermal as f32 + 0.5);
        let a = assess_jammer(&holed, thermal, &th, &mut s).expect("finite");
        assert_eq!(a.state, JammerState::Degraded);
        assert!((a.covered_fraction - 0.8).abs() < 1e-9);
    }
}
