//! Cell synchronisation signals of GSM, LTE and NR, written from the 3GPP definitions.
//!
//! These sequences are what a phone correlates against to find a cell; the simulator transmits
//! them and cell search looks for them.

pub mod gsm;
pub mod gsm_sch;
pub mod lte;
pub mod lte_search;
pub mod nr;
pub mod nr_search;

/// The length-31 Gold sequence generator of TS 36.211 §7.2 / TS 38.211 §5.2.1: `len` bits of
/// c(n) for the initialisation `c_init`.
#[must_use]
pub fn gold(c_init: u32, len: usize) -> Vec<u8> {
    const NC: usize = 1600;
    let total = NC + len + 31;
    let mut x1 = vec![0u8; total];
    let mut x2 = vec![0u8; total];
    x1[0] = 1;
    for (i, b) in x2.iter_mut().take(31).enumerate() {
        *b = ((c_init >> i) & 1) as u8;
    }
    for n in 0..(total - 31) {
        x1[n + 31] = (x1[n + 3] + x1[n]) & 1;
        x2[n + 31] = (x2[n + 3] + x2[n + 2] + x2[n + 1] + x2[n]) & 1;
    }
    (0..len).map(|n| (x1[n + NC] + x2[n + NC]) & 1).collect()
}

/// QPSK symbols of unit power from pairs of bits, as in the reference-signal definitions:
/// (1 − 2 c(2m)) / √2 + j (1 − 2 c(2m+1)) / √2.
#[must_use]
pub fn qpsk_from_bits(bits: &[u8]) -> Vec<num_complex::Complex32> {
    let a = std::f32::consts::FRAC_1_SQRT_2;
    bits.chunks_exact(2)
        .map(|p| {
            num_complex::Complex32::new(
                a * (1.0 - 2.0 * f32::from(p[0])),
                a * (1.0 - 2.0 * f32::from(p[1])),
            )
        })
        .collect()
}

/// e^{−j w n} for n = start, start + 1, …, by recurrence in f64 (exact enough over a symbol):
/// derotates a carrier-frequency offset of w radians per sample.
pub(crate) fn rotator(w: f64, start: usize) -> impl FnMut() -> num_complex::Complex32 {
    let mut ph = num_complex::Complex64::from_polar(1.0, -w * start as f64);
    let step = num_complex::Complex64::from_polar(1.0, -w);
    move || {
        let v = num_complex::Complex32::new(ph.re as f32, ph.im as f32);
        ph *= step;
        v
    }
}

/// Per-timing 1 / (energy of the `n`-sample window at that timing × `scale`), by a running sum,
/// for timings 0..=`last`: normalises correlations so that they read as a fraction of the power.
pub(crate) fn inverse_window_energy(
    x: &[num_complex::Complex32],
    n: usize,
    last: usize,
    scale: f64,
) -> Vec<f32> {
    let mut out = vec![0f32; last + 1];
    let mut e: f64 = x[..n].iter().map(|v| f64::from(v.norm_sqr())).sum();
    for (tau, ie) in out.iter_mut().enumerate() {
        *ie = if e > 1e-20 {
            (1.0 / (e * scale)) as f32
        } else {
            0.0
        };
        if tau + n < x.len() {
            e = (e + f64::from(x[tau + n].norm_sqr()) - f64::from(x[tau].norm_sqr())).max(0.0);
        }
    }
    out
}

/// How far `value` stands above `others`, in robust standard deviations (median and MAD): the
/// confirmation statistic of a reference signal against other cells' on the same samples.
pub(crate) fn robust_z(value: f64, mut others: Vec<f64>) -> f64 {
    if others.is_empty() {
        return 0.0;
    }
    others.sort_by(f64::total_cmp);
    let median = others[others.len() / 2];
    let mut dev: Vec<f64> = others.iter().map(|v| (v - median).abs()).collect();
    dev.sort_by(f64::total_cmp);
    let mad = (1.4826 * dev[dev.len() / 2]).max(1e-6);
    (value - median) / mad
}

/// Moving average of a per-subcarrier channel estimate over ±`half` neighbours: the channel is
/// nearly flat over a few subcarriers (coherence bandwidth of hundreds of kHz), the estimate's
/// noise is not, so this gains up to 2·half + 1 in estimate SNR.
#[must_use]
pub fn smooth_channel(h: &[num_complex::Complex32], half: usize) -> Vec<num_complex::Complex32> {
    (0..h.len())
        .map(|i| {
            let a = i.saturating_sub(half);
            let b = (i + half + 1).min(h.len());
            h[a..b].iter().sum::<num_complex::Complex32>() / (b - a) as f32
        })
        .collect()
}

/// How much of `x` (at `sample_rate_hz`) repeats one OFDM symbol body (1 / `scs_hz`) later:
/// |Σ x[n]·x*[n+N]| / Σ |x[n]|², N = `sample_rate_hz` / `scs_hz`. The cyclic prefixes of an
/// LTE or NR downlink of that spacing make it about 0.07 of the carrier's share of the power
/// (0.2 with LTE's extended prefix), whatever its bandwidth, centre or offset; noise, jammers
/// and OFDM of another spacing give about 1/√len. `None` when the rate is not a whole multiple
/// of the spacing or `x` is shorter than two symbols.
#[must_use]
pub fn cp_correlation(
    x: &[num_complex::Complex32],
    sample_rate_hz: f64,
    scs_hz: f64,
) -> Option<f64> {
    let n = sample_rate_hz / scs_hz;
    if n.is_nan() || n < 1.0 || (n - n.round()).abs() > 1e-6 {
        return None;
    }
    let n = n.round() as usize;
    if x.len() < 2 * n {
        return None;
    }
    let (mut re, mut im, mut e) = (0f64, 0f64, 0f64);
    for (a, b) in x.iter().zip(&x[n..]) {
        let p = a * b.conj();
        re += f64::from(p.re);
        im += f64::from(p.im);
        e += f64::from(a.norm_sqr());
    }
    (e > 0.0).then(|| re.hypot(im) / e)
}

/// Whether `x` holds OFDM of spacing `scs_hz`: its [`cp_correlation`] over 2 % (a third of a
/// downlink's) and eight times noise's 1/√len.
#[must_use]
pub fn holds_ofdm(x: &[num_complex::Complex32], sample_rate_hz: f64, scs_hz: f64) -> bool {
    cp_correlation(x, sample_rate_hz, scs_hz)
        .is_some_and(|r| r > 0.02 && r > 8.0 / (x.len() as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gold_sequence_is_balanced_and_depends_on_init() {
        let a = gold(12345, 10_000);
        let b = gold(987_654_321, 10_000);
        let ones = a.iter().filter(|&&x| x == 1).count();
        assert!((4700..5300).contains(&ones), "{ones}");
        let agree = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!((4700..5300).contains(&agree), "{agree}");
        // With x2 all zero, c(n) is x1 alone: its recurrence must hold.
        let c = gold(0, 200);
        for n in 0..(200 - 31) {
            assert_eq!(c[n + 31], (c[n + 3] + c[n]) & 1);
        }
    }

    #[test]
    fn cyclic_prefix_correlation_tells_lte_from_noise() {
        use crate::synth::{Emitter, LteContent, OfdmEmitter, add_awgn, rng};
        let fs = 7.68e6;
        let mut noise = vec![num_complex::Complex32::default(); 76_800];
        add_awgn(&mut rng(1), &mut noise, 1.0);
        let r_noise = cp_correlation(&noise, fs, lte::SCS_HZ).expect("rate");
        assert!(r_noise < 0.02, "{r_noise}");
        let cell = LteContent::new(5, lte::Duplexing::Fdd, 25, 2).expect("cell");
        let mut x = noise.clone();
        OfdmEmitter::new(cell, fs, 1.1e6, 10.0)
            .expect("rate")
            .add_to(&mut x);
        let r = cp_correlation(&x, fs, lte::SCS_HZ).expect("rate");
        // Normal CP: 0.067 of the carrier's share, 10/11 here.
        assert!((0.05..0.07).contains(&r), "{r}");
        assert!(cp_correlation(&x, 7.7e6, lte::SCS_HZ).is_none());
    }
}
