//! The facility simulator: a prison seen from one sensor, rendered as IQ for any tuning.
//!
//! A [`Scene`] places the sensor, the walls (as attenuation), the operators' base stations
//! outside (band, technology, power, position) and the jammers inside (bands covered, power,
//! state). [`SimSource`] renders what the sensor's radio would receive at whatever centre and
//! rate it is tuned to: every cell in view with its real synchronisation signals (LTE PSS/SSS
//! and CRS, NR SSB, GSM FCCH), every jammer band in view as noise or a swept tone, and the
//! radio's own thermal noise at its noise figure. The same seed gives the same samples.

use dsp::Complex32;
use dsp::bandplan::{self, Raster};
use dsp::calib::Calibration;
use dsp::carrier::Technology;
use dsp::cell::lte::Duplexing;
use dsp::floor::KT_DBM_PER_HZ;
use dsp::synth::{
    BandNoise, Emitter, GsmEmitter, LteContent, NrContent, OfdmEmitter, SweptTone, add_awgn, rng,
};
use serde::{Deserialize, Serialize};

use crate::{HwError, IqSource, ReadOutcome, SourceInfo, Tuned, Tuning};

/// The sensor's radio in the scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimRadio {
    /// Position in the facility, metres.
    pub position_m: [f64; 2],
    /// Noise figure, dB.
    #[serde(default = "default_nf")]
    pub noise_figure_db: f64,
    /// Input power that reads 0 dBFS at 0 dB gain, dBm; each dB of gain lowers it by one.
    #[serde(default = "default_fs")]
    pub full_scale_dbm_at_0db: f64,
    /// Gain used when a tuning does not say, dB.
    #[serde(default = "default_gain")]
    pub gain_db: f64,
    /// ADC resolution: samples are clipped at full scale and quantised when set.
    #[serde(default)]
    pub adc_bits: Option<u32>,
    /// Local-oscillator error, parts per million (a cheap radio is tens of ppm off).
    #[serde(default)]
    pub ppm: f64,
}

fn default_nf() -> f64 {
    6.0
}
fn default_fs() -> f64 {
    10.0
}
fn default_gain() -> f64 {
    40.0
}

/// A wall: a segment that attenuates every path crossing it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Wall {
    /// One end, metres.
    pub from_m: [f64; 2],
    /// Other end, metres.
    pub to_m: [f64; 2],
    /// Loss through it, dB.
    pub loss_db: f64,
}

/// An operator's base station sector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimCell {
    /// Label (operator and site).
    pub name: String,
    /// `gsm`, `lte` or `nr`.
    pub technology: Technology,
    /// Carrier centre, hertz.
    pub center_hz: f64,
    /// Channel bandwidth, hertz (ignored for GSM).
    #[serde(default)]
    pub bandwidth_hz: f64,
    /// EIRP towards the facility, dBm.
    pub eirp_dbm: f64,
    /// Position, metres (outside the facility).
    pub position_m: [f64; 2],
    /// Physical cell id (LTE 0–503, NR 0–1007); for GSM the BSIC (0–63).
    #[serde(default)]
    pub pci: u16,
    /// LTE duplexing.
    #[serde(default = "default_duplexing")]
    pub duplexing: Duplexing,
    /// NR subcarrier spacing, kHz (15 or 30).
    #[serde(default = "default_scs")]
    pub scs_khz: u32,
    /// NR SSB centre, hertz; default: the GSCN raster point nearest the carrier centre.
    #[serde(default)]
    pub ssb_hz: Option<f64>,
}

fn default_duplexing() -> Duplexing {
    Duplexing::Fdd
}
fn default_scs() -> u32 {
    30
}

/// Jammer health in the scene.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JammerCondition {
    /// Transmitting at full power.
    On,
    /// Transmitting `degraded_loss_db` below full power (a failing amplifier).
    Degraded,
    /// Not transmitting.
    Off,
}

/// What the jammer transmits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum JammerWaveform {
    /// Band-limited Gaussian noise over each band.
    #[default]
    Noise,
    /// A tone swept across each band.
    Sweep,
}

/// A jammer inside the facility.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimJammer {
    /// Label.
    pub name: String,
    /// Position, metres.
    pub position_m: [f64; 2],
    /// Downlink ranges covered, hertz.
    pub bands_hz: Vec<[f64; 2]>,
    /// EIRP per band at full power, dBm.
    pub eirp_dbm_per_band: f64,
    /// On, degraded or off.
    pub condition: JammerCondition,
    /// Power lost when degraded, dB.
    #[serde(default = "default_degraded_loss")]
    pub degraded_loss_db: f64,
    /// Noise or sweep.
    #[serde(default)]
    pub waveform: JammerWaveform,
    /// Sweep period, seconds.
    #[serde(default = "default_sweep_period")]
    pub sweep_period_s: f64,
}

fn default_degraded_loss() -> f64 {
    25.0
}
fn default_sweep_period() -> f64 {
    0.005
}

/// A facility as one sensor sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    /// Scene name.
    pub name: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// The sensor's radio.
    pub radio: SimRadio,
    /// Walls.
    #[serde(default)]
    pub walls: Vec<Wall>,
    /// Base stations.
    #[serde(default)]
    pub cells: Vec<SimCell>,
    /// Jammers.
    #[serde(default)]
    pub jammers: Vec<SimJammer>,
}

/// Path loss in dB: free space up to 100 m, then a 3.5 exponent (suburban clutter).
#[must_use]
pub fn path_loss_db(distance_m: f64, freq_hz: f64) -> f64 {
    let fspl = |d: f64| 20.0 * d.max(1.0).log10() + 20.0 * freq_hz.log10() - 147.55;
    if distance_m <= 100.0 {
        fspl(distance_m)
    } else {
        fspl(100.0) + 35.0 * (distance_m / 100.0).log10()
    }
}

fn crosses(p: [f64; 2], q: [f64; 2], a: [f64; 2], b: [f64; 2]) -> bool {
    let orient = |u: [f64; 2], v: [f64; 2], w: [f64; 2]| {
        (v[0] - u[0]) * (w[1] - u[1]) - (v[1] - u[1]) * (w[0] - u[0])
    };
    let d1 = orient(a, b, p);
    let d2 = orient(a, b, q);
    let d3 = orient(p, q, a);
    let d4 = orient(p, q, b);
    d1 * d2 < 0.0 && d3 * d4 < 0.0
}

impl Scene {
    /// Parses a scene from TOML.
    ///
    /// # Errors
    /// [`HwError::Scene`] with the parser's line and column, or a validation problem.
    pub fn from_toml(text: &str) -> Result<Self, HwError> {
        let s: Self = toml::from_str(text).map_err(|e| HwError::Scene(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    /// Checks the scene for impossible values, reporting every problem at once.
    ///
    /// # Errors
    /// [`HwError::Scene`] listing the problems.
    pub fn validate(&self) -> Result<(), HwError> {
        let mut p = Vec::new();
        for c in &self.cells {
            if !(c.center_hz.is_finite() && c.center_hz > 0.0) {
                p.push(format!("cell `{}`: center_hz must be positive", c.name));
            }
            match c.technology {
                Technology::Lte if c.pci > 503 => {
                    p.push(format!("cell `{}`: LTE pci {} > 503", c.name, c.pci))
                }
                Technology::Nr if c.pci > 1007 => {
                    p.push(format!("cell `{}`: NR pci {} > 1007", c.name, c.pci))
                }
                Technology::Lte if LteContent::n_rb_for_bandwidth(c.bandwidth_hz).is_none() => p
                    .push(format!(
                        "cell `{}`: LTE bandwidth {} Hz is not 1.4, 3, 5, 10, 15 or 20 MHz",
                        c.name, c.bandwidth_hz
                    )),
                Technology::Nr if nr_rb(c.bandwidth_hz, c.scs_khz).is_none() => p.push(format!(
                    "cell `{}`: NR bandwidth {} Hz at {} kHz is not a standard channel",
                    c.name, c.bandwidth_hz, c.scs_khz
                )),
                Technology::Umts | Technology::Unknown => {
                    p.push(format!(
                        "cell `{}`: the simulator models gsm, lte and nr",
                        c.name
                    ));
                }
                _ => {}
            }
        }
        for j in &self.jammers {
            for b in &j.bands_hz {
                if !(b[0] < b[1] && b[0] > 0.0) {
                    p.push(format!(
                        "jammer `{}`: band {:?} must be ascending and positive",
                        j.name, b
                    ));
                }
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(HwError::Scene(p.join("; ")))
        }
    }

    /// Loss in dB from a point to the sensor through the walls in between, at `freq_hz`.
    #[must_use]
    pub fn loss_to_sensor_db(&self, from_m: [f64; 2], freq_hz: f64) -> f64 {
        let s = self.radio.position_m;
        let d = ((from_m[0] - s[0]).powi(2) + (from_m[1] - s[1]).powi(2)).sqrt();
        let walls: f64 = self
            .walls
            .iter()
            .filter(|w| crosses(from_m, s, w.from_m, w.to_m))
            .map(|w| w.loss_db)
            .sum();
        path_loss_db(d, freq_hz) + walls
    }

    /// Power of a cell at the sensor's antenna, dBm.
    #[must_use]
    pub fn cell_power_dbm(&self, c: &SimCell) -> f64 {
        c.eirp_dbm - self.loss_to_sensor_db(c.position_m, c.center_hz)
    }

    /// Power of one jammer band at the sensor's antenna, dBm (−∞ when off).
    #[must_use]
    pub fn jammer_power_dbm(&self, j: &SimJammer, band: [f64; 2]) -> f64 {
        let eirp = match j.condition {
            JammerCondition::On => j.eirp_dbm_per_band,
            JammerCondition::Degraded => j.eirp_dbm_per_band - j.degraded_loss_db,
            JammerCondition::Off => return f64::NEG_INFINITY,
        };
        eirp - self.loss_to_sensor_db(j.position_m, (band[0] + band[1]) / 2.0)
    }

    /// The ground truth a phone at the sensor would meet: the cell's SINR, dB, over thermal
    /// noise (kTB + the radio's noise figure) and every jammer band that overlaps the cell's
    /// occupied bandwidth (90 % of an LTE/NR channel, 200 kHz for GSM), with the same path
    /// loss, walls and powers the simulated radio hears.
    #[must_use]
    pub fn cell_sinr_db(&self, c: &SimCell) -> f64 {
        let bw = if c.bandwidth_hz > 0.0 {
            c.bandwidth_hz * 0.9
        } else {
            200e3
        };
        let (lo, hi) = (c.center_hz - bw / 2.0, c.center_hz + bw / 2.0);
        let thermal_dbm = -174.0 + self.radio.noise_figure_db + 10.0 * bw.log10();
        let mut noise_mw = 10f64.powf(thermal_dbm / 10.0);
        for j in &self.jammers {
            for b in &j.bands_hz {
                let overlap = (hi.min(b[1]) - lo.max(b[0])).max(0.0);
                if overlap > 0.0 {
                    let p = self.jammer_power_dbm(j, *b);
                    noise_mw += 10f64.powf(p / 10.0) * overlap / (b[1] - b[0]);
                }
            }
        }
        self.cell_power_dbm(c) - 10.0 * noise_mw.log10()
    }

    /// The built-in demo: a prison with two jammers (one GSM-era, one degraded: its band's floor
    /// is raised, yet the B28 cell leaks below it, found only by sync), AWS, 2.6 GHz and n78 left
    /// uncovered, and operators' cells outside.
    #[must_use]
    pub fn demo() -> Self {
        let wall = |a: [f64; 2], b: [f64; 2]| Wall {
            from_m: a,
            to_m: b,
            loss_db: 15.0,
        };
        Self {
            name: "demo-prison".into(),
            seed: 2026,
            radio: SimRadio {
                position_m: [60.0, 45.0],
                noise_figure_db: 6.0,
                full_scale_dbm_at_0db: 10.0,
                gain_db: 40.0,
                adc_bits: None,
                ppm: 0.0,
            },
            walls: vec![
                wall([0.0, 0.0], [160.0, 0.0]),
                wall([160.0, 0.0], [160.0, 120.0]),
                wall([160.0, 120.0], [0.0, 120.0]),
                wall([0.0, 120.0], [0.0, 0.0]),
            ],
            cells: Self::demo_cells(),
            jammers: vec![
                SimJammer {
                    name: "Pabellón A (GSM/3G era)".into(),
                    position_m: [55.0, 50.0],
                    bands_hz: vec![[869e6, 894e6], [1930e6, 1995e6]],
                    eirp_dbm_per_band: 33.0,
                    condition: JammerCondition::On,
                    degraded_loss_db: 25.0,
                    waveform: JammerWaveform::Noise,
                    sweep_period_s: 0.005,
                },
                Self::perimeter_jammer("Perimetro (4G, failing amplifier)"),
            ],
        }
    }

    /// The prison of `centinela-demo`, seen by several sensors (the radio's position is set per
    /// sensor): the demo's outer walls and operators' cells, two concrete cell blocks with
    /// steel mesh (35 dB per wall) that shield their inmates, a main jammer in the corridor
    /// between them that covers every band but n78 (left uncovered on purpose), and the same
    /// failing perimeter jammer.
    #[must_use]
    pub fn demo_facility() -> Self {
        let mut s = Self::demo();
        s.name = "demo-prison (centinela-demo)".into();
        for (x0, y0, x1, y1) in [(5.0, 5.0, 75.0, 55.0), (85.0, 5.0, 155.0, 55.0)] {
            for (a, b) in [
                ([x0, y0], [x1, y0]),
                ([x1, y0], [x1, y1]),
                ([x1, y1], [x0, y1]),
                ([x0, y1], [x0, y0]),
            ] {
                s.walls.push(Wall {
                    from_m: a,
                    to_m: b,
                    loss_db: 35.0,
                });
            }
        }
        s.jammers = vec![
            SimJammer {
                name: "Pabellones".into(),
                position_m: [80.0, 60.0],
                bands_hz: vec![
                    [758e6, 803e6],
                    [869e6, 894e6],
                    [1930e6, 1995e6],
                    [2110e6, 2200e6],
                    [2496e6, 2690e6],
                ],
                eirp_dbm_per_band: 36.0,
                condition: JammerCondition::On,
                degraded_loss_db: 25.0,
                waveform: JammerWaveform::Noise,
                sweep_period_s: 0.005,
            },
            Self::perimeter_jammer("Perimetro"),
        ];
        s
    }

    /// The perimeter's 4G jammer with its failing amplifier: weak enough that the B28 cell stays
    /// 2 dB under the jammed floor, invisible to energy detection and still found (and usable)
    /// by its sync signals.
    fn perimeter_jammer(name: &str) -> SimJammer {
        SimJammer {
            name: name.into(),
            position_m: [80.0, 100.0],
            bands_hz: vec![[758e6, 803e6]],
            eirp_dbm_per_band: 36.0,
            condition: JammerCondition::Degraded,
            degraded_loss_db: 26.0,
            waveform: JammerWaveform::Noise,
            sweep_period_s: 0.005,
        }
    }

    /// The operators' cells around the demo prison.
    fn demo_cells() -> Vec<SimCell> {
        let cell = |name: &str, tech, center_hz, bw, eirp, pos, pci| SimCell {
            name: name.into(),
            technology: tech,
            center_hz,
            bandwidth_hz: bw,
            eirp_dbm: eirp,
            position_m: pos,
            pci,
            duplexing: Duplexing::Fdd,
            scs_khz: 30,
            ssb_hz: None,
        };
        vec![
            cell(
                "Claro LTE B28 north",
                Technology::Lte,
                778.0e6,
                10e6,
                60.0,
                [80.0, 1400.0],
                210,
            ),
            cell(
                "Movistar LTE B5 east",
                Technology::Lte,
                881.5e6,
                10e6,
                58.0,
                [900.0, 60.0],
                87,
            ),
            cell(
                "Tigo GSM850 south",
                Technology::Gsm,
                891.6e6,
                0.0,
                55.0,
                [40.0, -700.0],
                // BSIC 35 (octal): NCC 3, BCC 5.
                0o35,
            ),
            cell(
                "Claro LTE B2 west",
                Technology::Lte,
                1960.0e6,
                10e6,
                58.0,
                [-800.0, 50.0],
                301,
            ),
            cell(
                "Tigo LTE B4 north-east",
                Technology::Lte,
                2140.0e6,
                10e6,
                60.0,
                [700.0, 900.0],
                45,
            ),
            cell(
                "Movistar LTE B7 west",
                Technology::Lte,
                2655.0e6,
                10e6,
                58.0,
                [-600.0, 300.0],
                122,
            ),
            cell(
                "Claro NR n78 north",
                Technology::Nr,
                3500.0e6,
                40e6,
                62.0,
                [100.0, 1100.0],
                579,
            ),
        ]
    }
}

/// NR resource blocks for a channel bandwidth and SCS (TS 38.101-1 Table 5.3.2-1).
#[must_use]
pub fn nr_rb(bandwidth_hz: f64, scs_khz: u32) -> Option<usize> {
    let mhz = (bandwidth_hz / 1e6).round() as u32;
    let n = match (scs_khz, mhz) {
        (15, 5) => 25,
        (15, 10) => 52,
        (15, 15) => 79,
        (15, 20) => 106,
        (15, 40) => 216,
        (15, 50) => 270,
        (30, 10) => 24,
        (30, 15) => 38,
        (30, 20) => 51,
        (30, 40) => 106,
        (30, 50) => 133,
        (30, 60) => 162,
        (30, 80) => 217,
        (30, 100) => 273,
        _ => return None,
    };
    Some(n)
}

fn mix_seed(a: u64, b: u64, c: u64) -> u64 {
    // SplitMix64 finaliser over the three parts.
    let mut z = a ^ b.rotate_left(21) ^ c.rotate_left(42) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Renders a [`Scene`] as the sensor's radio would receive it.
#[derive(Debug)]
pub struct SimSource {
    scene: Scene,
    emitters: Vec<Box<dyn Emitter>>,
    tuned: Option<Tuned>,
    full_scale_dbm: f64,
    thermal_power: f64,
    noise: dsp::synth::SeededRng,
    tunes: u64,
    /// Cells that fell back to energy-only rendering at the last tuning (rate not a multiple of
    /// the subcarrier spacing).
    pub energy_only: Vec<String>,
}

/// Highest sample rate the simulated radio offers.
pub const SIM_MAX_RATE_HZ: f64 = 61.44e6;

impl SimSource {
    /// A source for a validated scene.
    ///
    /// # Errors
    /// [`HwError::Scene`] when the scene does not validate.
    pub fn new(scene: Scene) -> Result<Self, HwError> {
        scene.validate()?;
        Ok(Self {
            noise: rng(scene.seed),
            scene,
            emitters: Vec::new(),
            tuned: None,
            full_scale_dbm: 0.0,
            thermal_power: 0.0,
            tunes: 0,
            energy_only: Vec::new(),
        })
    }

    /// The scene.
    #[must_use]
    pub fn scene(&self) -> &Scene {
        &self.scene
    }

    fn to_fs(&self, dbm: f64) -> f64 {
        dsp::from_db(dbm - self.full_scale_dbm)
    }

    fn build(&mut self, center_hz: f64, fs: f64) {
        self.emitters.clear();
        self.energy_only.clear();
        let lo_error = self.scene.radio.ppm * 1e-6 * center_hz;
        let view = (center_hz - fs / 2.0, center_hz + fs / 2.0);
        let seed = self.scene.seed;
        for (i, c) in self.scene.cells.clone().iter().enumerate() {
            let s = mix_seed(seed, i as u64, self.tunes);
            let power = self.to_fs(self.scene.cell_power_dbm(c));
            let offset = c.center_hz - center_hz - lo_error;
            let half_bw = match c.technology {
                Technology::Gsm => 100e3,
                _ => c.bandwidth_hz / 2.0,
            };
            if c.center_hz + half_bw <= view.0 || c.center_hz - half_bw >= view.1 {
                continue;
            }
            let emitter: Result<Box<dyn Emitter>, dsp::DspError> = match c.technology {
                Technology::Gsm => Ok(Box::new(
                    GsmEmitter::new(s, fs, offset, power).with_bsic((c.pci & 63) as u8),
                )),
                Technology::Lte => {
                    let n_rb = LteContent::n_rb_for_bandwidth(c.bandwidth_hz).unwrap_or(6);
                    LteContent::new(c.pci, c.duplexing, n_rb, s)
                        .and_then(|content| OfdmEmitter::new(content, fs, offset, power))
                        .map(|e| Box::new(e) as Box<dyn Emitter>)
                }
                _ => self.nr_emitter(c, s, fs, center_hz + lo_error, power),
            };
            match emitter {
                Ok(e) => self.emitters.push(e),
                Err(_) => {
                    // The rate cannot carry this numerology: keep its energy, lose its sync.
                    self.energy_only.push(c.name.clone());
                    let occ = 0.9 * c.bandwidth_hz.max(200e3);
                    self.emitters.push(Box::new(BandNoise::new(
                        s,
                        fs,
                        offset - occ / 2.0,
                        offset + occ / 2.0,
                        power * (occ.min(fs) / occ),
                    )));
                }
            }
        }
        for (i, j) in self.scene.jammers.clone().iter().enumerate() {
            for (k, band) in j.bands_hz.iter().enumerate() {
                let p_dbm = self.scene.jammer_power_dbm(j, *band);
                if !p_dbm.is_finite() {
                    continue;
                }
                let lo = band[0].max(view.0);
                let hi = band[1].min(view.1);
                if lo >= hi {
                    continue;
                }
                let s = mix_seed(seed, 1000 + 100 * i as u64 + k as u64, self.tunes);
                let power = self.to_fs(p_dbm);
                let shift = -center_hz - lo_error;
                match j.waveform {
                    JammerWaveform::Noise => self.emitters.push(Box::new(BandNoise::new(
                        s,
                        fs,
                        lo + shift,
                        hi + shift,
                        power * (hi - lo) / (band[1] - band[0]),
                    ))),
                    JammerWaveform::Sweep => self.emitters.push(Box::new(SweptTone::new(
                        fs,
                        band[0] + shift,
                        band[1] + shift,
                        j.sweep_period_s,
                        power,
                    ))),
                }
            }
        }
    }

    fn nr_emitter(
        &self,
        c: &SimCell,
        seed: u64,
        fs: f64,
        lo_hz: f64,
        power: f64,
    ) -> Result<Box<dyn Emitter>, dsp::DspError> {
        let scs = f64::from(c.scs_khz) * 1e3;
        let mu = if c.scs_khz == 15 { 0 } else { 1 };
        let n_rb = nr_rb(c.bandwidth_hz, c.scs_khz).unwrap_or(24);
        let ssb = c
            .ssb_hz
            .unwrap_or_else(|| nearest_gscn(c.center_hz).unwrap_or(c.center_hz));
        let ssb_off_sc = ((ssb - c.center_hz) / scs).round() as i64;
        // Shift the carrier by less than one subcarrier so that the SSB sits exactly on `ssb`.
        let carrier = ssb - ssb_off_sc as f64 * scs;
        let content = NrContent::new(c.pci, mu, n_rb, ssb_off_sc, seed)?;
        // A 5G transmitter restarts its carrier phase every symbol (TS 38.211 §5.4).
        Ok(Box::new(
            OfdmEmitter::new(content, fs, carrier - lo_hz, power)?.with_upconversion_phase(carrier),
        ))
    }
}

/// The synchronisation raster point of any NR band nearest to `freq_hz`.
#[must_use]
pub fn nearest_gscn(freq_hz: f64) -> Option<f64> {
    bandplan::NR_BANDS
        .iter()
        .filter(|b| b.contains(freq_hz))
        .filter_map(|b| match b.raster {
            Raster::Nr { .. } => Some(bandplan::gscns_within(b, freq_hz - 5e6, freq_hz + 5e6)),
            _ => None,
        })
        .flatten()
        .map(|(_, f)| f)
        .min_by(|a, b| (a - freq_hz).abs().total_cmp(&(b - freq_hz).abs()))
}

impl IqSource for SimSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "sim",
            name: self.scene.name.clone(),
            noise_figure_db: Some(self.scene.radio.noise_figure_db),
        }
    }

    fn tune(&mut self, t: &Tuning) -> Result<Tuned, HwError> {
        if !(t.sample_rate_hz.is_finite()
            && t.sample_rate_hz > 0.0
            && t.sample_rate_hz <= SIM_MAX_RATE_HZ)
        {
            return Err(HwError::Tuning {
                what: "sample_rate_hz",
                value: t.sample_rate_hz.to_string(),
                reason: format!("the simulated radio samples up to {SIM_MAX_RATE_HZ} S/s"),
            });
        }
        if !(t.center_hz.is_finite() && (1e6..=6e9).contains(&t.center_hz)) {
            return Err(HwError::Tuning {
                what: "center_hz",
                value: t.center_hz.to_string(),
                reason: "the simulated radio tunes 1 MHz to 6 GHz".into(),
            });
        }
        let gain = t.gain_db.unwrap_or(self.scene.radio.gain_db);
        self.full_scale_dbm = self.scene.radio.full_scale_dbm_at_0db - gain;
        let thermal_dbm =
            KT_DBM_PER_HZ + self.scene.radio.noise_figure_db + 10.0 * t.sample_rate_hz.log10();
        self.thermal_power = self.to_fs(thermal_dbm);
        self.build(t.center_hz, t.sample_rate_hz);
        self.tunes += 1;
        let tuned = Tuned {
            center_hz: t.center_hz,
            sample_rate_hz: t.sample_rate_hz,
            gain_db: Some(gain),
        };
        self.tuned = Some(tuned.clone());
        Ok(tuned)
    }

    fn read(&mut self, buf: &mut [Complex32]) -> Result<ReadOutcome, HwError> {
        if self.tuned.is_none() {
            return Err(HwError::Tuning {
                what: "center_hz",
                value: "unset".into(),
                reason: "tune the simulator before reading".into(),
            });
        }
        buf.fill(Complex32::default());
        for e in &mut self.emitters {
            e.add_to(buf);
        }
        add_awgn(&mut self.noise, buf, self.thermal_power);
        if let Some(bits) = self.scene.radio.adc_bits {
            let levels = f32::from(1u16 << (bits.clamp(2, 16) - 1));
            for x in buf.iter_mut() {
                let q = |v: f32| (v.clamp(-1.0, 1.0) * levels).round() / levels;
                *x = Complex32::new(q(x.re), q(x.im));
            }
        }
        Ok(ReadOutcome::Samples(buf.len()))
    }

    fn calibration(&self) -> Option<Calibration> {
        Calibration::flat(self.full_scale_dbm, 0.0).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walls_attenuate_only_paths_that_cross_them() {
        let s = Scene::demo();
        let inside = s.loss_to_sensor_db([70.0, 45.0], 800e6);
        let free = path_loss_db(10.0, 800e6);
        assert!((inside - free).abs() < 1e-9);
        let outside = s.loss_to_sensor_db([60.0, -300.0], 800e6);
        assert!((outside - path_loss_db(345.0, 800e6) - 15.0).abs() < 1e-9);
    }

    #[test]
    fn demo_scene_validates_and_round_trips_through_toml() {
        let s = Scene::demo();
        s.validate().expect("valid");
        let text = toml::to_string(&s).expect("serialise");
        assert_eq!(Scene::from_toml(&text).expect("parse"), s);
    }

    #[test]
    fn bad_scene_lists_every_problem() {
        let mut s = Scene::demo();
        s.cells[0].pci = 600;
        s.cells[1].bandwidth_hz = 7e6;
        let e = s.validate().expect_err("invalid").to_string();
        assert!(e.contains("pci 600") && e.contains("7000000"), "{e}");
    }
}
