//! Band plans as data: 3GPP downlink bands with their channel rasters (LTE EARFCN per
//! TS 36.101 §5.7.3, NR-ARFCN and GSCN per TS 38.104 §5.4.2–5.4.3, GSM ARFCN per TS 45.005 §2),
//! the bands each country's operators use, and hop planning for a radio's tuning limits.

use serde::{Deserialize, Serialize};

use crate::DspError;
use crate::carrier::Technology;

/// Duplexing of a band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Duplex {
    /// Paired spectrum: the downlink has its own frequencies.
    Fdd,
    /// Time-division: downlink and uplink share the frequencies.
    Tdd,
}

/// The channel raster of a band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Raster {
    /// LTE: F_DL = F_DL_low + 0.1 MHz × (N_DL − N_Offs-DL).
    Lte {
        /// N_Offs-DL.
        n_offs_dl: u32,
    },
    /// NR: SSB subcarrier spacings (kHz) and the band's GSCN range with its step.
    Nr {
        /// SSB subcarrier spacings allowed in the band, kHz.
        ssb_scs_khz: &'static [u32],
        /// First and last GSCN of the band's synchronisation raster and the step between them.
        gscn: (u32, u32, u32),
    },
    /// GSM: F_DL = `base_mhz` + 0.2 MHz × (n − `base_arfcn`) for n in the listed ranges.
    Gsm {
        /// Frequency of `base_arfcn`, MHz.
        base_mhz: f64,
        /// The ARFCN at `base_mhz`.
        base_arfcn: i32,
        /// Valid ARFCN ranges, inclusive.
        ranges: &'static [(u32, u32)],
        /// ARFCN numbers above this wrap down by 1024 (E-GSM's 975–1023).
        wrap_above: u32,
    },
}

/// One downlink band.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Band {
    /// Name as on the wire: `B28`, `n78`, `GSM850`.
    pub name: &'static str,
    /// The technology whose raster this is.
    pub technology: Technology,
    /// Lowest downlink frequency, hertz.
    pub dl_low_hz: f64,
    /// Highest downlink frequency, hertz.
    pub dl_high_hz: f64,
    /// FDD or TDD.
    pub duplex: Duplex,
    /// Channel numbering.
    pub raster: Raster,
}

const fn lte(name: &'static str, lo_mhz: f64, hi_mhz: f64, n_offs_dl: u32, duplex: Duplex) -> Band {
    Band {
        name,
        technology: Technology::Lte,
        dl_low_hz: lo_mhz * 1e6,
        dl_high_hz: hi_mhz * 1e6,
        duplex,
        raster: Raster::Lte { n_offs_dl },
    }
}

const fn nr(
    name: &'static str,
    lo_mhz: f64,
    hi_mhz: f64,
    duplex: Duplex,
    ssb_scs_khz: &'static [u32],
    gscn: (u32, u32, u32),
) -> Band {
    Band {
        name,
        technology: Technology::Nr,
        dl_low_hz: lo_mhz * 1e6,
        dl_high_hz: hi_mhz * 1e6,
        duplex,
        raster: Raster::Nr { ssb_scs_khz, gscn },
    }
}

use Duplex::{Fdd, Tdd};

/// LTE downlink bands (TS 36.101 Table 5.7.3-1), those in use in the Americas and Europe.
pub const LTE_BANDS: &[Band] = &[
    lte("B1", 2110.0, 2170.0, 0, Fdd),
    lte("B2", 1930.0, 1990.0, 600, Fdd),
    lte("B3", 1805.0, 1880.0, 1200, Fdd),
    lte("B4", 2110.0, 2155.0, 1950, Fdd),
    lte("B5", 869.0, 894.0, 2400, Fdd),
    lte("B7", 2620.0, 2690.0, 2750, Fdd),
    lte("B8", 925.0, 960.0, 3450, Fdd),
    lte("B12", 729.0, 746.0, 5010, Fdd),
    lte("B13", 746.0, 756.0, 5180, Fdd),
    lte("B14", 758.0, 768.0, 5280, Fdd),
    lte("B17", 734.0, 746.0, 5730, Fdd),
    lte("B20", 791.0, 821.0, 6150, Fdd),
    lte("B25", 1930.0, 1995.0, 8040, Fdd),
    lte("B26", 859.0, 894.0, 8690, Fdd),
    lte("B28", 758.0, 803.0, 9210, Fdd),
    lte("B34", 2010.0, 2025.0, 36200, Tdd),
    lte("B38", 2570.0, 2620.0, 37750, Tdd),
    lte("B39", 1880.0, 1920.0, 38250, Tdd),
    lte("B40", 2300.0, 2400.0, 38650, Tdd),
    lte("B41", 2496.0, 2690.0, 39650, Tdd),
    lte("B42", 3400.0, 3600.0, 41590, Tdd),
    lte("B43", 3600.0, 3800.0, 43590, Tdd),
    lte("B66", 2110.0, 2200.0, 66436, Fdd),
    lte("B71", 617.0, 652.0, 68586, Fdd),
];

/// NR FR1 downlink bands (TS 38.104 Tables 5.2-1 and 5.4.3.3-1).
pub const NR_BANDS: &[Band] = &[
    nr("n1", 2110.0, 2170.0, Fdd, &[15], (5279, 5419, 1)),
    nr("n2", 1930.0, 1990.0, Fdd, &[15], (4829, 4969, 1)),
    nr("n3", 1805.0, 1880.0, Fdd, &[15], (4517, 4693, 1)),
    nr("n5", 869.0, 894.0, Fdd, &[15, 30], (2177, 2230, 1)),
    nr("n7", 2620.0, 2690.0, Fdd, &[15], (6554, 6718, 1)),
    nr("n8", 925.0, 960.0, Fdd, &[15], (2318, 2395, 1)),
    nr("n25", 1930.0, 1995.0, Fdd, &[15], (4829, 4981, 1)),
    nr("n28", 758.0, 803.0, Fdd, &[15], (1901, 2002, 1)),
    nr("n41", 2496.0, 2690.0, Tdd, &[15, 30], (6246, 6717, 3)),
    nr("n66", 2110.0, 2200.0, Fdd, &[15, 30], (5279, 5494, 1)),
    nr("n71", 617.0, 652.0, Fdd, &[15], (1547, 1624, 1)),
    nr("n77", 3300.0, 4200.0, Tdd, &[30], (7711, 8565, 1)),
    nr("n78", 3300.0, 3800.0, Tdd, &[30], (7711, 8329, 1)),
    nr("n79", 4400.0, 5000.0, Tdd, &[30], (8480, 8880, 16)),
];

/// GSM downlink bands (TS 45.005 §2).
pub const GSM_BANDS: &[Band] = &[
    Band {
        name: "GSM850",
        technology: Technology::Gsm,
        dl_low_hz: 869.0e6,
        dl_high_hz: 894.0e6,
        duplex: Fdd,
        raster: Raster::Gsm {
            base_mhz: 869.2,
            base_arfcn: 128,
            ranges: &[(128, 251)],
            wrap_above: u32::MAX,
        },
    },
    Band {
        name: "GSM900",
        technology: Technology::Gsm,
        dl_low_hz: 925.0e6,
        dl_high_hz: 960.0e6,
        duplex: Fdd,
        raster: Raster::Gsm {
            base_mhz: 935.0,
            base_arfcn: 0,
            ranges: &[(0, 124), (975, 1023)],
            wrap_above: 974,
        },
    },
    Band {
        name: "DCS1800",
        technology: Technology::Gsm,
        dl_low_hz: 1805.0e6,
        dl_high_hz: 1880.0e6,
        duplex: Fdd,
        raster: Raster::Gsm {
            base_mhz: 1805.2,
            base_arfcn: 512,
            ranges: &[(512, 885)],
            wrap_above: u32::MAX,
        },
    },
    Band {
        name: "PCS1900",
        technology: Technology::Gsm,
        dl_low_hz: 1930.0e6,
        dl_high_hz: 1990.0e6,
        duplex: Fdd,
        raster: Raster::Gsm {
            base_mhz: 1930.2,
            base_arfcn: 512,
            ranges: &[(512, 810)],
            wrap_above: u32::MAX,
        },
    },
];

/// Every band known, GSM, LTE then NR.
pub fn all_bands() -> impl Iterator<Item = &'static Band> {
    GSM_BANDS.iter().chain(LTE_BANDS).chain(NR_BANDS)
}

/// Looks a band up by name (case-insensitive: `b28`, `N78`, `gsm850`).
///
/// # Errors
/// [`DspError::Unknown`] when no band has that name.
pub fn band(name: &str) -> Result<&'static Band, DspError> {
    all_bands()
        .find(|b| b.name.eq_ignore_ascii_case(name))
        .ok_or_else(|| DspError::Unknown {
            what: "band",
            name: name.to_string(),
        })
}

/// Bands whose downlink contains `freq_hz`.
pub fn bands_containing(freq_hz: f64) -> impl Iterator<Item = &'static Band> {
    all_bands().filter(move |b| (b.dl_low_hz..=b.dl_high_hz).contains(&freq_hz))
}

impl Band {
    /// Downlink width in hertz.
    #[must_use]
    pub fn width_hz(&self) -> f64 {
        self.dl_high_hz - self.dl_low_hz
    }

    /// Whether `freq_hz` is in the downlink.
    #[must_use]
    pub fn contains(&self, freq_hz: f64) -> bool {
        (self.dl_low_hz..=self.dl_high_hz).contains(&freq_hz)
    }

    /// The band's first and last downlink EARFCN, for an LTE band.
    #[must_use]
    pub fn earfcn_range(&self) -> Option<(u32, u32)> {
        match self.raster {
            Raster::Lte { n_offs_dl } => {
                let n = ((self.width_hz() / 100e3).round() as u32).saturating_sub(1);
                Some((n_offs_dl, n_offs_dl + n))
            }
            _ => None,
        }
    }
}

/// Downlink frequency of an EARFCN, with its band.
///
/// # Errors
/// [`DspError::OutOfBand`] when no LTE band of the table holds it.
pub fn earfcn_to_hz(earfcn: u32) -> Result<(f64, &'static Band), DspError> {
    for b in LTE_BANDS {
        if let (Raster::Lte { n_offs_dl }, Some((first, last))) = (b.raster, b.earfcn_range())
            && (first..=last).contains(&earfcn)
        {
            let f = b.dl_low_hz + 100e3 * f64::from(earfcn - n_offs_dl);
            return Ok((f, b));
        }
    }
    Err(DspError::OutOfBand {
        what: "EARFCN",
        value: earfcn.to_string(),
        band: "any LTE band in the table".into(),
    })
}

/// EARFCN of a downlink frequency in a given LTE band (nearest 100 kHz raster point).
///
/// # Errors
/// [`DspError::OutOfBand`] when the band is not LTE or the frequency is outside it.
pub fn hz_to_earfcn(band: &Band, freq_hz: f64) -> Result<u32, DspError> {
    let out = || DspError::OutOfBand {
        what: "frequency",
        value: format!("{freq_hz} Hz"),
        band: band.name.to_string(),
    };
    let (Raster::Lte { n_offs_dl }, Some((first, last))) = (band.raster, band.earfcn_range())
    else {
        return Err(out());
    };
    let k = ((freq_hz - band.dl_low_hz) / 100e3).round();
    if k < 0.0 {
        return Err(out());
    }
    let n = n_offs_dl + k as u32;
    if (first..=last).contains(&n) {
        Ok(n)
    } else {
        Err(out())
    }
}

/// NR-ARFCN global raster (TS 38.104 Table 5.4.2.1-1): (ΔF_Global Hz, F_REF-Offs Hz, N_REF-Offs,
/// last N_REF of the range).
const NR_RASTER: [(f64, f64, u32, u32); 3] = [
    (5e3, 0.0, 0, 599_999),
    (15e3, 3000e6, 600_000, 2_016_666),
    (60e3, 24250.08e6, 2_016_667, 3_279_165),
];

/// Reference frequency of an NR-ARFCN.
///
/// # Errors
/// [`DspError::OutOfBand`] above 3 279 165.
pub fn nr_arfcn_to_hz(n: u32) -> Result<f64, DspError> {
    NR_RASTER
        .iter()
        .find(|r| n <= r.3)
        .map(|&(df, f0, n0, _)| f0 + df * f64::from(n - n0))
        .ok_or_else(|| DspError::OutOfBand {
            what: "NR-ARFCN",
            value: n.to_string(),
            band: "0..=3279165".into(),
        })
}

/// NR-ARFCN nearest to a frequency.
///
/// # Errors
/// [`DspError::OutOfBand`] for frequencies outside 0–100 GHz.
pub fn hz_to_nr_arfcn(freq_hz: f64) -> Result<u32, DspError> {
    let (df, f0, n0, last) = match freq_hz {
        f if (0.0..3000e6).contains(&f) => NR_RASTER[0],
        f if (3000e6..24250e6).contains(&f) => NR_RASTER[1],
        f if (24250e6..=100_000e6).contains(&f) => NR_RASTER[2],
        _ => {
            return Err(DspError::OutOfBand {
                what: "frequency",
                value: format!("{freq_hz} Hz"),
                band: "the NR-ARFCN raster (0–100 GHz)".into(),
            });
        }
    };
    Ok((n0 + ((freq_hz - f0) / df).round().max(0.0) as u32).min(last))
}

/// SS block reference frequency of a GSCN (TS 38.104 Table 5.4.3.1-1).
///
/// # Errors
/// [`DspError::OutOfBand`] for a GSCN outside 2–26639 or one that names no raster point.
pub fn gscn_to_hz(gscn: u32) -> Result<f64, DspError> {
    let out = || DspError::OutOfBand {
        what: "GSCN",
        value: gscn.to_string(),
        band: "2..=26639".into(),
    };
    match gscn {
        2..=7498 => {
            let n = (f64::from(gscn) / 3.0).round() as i64;
            let m = 3 + 2 * (i64::from(gscn) - 3 * n);
            if !(1..=2499).contains(&n) {
                return Err(out());
            }
            Ok(n as f64 * 1.2e6 + m as f64 * 50e3)
        }
        7499..=22255 => Ok(3000e6 + f64::from(gscn - 7499) * 1.44e6),
        22256..=26639 => Ok(24250.08e6 + f64::from(gscn - 22256) * 17.28e6),
        _ => Err(out()),
    }
}

/// GSCN of an exact raster frequency, if `freq_hz` is within `tol_hz` of one.
#[must_use]
pub fn hz_to_gscn(freq_hz: f64, tol_hz: f64) -> Option<u32> {
    let g = if freq_hz < 3000e6 {
        let n = (freq_hz / 1.2e6).round();
        let m = ((freq_hz - n * 1.2e6) / 50e3).round();
        if ![1.0, 3.0, 5.0].contains(&m) {
            return None;
        }
        3.0 * n + (m - 3.0) / 2.0
    } else if freq_hz < 24250e6 {
        7499.0 + ((freq_hz - 3000e6) / 1.44e6).round()
    } else {
        22256.0 + ((freq_hz - 24250.08e6) / 17.28e6).round()
    };
    if g < 2.0 {
        return None;
    }
    let g = g as u32;
    let f = gscn_to_hz(g).ok()?;
    ((f - freq_hz).abs() <= tol_hz).then_some(g)
}

/// The GSCNs of an NR band's synchronisation raster whose SSB centre lies in `lo..=hi` hertz.
#[must_use]
pub fn gscns_within(band: &Band, lo_hz: f64, hi_hz: f64) -> Vec<(u32, f64)> {
    let Raster::Nr {
        gscn: (a, b, step), ..
    } = band.raster
    else {
        return Vec::new();
    };
    (a..=b)
        .step_by(step as usize)
        .filter_map(|g| gscn_to_hz(g).ok().map(|f| (g, f)))
        .filter(|&(_, f)| (lo_hz..=hi_hz).contains(&f))
        .collect()
}

/// Downlink frequency of a GSM ARFCN in a GSM band.
///
/// # Errors
/// [`DspError::OutOfBand`] when the band is not GSM or the ARFCN is not in it.
pub fn gsm_arfcn_to_hz(band: &Band, arfcn: u32) -> Result<f64, DspError> {
    let Raster::Gsm {
        base_mhz,
        base_arfcn,
        ranges,
        wrap_above,
    } = band.raster
    else {
        return Err(DspError::OutOfBand {
            what: "ARFCN",
            value: arfcn.to_string(),
            band: band.name.to_string(),
        });
    };
    if !ranges.iter().any(|&(a, b)| (a..=b).contains(&arfcn)) {
        return Err(DspError::OutOfBand {
            what: "ARFCN",
            value: arfcn.to_string(),
            band: band.name.to_string(),
        });
    }
    let n = if arfcn > wrap_above {
        i64::from(arfcn) - 1024
    } else {
        i64::from(arfcn)
    };
    Ok((base_mhz + 0.2 * (n - i64::from(base_arfcn)) as f64) * 1e6)
}

/// GSM ARFCN nearest to a downlink frequency in a GSM band.
///
/// # Errors
/// [`DspError::OutOfBand`] when no ARFCN of the band lies within 100 kHz.
pub fn hz_to_gsm_arfcn(band: &Band, freq_hz: f64) -> Result<u32, DspError> {
    let out = || DspError::OutOfBand {
        what: "frequency",
        value: format!("{freq_hz} Hz"),
        band: band.name.to_string(),
    };
    let Raster::Gsm {
        base_mhz,
        base_arfcn,
        ..
    } = band.raster
    else {
        return Err(out());
    };
    let n = i64::from(base_arfcn) + ((freq_hz / 1e6 - base_mhz) / 0.2).round() as i64;
    let n = if n < 0 { n + 1024 } else { n };
    let arfcn = u32::try_from(n).map_err(|_| out())?;
    let f = gsm_arfcn_to_hz(band, arfcn).map_err(|_| out())?;
    if (f - freq_hz).abs() <= 100e3 {
        Ok(arfcn)
    } else {
        Err(out())
    }
}

/// The bands one country's operators use.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CountryPlan {
    /// ISO 3166-1 alpha-2 code.
    pub code: &'static str,
    /// Country name.
    pub name: &'static str,
    /// Band names, in the order a scan should visit them (most used by contraband phones first).
    pub bands: &'static [&'static str],
}

/// Country plans. These record the bands the operators of each country were publicly known to
/// use in 2025 (regulators' award records and operators' announcements); a deployment should
/// confirm them against the local regulator and may give explicit bands in its config instead.
pub const COUNTRIES: &[CountryPlan] = &[
    CountryPlan {
        code: "CO",
        name: "Colombia",
        bands: &[
            "B28", "B5", "GSM850", "B2", "B25", "PCS1900", "B4", "B66", "B7", "B38", "B41", "n78",
        ],
    },
    CountryPlan {
        code: "MX",
        name: "Mexico",
        bands: &[
            "B28", "B5", "GSM850", "B2", "B25", "PCS1900", "B4", "B66", "B7", "B41", "n78",
        ],
    },
    CountryPlan {
        code: "GT",
        name: "Guatemala",
        bands: &["B28", "B5", "GSM850", "B2", "PCS1900", "B4", "B66", "n78"],
    },
    CountryPlan {
        code: "EC",
        name: "Ecuador",
        bands: &["B28", "B5", "GSM850", "B2", "PCS1900", "B4", "B66", "n78"],
    },
    CountryPlan {
        code: "UY",
        name: "Uruguay",
        bands: &[
            "B28", "B5", "GSM850", "B3", "DCS1800", "B4", "B66", "B7", "n78",
        ],
    },
    CountryPlan {
        code: "DO",
        name: "Dominican Republic",
        bands: &[
            "B28", "B5", "GSM850", "B2", "PCS1900", "B4", "B66", "B7", "B41", "n78",
        ],
    },
];

/// Looks a country plan up by its code (case-insensitive).
///
/// # Errors
/// [`DspError::Unknown`] for a code without a plan.
pub fn country(code: &str) -> Result<&'static CountryPlan, DspError> {
    COUNTRIES
        .iter()
        .find(|c| c.code.eq_ignore_ascii_case(code))
        .ok_or_else(|| DspError::Unknown {
            what: "country",
            name: code.to_string(),
        })
}

/// What a radio can tune and capture, for hop planning.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TuningLimits {
    /// Lowest tunable centre frequency, hertz.
    pub min_hz: f64,
    /// Highest tunable centre frequency, hertz.
    pub max_hz: f64,
    /// Highest sample rate the radio sustains without drops, hertz.
    pub max_sample_rate_hz: f64,
}

/// One tuning of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hop {
    /// Centre frequency to tune, hertz.
    pub center_hz: f64,
    /// Sample rate to use, hertz.
    pub sample_rate_hz: f64,
    /// Part of the captured span this hop contributes to the band (edges cropped), hertz.
    pub keep_hz: (f64, f64),
}

/// Hops that cover a band on a radio, and what the radio cannot reach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HopPlan {
    /// Band name.
    pub band: String,
    /// Hops in ascending frequency.
    pub hops: Vec<Hop>,
    /// Parts of the band the radio cannot tune to, hertz.
    pub unreachable_hz: Vec<(f64, f64)>,
}

impl HopPlan {
    /// A plain sentence about what cannot be covered, if anything.
    #[must_use]
    pub fn warning(&self, device: &str, limits: &TuningLimits) -> Option<String> {
        if self.unreachable_hz.is_empty() {
            return None;
        }
        let parts: Vec<String> = self
            .unreachable_hz
            .iter()
            .map(|(a, b)| format!("{:.1}–{:.1} MHz", a / 1e6, b / 1e6))
            .collect();
        let what = if self.hops.is_empty() {
            "cannot see"
        } else {
            "cannot see part of"
        };
        Some(format!(
            "{device} {what} {} ({}): it tunes {:.0}–{:.0} MHz",
            self.band,
            parts.join(", "),
            limits.min_hz / 1e6,
            limits.max_hz / 1e6
        ))
    }
}

/// Plans the hops that cover `lo_hz..hi_hz` at `sample_rate_hz` (at most the radio's maximum),
/// keeping `usable_fraction` of each capture (the rest is the anti-alias filter's roll-off).
///
/// # Errors
/// [`DspError::InvalidConfig`] for a non-positive rate, a usable fraction outside (0, 1] or an
/// empty span.
pub fn plan_hops(
    band: &str,
    lo_hz: f64,
    hi_hz: f64,
    limits: &TuningLimits,
    sample_rate_hz: f64,
    usable_fraction: f64,
) -> Result<HopPlan, DspError> {
    if !(sample_rate_hz.is_finite() && sample_rate_hz > 0.0) {
        return Err(DspError::config(
            "sample_rate_hz",
            sample_rate_hz,
            "must be positive",
        ));
    }
    if !(usable_fraction > 0.0 && usable_fraction <= 1.0) {
        return Err(DspError::config(
            "usable_fraction",
            usable_fraction,
            "must be within (0, 1]",
        ));
    }
    if hi_hz.is_nan() || lo_hz.is_nan() || hi_hz <= lo_hz {
        return Err(DspError::config(
            "band",
            format!("{lo_hz}..{hi_hz}"),
            "empty span",
        ));
    }
    let rate = sample_rate_hz.min(limits.max_sample_rate_hz);
    let usable = rate * usable_fraction;
    // A capture centred at the tuning limit still sees half its usable span beyond it.
    let reach_lo = (limits.min_hz - usable / 2.0).max(lo_hz);
    let reach_hi = (limits.max_hz + usable / 2.0).min(hi_hz);
    let mut unreachable = Vec::new();
    if reach_lo >= reach_hi {
        unreachable.push((lo_hz, hi_hz));
        return Ok(HopPlan {
            band: band.to_string(),
            hops: Vec::new(),
            unreachable_hz: unreachable,
        });
    }
    if reach_lo > lo_hz {
        unreachable.push((lo_hz, reach_lo));
    }
    if reach_hi < hi_hz {
        unreachable.push((reach_hi, hi_hz));
    }
    let width = reach_hi - reach_lo;
    let n = (width / usable).ceil().max(1.0) as usize;
    let step = width / n as f64;
    let hops = (0..n)
        .map(|i| {
            let a = reach_lo + step * i as f64;
            let b = a + step;
            Hop {
                center_hz: ((a + b) / 2.0).clamp(limits.min_hz, limits.max_hz),
                sample_rate_hz: rate,
                keep_hz: (a, b),
            }
        })
        .collect();
    Ok(HopPlan {
        band: band.to_string(),
        hops,
        unreachable_hz: unreachable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_country_band_exists() {
        for c in COUNTRIES {
            for b in c.bands {
                assert!(band(b).is_ok(), "{} lists unknown band {b}", c.code);
            }
        }
    }

    #[test]
    fn lte_earfcn_ranges_match_36_101() {
        // Last downlink EARFCN of each band, from TS 36.101 Table 5.7.3-1.
        let expect = [
            ("B1", 599),
            ("B2", 1199),
            ("B3", 1949),
            ("B4", 2399),
            ("B5", 2649),
            ("B7", 3449),
            ("B8", 3799),
            ("B20", 6449),
            ("B25", 8689),
            ("B28", 9659),
            ("B38", 38249),
            ("B41", 41589),
            ("B66", 67335),
            ("B71", 68935),
        ];
        for (name, last) in expect {
            let b = band(name).expect("band");
            assert_eq!(b.earfcn_range().map(|r| r.1), Some(last), "{name}");
        }
    }
}
