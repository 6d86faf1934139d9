//! LTE downlink synchronisation and reference signals (TS 36.211 §6.10.1, §6.11).

use num_complex::Complex32;

/// Zadoff-Chu roots of the PSS for N_ID^(2) = 0, 1, 2.
pub const PSS_ROOTS: [u32; 3] = [25, 29, 34];

/// Subcarrier spacing, hertz.
pub const SCS_HZ: f64 = 15e3;

/// Frame or subframe layout of the synchronisation signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Duplexing {
    /// PSS in the last symbol of slots 0 and 10, SSS in the symbol before it.
    Fdd,
    /// PSS in the third symbol of subframes 1 and 6, SSS in the last symbol of slots 1 and 11.
    Tdd,
}

/// The 62-element PSS d_u(n) for N_ID^(2).
///
/// # Panics
/// If `n_id_2 > 2`.
#[must_use]
pub fn pss(n_id_2: u8) -> [Complex32; 62] {
    let u = f64::from(PSS_ROOTS[usize::from(n_id_2)]);
    let mut d = [Complex32::default(); 62];
    for (n, v) in d.iter_mut().enumerate() {
        let n = n as f64;
        let arg = if n < 31.0 {
            -std::f64::consts::PI * u * n * (n + 1.0) / 63.0
        } else {
            -std::f64::consts::PI * u * (n + 1.0) * (n + 2.0) / 63.0
        };
        *v = Complex32::new(arg.cos() as f32, arg.sin() as f32);
    }
    d
}

fn m_sequence(taps: &[usize]) -> [f32; 31] {
    let mut x = [0u8; 31];
    x[4] = 1;
    for i in 0..26 {
        x[i + 5] = taps.iter().map(|&t| x[i + t]).sum::<u8>() & 1;
    }
    x.map(|b| 1.0 - 2.0 * f32::from(b))
}

/// The indices (m0, m1) of the SSS for N_ID^(1) (TS 36.211 Table 6.11.2.1-1, by formula).
#[must_use]
pub fn sss_indices(n_id_1: u16) -> (usize, usize) {
    let n1 = usize::from(n_id_1);
    let qp = n1 / 30;
    let q = (n1 + qp * (qp + 1) / 2) / 30;
    let mp = n1 + q * (q + 1) / 2;
    let m0 = mp % 31;
    let m1 = (m0 + mp / 31 + 1) % 31;
    (m0, m1)
}

/// The 62-element SSS d(n) for N_ID^(1) (0–167), N_ID^(2) (0–2), in subframe 0 or 5.
#[must_use]
pub fn sss(n_id_1: u16, n_id_2: u8, subframe_5: bool) -> [f32; 62] {
    let s = m_sequence(&[2, 0]);
    let c = m_sequence(&[3, 0]);
    let z = m_sequence(&[4, 2, 1, 0]);
    let (m0, m1) = sss_indices(n_id_1);
    let n2 = usize::from(n_id_2);
    let mut d = [0f32; 62];
    for n in 0..31 {
        let s0 = s[(n + m0) % 31];
        let s1 = s[(n + m1) % 31];
        let c0 = c[(n + n2) % 31];
        let c1 = c[(n + n2 + 3) % 31];
        let z_m0 = z[(n + m0 % 8) % 31];
        let z_m1 = z[(n + m1 % 8) % 31];
        if subframe_5 {
            d[2 * n] = s1 * c0;
            d[2 * n + 1] = s0 * c1 * z_m1;
        } else {
            d[2 * n] = s0 * c0;
            d[2 * n + 1] = s1 * c1 * z_m0;
        }
    }
    d
}

/// Subcarrier offset from DC (in subcarriers, DC excluded) of element `n` of PSS/SSS:
/// −31..−1 then +1..+31.
#[must_use]
pub fn sync_subcarrier(n: usize) -> i32 {
    let k = n as i32 - 31;
    if k < 0 { k } else { k + 1 }
}

/// Cell-specific reference signal r(m) of antenna port 0 for slot `ns` (0–19), symbol `l` of the
/// slot, normal cyclic prefix, m = 0 .. 2·N_RB^max − 1 (N_RB^max = 110).
#[must_use]
pub fn crs(pci: u16, ns: u32, l: u32) -> Vec<Complex32> {
    crs_cp(pci, ns, l, true)
}

/// As [`crs`], for normal (`true`) or extended cyclic prefix.
#[must_use]
pub fn crs_cp(pci: u16, ns: u32, l: u32, normal_cp: bool) -> Vec<Complex32> {
    let n_id = u32::from(pci);
    let n_cp = u32::from(normal_cp);
    let c_init = (1 << 10) * (7 * (ns + 1) + l + 1) * (2 * n_id + 1) + 2 * n_id + n_cp;
    super::qpsk_from_bits(&super::gold(c_init, 4 * 110))
}

/// Subcarrier indices (0 = lowest of the `n_rb`·12 carriers) and values of the port-0 CRS in
/// slot `ns`, symbol `l` (0 or 4).
#[must_use]
pub fn crs_res(pci: u16, n_rb: usize, ns: u32, l: u32) -> Vec<(usize, Complex32)> {
    crs_res_cp(pci, n_rb, ns, l, true)
}

/// As [`crs_res`], for normal (`true`, symbols 0 and 4) or extended (symbols 0 and 3) cyclic
/// prefix.
#[must_use]
pub fn crs_res_cp(
    pci: u16,
    n_rb: usize,
    ns: u32,
    l: u32,
    normal_cp: bool,
) -> Vec<(usize, Complex32)> {
    let r = crs_cp(pci, ns, l, normal_cp);
    let v = if l == 0 { 0 } else { 3 };
    let shift = (v + usize::from(pci) % 6) % 6;
    (0..2 * n_rb)
        .map(|m| (6 * m + shift, r[m + 110 - n_rb]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_is_constant_amplitude_and_roots_are_nearly_orthogonal() {
        let p: Vec<_> = (0..3).map(pss).collect();
        for s in &p {
            assert!(s.iter().all(|v| (v.norm() - 1.0).abs() < 1e-5));
        }
        for i in 0..3 {
            for j in 0..3 {
                let c: Complex32 = p[i].iter().zip(&p[j]).map(|(a, b)| a * b.conj()).sum();
                if i == j {
                    assert!((c.norm() - 62.0).abs() < 1e-3);
                } else {
                    // Truncated, DC-punctured Zadoff-Chu: cross terms stay below 0.4 of the peak.
                    assert!(c.norm() < 62.0 * 0.4, "{i} {j} {}", c.norm());
                }
            }
        }
    }

    #[test]
    fn sss_indices_match_36_211_table() {
        // Spot values of TS 36.211 Table 6.11.2.1-1.
        assert_eq!(sss_indices(0), (0, 1));
        assert_eq!(sss_indices(29), (29, 30));
        assert_eq!(sss_indices(30), (0, 2));
        assert_eq!(sss_indices(57), (27, 29));
        let pairs: std::collections::HashSet<_> = (0..168).map(sss_indices).collect();
        assert_eq!(pairs.len(), 168);
    }

    #[test]
    fn all_504_sss_are_distinct_and_subframes_differ() {
        let mut seen = std::collections::HashSet::new();
        for n1 in 0..168u16 {
            for n2 in 0..3u8 {
                let a = sss(n1, n2, false);
                let b = sss(n1, n2, true);
                assert_ne!(a, b);
                assert!(seen.insert(a.map(|x| x > 0.0)));
            }
        }
    }
}
