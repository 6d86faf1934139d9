//! NR synchronisation signal block: PSS, SSS and PBCH DM-RS (TS 38.211 §7.4.2, §7.4.1.4, §7.4.3).

use num_complex::Complex32;

/// Subcarriers in an SS/PBCH block.
pub const SSB_SUBCARRIERS: usize = 240;
/// First SSB subcarrier of the PSS and SSS (they occupy 56..=182).
pub const SYNC_FIRST_SC: usize = 56;

fn m_sequence(taps: (usize, usize), init: [u8; 7]) -> [u8; 127] {
    let mut x = [0u8; 127];
    x[..7].copy_from_slice(&init);
    for i in 0..120 {
        x[i + 7] = (x[i + taps.0] + x[i + taps.1]) & 1;
    }
    x
}

/// The 127-element BPSK PSS for N_ID^(2) (0–2).
#[must_use]
pub fn pss(n_id_2: u8) -> [f32; 127] {
    let x = m_sequence((4, 0), [0, 1, 1, 0, 1, 1, 1]);
    let mut d = [0f32; 127];
    for (n, v) in d.iter_mut().enumerate() {
        let m = (n + 43 * usize::from(n_id_2)) % 127;
        *v = 1.0 - 2.0 * f32::from(x[m]);
    }
    d
}

/// The 127-element BPSK SSS for N_ID^(1) (0–335) and N_ID^(2) (0–2).
#[must_use]
pub fn sss(n_id_1: u16, n_id_2: u8) -> [f32; 127] {
    let x0 = m_sequence((4, 0), [1, 0, 0, 0, 0, 0, 0]);
    let x1 = m_sequence((1, 0), [1, 0, 0, 0, 0, 0, 0]);
    let n1 = usize::from(n_id_1);
    let m0 = 15 * (n1 / 112) + 5 * usize::from(n_id_2);
    let m1 = n1 % 112;
    let mut d = [0f32; 127];
    for (n, v) in d.iter_mut().enumerate() {
        let a = 1.0 - 2.0 * f32::from(x0[(n + m0) % 127]);
        let b = 1.0 - 2.0 * f32::from(x1[(n + m1) % 127]);
        *v = a * b;
    }
    d
}

/// PBCH DM-RS (144 QPSK symbols) for a PCI and i_SSB (the SSB index bits, plus half-frame bit
/// for L = 4), TS 38.211 §7.4.1.4.1.
#[must_use]
pub fn pbch_dmrs(pci: u16, i_ssb: u8) -> Vec<Complex32> {
    let n = u32::from(pci);
    let i = u32::from(i_ssb);
    let c_init = (1 << 11) * (i + 1) * (n / 4 + 1) + (1 << 6) * (i + 1) + (n % 4);
    super::qpsk_from_bits(&super::gold(c_init, 288))
}

/// Positions (SSB symbol 1–3, subcarrier 0–239) of the 144 PBCH DM-RS, in the order of
/// [`pbch_dmrs`]: symbol 1, then the two edges of symbol 2, then symbol 3.
#[must_use]
pub fn pbch_dmrs_positions(pci: u16) -> Vec<(usize, usize)> {
    let v = usize::from(pci) % 4;
    let mut out = Vec::with_capacity(144);
    out.extend((0..60).map(|m| (1, 4 * m + v)));
    out.extend((0..12).map(|m| (2, 4 * m + v)));
    out.extend((0..12).map(|m| (2, 192 + 4 * m + v)));
    out.extend((0..60).map(|m| (3, 4 * m + v)));
    out
}

/// PCI from its two parts.
#[must_use]
pub fn pci(n_id_1: u16, n_id_2: u8) -> u16 {
    3 * n_id_1 + u16::from(n_id_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pss_shifts_are_distinct_and_balanced() {
        for n2 in 0..3 {
            let p = pss(n2);
            let sum: f32 = p.iter().sum();
            assert!(sum.abs() <= 1.0 + 1e-6, "m-sequence balance {sum}");
        }
        let cross: f32 = pss(0).iter().zip(pss(1).iter()).map(|(a, b)| a * b).sum();
        assert!(cross.abs() <= 1.0 + 1e-6, "{cross}");
    }

    #[test]
    fn all_1008_sss_are_distinct() {
        let mut seen = std::collections::HashSet::new();
        for n1 in 0..336u16 {
            for n2 in 0..3u8 {
                assert!(seen.insert(sss(n1, n2).map(|x| x > 0.0)), "{n1} {n2}");
            }
        }
    }

    #[test]
    fn dmrs_positions_cover_144_distinct_res() {
        let p = pbch_dmrs_positions(579);
        let set: std::collections::HashSet<_> = p.iter().collect();
        assert_eq!(set.len(), 144);
        assert!(p.iter().all(|&(_, k)| k < SSB_SUBCARRIERS));
    }
}
