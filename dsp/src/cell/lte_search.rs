//! LTE cell search: PSS and SSS to a PCI, confirmed by the cell-specific reference signals.
//!
//! Input is complex baseband at 1.92 MS/s centred on the candidate carrier (see
//! [`crate::resample`]). The search:
//! 1. correlates with the three PSS (Zadoff-Chu roots 25, 29, 34) under every carrier-frequency
//!    offset hypothesis on a 7.5 kHz grid across the configured range (a shift of the input's
//!    spectrum, so one FFT serves all), accumulating the normalised correlation over half-frames;
//!    a peak whose ratio to the mean passes the CFAR threshold is a candidate;
//! 2. refines timing per half-frame and the offset from the phase between the PSS halves;
//! 3. equalises the SSS with the PSS channel and matches all 168 groups, both subframe orders,
//!    FDD and TDD positions and normal and extended cyclic prefix;
//! 4. confirms the PCI with the port-0 CRS of the central eight resource blocks, independently of
//!    PSS/SSS: its correlation, summed coherently over tiles of resource blocks × subframes under
//!    a few residual offsets, must stand out from that of other PCIs with the same CRS shift on
//!    the same samples.
//!
//! [`LteSearcher::deep_search`] does the same over seconds of input, following the sample
//! clock's drift, for cells too weak for one window.
//!
//! RSRP (per resource element, in the input's full-scale units) and SINR come from the CRS.

use std::sync::Arc;

use num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use serde::Serialize;

use super::lte::{self, Duplexing};
use super::{inverse_window_energy, robust_z, rotator};
use crate::carrier::gamma_mean_quantile;

/// Sample rate of the search.
pub const RATE_HZ: f64 = 1.92e6;
const N: usize = 128;
const HALF_FRAME: usize = 9600;
const FRAME: usize = 19_200;
const CFO_STEP_HZ: f64 = 7_500.0;
/// Shortest input searched: one subframe and two symbols.
const MIN_SEARCH_LEN: usize = FRAME / 10 + 2 * N;

/// Cyclic prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CyclicPrefix {
    /// 7 symbols per slot.
    Normal,
    /// 6 symbols per slot.
    Extended,
}

/// Search settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LteSearchConfig {
    /// Carrier-frequency offsets searched: ± this many hertz.
    pub cfo_range_hz: f64,
    /// Most cells reported per carrier.
    pub max_cells: usize,
    /// False-alarm probability of one PSS hypothesis (offset × root × timing).
    pub pss_pfa: f64,
    /// Minimum SSS z-score (standard deviations over noise).
    pub min_sss_z: f64,
    /// Minimum CRS z-score against other PCIs to confirm.
    pub min_crs_z: f64,
    /// Seconds of input used (more averages better; clock drift limits it).
    pub window_s: f64,
}

impl Default for LteSearchConfig {
    fn default() -> Self {
        Self {
            cfo_range_hz: 150e3,
            max_cells: 4,
            pss_pfa: 1e-9,
            min_sss_z: 6.0,
            min_crs_z: 6.0,
            window_s: 0.08,
        }
    }
}

/// A cell found by its synchronisation signals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LteCell {
    /// Physical cell id, 3·N_ID1 + N_ID2.
    pub pci: u16,
    /// FDD or TDD, from the SSS position.
    pub duplexing: Duplexing,
    /// Cyclic prefix.
    pub cp: CyclicPrefix,
    /// Carrier-frequency offset of the cell relative to the search centre, hertz.
    pub cfo_hz: f64,
    /// Sample (at 1.92 MS/s) where a radio frame starts.
    pub frame_start: i64,
    /// PSS peak over its mean.
    pub pss_ratio: f64,
    /// SSS match in standard deviations over noise.
    pub sss_z: f64,
    /// CRS correlation in robust standard deviations over other PCIs.
    pub crs_z: f64,
    /// Whether the CRS confirmed the PCI.
    pub confirmed: bool,
    /// Reference-signal power per resource element, dB full scale (input units).
    pub rsrp_dbfs: f64,
    /// Noise-plus-interference per resource element, dB full scale.
    pub noise_dbfs: f64,
    /// SINR at the reference signals, dB.
    pub sinr_db: f64,
}

/// An LTE cell searcher, planned once.
pub struct LteSearcher {
    cfg: LteSearchConfig,
    planner: FftPlanner<f32>,
    fft128: Arc<dyn Fft<f32>>,
    templates: [Vec<Complex32>; 3],
    pss: [[Complex32; 62]; 3],
    crs_cache: std::collections::HashMap<(u16, bool), CrsTable>,
    /// Conjugate spectra of the PSS templates, by transform length.
    template_spectra: std::collections::HashMap<usize, Vec<Vec<Complex32>>>,
    /// Fractional error of the sample clock (samples per true second over the nominal rate,
    /// minus one) assumed by the search: 0 except in [`LteSearcher::deep_search`].
    clock_error: f64,
    /// SSS of every N_ID1 for each N_ID2, subframe 0 then 5.
    sss: Vec<Vec<[[f32; 62]; 2]>>,
}

impl std::fmt::Debug for LteSearcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LteSearcher")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// FFT bin (0..128) of element `n` of a 62-long PSS/SSS.
fn sync_bin(n: usize) -> usize {
    lte::sync_subcarrier(n).rem_euclid(N as i32) as usize
}

/// Resource blocks around the centre whose CRS the confirmation uses. A CRS value depends only
/// on its subcarrier's distance from the centre (TS 36.211 uses m' = m + N_RB^max − N_RB), so
/// the carrier's bandwidth need not be known; eight RBs fit in 1.92 MS/s with margin.
const CRS_RB: usize = 8;
/// The CRS confirmation sums coherently over tiles of one resource block × one subframe and
/// of `WIDE_RB` resource blocks × each of `WIDE_SUBFRAMES` subframes.
const WIDE_RB: usize = 4;
/// Lengths in subframes of the wide tiles; the last is the longest.
const WIDE_SUBFRAMES: [i64; 3] = [1, 2, 4];
/// Residual offsets (after the PSS estimate) under which the CRS are summed over a subframe.
const RESIDUAL_HZ: [f64; 9] = [
    -400.0, -300.0, -200.0, -100.0, 0.0, 100.0, 200.0, 300.0, 400.0,
];

/// FFT bin of grid index `i` (0..12·CRS_RB) of the central resource blocks.
fn central_bin(i: usize) -> usize {
    let k = i as i32 - (6 * CRS_RB) as i32;
    let k = if k < 0 { k } else { k + 1 };
    k.rem_euclid(N as i32) as usize
}

/// Smallest multiple of 256 at least `n` whose cofactor is 2-, 3- and 5-smooth.
fn smooth_len(n: usize) -> usize {
    let mut m = n.div_ceil(256);
    loop {
        let mut r = m;
        for p in [2, 3, 5] {
            while r.is_multiple_of(p) {
                r /= p;
            }
        }
        if r == 1 {
            return m * 256;
        }
        m += 1;
    }
}

struct SssStage {
    sss_z: f64,
    hyp: (Duplexing, CyclicPrefix, usize, usize),
    n1: u16,
    first_is_5: bool,
    taus: Vec<usize>,
    cfo: f64,
}

struct Candidate {
    root: u8,
    cfo_hz: f64,
    tau: usize,
    ratio: f64,
}

/// Normalised PSS correlation of one root over (offset hypothesis, timing in a half-frame),
/// as a ratio to its mean.
struct Plane {
    /// Offset of each row, hertz.
    cfos: Vec<f64>,
    rows: Vec<Vec<f32>>,
}

type CrsTable = Vec<Vec<(usize, Complex32)>>;

impl LteSearcher {
    /// Plans the transforms and builds the PSS templates.
    #[must_use]
    pub fn new(cfg: LteSearchConfig) -> Self {
        let mut planner = FftPlanner::new();
        let fft128 = planner.plan_fft_forward(N);
        let ifft128 = planner.plan_fft_inverse(N);
        let pss = [lte::pss(0), lte::pss(1), lte::pss(2)];
        let templates = std::array::from_fn(|u| {
            let mut g = vec![Complex32::default(); N];
            for (n, v) in pss[u].iter().enumerate() {
                g[sync_bin(n)] = *v;
            }
            ifft128.process(&mut g);
            let e: f32 = g.iter().map(Complex32::norm_sqr).sum();
            let k = 1.0 / e.sqrt();
            g.iter_mut().for_each(|v| *v *= k);
            g
        });
        Self {
            cfg,
            planner,
            fft128,
            templates,
            pss,
            crs_cache: std::collections::HashMap::new(),
            template_spectra: std::collections::HashMap::new(),
            clock_error: 0.0,
            sss: (0..3u8)
                .map(|n2| {
                    (0..168u16)
                        .map(|n1| [lte::sss(n1, n2, false), lte::sss(n1, n2, true)])
                        .collect()
                })
                .collect(),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &LteSearchConfig {
        &self.cfg
    }

    /// Searches a long stretch of `x` (seconds rather than the configured window) near the offset
    /// of a cell already found, for the weaker cells of the carrier. Over a second a cheap
    /// radio's sample clock slips by tens of samples, so PSS timing is folded, and SSS and CRS
    /// are placed, along the slope `clock_error` (samples per second over the nominal rate,
    /// minus one), measured by the caller from a known cell's frame timing over time: see
    /// [`clock_error_from_timing`]. (It is not the offset over the carrier frequency: a radio
    /// tuned off the channel on purpose, or one whose tuner has its own reference, shows an
    /// offset unrelated to its sample clock.)
    pub fn deep_search(
        &mut self,
        x: &[Complex32],
        cfo_hz: f64,
        clock_error: f64,
        include_unconfirmed: bool,
    ) -> Vec<LteCell> {
        let saved = self.cfg.window_s;
        self.cfg.window_s = x.len() as f64 / RATE_HZ;
        self.clock_error = clock_error;
        let cells = self.search_near(x, Some(cfo_hz), include_unconfirmed);
        self.cfg.window_s = saved;
        self.clock_error = 0.0;
        cells
    }

    /// Searches `x` (1.92 MS/s, centred on the carrier) over the whole offset range; see
    /// [`LteSearcher::search_near`].
    pub fn search(&mut self, x: &[Complex32], include_unconfirmed: bool) -> Vec<LteCell> {
        self.search_near(x, None, include_unconfirmed)
    }

    /// Searches `x` for cells, strongest first. With `cfo_hint_hz` (the offset of a cell already
    /// found by this radio: mostly its own oscillator error, shared by every cell it hears) only
    /// that offset is searched, about twelve times faster than the whole range. Only
    /// CRS-confirmed cells are returned unless `include_unconfirmed`.
    pub fn search_near(
        &mut self,
        x: &[Complex32],
        cfo_hint_hz: Option<f64>,
        include_unconfirmed: bool,
    ) -> Vec<LteCell> {
        match cfo_hint_hz {
            Some(f) => self.search_around(x, f, 0.0, include_unconfirmed),
            None => self.search_around(x, 0.0, self.cfg.cfo_range_hz, include_unconfirmed),
        }
    }

    /// Searches `x` for cells whose offset is within `half_range_hz` of `centre_hz`: the hint
    /// itself when the range is 0 (every cell a radio hears is within a few hundred hertz of
    /// its oscillator's error; 3.75 kHz off costs 0.9 dB), else a 7.5 kHz grid across it.
    pub fn search_around(
        &mut self,
        x: &[Complex32],
        centre_hz: f64,
        half_range_hz: f64,
        include_unconfirmed: bool,
    ) -> Vec<LteCell> {
        let len = x.len().min((self.cfg.window_s * RATE_HZ) as usize);
        // A capture of one half-frame (5 ms) holds one PSS and its SSS; anything shorter than a
        // subframe and two symbols cannot hold a PSS with its SSS and CRS around it.
        if len < MIN_SEARCH_LEN {
            return Vec::new();
        }
        let x = &x[..len];
        let h = (half_range_hz.max(0.0) / CFO_STEP_HZ).floor() as i64;
        let cfos: Vec<f64> = (-h..=h)
            .map(|i| centre_hz + i as f64 * CFO_STEP_HZ)
            .collect();
        let planes = self.pss_planes(x, &cfos);
        let k_min = ((len - N) / HALF_FRAME + 1) as f64;
        let tests = cfos.len() as f64 * HALF_FRAME as f64 * 3.0;
        // A per-test false-alarm rate that keeps the whole search's rate at `pss_pfa` × 1e6.
        let threshold =
            gamma_mean_quantile(k_min, (self.cfg.pss_pfa * 1e6 / tests).min(0.01)) as f32;
        let mut tried: Vec<(u8, usize)> = Vec::new();
        let mut cells: Vec<LteCell> = Vec::new();
        let mut clusters = Self::clusters(&planes, threshold, 3);
        let mut second_pass_done = false;
        loop {
            for cluster in clusters.drain(..) {
                if cells.len() >= self.cfg.max_cells {
                    break;
                }
                let head = &cluster[0];
                if tried
                    .iter()
                    .any(|&(r, t)| r == head.root && circ_dist(t, head.tau) <= 64)
                {
                    continue;
                }
                tried.push((head.root, head.tau));
                // The offset hypothesis whose SSS matches best, then its CRS.
                let best = cluster
                    .iter()
                    .filter_map(|c| self.sss_stage(x, c).map(|r| (c, r)))
                    .max_by(|a, b| a.1.sss_z.total_cmp(&b.1.sss_z));
                let Some((cand, stage)) = best else { continue };
                if stage.sss_z < self.cfg.min_sss_z {
                    continue;
                }
                let cell = self.crs_stage(x, cand, &stage);
                if cells.iter().any(|c| c.pci == cell.pci) {
                    continue;
                }
                if cell.confirmed || include_unconfirmed {
                    cells.push(cell);
                }
            }
            if second_pass_done || cells.len() >= self.cfg.max_cells {
                break;
            }
            second_pass_done = true;
            // Cells heard by one radio share its oscillator error: look again at every root along
            // the offsets of the confirmed cells, with the looser threshold of a narrower search.
            let thr2 = gamma_mean_quantile(k_min, 1e-4) as f32;
            let known: Vec<f64> = cells
                .iter()
                .filter(|c| c.confirmed)
                .map(|c| c.cfo_hz)
                .collect();
            for f in known {
                for (root, plane) in planes.iter().enumerate() {
                    let mut found: Vec<Candidate> = Vec::new();
                    for (row, &row_cfo) in plane.rows.iter().zip(&plane.cfos) {
                        if (row_cfo - f).abs() > CFO_STEP_HZ + 1.0 {
                            continue;
                        }
                        for (tau, &r) in row.iter().enumerate() {
                            if r >= thr2
                                && !tried
                                    .iter()
                                    .any(|&(rt, t)| rt == root as u8 && circ_dist(t, tau) <= 64)
                            {
                                found.push(Candidate {
                                    root: root as u8,
                                    cfo_hz: row_cfo,
                                    tau,
                                    ratio: f64::from(r),
                                });
                            }
                        }
                    }
                    found.sort_by(|a, b| b.ratio.total_cmp(&a.ratio));
                    for c in found {
                        let n = clusters.len();
                        match clusters
                            .iter()
                            .position(|g| g[0].root == c.root && circ_dist(g[0].tau, c.tau) <= 64)
                        {
                            Some(i) if clusters[i].len() < 3 => clusters[i].push(c),
                            Some(_) => {}
                            None if n < 8 => clusters.push(vec![c]),
                            None => {}
                        }
                    }
                }
            }
            if clusters.is_empty() {
                break;
            }
            clusters.sort_by(|a, b| b[0].ratio.total_cmp(&a[0].ratio));
        }
        cells.sort_by(|a, b| b.rsrp_dbfs.total_cmp(&a.rsrp_dbfs));
        cells
    }

    /// Peaks of each root above `threshold`, grouped into timing clusters (up to `per_root`
    /// per root). A cluster holds the best timing of each offset hypothesis within 64 samples:
    /// a Zadoff-Chu PSS under a whole-subcarrier offset correlates at a shifted timing, so the
    /// true offset is not always the strongest point of its ridge; SSS decides among them.
    fn clusters(planes: &[Plane], threshold: f32, per_root: usize) -> Vec<Vec<Candidate>> {
        let mut out = Vec::new();
        for (root, plane) in planes.iter().enumerate() {
            let mut pts: Vec<(f64, usize, f32)> = Vec::new();
            for (hi, row) in plane.rows.iter().enumerate() {
                for (tau, &r) in row.iter().enumerate() {
                    if r >= threshold {
                        pts.push((plane.cfos[hi], tau, r));
                    }
                }
            }
            pts.sort_by(|a, b| b.2.total_cmp(&a.2));
            let mut centres: Vec<usize> = Vec::new();
            let mut groups: Vec<Vec<Candidate>> = Vec::new();
            for (h, tau, r) in pts {
                let cand = Candidate {
                    root: root as u8,
                    cfo_hz: h,
                    tau,
                    ratio: f64::from(r),
                };
                match centres.iter().position(|&t| circ_dist(t, tau) <= 64) {
                    Some(i) => {
                        let g = &mut groups[i];
                        if g.len() < 6 && !g.iter().any(|c| (c.cfo_hz - cand.cfo_hz).abs() < 1.0) {
                            g.push(cand);
                        }
                    }
                    None if centres.len() < per_root => {
                        centres.push(tau);
                        groups.push(vec![cand]);
                    }
                    None => {}
                }
            }
            out.extend(groups);
        }
        out.sort_by(|a, b| b[0].ratio.total_cmp(&a[0].ratio));
        out
    }

    fn pss_planes(&mut self, x: &[Complex32], cfos: &[f64]) -> Vec<Plane> {
        let len = x.len();
        let m = smooth_len(len + N);
        let fwd = self.planner.plan_fft_forward(m);
        let inv = self.planner.plan_fft_inverse(m);
        let mut scratch = vec![
            Complex32::default();
            fwd.get_inplace_scratch_len()
                .max(inv.get_inplace_scratch_len())
        ];
        let mut xf = vec![Complex32::default(); m];
        xf[..len].copy_from_slice(x);
        fwd.process_with_scratch(&mut xf, &mut scratch);
        // Conjugate spectra of the three PSS at this length, made once per length.
        if !self.template_spectra.contains_key(&m) {
            let spectra: Vec<Vec<Complex32>> = self
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
            // A searcher sees a handful of window lengths; keep the last few.
            if self.template_spectra.len() >= 4 {
                self.template_spectra.clear();
            }
            self.template_spectra.insert(m, spectra);
        }
        let spectra = &self.template_spectra[&m];
        let last = len - N;
        // 1 / (window energy · M²) per timing, shared by every root and offset.
        let inv_e = inverse_window_energy(x, N, last, (m as f64) * (m as f64));
        // Position of each timing within the half-frame, along the sample clock's slope.
        let slope = 1.0 / (1.0 + self.clock_error);
        let fold: Vec<u32> = if self.clock_error == 0.0 {
            (0..=last).map(|tau| (tau % HALF_FRAME) as u32).collect()
        } else {
            (0..=last)
                .map(|tau| ((tau as f64 * slope).round() as usize % HALF_FRAME) as u32)
                .collect()
        };
        let mut counts = vec![0f32; HALF_FRAME];
        for &i in &fold {
            counts[i as usize] += 1.0;
        }
        let held = counts.iter().filter(|&&c| c > 0.0).count().max(1) as f32;
        let mut work = vec![Complex32::default(); m];
        let mut planes = Vec::with_capacity(3);
        for tf in spectra {
            let mut rows = Vec::with_capacity(cfos.len());
            for &f in cfos {
                // The input's spectrum moved down by the offset, times the template's.
                let s = ((f * m as f64 / RATE_HZ).round() as i64).rem_euclid(m as i64) as usize;
                let (lo, hi) = work.split_at_mut(m - s);
                for (w, (xv, tv)) in lo.iter_mut().zip(xf[s..].iter().zip(&tf[..m - s])) {
                    *w = xv * tv;
                }
                for (w, (xv, tv)) in hi.iter_mut().zip(xf[..s].iter().zip(&tf[m - s..])) {
                    *w = xv * tv;
                }
                inv.process_with_scratch(&mut work, &mut scratch);
                let mut a = vec![0f32; HALF_FRAME];
                for ((c, ie), &i) in work[..=last].iter().zip(&inv_e).zip(&fold) {
                    a[i as usize] += c.norm_sqr() * ie;
                }
                for (v, c) in a.iter_mut().zip(&counts) {
                    *v /= c.max(1.0);
                }
                // Over the timings the input holds (all of a half-frame unless it is shorter).
                let mean = a.iter().sum::<f32>() / held;
                if mean > 0.0 {
                    a.iter_mut().for_each(|v| *v /= mean);
                }
                rows.push(a);
            }
            planes.push(Plane {
                cfos: cfos.to_vec(),
                rows,
            });
        }
        planes
    }

    /// 128-point FFT of `x[start..start+128]` rotated by −`cfo_hz`.
    fn symbol(&self, x: &[Complex32], start: usize, cfo_hz: f64) -> Option<Vec<Complex32>> {
        if start + N > x.len() {
            return None;
        }
        let mut rot = rotator(std::f64::consts::TAU * cfo_hz / RATE_HZ, start);
        let mut b: Vec<Complex32> = x[start..start + N].iter().map(|v| v * rot()).collect();
        self.fft128.process(&mut b);
        Some(b)
    }

    fn pss_corr(
        &self,
        x: &[Complex32],
        start: usize,
        cfo_hz: f64,
        root: usize,
    ) -> (Complex32, Complex32) {
        let mut rot = rotator(std::f64::consts::TAU * cfo_hz / RATE_HZ, start);
        let t = &self.templates[root];
        let mut c = [Complex32::default(); 2];
        for (i, (xv, tv)) in x[start..start + N].iter().zip(t).enumerate() {
            c[i / (N / 2)] += xv * rot() * tv.conj();
        }
        (c[0], c[1])
    }

    #[allow(clippy::too_many_lines)]
    fn sss_stage(&self, x: &[Complex32], cand: &Candidate) -> Option<SssStage> {
        let u = usize::from(cand.root);
        let len = x.len();
        // Refine timing (±2 samples), then the offset from the halves' phase. Within a window
        // each half-frame picks its own timing (the clock's drift is unknown); over a deep
        // search the drift is followed already and one shift common to all half-frames is
        // chosen, which a weak cell's noisy peaks cannot pull about.
        let mut per_half: Vec<[(usize, Complex32, Complex32); 5]> = Vec::new();
        let period = HALF_FRAME as f64 * (1.0 + self.clock_error);
        loop {
            let nominal = cand.tau + (per_half.len() as f64 * period).round() as usize;
            if nominal + N + 2 > len {
                break;
            }
            // (Near the input's start the earliest shifts repeat sample 0.)
            per_half.push(std::array::from_fn(|d| {
                let s = (nominal + d).saturating_sub(2);
                let (a, b) = self.pss_corr(x, s, cand.cfo_hz, u);
                (s, a, b)
            }));
        }
        let power = |t: &(usize, Complex32, Complex32)| (t.1 + t.2).norm_sqr();
        let picks: Vec<(usize, Complex32, Complex32)> = if self.clock_error == 0.0 {
            per_half
                .iter()
                .filter_map(|h| {
                    h.iter()
                        .copied()
                        .max_by(|p, q| power(p).total_cmp(&power(q)))
                })
                .collect()
        } else {
            let d = (0..5)
                .max_by(|&a, &b| {
                    let sum = |d: usize| per_half.iter().map(|h| power(&h[d])).sum::<f32>();
                    sum(a).total_cmp(&sum(b))
                })
                .unwrap_or(2);
            per_half.iter().map(|h| h[d]).collect()
        };
        if picks.is_empty() {
            return None;
        }
        let taus: Vec<usize> = picks.iter().map(|p| p.0).collect();
        let z: Complex32 = picks.iter().map(|p| p.2 * p.1.conj()).sum();
        let cfo =
            cand.cfo_hz + f64::from(z.arg()) * RATE_HZ / (std::f64::consts::TAU * (N / 2) as f64);
        // SSS hypotheses: (duplexing, cp, SSS body offset before the PSS body, PSS body offset
        // within its subframe pair).
        let hyps = [
            (Duplexing::Fdd, CyclicPrefix::Normal, 137usize, 832usize),
            (Duplexing::Fdd, CyclicPrefix::Extended, 160, 832),
            (Duplexing::Tdd, CyclicPrefix::Normal, 412, 2204),
            (Duplexing::Tdd, CyclicPrefix::Extended, 480, 2272),
        ];
        let mut pss_h: Vec<Option<Vec<Complex32>>> = Vec::new();
        for &t in &taus {
            pss_h.push(self.symbol(x, t, cfo).map(|y| {
                let raw: Vec<Complex32> = (0..62)
                    .map(|n| y[sync_bin(n)] * self.pss[u][n].conj())
                    .collect();
                super::smooth_channel(&raw, 3)
            }));
        }
        let sss_seqs = &self.sss[u];
        let mut best: Option<(f64, usize, u16, bool)> = None;
        for (hi, &(_, _, sss_off, _)) in hyps.iter().enumerate() {
            // Subframes 0 and 5 alternate: sum the even and the odd half-frames once, then each
            // hypothesis is two 62-long dot products.
            let mut halves = [[0f32; 62]; 2];
            let mut var = 0f64;
            for (ki, &t) in taus.iter().enumerate() {
                let (Some(h), Some(start)) = (&pss_h[ki], t.checked_sub(sss_off)) else {
                    continue;
                };
                if let Some(y) = self.symbol(x, start, cfo) {
                    for (n, acc) in halves[ki % 2].iter_mut().enumerate() {
                        let z = (y[sync_bin(n)] * h[n].conj()).re;
                        *acc += z;
                        var += f64::from(z * z);
                    }
                }
            }
            if var <= 0.0 {
                continue;
            }
            let sd = var.sqrt();
            let dot =
                |a: &[f32; 62], b: &[f32; 62]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f32>();
            for (n1, seqs) in sss_seqs.iter().enumerate() {
                for first_is_5 in [false, true] {
                    let score = f64::from(
                        dot(&halves[0], &seqs[usize::from(first_is_5)])
                            + dot(&halves[1], &seqs[usize::from(!first_is_5)]),
                    );
                    let zscore = score / sd;
                    if best.is_none_or(|b| zscore > b.0) {
                        best = Some((zscore, hi, n1 as u16, first_is_5));
                    }
                }
            }
        }
        let (sss_z, hi, n1, first_is_5) = best?;
        Some(SssStage {
            sss_z,
            hyp: hyps[hi],
            n1,
            first_is_5,
            taus,
            cfo,
        })
    }

    fn crs_stage(&mut self, x: &[Complex32], cand: &Candidate, st: &SssStage) -> LteCell {
        let SssStage {
            sss_z,
            hyp: (duplexing, cp, _, pss_in_frame),
            n1,
            first_is_5,
            ref taus,
            cfo,
        } = *st;
        let pci = 3 * n1 + u16::from(cand.root);
        let first =
            taus[0] as i64 - pss_in_frame as i64 - if first_is_5 { HALF_FRAME as i64 } else { 0 };
        let frame_start = first.rem_euclid(FRAME as i64) - FRAME as i64;
        let drift: Vec<i64> = taus
            .iter()
            .enumerate()
            .map(|(k, &t)| t as i64 - (taus[0] + k * HALF_FRAME) as i64)
            .collect();
        let crs = self.crs_stats(x, pci, frame_start, &drift, cfo, duplexing, cp);
        let (crs_z, rsrp, noise, residual) = crs.unwrap_or((0.0, 0.0, 0.0, 0.0));
        let cfo = cfo + residual;
        let to_db = |v: f64| crate::to_db(v / (N * N) as f64);
        LteCell {
            pci,
            duplexing,
            cp,
            cfo_hz: cfo,
            frame_start,
            pss_ratio: cand.ratio,
            sss_z,
            crs_z,
            confirmed: crs_z >= self.cfg.min_crs_z && rsrp > 0.0,
            rsrp_dbfs: to_db(rsrp.max(1e-30)),
            noise_dbfs: to_db(noise.max(1e-30)),
            sinr_db: crate::to_db(rsrp.max(1e-30) / noise.max(1e-30)),
        }
    }

    /// Port-0 CRS of the central resource blocks for every (slot, CRS symbol) of a PCI, cached.
    fn crs_table(&mut self, pci: u16, normal: bool) -> &CrsTable {
        self.crs_cache.entry((pci, normal)).or_insert_with(|| {
            let symbols: &[u32] = if normal { &[0, 4] } else { &[0, 3] };
            (0..20u32)
                .flat_map(|ns| symbols.iter().map(move |&l| (ns, l)))
                .map(|(ns, l)| {
                    lte::crs_res_cp(pci, CRS_RB, ns, l, normal)
                        .into_iter()
                        .map(|(k, v)| (central_bin(k), v.conj()))
                        .collect()
                })
                .collect()
        })
    }

    /// CRS statistics of a PCI: (z-score against other PCIs, signal and noise per RE in FFT
    /// units), from every CRS symbol of the central six RBs inside the input.
    #[allow(clippy::too_many_arguments)]
    fn crs_stats(
        &mut self,
        x: &[Complex32],
        pci: u16,
        frame_start: i64,
        drift: &[i64],
        cfo: f64,
        duplexing: Duplexing,
        cp: CyclicPrefix,
    ) -> Option<(f64, f64, f64, f64)> {
        let normal = cp == CyclicPrefix::Normal;
        // Body offsets within a slot of the CRS symbols (port 0).
        let offsets: [usize; 2] = if normal { [10, 558] } else { [32, 512] };
        // (index into the CRS table, subframe number, start sample, FFT of the symbol).
        let mut symbols: Vec<(usize, i64, i64, Vec<Complex32>)> = Vec::new();
        // TDD: subframes 0 and 5 are downlink in every configuration and the first symbol of
        // the special subframes (DwPTS) too; subframes 4 and 9 are downlink in configurations
        // 1, 2, 4 and 5 and are used when they carry as much energy as subframe 0.
        let mut optional: Vec<(usize, i64, i64, Vec<Complex32>)> = Vec::new();
        let mut f = 0i64;
        while frame_start + f * FRAME as i64 <= x.len() as i64 {
            for ns in 0..20usize {
                let (always, maybe) = match (duplexing, ns / 2) {
                    (Duplexing::Fdd, _) | (Duplexing::Tdd, 0 | 5) => (true, false),
                    (Duplexing::Tdd, 1 | 6) => (ns % 2 == 0, false),
                    (Duplexing::Tdd, 4 | 9) => (false, true),
                    _ => (false, false),
                };
                if !(always || maybe) {
                    continue;
                }
                for (li, &off) in offsets.iter().enumerate() {
                    if duplexing == Duplexing::Tdd && matches!(ns / 2, 1 | 6) && li > 0 {
                        continue;
                    }
                    let nominal = frame_start + f * FRAME as i64 + ns as i64 * 960 + off as i64;
                    if nominal < 0 {
                        continue;
                    }
                    let hf = (nominal - frame_start).max(0) as usize / HALF_FRAME;
                    let d = drift
                        .get(hf.min(drift.len().saturating_sub(1)))
                        .copied()
                        .unwrap_or(0);
                    let start = nominal + d;
                    if start < 0 {
                        continue;
                    }
                    if let Some(y) = self.symbol(x, start as usize, cfo) {
                        let item = (ns * 2 + li, f * 10 + (ns / 2) as i64, start, y);
                        if always {
                            symbols.push(item);
                        } else {
                            optional.push(item);
                        }
                    }
                }
            }
            f += 1;
        }
        let power = |v: &[(usize, i64, i64, Vec<Complex32>)]| -> f64 {
            let n = v.len().max(1) as f64;
            v.iter()
                .map(|(_, _, _, y)| y.iter().map(|c| f64::from(c.norm_sqr())).sum::<f64>())
                .sum::<f64>()
                / n
        };
        if !optional.is_empty() && power(&optional) >= 0.9 * power(&symbols) {
            symbols.append(&mut optional);
            symbols.sort_by_key(|s| (s.1, s.0));
        }
        if symbols.is_empty() {
            return None;
        }
        // Signal and noise from adjacent CRS pairs (the channel is the same on both).
        // Detection from coherent sums of the CRS over tiles of resource blocks × subframes
        // (`WIDE_RB`, `WIDE_SUBFRAMES`): the channel barely moves within a millisecond or two, nor across a
        // few hundred kilohertz unless the delay spread is large, so the larger tiles gain in
        // z at low SINR and the one-RB tile still works on a dispersive channel. The PSS offset
        // estimate of a weak cell is not fine enough for a millisecond (a few hundred hertz
        // turn the phase by a cycle), so each sum is taken under a few residual offsets and the
        // best kept, for every PCI alike. For a PCI that is not there a coherent sum has the
        // energy of its parts: the ratios are near 1.
        const R: usize = RESIDUAL_HZ.len();
        const W: usize = WIDE_SUBFRAMES.len();
        const T: usize = W + 1;
        let rots: Vec<[Complex32; R]> = symbols
            .iter()
            .map(|&(_, _, start, _)| {
                let t = start as f64 / RATE_HZ;
                RESIDUAL_HZ.map(|r| {
                    let ph = -std::f64::consts::TAU * (r * t).fract();
                    Complex32::new(ph.cos() as f32, ph.sin() as f32)
                })
            })
            .collect();
        let stats = |s: &mut Self, p: u16| -> (f64, f64, [f64; T], usize) {
            let table = s.crs_table(p, normal);
            let (mut a2, mut y2, mut n, mut energy) = (0f64, 0f64, 0f64, 0f64);
            // Per residual: running sums of the open tiles (one per RB or RB group) and the
            // energy of the finished ones.
            let zero = Complex32::default();
            let mut narrow = [[zero; CRS_RB]; R];
            let mut wide = [[[zero; CRS_RB / WIDE_RB]; R]; W];
            let (mut coh_narrow, mut coh_wide) = ([0f64; R], [[0f64; R]; W]);
            let (mut open_narrow, mut open_wide) = (i64::MIN, [i64::MIN; W]);
            let energy_of =
                |v: &[Complex32]| v.iter().map(|c| f64::from(c.norm_sqr())).sum::<f64>();
            for ((idx, sf, _, y), rot) in symbols.iter().zip(&rots) {
                if *sf != open_narrow {
                    for (c, a) in coh_narrow.iter_mut().zip(narrow.iter_mut()) {
                        *c += energy_of(a);
                        *a = [zero; CRS_RB];
                    }
                    open_narrow = *sf;
                }
                for (t, &len) in WIDE_SUBFRAMES.iter().enumerate() {
                    let key = sf.div_euclid(len);
                    if key != open_wide[t] {
                        for (c, a) in coh_wide[t].iter_mut().zip(wide[t].iter_mut()) {
                            *c += energy_of(a);
                            *a = [zero; CRS_RB / WIDE_RB];
                        }
                        open_wide[t] = key;
                    }
                }
                // Two CRS per resource block and symbol, in subcarrier order.
                let mut per_rb = [zero; CRS_RB];
                for (rb, pair) in table[*idx].chunks_exact(2).enumerate() {
                    let (b0, r0) = pair[0];
                    let (b1, r1) = pair[1];
                    let (v0, v1) = (y[b0], y[b1]);
                    let sum = v0 * r0 + v1 * r1;
                    per_rb[rb] = sum;
                    let a = sum * 0.5;
                    a2 += f64::from(a.norm_sqr());
                    let e = f64::from(v0.norm_sqr() + v1.norm_sqr());
                    y2 += e * 0.5;
                    energy += e;
                    n += 1.0;
                }
                for (h, r) in rot.iter().enumerate() {
                    let mut groups = [zero; CRS_RB / WIDE_RB];
                    for (rb, v) in per_rb.iter().enumerate() {
                        let v = v * r;
                        narrow[h][rb] += v;
                        groups[rb / WIDE_RB] += v;
                    }
                    for w in &mut wide {
                        for (a, g) in w[h].iter_mut().zip(&groups) {
                            *a += g;
                        }
                    }
                }
            }
            for (c, a) in coh_narrow.iter_mut().zip(&narrow) {
                *c += energy_of(a);
            }
            for (cw, w) in coh_wide.iter_mut().zip(&wide) {
                for (c, a) in cw.iter_mut().zip(w) {
                    *c += energy_of(a);
                }
            }
            let e = energy.max(1e-30);
            // The residual of the longest tile, for the reported offset.
            let best = (0..R)
                .max_by(|&i, &j| coh_wide[W - 1][i].total_cmp(&coh_wide[W - 1][j]))
                .unwrap_or(R / 2);
            let peak = |c: &[f64; R]| c.iter().copied().fold(0.0, f64::max) / e;
            let mut rho = [0f64; T];
            rho[0] = peak(&coh_narrow);
            for (r, c) in rho[1..].iter_mut().zip(&coh_wide) {
                *r = peak(c);
            }
            (a2 / n, y2 / n, rho, best)
        };
        let (a2, y2, rho, best) = stats(self, pci);
        // Other PCIs on the same samples and the same subcarriers (PCI mod 6 sets the CRS
        // frequency shift): what another cell on the air puts into this PCI's resource
        // elements, its CRS or its data, it puts into theirs too. A ratio summed over few tiles
        // is gamma-like, skewed to the right: its cube root is near normal (Wilson and
        // Hilferty), which keeps the z-score's tail honest for the big tiles of a short window.
        let z_against = |others: &[[f64; T]]| {
            (0..T)
                .map(|i| robust_z(rho[i].cbrt(), others.iter().map(|o| o[i].cbrt()).collect()))
                .fold(f64::NEG_INFINITY, f64::max)
        };
        // Sixteen of them first; a cell that stands out twice the threshold over those is
        // decided (a scale from sixteen is rarely 40 % off), the rest get all 48.
        let mut others: Vec<[f64; T]> = (1..=16u16)
            .map(|k| stats(self, (pci + 6 * k) % 504).2)
            .collect();
        let mut z = z_against(&others);
        if z < 2.0 * self.cfg.min_crs_z {
            others.extend((17..=48u16).map(|k| stats(self, (pci + 6 * k) % 504).2));
            z = z_against(&others);
        }
        // E|a|² = S + N/2 and E|y|² = S + N.
        let s = (2.0 * a2 - y2).max(0.0);
        let noise = (y2 - s).max(1e-30);
        Some((z, s, noise, RESIDUAL_HZ[best]))
    }
}

/// The sample clock's fractional error from one cell's frame timing seen twice: `frame_start`
/// (as in [`LteCell::frame_start`]) of two searches whose inputs began at samples `start_a` and
/// `start_b` (1.92 MS/s) of one stream. The drift must stay within half a frame between them.
#[must_use]
pub fn clock_error_from_timing(
    start_a: f64,
    frame_a: i64,
    start_b: f64,
    frame_b: i64,
) -> Option<f64> {
    let span = start_b - start_a;
    if span < FRAME as f64 {
        return None;
    }
    let moved = (start_b + frame_b as f64) - (start_a + frame_a as f64);
    let frames = (moved / FRAME as f64).round();
    if frames < 1.0 {
        return None;
    }
    Some((moved - frames * FRAME as f64) / (frames * FRAME as f64))
}

fn circ_dist(a: usize, b: usize) -> usize {
    let d = a.abs_diff(b) % HALF_FRAME;
    d.min(HALF_FRAME - d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Emitter, LteContent, OfdmEmitter, add_awgn, rng};

    fn cell_signal(
        pci: u16,
        duplexing: Duplexing,
        cfo_hz: f64,
        sinr_db: f64,
        seed: u64,
        ms: f64,
    ) -> Vec<Complex32> {
        let content = LteContent::new(pci, duplexing, 6, seed).expect("cell");
        let mut e = OfdmEmitter::new(content, RATE_HZ, cfo_hz, 1.0).expect("rate");
        let n = (ms * 1e-3 * RATE_HZ) as usize;
        // Start mid-frame so that timing is not trivially zero.
        let mut skip = vec![Complex32::default(); 7_321];
        e.add_to(&mut skip);
        let mut x = vec![Complex32::default(); n];
        e.add_to(&mut x);
        // The carrier fills 72 of the 128 subcarriers: noise over the whole band at the SINR.
        let in_band = 1.0;
        add_awgn(
            &mut rng(seed + 1000),
            &mut x,
            in_band / crate::from_db(sinr_db) * 128.0 / 72.0,
        );
        x
    }

    #[test]
    fn finds_fdd_and_tdd_cells_with_offset() {
        let mut s = LteSearcher::new(LteSearchConfig::default());
        for (pci, dup, cfo) in [
            (301, Duplexing::Fdd, 47e3),
            (22, Duplexing::Tdd, -123.4e3),
            (503, Duplexing::Fdd, 0.0),
        ] {
            let x = cell_signal(pci, dup, cfo, 10.0, u64::from(pci), 40.0);
            let cells = s.search(&x, false);
            assert_eq!(cells.len(), 1, "{pci}: {cells:?}");
            let c = &cells[0];
            assert_eq!((c.pci, c.duplexing, c.cp), (pci, dup, CyclicPrefix::Normal));
            assert!(
                (c.cfo_hz - cfo).abs() < 300.0,
                "{pci}: cfo {} vs {cfo}",
                c.cfo_hz
            );
            assert!(c.confirmed);
            // SINR measured on the CRS within 2 dB of what was set.
            assert!((c.sinr_db - 10.0).abs() < 2.0, "{pci}: sinr {}", c.sinr_db);
            // The frame starts 7321 samples before the input did.
            assert_eq!(
                (c.frame_start + 7_321).rem_euclid(FRAME as i64),
                0,
                "{pci}: {}",
                c.frame_start
            );
        }
    }

    #[test]
    fn crs_confirms_the_cell_and_no_other_pci_on_its_samples() {
        // The confirmation's null: a real cell is on the air and every other PCI is tried at
        // its timing and offset (where a phantom would come from). Over 503 wrong PCIs the
        // largest z must stay under the threshold.
        let mut s = LteSearcher::new(LteSearchConfig::default());
        for (pci, dup, sinr) in [(301, Duplexing::Fdd, 0.0), (22, Duplexing::Tdd, 10.0)] {
            let x = cell_signal(pci, dup, 12e3, sinr, u64::from(pci), 80.0);
            let cell = s.search(&x, false).into_iter().next().expect("cell");
            assert_eq!(cell.pci, pci);
            let drift = vec![0i64; 20];
            let z = |s: &mut LteSearcher, p: u16| {
                s.crs_stats(&x, p, cell.frame_start, &drift, cell.cfo_hz, dup, cell.cp)
                    .expect("stats")
                    .0
            };
            let own = z(&mut s, pci);
            let worst = (0..504u16)
                .filter(|&p| p != pci)
                .map(|p| z(&mut s, p))
                .fold(f64::NEG_INFINITY, f64::max);
            eprintln!("{pci}: own z {own:.1}, largest other {worst:.2}");
            assert!(own >= 2.0 * s.cfg.min_crs_z, "{pci}: own z {own}");
            assert!(
                worst < s.cfg.min_crs_z,
                "{pci}: a wrong PCI reached z {worst}"
            );
        }
    }

    #[test]
    fn noise_alone_gives_no_cell() {
        let mut s = LteSearcher::new(LteSearchConfig::default());
        for seed in 0..5 {
            let mut x = vec![Complex32::default(); 76_800];
            add_awgn(&mut rng(seed), &mut x, 1.0);
            assert!(s.search(&x, true).is_empty(), "seed {seed}");
        }
    }

    #[test]
    fn one_half_frame_is_enough_and_short_noise_gives_no_cell() {
        let mut s = LteSearcher::new(LteSearchConfig::default());
        // 5 ms from anywhere in the frame holds one PSS and its SSS.
        for (seed, dup) in [
            (1u64, Duplexing::Fdd),
            (2, Duplexing::Tdd),
            (3, Duplexing::Fdd),
        ] {
            let pci = 40 + seed as u16 * 101;
            let x = cell_signal(pci, dup, -61e3, 10.0, seed, 5.0);
            let cells = s.search(&x, false);
            assert_eq!(
                cells.iter().map(|c| c.pci).collect::<Vec<_>>(),
                [pci],
                "{cells:?}"
            );
        }
        // Shorter than a subframe: not searched.
        let x = cell_signal(7, Duplexing::Fdd, 0.0, 10.0, 4, 1.0);
        assert!(s.search(&x, false).is_empty());
        // Noise of every length from a subframe to a half-frame: nothing, unconfirmed included.
        for seed in 0..20 {
            let n = 2_200 + seed as usize * 370;
            let mut x = vec![Complex32::default(); n];
            add_awgn(&mut rng(seed + 50), &mut x, 1.0);
            assert!(s.search(&x, true).is_empty(), "{n} samples");
        }
    }
}
