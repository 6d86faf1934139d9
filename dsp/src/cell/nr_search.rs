//! 5G NR SSB search: PSS and SSS to a PCI (0–1007), confirmed by the PBCH DM-RS.
//!
//! Input is complex baseband at 256 × SCS (7.68 MS/s for 30 kHz, 3.84 MS/s for 15 kHz) centred
//! on a synchronisation-raster point (GSCN) where an SSB may sit. The search:
//! 1. correlates with the three PSS m-sequences under every carrier-frequency offset on a
//!    half-subcarrier grid across the configured range (one FFT of the input serves all);
//! 2. refines the offset from the phase between the PSS halves;
//! 3. equalises the SSS (two symbols later) with the PSS channel and matches all 336 groups;
//! 4. confirms with the PBCH DM-RS of the PCI (all eight SSB-index hypotheses), which must
//!    stand out from other PCIs' DM-RS on the same samples: a PCI reported is a PCI that exists.
//!
//! SS-RSRP and SINR per resource element come from the DM-RS.

use std::sync::Arc;

use num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use serde::Serialize;

use super::nr;
use super::{inverse_window_energy, robust_z, rotator};

const N: usize = 256;
/// Normal CP at 256 samples per symbol (no symbol of an SSB has the long one).
const CP: usize = 18;
const SYM: usize = N + CP;
/// PBCH DM-RS combined coherently per group (60, 12, 12 and 60 per segment divide by it).
const GROUP: usize = 4;

/// Search settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NrSearchConfig {
    /// Carrier-frequency offsets searched: ± this many hertz.
    pub cfo_range_hz: f64,
    /// False-alarm probability of the whole PSS search.
    pub pss_pfa: f64,
    /// Minimum SSS z-score.
    pub min_sss_z: f64,
    /// Minimum DM-RS z-score against other PCIs to confirm.
    pub min_dmrs_z: f64,
    /// Most cells reported per raster point.
    pub max_cells: usize,
    /// Seconds of input searched for a single SSB: one SSB period (20 ms for initial access)
    /// and a little more.
    pub window_s: f64,
    /// SSB bursts accumulated, one period apart, when a single one shows no cell and the input
    /// is long enough (1: never).
    pub bursts: usize,
    /// SSB burst period, seconds (20 ms: what a phone assumes for initial access).
    pub period_s: f64,
}

impl Default for NrSearchConfig {
    fn default() -> Self {
        Self {
            cfo_range_hz: 150e3,
            pss_pfa: 1e-3,
            min_sss_z: 6.0,
            min_dmrs_z: 6.0,
            max_cells: 3,
            window_s: 0.021,
            bursts: 4,
            period_s: 0.02,
        }
    }
}

/// An SSB found and confirmed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NrCell {
    /// Physical cell id, 3·N_ID1 + N_ID2.
    pub pci: u16,
    /// Subcarrier spacing of the SSB, kHz.
    pub scs_khz: u32,
    /// SSB index (with the half-frame bit for L = 4) from the DM-RS.
    pub i_ssb: u8,
    /// Offset of the SSB from the search centre, hertz.
    pub cfo_hz: f64,
    /// Sample (at 256 × SCS) where the PSS symbol's body starts.
    pub pss_start: usize,
    /// PSS peak over its mean.
    pub pss_ratio: f64,
    /// SSS match: √(K·Σ|s_k|² / Σ‖z_k‖²) over the K bursts, one burst's |s| / ‖z‖ (standard
    /// deviations over noise) when K = 1.
    pub sss_z: f64,
    /// DM-RS correlation in robust standard deviations over other PCIs.
    pub dmrs_z: f64,
    /// Whether the DM-RS confirmed the PCI.
    pub confirmed: bool,
    /// SS reference-signal power per resource element, dB full scale (input units).
    pub rsrp_dbfs: f64,
    /// Noise-plus-interference per resource element, dB full scale.
    pub noise_dbfs: f64,
    /// SINR at the DM-RS, dB.
    pub sinr_db: f64,
    /// SSBs (one per period) the figures are summed over.
    pub bursts: usize,
}

/// An NR SSB searcher for one subcarrier spacing.
pub struct NrSearcher {
    cfg: NrSearchConfig,
    scs_hz: f64,
    planner: FftPlanner<f32>,
    fft: Arc<dyn Fft<f32>>,
    templates: [Vec<Complex32>; 3],
    pss: [[f32; 127]; 3],
    /// Conjugate spectra of the PSS templates at the last transform length used.
    template_spectra: Option<(usize, Vec<Vec<Complex32>>)>,
    /// Scratch of the transforms.
    scratch: Vec<Complex32>,
}

/// The transform length for a correlation of `n` samples: a multiple of `q` (so that an offset
/// step of `q` bins is whole) whose quotient has no prime factor above 5, the smallest such
/// length ≥ `n`. A power of two wasted up to half the work on padding.
fn fft_len(n: usize, q: usize) -> usize {
    let mut k = n.div_ceil(q).max(1);
    loop {
        let mut r = k;
        for p in [2, 3, 5] {
            while r.is_multiple_of(p) {
                r /= p;
            }
        }
        if r == 1 {
            return k * q;
        }
        k += 1;
    }
}

impl std::fmt::Debug for NrSearcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NrSearcher")
            .field("cfg", &self.cfg)
            .field("scs_hz", &self.scs_hz)
            .finish_non_exhaustive()
    }
}

/// FFT bin of SSB subcarrier `k` (0..240; 120 is the SSB centre).
fn ssb_bin(k: usize) -> usize {
    (k as i64 - 120).rem_euclid(N as i64) as usize
}

impl NrSearcher {
    /// A searcher for SSBs of `scs_khz` (15 or 30).
    #[must_use]
    pub fn new(scs_khz: u32, cfg: NrSearchConfig) -> Self {
        let mut planner = FftPlanner::new();
        let fft = planner.plan_fft_forward(N);
        let ifft = planner.plan_fft_inverse(N);
        let pss = [nr::pss(0), nr::pss(1), nr::pss(2)];
        let templates = std::array::from_fn(|u| {
            let mut g = vec![Complex32::default(); N];
            for (n, &v) in pss[u].iter().enumerate() {
                g[ssb_bin(nr::SYNC_FIRST_SC + n)] = Complex32::new(v, 0.0);
            }
            ifft.process(&mut g);
            let e: f32 = g.iter().map(Complex32::norm_sqr).sum();
            g.iter_mut().for_each(|v| *v /= e.sqrt());
            g
        });
        Self {
            cfg,
            scs_hz: f64::from(scs_khz) * 1e3,
            planner,
            fft,
            templates,
            pss,
            template_spectra: None,
            scratch: Vec::new(),
        }
    }

    /// The sample rate the searcher expects: 256 × SCS.
    #[must_use]
    pub fn rate_hz(&self) -> f64 {
        N as f64 * self.scs_hz
    }

    fn symbol(&self, x: &[Complex32], start: usize, cfo_hz: f64) -> Option<Vec<Complex32>> {
        if start + N > x.len() {
            return None;
        }
        let mut rot = rotator(std::f64::consts::TAU * cfo_hz / self.rate_hz(), start);
        let mut b: Vec<Complex32> = x[start..start + N].iter().map(|v| v * rot()).collect();
        self.fft.process(&mut b);
        Some(b)
    }

    /// Searches `x` (at [`NrSearcher::rate_hz`], centred on a raster point); confirmed cells
    /// only unless `include_unconfirmed`. One SSB first; when that shows no cell and `x` holds
    /// more periods, up to [`NrSearchConfig::bursts`] SSBs one period apart are accumulated (a
    /// cell 6 dB under the floor is lost in one SSB and found in four).
    pub fn search(&mut self, x: &[Complex32], include_unconfirmed: bool) -> Vec<NrCell> {
        self.search_around(x, 0.0, self.cfg.cfo_range_hz, include_unconfirmed)
    }

    /// [`NrSearcher::search`] over the offsets within `half_range_hz` of `centre_hz` only (on
    /// the same half-subcarrier grid): once a radio's oscillator error is known from a cell,
    /// every other cell it hears sits within a few kilohertz of that error scaled to its
    /// frequency, and three offsets instead of 21 make the search about seven times cheaper.
    pub fn search_around(
        &mut self,
        x: &[Complex32],
        centre_hz: f64,
        half_range_hz: f64,
        include_unconfirmed: bool,
    ) -> Vec<NrCell> {
        let step_hz = self.scs_hz / 2.0;
        let h_lo = ((centre_hz - half_range_hz.max(0.0)) / step_hz).ceil() as i64;
        let h_hi = ((centre_hz + half_range_hz.max(0.0)) / step_hz).floor() as i64;
        if h_lo > h_hi {
            return Vec::new();
        }
        let single = &x[..x.len().min((self.cfg.window_s * self.rate_hz()) as usize)];
        if single.len() < 4 * SYM + N {
            return Vec::new();
        }
        // One SSB: the four strongest peaks of each root over the strict PSS threshold (the
        // whole search's false-alarm rate `pss_pfa`).
        let plane = self.pss_candidates(single, 48, h_lo..=h_hi);
        let threshold = -(self.cfg.pss_pfa / plane.tests).ln() as f32;
        let mut per_root = [0usize; 3];
        let strict: Vec<Candidate> = plane
            .candidates
            .iter()
            .filter(|c| {
                per_root[c.root] += 1;
                c.ratio >= threshold && per_root[c.root] <= 4
            })
            .cloned()
            .collect();
        let cells = self.confirm(x, strict, 1, include_unconfirmed);
        let period = (self.cfg.period_s * self.rate_hz()).round() as usize;
        let bursts = self
            .cfg
            .bursts
            .min((x.len().saturating_sub(single.len()) / period.max(1)) + 1);
        if !cells.is_empty() || bursts < 2 {
            return cells;
        }
        // Several SSBs: the strongest timings of the first period (far below the strict
        // threshold), each followed into the next periods (the sample clock may slip a few
        // samples a period) and ranked by the PSS summed over them; SSS and DM-RS then decide
        // on all the bursts together.
        let mut followed: Vec<Candidate> = plane
            .candidates
            .iter()
            .filter_map(|c| {
                let mean = plane.mean_of(c.root, c.cfo_hz);
                self.follow(x, c.clone(), bursts, period, mean)
            })
            .collect();
        followed.sort_by(|a, b| b.ratio.total_cmp(&a.ratio));
        let mut per_root = [0usize; 3];
        followed.retain(|c| {
            per_root[c.root] += 1;
            per_root[c.root] <= 4
        });
        self.confirm(x, followed, bursts, include_unconfirmed)
    }

    /// PSS correlation of the three roots over the offset grid: the `per_root` strongest
    /// separate peaks of each root, each a ratio to its row's mean.
    fn pss_candidates(
        &mut self,
        x: &[Complex32],
        per_root: usize,
        hypotheses: std::ops::RangeInclusive<i64>,
    ) -> PssPlane {
        let len = x.len();
        let fs = self.rate_hz();
        // Offset hypotheses every half subcarrier; the FFT bin must divide that step.
        let step_hz = self.scs_hz / 2.0;
        let m = fft_len((len + N).max(2 * N), (fs / step_hz).round() as usize);
        let fwd = self.planner.plan_fft_forward(m);
        let inv = self.planner.plan_fft_inverse(m);
        let need = fwd
            .get_inplace_scratch_len()
            .max(inv.get_inplace_scratch_len());
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(need, Complex32::default());
        let mut xf = vec![Complex32::default(); m];
        xf[..len].copy_from_slice(x);
        fwd.process_with_scratch(&mut xf, &mut scratch);
        let last = len - 4 * SYM;
        let inv_e = inverse_window_energy(x, N, last, (m as f64) * (m as f64));
        let bin_hz = fs / m as f64;
        let tests = hypotheses.clone().count() as f64 * (last + 1) as f64 * 3.0;
        // Only peaks that could matter are kept while scanning.
        let floor = 6.0f32;
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut means: Vec<(usize, f64, f32)> = Vec::new();
        let mut work = vec![Complex32::default(); m];
        // Conjugate spectra of the three PSS at this length, made once per length.
        if self.template_spectra.as_ref().is_none_or(|(k, _)| *k != m) {
            let spectra = self
                .templates
                .iter()
                .map(|t| {
                    let mut tf = vec![Complex32::default(); m];
                    tf[..N].copy_from_slice(t);
                    fwd.process_with_scratch(&mut tf, &mut scratch);
                    tf.iter_mut().for_each(|v| *v = v.conj());
                    tf
                })
                .collect();
            self.template_spectra = Some((m, spectra));
        }
        let spectra = self
            .template_spectra
            .take()
            .map(|(_, s)| s)
            .unwrap_or_default();
        let mut rho: Vec<f32> = Vec::with_capacity(last + 1);
        for (u, tf) in spectra.iter().enumerate() {
            let mut best: Vec<Candidate> = Vec::new();
            for h in hypotheses.clone() {
                let f = h as f64 * step_hz;
                let s = ((f / bin_hz).round() as i64).rem_euclid(m as i64) as usize;
                let (head, tail) = xf.split_at(s);
                for (w, (xv, tv)) in work.iter_mut().zip(tail.iter().chain(head).zip(tf.iter())) {
                    *w = xv * tv;
                }
                inv.process_with_scratch(&mut work, &mut scratch);
                rho.clear();
                rho.extend(
                    work[..=last]
                        .iter()
                        .zip(&inv_e)
                        .map(|(c, ie)| c.norm_sqr() * ie),
                );
                let mean = rho.iter().sum::<f32>() / rho.len() as f32;
                if mean <= 0.0 {
                    continue;
                }
                means.push((u, f, mean));
                for (tau, &r) in rho.iter().enumerate() {
                    let ratio = r / mean;
                    if ratio >= floor {
                        best.push(Candidate {
                            root: u,
                            cfo_hz: f,
                            taus: vec![tau],
                            ratio,
                        });
                    }
                }
            }
            best.sort_by(|a, b| b.ratio.total_cmp(&a.ratio));
            let mut kept: Vec<Candidate> = Vec::new();
            for c in best {
                if kept.iter().any(|k| {
                    k.taus[0].abs_diff(c.taus[0]) <= 8
                        && (k.cfo_hz - c.cfo_hz).abs() <= 2.0 * step_hz
                }) {
                    continue;
                }
                kept.push(c);
                if kept.len() >= per_root {
                    break;
                }
            }
            candidates.extend(kept);
        }
        candidates.sort_by(|a, b| b.ratio.total_cmp(&a.ratio));
        self.template_spectra = Some((m, spectra));
        self.scratch = scratch;
        PssPlane {
            candidates,
            means,
            tests,
        }
    }

    /// PSS correlation (both halves) at `start` under offset `f`.
    fn pss_corr(&self, x: &[Complex32], u: usize, start: usize, f: f64) -> (Complex32, Complex32) {
        let mut rot = rotator(std::f64::consts::TAU * f / self.rate_hz(), start);
        let mut c = [Complex32::default(); 2];
        for (i, (xv, tv)) in x[start..start + N]
            .iter()
            .zip(&self.templates[u])
            .enumerate()
        {
            c[i / (N / 2)] += xv * rot() * tv.conj();
        }
        (c[0], c[1])
    }

    /// A first-period candidate followed through `bursts` periods: each next SSB within ±8
    /// samples of one period after the last (50 ppm of clock error), the ratios summed.
    fn follow(
        &self,
        x: &[Complex32],
        mut c: Candidate,
        bursts: usize,
        period: usize,
        mean: f32,
    ) -> Option<Candidate> {
        const SLIP: usize = 8;
        if mean <= 0.0 {
            return None;
        }
        for _ in 1..bursts {
            let nominal = c.taus.last()? + period;
            let (tau, r) = (nominal.saturating_sub(SLIP)..=nominal + SLIP)
                .filter(|&t| t + 4 * SYM <= x.len())
                .map(|t| {
                    let (a, b) = self.pss_corr(x, c.root, t, c.cfo_hz);
                    let e: f32 = x[t..t + N].iter().map(Complex32::norm_sqr).sum();
                    (t, (a + b).norm_sqr() / e.max(1e-30) / mean)
                })
                .max_by(|p, q| p.1.total_cmp(&q.1))?;
            c.taus.push(tau);
            c.ratio += r;
        }
        Some(c)
    }

    /// SSS and DM-RS of each candidate (strongest first) over its `bursts` SSBs.
    fn confirm(
        &self,
        x: &[Complex32],
        candidates: Vec<Candidate>,
        bursts: usize,
        include_unconfirmed: bool,
    ) -> Vec<NrCell> {
        let mut cells: Vec<NrCell> = Vec::new();
        for c in candidates {
            if cells.len() >= self.cfg.max_cells {
                break;
            }
            if c.taus.len() < bursts {
                continue;
            }
            let ratio = f64::from(c.ratio) / bursts as f64;
            if let Some(cell) = self.resolve(x, c.root, c.cfo_hz, &c.taus, ratio) {
                if cells.iter().any(|k| k.pci == cell.pci)
                    || !(cell.confirmed || include_unconfirmed)
                {
                    continue;
                }
                cells.push(cell);
            }
        }
        cells
    }

    /// PCI, offset and figures of a PSS found at `taus` (one per burst, first the strongest
    /// estimate's), with SSS and DM-RS summed over the bursts.
    #[allow(clippy::too_many_lines)]
    fn resolve(
        &self,
        x: &[Complex32],
        u: usize,
        f0: f64,
        taus0: &[usize],
        ratio: f64,
    ) -> Option<NrCell> {
        let fs = self.rate_hz();
        // Per burst: fine timing ±2; the offset from the PSS halves of all bursts.
        let mut taus = Vec::with_capacity(taus0.len());
        let mut z_cfo = Complex32::default();
        for &t0 in taus0 {
            let (tau, c1, c2) = (t0.saturating_sub(2)..=t0 + 2)
                .filter(|&t| t + 4 * SYM <= x.len())
                .map(|t| {
                    let (a, b) = self.pss_corr(x, u, t, f0);
                    (t, a, b)
                })
                .max_by(|p, q| (p.1 + p.2).norm_sqr().total_cmp(&(q.1 + q.2).norm_sqr()))?;
            z_cfo += c2 * c1.conj();
            taus.push(tau);
        }
        let cfo = f0 + f64::from(z_cfo.arg()) * fs / (std::f64::consts::TAU * (N / 2) as f64);
        let ssbs: Vec<Vec<Vec<Complex32>>> = taus
            .iter()
            .map(|&tau| {
                (0..4)
                    .map(|s| self.symbol(x, tau + s * SYM, cfo))
                    .collect::<Option<Vec<_>>>()
            })
            .collect::<Option<_>>()?;
        // Per burst: channel on the PSS subcarriers, then the SSS two symbols later. NR
        // upconversion restarts the carrier phase at every symbol (TS 38.211 §5.4), so the SSS
        // is matched in magnitude: the PSS gives the channel's shape, not its phase two symbols
        // later; bursts add in power.
        let zs: Vec<Vec<Complex32>> = ssbs
            .iter()
            .map(|ssb| {
                let raw: Vec<Complex32> = (0..127)
                    .map(|n| ssb[0][ssb_bin(nr::SYNC_FIRST_SC + n)] * self.pss[u][n])
                    .collect();
                let h = super::smooth_channel(&raw, 4);
                (0..127)
                    .map(|n| ssb[2][ssb_bin(nr::SYNC_FIRST_SC + n)] * h[n].conj())
                    .collect()
            })
            .collect();
        let energy: f64 = zs.iter().flatten().map(|v| f64::from(v.norm_sqr())).sum();
        if energy <= 0.0 {
            return None;
        }
        // Over K bursts, z² = K · Σ|s_k|² / Σ|z|²: one burst's |s| / ‖z‖ when K = 1.
        let k = zs.len() as f64;
        let (sss_z, n1) = (0..336u16)
            .map(|n1| {
                let d = nr::sss(n1, u as u8);
                let power: f64 = zs
                    .iter()
                    .map(|z| {
                        let s: Complex32 = z.iter().zip(&d).map(|(a, b)| a * *b).sum();
                        f64::from(s.norm_sqr())
                    })
                    .sum();
                ((k * power / energy).sqrt(), n1)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))?;
        // Under noise z² is a sum of K unit exponentials: the threshold keeps one burst's tail
        // probability, e^(−min_sss_z²).
        if sss_z * sss_z < gamma_sum_threshold(zs.len(), self.cfg.min_sss_z.powi(2)) {
            return None;
        }
        let pci = nr::pci(n1, u as u8);
        // DM-RS: ρ of adjacent groups for a PCI and SSB index over all bursts; best index for
        // this PCI, and the same statistic of other PCIs (at their own best index) as the noise
        // reference.
        let dmrs_rho = |p: u16| -> (f64, f64, f64, u8) {
            let pos = nr::pbch_dmrs_positions(p);
            (0..8u8)
                .map(|i| {
                    let seq = nr::pbch_dmrs(p, i);
                    let (mut a2, mut y2, mut n) = (0f64, 0f64, 0f64);
                    for ssb in &ssbs {
                        let items: Vec<(Complex32, Complex32)> = pos
                            .iter()
                            .zip(&seq)
                            .map(|(&(s, k), r)| (ssb[s][ssb_bin(k)], *r))
                            .collect();
                        // Groups of four neighbours (16 subcarriers, one symbol): coherent
                        // within a group, where the channel is flat; the symbol's own phase
                        // cancels.
                        for g in items.chunks_exact(GROUP) {
                            let a = g.iter().map(|(y, r)| y * r.conj()).sum::<Complex32>()
                                / GROUP as f32;
                            a2 += f64::from(a.norm_sqr());
                            y2 += g.iter().map(|(y, _)| f64::from(y.norm_sqr())).sum::<f64>()
                                / GROUP as f64;
                            n += 1.0;
                        }
                    }
                    (a2 / y2.max(1e-30), a2 / n, y2 / n, i)
                })
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .unwrap_or((0.0, 0.0, 0.0, 0))
        };
        let (rho, a2, y2, i_ssb) = dmrs_rho(pci);
        let others: Vec<f64> = (0..40u16)
            .map(|i| (pci + 1 + i * 25) % 1008)
            .filter(|&p| p != pci)
            .map(|p| dmrs_rho(p).0)
            .collect();
        let dmrs_z = robust_z(rho, others);
        // E|a|² = S + N/GROUP and E|y|² = S + N.
        let g = GROUP as f64;
        let s = ((g * a2 - y2) / (g - 1.0)).max(1e-30);
        let noise = (y2 - s).max(1e-30);
        let to_db = |v: f64| crate::to_db(v / (N * N) as f64);
        Some(NrCell {
            pci,
            scs_khz: (self.scs_hz / 1e3).round() as u32,
            i_ssb,
            cfo_hz: cfo,
            pss_start: taus[0],
            pss_ratio: ratio,
            sss_z,
            dmrs_z,
            confirmed: dmrs_z >= self.cfg.min_dmrs_z && s > 1e-30,
            rsrp_dbfs: to_db(s),
            noise_dbfs: to_db(noise),
            sinr_db: crate::to_db(s / noise),
            bursts: taus.len(),
        })
    }
}

/// The t at which a sum of `k` unit exponentials exceeds t with probability e^(−`nats`) (for
/// k = 1, t = `nats`).
fn gamma_sum_threshold(k: usize, nats: f64) -> f64 {
    // ln P(sum > t) = −t + ln Σ_{i<k} tⁱ / i!
    let log_tail = |t: f64| {
        let mut term = 1.0f64;
        let mut sum = 1.0f64;
        for i in 1..k {
            term *= t / i as f64;
            sum += term;
        }
        -t + sum.ln()
    };
    let (mut lo, mut hi) = (nats, nats + 10.0 * k as f64 + 10.0);
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if log_tail(mid) > -nats {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// A PSS peak: root, offset, timing in each burst followed, and its ratio (summed over them).
#[derive(Debug, Clone)]
struct Candidate {
    root: usize,
    cfo_hz: f64,
    taus: Vec<usize>,
    ratio: f32,
}

/// The PSS peaks of one period and the noise level of each (root, offset) row.
struct PssPlane {
    candidates: Vec<Candidate>,
    means: Vec<(usize, f64, f32)>,
    tests: f64,
}

impl PssPlane {
    fn mean_of(&self, root: usize, cfo_hz: f64) -> f32 {
        self.means
            .iter()
            .find(|m| m.0 == root && (m.1 - cfo_hz).abs() < 1.0)
            .map_or(0.0, |m| m.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Emitter, NrContent, OfdmEmitter, add_awgn, rng};

    fn ssb_signal(pci: u16, mu: u32, cfo_hz: f64, sinr_db: f64, seed: u64) -> Vec<Complex32> {
        let scs = 15e3 * f64::from(1u32 << mu);
        let fs = 256.0 * scs;
        // A 20-RB-or-wider carrier with its SSB at the centre.
        let content = NrContent::new(pci, mu, 24, 0, seed).expect("cell");
        // As a real transmitter: NR's per-symbol upconversion phase for a 3.5 GHz carrier.
        let mut e = OfdmEmitter::new(content, fs, cfo_hz, 1.0)
            .expect("rate")
            .with_upconversion_phase(3.5e9 + 1234.5);
        let mut x = vec![Complex32::default(); (0.006 * fs) as usize];
        e.add_to(&mut x);
        let per_re = 1.0 / 288.0;
        add_awgn(
            &mut rng(seed + 9),
            &mut x,
            per_re / crate::from_db(sinr_db) * N as f64,
        );
        x
    }

    #[test]
    fn finds_ssb_pci_at_both_spacings_with_offset() {
        for (pci, mu, cfo) in [(579u16, 1u32, 61e3), (1, 0, -37e3), (1007, 1, -140e3)] {
            let x = ssb_signal(pci, mu, cfo, 0.0, u64::from(pci));
            let mut s = NrSearcher::new(15 << mu, NrSearchConfig::default());
            let cells = s.search(&x, false);
            assert_eq!(cells.first().map(|c| c.pci), Some(pci), "{pci}: {cells:?}");
            let c = &cells[0];
            assert_eq!(c.i_ssb, 0);
            // One SSB at 0 dB: within a tenth of a subcarrier.
            assert!(
                (c.cfo_hz - cfo).abs() < 0.1 * 15e3 * f64::from(1u32 << mu),
                "{}",
                c.cfo_hz
            );
            assert!((c.sinr_db - 0.0).abs() < 3.0, "{}", c.sinr_db);
        }
    }

    #[test]
    fn a_known_offset_finds_the_same_cell_and_a_wrong_one_finds_none() {
        let x = ssb_signal(321, 1, 47e3, 0.0, 5);
        let mut s = NrSearcher::new(30, NrSearchConfig::default());
        let full = s.search(&x, false);
        let near = s.search_around(&x, 45e3, 22.5e3, false);
        assert_eq!(full, near);
        assert_eq!(near.first().map(|c| c.pci), Some(321));
        // 100 kHz away from the cell's offset: nothing.
        assert!(s.search_around(&x, -55e3, 22.5e3, false).is_empty());
    }

    #[test]
    fn noise_gives_no_ssb() {
        let mut s = NrSearcher::new(30, NrSearchConfig::default());
        for seed in 0..10 {
            let mut x = vec![Complex32::default(); 46_080];
            add_awgn(&mut rng(seed), &mut x, 1.0);
            assert!(s.search(&x, false).is_empty());
        }
    }
}

#[cfg(test)]
mod threshold_tests {
    use super::gamma_sum_threshold;

    #[test]
    fn one_exponential_keeps_its_threshold_and_four_need_more() {
        assert!((gamma_sum_threshold(1, 36.0) - 36.0).abs() < 1e-6);
        // e^(−t)(1 + t + t²/2 + t³/6) = e^(−36) near t = 45.8.
        let t = gamma_sum_threshold(4, 36.0);
        assert!((45.0..46.5).contains(&t), "{t}");
    }
}
