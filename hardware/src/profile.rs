//! Device profiles: what each supported radio can tune, how fast it samples, its ADC and its
//! typical noise figure (manufacturer figures and common bench measurements).

use dsp::bandplan::TuningLimits;
use serde::Serialize;

/// One radio model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DeviceProfile {
    /// Short id used in configs and on the command line (`rtlsdr`).
    pub id: &'static str,
    /// Human name.
    pub name: &'static str,
    /// SoapySDR driver key.
    pub soapy_driver: &'static str,
    /// Lowest tunable frequency, hertz.
    pub min_hz: f64,
    /// Highest tunable frequency, hertz.
    pub max_hz: f64,
    /// Highest sample rate sustained without drops over USB 2/3, hertz.
    pub max_sample_rate_hz: f64,
    /// Sample rate used for scanning by default, hertz (a multiple of 30 kHz where possible).
    pub default_sample_rate_hz: f64,
    /// ADC resolution, bits.
    pub adc_bits: u32,
    /// Typical noise figure at high gain, dB.
    pub noise_figure_db: f64,
}

impl DeviceProfile {
    /// The limits used for hop planning.
    #[must_use]
    pub fn limits(&self) -> TuningLimits {
        TuningLimits {
            min_hz: self.min_hz,
            max_hz: self.max_hz,
            max_sample_rate_hz: self.max_sample_rate_hz,
        }
    }
}

/// The supported radios.
pub const PROFILES: &[DeviceProfile] = &[
    DeviceProfile {
        id: "rtlsdr",
        name: "RTL-SDR (R820T2/R828D)",
        soapy_driver: "rtlsdr",
        min_hz: 24e6,
        max_hz: 1766e6,
        max_sample_rate_hz: 2.4e6,
        default_sample_rate_hz: 2.4e6,
        adc_bits: 8,
        noise_figure_db: 4.5,
    },
    DeviceProfile {
        id: "hackrf",
        name: "HackRF One",
        soapy_driver: "hackrf",
        min_hz: 1e6,
        max_hz: 6000e6,
        max_sample_rate_hz: 20e6,
        default_sample_rate_hz: 15.36e6,
        adc_bits: 8,
        noise_figure_db: 11.0,
    },
    DeviceProfile {
        id: "airspy",
        name: "Airspy R2",
        soapy_driver: "airspy",
        min_hz: 24e6,
        max_hz: 1800e6,
        max_sample_rate_hz: 10e6,
        default_sample_rate_hz: 10e6,
        adc_bits: 12,
        noise_figure_db: 3.5,
    },
    DeviceProfile {
        id: "limesdr",
        name: "LimeSDR USB",
        soapy_driver: "lime",
        min_hz: 0.1e6,
        max_hz: 3800e6,
        max_sample_rate_hz: 61.44e6,
        default_sample_rate_hz: 30.72e6,
        adc_bits: 12,
        noise_figure_db: 6.0,
    },
    DeviceProfile {
        id: "usrp-b2xx",
        name: "Ettus USRP B200/B210",
        soapy_driver: "uhd",
        min_hz: 70e6,
        max_hz: 6000e6,
        max_sample_rate_hz: 56e6,
        default_sample_rate_hz: 30.72e6,
        adc_bits: 12,
        noise_figure_db: 8.0,
    },
    DeviceProfile {
        id: "plutosdr",
        name: "ADALM-Pluto (AD9363, stock firmware)",
        soapy_driver: "plutosdr",
        min_hz: 325e6,
        max_hz: 3800e6,
        max_sample_rate_hz: 20e6,
        default_sample_rate_hz: 15.36e6,
        adc_bits: 12,
        noise_figure_db: 8.0,
    },
];

/// Looks a profile up by id or SoapySDR driver key (case-insensitive).
#[must_use]
pub fn profile(id: &str) -> Option<&'static DeviceProfile> {
    PROFILES
        .iter()
        .find(|p| p.id.eq_ignore_ascii_case(id) || p.soapy_driver.eq_ignore_ascii_case(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_consistent() {
        for p in PROFILES {
            assert!(p.min_hz < p.max_hz, "{}", p.id);
            assert!(p.default_sample_rate_hz <= p.max_sample_rate_hz, "{}", p.id);
            // Cell search needs a multiple of 15 kHz; the Airspy only offers 2.5 and 10 MS/s.
            let multiple = (p.default_sample_rate_hz / 15e3).fract().abs() < 1e-9;
            assert!(multiple || p.id == "airspy", "{}", p.id);
            assert_eq!(profile(p.id), Some(p));
        }
        assert_eq!(profile("RTLSDR").map(|p| p.id), Some("rtlsdr"));
        assert!(profile("nope").is_none());
    }
}
