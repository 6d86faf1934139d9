//! Seeded signal generators for tests and the facility simulator.
//!
//! Every generator draws from a [`SeededRng`] so that a seed reproduces the same samples. The
//! standard emitters transmit real synchronisation signals: [`OfdmEmitter`] with [`LteContent`]
//! (PSS/SSS/CRS per TS 36.211) or [`NrContent`] (SSB per TS 38.211), and [`GsmEmitter`] (FCCH
//! tone bursts in the 51-multiframe). Emitters *add* into a buffer, so scenes are sums.

use std::sync::Arc;

use num_complex::Complex32;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rustfft::{Fft, FftPlanner};

use crate::DspError;
use crate::cell::{gsm, gsm_sch, lte, nr};

/// The generator behind every synthetic signal: ChaCha8, portable and reproducible.
pub type SeededRng = ChaCha8Rng;

/// A generator for a seed.
#[must_use]
pub fn rng(seed: u64) -> SeededRng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// One circularly-symmetric complex Gaussian sample with E|x|² = `power`.
pub fn complex_gaussian(rng: &mut SeededRng, power: f64) -> Complex32 {
    let s = (power / 2.0).sqrt();
    let re: f64 = StandardNormal.sample(rng);
    let im: f64 = StandardNormal.sample(rng);
    Complex32::new((re * s) as f32, (im * s) as f32)
}

/// Adds white Gaussian noise of total power `power` (full-scale units) to `buf`.
pub fn add_awgn(rng: &mut SeededRng, buf: &mut [Complex32], power: f64) {
    for x in buf {
        *x += complex_gaussian(rng, power);
    }
}

/// A complex tone of `amplitude` at `freq_hz` (relative to baseband), starting at `phase`.
#[must_use]
pub fn tone(
    n: usize,
    sample_rate_hz: f64,
    freq_hz: f64,
    amplitude: f64,
    phase: f64,
) -> Vec<Complex32> {
    let w = 2.0 * std::f64::consts::PI * freq_hz / sample_rate_hz;
    (0..n)
        .map(|i| {
            let p = phase + w * i as f64;
            Complex32::new((amplitude * p.cos()) as f32, (amplitude * p.sin()) as f32)
        })
        .collect()
}

/// A source of samples that adds itself into a buffer, sample-continuous across calls.
pub trait Emitter: Send + std::fmt::Debug {
    /// Adds the next `out.len()` samples of this emitter into `out`.
    fn add_to(&mut self, out: &mut [Complex32]);
}

/// Adds as much of `ready[*pos..]` into the start of `out` as fits; advances `pos` and returns
/// the count (the copy-out of block-rendered emitters).
fn add_from(out: &mut [Complex32], ready: &[Complex32], pos: &mut usize) -> usize {
    let n = (ready.len() - *pos).min(out.len());
    for (o, r) in out[..n].iter_mut().zip(&ready[*pos..*pos + n]) {
        *o += r;
    }
    *pos += n;
    n
}

/// A numerically controlled oscillator: shifts a signal by a fixed frequency, phase-continuous.
#[derive(Debug, Clone)]
pub struct Nco {
    phase: f64,
    step: f64,
}

impl Nco {
    /// An oscillator at `freq_hz` for `sample_rate_hz`.
    #[must_use]
    pub fn new(freq_hz: f64, sample_rate_hz: f64) -> Self {
        Self {
            phase: 0.0,
            step: 2.0 * std::f64::consts::PI * freq_hz / sample_rate_hz,
        }
    }

    /// Multiplies `buf` by the oscillator in place.
    pub fn mix(&mut self, buf: &mut [Complex32]) {
        if self.step == 0.0 {
            return;
        }
        for x in buf {
            *x *= Complex32::new(self.phase.cos() as f32, self.phase.sin() as f32);
            self.phase = (self.phase + self.step) % std::f64::consts::TAU;
        }
    }
}

/// Gaussian noise confined to a band (a noise jammer, or the flat spectrum of a loaded OFDM
/// carrier), made by overlap-adding sine-windowed blocks of frequency-domain noise so that the
/// band edges stay sharp (leakage below −90 dB a few hundred bins out) and the power constant.
pub struct BandNoise {
    rng: SeededRng,
    ifft: Arc<dyn Fft<f32>>,
    bins: Vec<usize>,
    window: Vec<f32>,
    block: Vec<Complex32>,
    tail: Vec<Complex32>,
    ready: Vec<Complex32>,
    pos: usize,
    sigma_sq: f64,
}

impl std::fmt::Debug for BandNoise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BandNoise")
            .field("bins", &self.bins.len())
            .finish_non_exhaustive()
    }
}

impl BandNoise {
    /// Noise of total power `power` between `lo_hz` and `hi_hz` (relative to baseband, clipped
    /// to ±fs/2), with blocks of `2 × half_block` samples.
    #[must_use]
    pub fn new(seed: u64, sample_rate_hz: f64, lo_hz: f64, hi_hz: f64, power: f64) -> Self {
        let len = 8192usize;
        let df = sample_rate_hz / len as f64;
        let bins: Vec<usize> = (0..len)
            .filter(|&k| {
                let f = if k < len / 2 {
                    k as f64
                } else {
                    k as f64 - len as f64
                } * df;
                f >= lo_hz && f <= hi_hz && f.abs() < sample_rate_hz / 2.0
            })
            .collect();
        let window = (0..len)
            .map(|n| (std::f64::consts::PI * (n as f64 + 0.5) / len as f64).sin() as f32)
            .collect();
        let sigma_sq = if bins.is_empty() {
            0.0
        } else {
            power / bins.len() as f64
        };
        Self {
            rng: rng(seed),
            ifft: FftPlanner::new().plan_fft_inverse(len),
            bins,
            window,
            block: vec![Complex32::default(); len],
            tail: vec![Complex32::default(); len / 2],
            ready: vec![Complex32::default(); len / 2],
            pos: len / 2,
            sigma_sq,
        }
    }

    fn refill(&mut self) {
        let half = self.block.len() / 2;
        self.block.fill(Complex32::default());
        for &k in &self.bins {
            self.block[k] = complex_gaussian(&mut self.rng, self.sigma_sq);
        }
        self.ifft.process(&mut self.block);
        for (x, &w) in self.block.iter_mut().zip(&self.window) {
            *x *= w;
        }
        for i in 0..half {
            self.ready[i] = self.tail[i] + self.block[i];
            self.tail[i] = self.block[half + i];
        }
        self.pos = 0;
    }
}

impl Emitter for BandNoise {
    fn add_to(&mut self, out: &mut [Complex32]) {
        if self.bins.is_empty() {
            return;
        }
        let mut i = 0;
        while i < out.len() {
            if self.pos == self.ready.len() {
                self.refill();
            }
            i += add_from(&mut out[i..], &self.ready, &mut self.pos);
        }
    }
}

/// A tone swept linearly (sawtooth) across `lo_hz..hi_hz` every `period_s`: a swept-CW jammer.
/// Outside the radio's passband (beyond 49 % of the sample rate) it is filtered off.
#[derive(Debug, Clone)]
pub struct SweptTone {
    lo_hz: f64,
    hi_hz: f64,
    period_samples: f64,
    t: f64,
    phase: f64,
    amplitude: f32,
    sample_rate_hz: f64,
}

impl SweptTone {
    /// A sweep of power `power` (full-scale units).
    #[must_use]
    pub fn new(sample_rate_hz: f64, lo_hz: f64, hi_hz: f64, period_s: f64, power: f64) -> Self {
        Self {
            lo_hz,
            hi_hz,
            period_samples: (period_s * sample_rate_hz).max(1.0),
            t: 0.0,
            phase: 0.0,
            amplitude: power.sqrt() as f32,
            sample_rate_hz,
        }
    }
}

impl Emitter for SweptTone {
    fn add_to(&mut self, out: &mut [Complex32]) {
        let edge = 0.49 * self.sample_rate_hz;
        for o in out {
            let f = self.lo_hz + (self.hi_hz - self.lo_hz) * (self.t / self.period_samples);
            self.phase = (self.phase + std::f64::consts::TAU * f / self.sample_rate_hz)
                % std::f64::consts::TAU;
            if f.abs() < edge {
                *o += Complex32::new(self.phase.cos() as f32, self.phase.sin() as f32)
                    * self.amplitude;
            }
            self.t += 1.0;
            if self.t >= self.period_samples {
                self.t -= self.period_samples;
            }
        }
    }
}

/// What an OFDM emitter transmits, symbol by symbol.
pub trait OfdmContent: Send + std::fmt::Debug {
    /// Subcarriers of the carrier (the grid's length).
    fn n_sc(&self) -> usize;
    /// Numerology μ: subcarrier spacing 15 kHz × 2^μ.
    fn mu(&self) -> u32;
    /// LTE leaves the DC subcarrier empty between the two halves of the grid.
    fn dc_gap(&self) -> bool;
    /// Fills `grid` (zeroed, `n_sc` long, lowest subcarrier first) for `symbol` of `frame`.
    fn fill(&mut self, frame: u32, symbol: usize, grid: &mut [Complex32]);
}

/// An OFDM transmitter with normal cyclic prefix rendered at any sample rate that is a multiple
/// of the subcarrier spacing, placed `offset_hz` from baseband. Subcarriers outside ±fs/2 are
/// not transmitted (the radio's filter would remove them).
pub struct OfdmEmitter<C: OfdmContent> {
    content: C,
    ifft: Arc<dyn Fft<f32>>,
    n_fft: usize,
    sample_rate_hz: f64,
    map: Vec<Option<usize>>,
    grid: Vec<Complex32>,
    fft_buf: Vec<Complex32>,
    ready: Vec<Complex32>,
    pos: usize,
    symbol: usize,
    frame: u32,
    t_ts: u64,
    amplitude: f32,
    nco: Nco,
    shift: i64,
    emitted: u64,
    upconversion_hz: Option<f64>,
}

impl<C: OfdmContent> std::fmt::Debug for OfdmEmitter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfdmEmitter")
            .field("content", &self.content)
            .field("n_fft", &self.n_fft)
            .finish_non_exhaustive()
    }
}

const TS_PER_FRAME: u64 = 307_200;
const TS_RATE_HZ: f64 = 30.72e6;

impl<C: OfdmContent> OfdmEmitter<C> {
    /// An emitter of total power `power` (full-scale units).
    ///
    /// # Errors
    /// [`DspError::InvalidConfig`] when the sample rate is not a multiple of the subcarrier
    /// spacing (the symbol would not be a whole number of samples).
    pub fn new(
        content: C,
        sample_rate_hz: f64,
        offset_hz: f64,
        power: f64,
    ) -> Result<Self, DspError> {
        let scs = 15e3 * f64::from(1u32 << content.mu());
        let n = sample_rate_hz / scs;
        if (n - n.round()).abs() > 1e-6 || n < 16.0 {
            return Err(DspError::config(
                "sample_rate_hz",
                sample_rate_hz,
                "must be a multiple of the subcarrier spacing, at least 16 of them",
            ));
        }
        let n_fft = n.round() as usize;
        let shift = (offset_hz / scs).round() as i64;
        let residual = offset_hz - shift as f64 * scs;
        let n_sc = content.n_sc();
        let half = (n_sc / 2) as i64;
        let map = (0..n_sc as i64)
            .map(|i| {
                let k = if content.dc_gap() {
                    if i < half { i - half } else { i - half + 1 }
                } else {
                    i - half
                } + shift;
                (k >= -(n_fft as i64) / 2 && k < n_fft as i64 / 2)
                    .then(|| k.rem_euclid(n_fft as i64) as usize)
            })
            .collect();
        Ok(Self {
            ifft: FftPlanner::new().plan_fft_inverse(n_fft),
            n_fft,
            sample_rate_hz,
            map,
            grid: vec![Complex32::default(); n_sc],
            fft_buf: vec![Complex32::default(); n_fft],
            ready: Vec::with_capacity(2 * n_fft),
            pos: 0,
            symbol: 0,
            frame: 0,
            t_ts: 0,
            amplitude: (power / n_sc as f64).sqrt() as f32,
            nco: Nco::new(residual, sample_rate_hz),
            shift,
            emitted: 0,
            upconversion_hz: None,
            content,
        })
    }

    /// Applies NR's upconversion phase for a carrier at `f0_hz` (TS 38.211 §5.4): every symbol
    /// is rotated by −2π·f0·(start of its body within the slot), as a 5G transmitter does. LTE
    /// has no such term.
    #[must_use]
    pub fn with_upconversion_phase(mut self, f0_hz: f64) -> Self {
        self.upconversion_hz = Some(f0_hz);
        self
    }

    /// The content generator.
    pub fn content(&self) -> &C {
        &self.content
    }

    fn next_symbol(&mut self) {
        let mu = self.content.mu();
        let per_half_ms = 7usize << mu;
        let cp_ts = (144u64 >> mu)
            + if self.symbol.is_multiple_of(per_half_ms) {
                16
            } else {
                0
            };
        let body_ts = 2048u64 >> mu;
        let to_samples = |ts: u64| (ts as f64 * self.sample_rate_hz / TS_RATE_HZ).round() as usize;
        let start = to_samples(self.t_ts);
        let body_start = to_samples(self.t_ts + cp_ts);
        let cp = body_start - start;
        self.grid.fill(Complex32::default());
        self.content.fill(self.frame, self.symbol, &mut self.grid);
        self.fft_buf.fill(Complex32::default());
        for (g, m) in self.grid.iter().zip(&self.map) {
            if let Some(k) = m {
                self.fft_buf[*k] = *g;
            }
        }
        self.ifft.process(&mut self.fft_buf);
        self.ready.clear();
        self.ready
            .extend_from_slice(&self.fft_buf[self.n_fft - cp..]);
        self.ready.extend_from_slice(&self.fft_buf);
        // The whole-subcarrier part of the offset was applied by placing the grid `shift` bins
        // up; as a real oscillator it must be continuous across symbols, so rotate this symbol
        // by the phase that oscillator has at the start of its body.
        let turns = (self.shift * (self.emitted + cp as u64) as i64).rem_euclid(self.n_fft as i64);
        let phase = std::f64::consts::TAU * turns as f64 / self.n_fft as f64;
        let upconversion = self.upconversion_hz.map_or(0.0, |f0| {
            let slot_ts = 30_720u64 >> mu;
            let body_in_slot = (self.t_ts + cp_ts) % slot_ts;
            // f0 · t modulo one cycle, kept exact for GHz carriers.
            let cycles = (f0 * body_in_slot as f64 / TS_RATE_HZ).fract();
            -std::f64::consts::TAU * cycles
        });
        let phase = phase + upconversion;
        let rot = Complex32::new(phase.cos() as f32, phase.sin() as f32) * self.amplitude;
        for x in &mut self.ready {
            *x *= rot;
        }
        self.nco.mix(&mut self.ready);
        self.emitted += self.ready.len() as u64;
        self.pos = 0;
        self.t_ts += cp_ts + body_ts;
        self.symbol += 1;
        if self.symbol == 140 << mu {
            debug_assert_eq!(self.t_ts, TS_PER_FRAME);
            self.symbol = 0;
            self.t_ts = 0;
            self.frame = self.frame.wrapping_add(1);
        }
    }
}

impl<C: OfdmContent> Emitter for OfdmEmitter<C> {
    fn add_to(&mut self, out: &mut [Complex32]) {
        let mut i = 0;
        while i < out.len() {
            if self.pos == self.ready.len() {
                self.next_symbol();
            }
            i += add_from(&mut out[i..], &self.ready, &mut self.pos);
        }
    }
}

fn qpsk(rng: &mut SeededRng) -> Complex32 {
    let a = std::f32::consts::FRAC_1_SQRT_2;
    let b: u8 = rng.random_range(0..4);
    Complex32::new(
        if b & 1 == 0 { a } else { -a },
        if b & 2 == 0 { a } else { -a },
    )
}

/// A fully loaded LTE downlink: random QPSK data, port-0 CRS, PSS and SSS in their FDD or TDD
/// positions (TDD uses uplink-downlink configuration 1 with a 3-symbol DwPTS), normal CP.
#[derive(Debug)]
pub struct LteContent {
    pci: u16,
    duplexing: lte::Duplexing,
    n_rb: usize,
    rng: SeededRng,
    pss: [Complex32; 62],
    sss: [[f32; 62]; 2],
}

impl LteContent {
    /// A cell of `n_rb` resource blocks (6–100).
    ///
    /// # Errors
    /// [`DspError::InvalidConfig`] for a PCI above 503 or a bandwidth outside 6–100 RB.
    pub fn new(
        pci: u16,
        duplexing: lte::Duplexing,
        n_rb: usize,
        seed: u64,
    ) -> Result<Self, DspError> {
        if pci > 503 {
            return Err(DspError::config("pci", pci, "LTE PCIs are 0..=503"));
        }
        if !(6..=100).contains(&n_rb) {
            return Err(DspError::config(
                "n_rb",
                n_rb,
                "LTE carriers have 6..=100 resource blocks",
            ));
        }
        let (n1, n2) = (pci / 3, (pci % 3) as u8);
        Ok(Self {
            pci,
            duplexing,
            n_rb,
            rng: rng(seed),
            pss: lte::pss(n2),
            sss: [lte::sss(n1, n2, false), lte::sss(n1, n2, true)],
        })
    }

    /// Resource blocks for a channel bandwidth in hertz (1.4 → 6 … 20 MHz → 100).
    #[must_use]
    pub fn n_rb_for_bandwidth(channel_bw_hz: f64) -> Option<usize> {
        [
            (1.4e6, 6),
            (3e6, 15),
            (5e6, 25),
            (10e6, 50),
            (15e6, 75),
            (20e6, 100),
        ]
        .iter()
        .find(|(bw, _)| (bw - channel_bw_hz).abs() < 1e3)
        .map(|&(_, n)| n)
    }
}

impl OfdmContent for LteContent {
    fn n_sc(&self) -> usize {
        12 * self.n_rb
    }
    fn mu(&self) -> u32 {
        0
    }
    fn dc_gap(&self) -> bool {
        true
    }
    fn fill(&mut self, _frame: u32, symbol: usize, grid: &mut [Complex32]) {
        let subframe = symbol / 14;
        let l = symbol % 14;
        let tdd = self.duplexing == lte::Duplexing::Tdd;
        if tdd {
            // Configuration 1: D S U U D D S U U D; DwPTS of 3 symbols.
            match subframe {
                2 | 3 | 7 | 8 => return,
                1 | 6 if l > 2 => return,
                _ => {}
            }
        }
        for g in grid.iter_mut() {
            *g = qpsk(&mut self.rng);
        }
        let slot = (symbol / 7) as u32;
        let ls = (symbol % 7) as u32;
        if ls == 0 || ls == 4 {
            for (k, v) in lte::crs_res(self.pci, self.n_rb, slot, ls) {
                grid[k] = v;
            }
        }
        let (pss_here, sss_here) = if tdd {
            (
                matches!(subframe, 1 | 6) && l == 2,
                matches!(subframe, 0 | 5) && l == 13,
            )
        } else {
            (
                matches!(subframe, 0 | 5) && l == 6,
                matches!(subframe, 0 | 5) && l == 5,
            )
        };
        if pss_here || sss_here {
            let mid = self.n_sc() / 2;
            grid[mid - 36..mid + 36].fill(Complex32::default());
            for n in 0..62 {
                let k = n + mid - 31;
                grid[k] = if pss_here {
                    self.pss[n]
                } else {
                    Complex32::new(self.sss[usize::from(subframe == 5)][n], 0.0)
                };
            }
        }
    }
}

/// A fully loaded NR downlink carrier with one SS/PBCH block (index 0, symbols 2–5) every
/// 20 ms: PSS, SSS, PBCH DM-RS, random PBCH payload, random data elsewhere.
#[derive(Debug)]
pub struct NrContent {
    pci: u16,
    mu: u32,
    n_sc: usize,
    ssb_first: usize,
    rng: SeededRng,
    pss: [f32; 127],
    sss: [f32; 127],
    dmrs: Vec<(usize, usize, Complex32)>,
}

impl NrContent {
    /// A carrier of `n_rb` resource blocks at subcarrier spacing 15·2^`mu` kHz whose SSB centre
    /// (subcarrier 120) lies `ssb_offset_sc` subcarriers from the carrier centre.
    ///
    /// # Errors
    /// [`DspError::InvalidConfig`] for a PCI above 1007, μ above 1, or an SSB outside the carrier.
    pub fn new(
        pci: u16,
        mu: u32,
        n_rb: usize,
        ssb_offset_sc: i64,
        seed: u64,
    ) -> Result<Self, DspError> {
        if pci > 1007 {
            return Err(DspError::config("pci", pci, "NR PCIs are 0..=1007"));
        }
        if mu > 1 {
            return Err(DspError::config("mu", mu, "FR1 SSBs use 15 or 30 kHz"));
        }
        let n_sc = 12 * n_rb;
        let first = n_sc as i64 / 2 + ssb_offset_sc - 120;
        if first < 0 || first as usize + nr::SSB_SUBCARRIERS > n_sc {
            return Err(DspError::config(
                "ssb_offset_sc",
                ssb_offset_sc,
                "the SSB must lie inside the carrier",
            ));
        }
        let (n1, n2) = (pci / 3, (pci % 3) as u8);
        let dmrs = nr::pbch_dmrs_positions(pci)
            .into_iter()
            .zip(nr::pbch_dmrs(pci, 0))
            .map(|((s, k), v)| (s, k, v))
            .collect();
        Ok(Self {
            pci,
            mu,
            n_sc,
            ssb_first: first as usize,
            rng: rng(seed),
            pss: nr::pss(n2),
            sss: nr::sss(n1, n2),
            dmrs,
        })
    }

    /// The PCI transmitted.
    #[must_use]
    pub fn pci(&self) -> u16 {
        self.pci
    }
}

impl OfdmContent for NrContent {
    fn n_sc(&self) -> usize {
        self.n_sc
    }
    fn mu(&self) -> u32 {
        self.mu
    }
    fn dc_gap(&self) -> bool {
        false
    }
    fn fill(&mut self, frame: u32, symbol: usize, grid: &mut [Complex32]) {
        for g in grid.iter_mut() {
            *g = qpsk(&mut self.rng);
        }
        if !frame.is_multiple_of(2) || !(2..=5).contains(&symbol) {
            return;
        }
        let s = symbol - 2;
        let ssb = &mut grid[self.ssb_first..self.ssb_first + nr::SSB_SUBCARRIERS];
        let sync = nr::SYNC_FIRST_SC..nr::SYNC_FIRST_SC + 127;
        match s {
            0 => {
                ssb.fill(Complex32::default());
                for (k, &v) in sync.zip(&self.pss) {
                    ssb[k] = Complex32::new(v, 0.0);
                }
            }
            2 => {
                ssb[48..192].fill(Complex32::default());
                for (k, &v) in sync.zip(&self.sss) {
                    ssb[k] = Complex32::new(v, 0.0);
                }
            }
            _ => {}
        }
        for &(sym, k, v) in &self.dmrs {
            if sym == s {
                ssb[k] = v;
            }
        }
    }
}

/// A GSM BCCH carrier: GMSK (BT = 0.3) of differentially encoded bits, random in every
/// timeslot except timeslot 0 of the 51-multiframe's frames 0, 10, 20, 30 and 40 (the FCCH: all
/// zero bits, which GMSK turns into a pure tone a quarter of the symbol rate above the carrier)
/// and 1, 11, 21, 31 and 41 (the SCH with the cell's BSIC and the frame number).
#[derive(Debug, Clone)]
pub struct GsmEmitter {
    rng: SeededRng,
    sample_rate_hz: f64,
    offset_hz: f64,
    amplitude: f32,
    symbol_pos: f64,
    /// Bits of symbols `base − 2 ..= base + 2`.
    bits: [f64; 5],
    base: i64,
    phase: f64,
    bsic: u8,
    /// The last bit drawn (for the differential encoding).
    last_bit: u8,
    /// The SCH burst of the current SCH frame.
    sch: Option<(i64, [u8; gsm_sch::BURST_BITS])>,
}

/// Standard normal CDF via erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    0.5 * (1.0 + if x >= 0.0 { erf } else { -erf })
}

impl GsmEmitter {
    /// A carrier of power `power` at `offset_hz` from baseband.
    #[must_use]
    pub fn new(seed: u64, sample_rate_hz: f64, offset_hz: f64, power: f64) -> Self {
        let mut e = Self {
            rng: rng(seed),
            sample_rate_hz,
            offset_hz,
            amplitude: power.sqrt() as f32,
            symbol_pos: 0.0,
            bits: [1.0; 5],
            base: 0,
            phase: 0.0,
            bsic: 0,
            last_bit: 0,
            sch: None,
        };
        for k in 0..5 {
            e.bits[k] = e.draw(k as i64 - 2);
        }
        e
    }

    /// The same carrier sending base station identity code `bsic` (0–63) in its SCH.
    #[must_use]
    pub fn with_bsic(mut self, bsic: u8) -> Self {
        self.bsic = bsic & 63;
        self
    }

    /// The NRZ value (+1: frequency up) of `symbol`: its bit XOR the previous one, 0 → +1.
    fn draw(&mut self, symbol: i64) -> f64 {
        let frame_len = gsm::SYMBOLS_PER_FRAME as i64;
        let fn_abs = symbol.div_euclid(frame_len);
        let in_frame = symbol.rem_euclid(frame_len) as usize;
        let frame = (fn_abs.rem_euclid(i64::from(gsm::FRAMES_PER_MULTIFRAME))) as u32;
        let bit = if gsm::is_fcch_frame(frame) && in_frame < 156 {
            0
        } else if gsm::is_sch_frame(frame) && in_frame < gsm_sch::BURST_BITS {
            if self.sch.is_none_or(|(f, _)| f != fn_abs) {
                let info = gsm_sch::SchInfo::for_frame(self.bsic, fn_abs as u32);
                self.sch = Some((fn_abs, gsm_sch::burst_bits(&info)));
            }
            self.sch.map_or(0, |(_, b)| b[in_frame])
        } else {
            u8::from(self.rng.random::<bool>())
        };
        let a = if bit ^ self.last_bit == 0 { 1.0 } else { -1.0 };
        self.last_bit = bit;
        a
    }
}

impl Emitter for GsmEmitter {
    fn add_to(&mut self, out: &mut [Complex32]) {
        let step = gsm::SYMBOL_RATE_HZ / self.sample_rate_hz;
        // Gaussian pulse of BT = 0.3: σ = √ln2 / (2π·0.3) symbols.
        let sigma = std::f64::consts::LN_2.sqrt() / (std::f64::consts::TAU * 0.3);
        for o in out {
            let sym = self.symbol_pos.floor() as i64;
            while self.base < sym {
                self.bits.rotate_left(1);
                self.base += 1;
                self.bits[4] = self.draw(self.base + 2);
            }
            // Frequency deviation in units of the symbol rate / 4 (MSK = ±1).
            let dev: f64 = (0..5)
                .map(|j| {
                    let centre = (self.base + j as i64 - 2) as f64 + 0.5;
                    let tau = self.symbol_pos - centre;
                    self.bits[j]
                        * (normal_cdf((tau + 0.5) / sigma) - normal_cdf((tau - 0.5) / sigma))
                })
                .sum();
            let f = self.offset_hz + dev * gsm::FCCH_OFFSET_HZ;
            self.phase = (self.phase + std::f64::consts::TAU * f / self.sample_rate_hz)
                % std::f64::consts::TAU;
            *o += Complex32::new(self.phase.cos() as f32, self.phase.sin() as f32) * self.amplitude;
            self.symbol_pos += step;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn power(x: &[Complex32]) -> f64 {
        x.iter().map(|v| f64::from(v.norm_sqr())).sum::<f64>() / x.len() as f64
    }

    #[test]
    fn awgn_has_the_requested_power_and_is_reproducible() {
        let mut a = vec![Complex32::default(); 200_000];
        let mut b = a.clone();
        add_awgn(&mut rng(7), &mut a, 0.25);
        add_awgn(&mut rng(7), &mut b, 0.25);
        assert_eq!(a, b);
        assert!((crate::to_db(power(&a) / 0.25)).abs() < 0.05);
    }

    #[test]
    fn band_noise_has_the_requested_power() {
        let mut x = vec![Complex32::default(); 400_000];
        BandNoise::new(1, 2.4e6, -500e3, 300e3, 0.01).add_to(&mut x);
        assert!(crate::to_db(power(&x) / 0.01).abs() < 0.1, "{}", power(&x));
    }

    #[test]
    fn lte_emitter_has_the_requested_power_at_any_multiple_of_15_khz() {
        for fs in [1.92e6, 2.4e6, 3.84e6] {
            let c = LteContent::new(101, lte::Duplexing::Fdd, 6, 3).expect("cell");
            let mut e = OfdmEmitter::new(c, fs, 100e3, 0.5).expect("rate");
            let mut x = vec![Complex32::default(); (fs * 0.01) as usize];
            e.add_to(&mut x);
            assert!(
                crate::to_db(power(&x) / 0.5).abs() < 0.3,
                "{fs}: {}",
                power(&x)
            );
        }
    }

    #[test]
    fn ofdm_rejects_rates_that_are_not_multiples_of_the_spacing() {
        let c = LteContent::new(1, lte::Duplexing::Fdd, 6, 3).expect("cell");
        assert!(OfdmEmitter::new(c, 2.048e6, 0.0, 1.0).is_err());
    }

    #[test]
    fn gsm_emitter_is_constant_envelope() {
        let mut x = vec![Complex32::default(); 10_000];
        GsmEmitter::new(5, 1.0e6, 0.0, 4.0).add_to(&mut x);
        assert!(x.iter().all(|v| (v.norm() - 2.0).abs() < 1e-3));
    }
}
