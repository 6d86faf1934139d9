//! GSM synchronisation channel: the SCH burst that follows each FCCH burst one TDMA frame later
//! and carries the cell's BSIC and the frame number.
//!
//! From the 3GPP definitions: the burst (TS 45.002 §5.2.5) is 3 tail bits, 39 coded bits, the
//! 64-bit extended training sequence, 39 coded bits and 3 tail bits. The 25 information bits
//! (TS 44.018 §9.1.30: BSIC, T1, T2, T3') get 10 parity bits of the cyclic code
//! g(D) = D¹⁰ + D⁸ + D⁶ + D⁵ + D⁴ + D² + 1, sent inverted, and four zero tail bits, and the 39
//! are coded at rate ½ with G0 = 1 + D³ + D⁴ and G1 = 1 + D + D³ + D⁴ (TS 45.003 §4.7).
//!
//! Reception works on the carrier shifted down by a quarter of the symbol rate: there GSM's
//! differentially encoded GMSK is close to BPSK of the bits themselves (0 → +1), blurred over
//! three symbols by the Gaussian filter. The training sequence gives timing and a three-tap
//! channel; a four-state Viterbi equaliser decides the symbols, whose soft values (the sample
//! with its neighbours' interference removed) feed a Viterbi decoder of the convolutional code;
//! the parity check decides.

use num_complex::Complex32;
use serde::Serialize;

/// The extended training sequence of the SCH.
pub const SYNC_BITS: [u8; 64] = [
    1, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1,
    0, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0, 1, 1,
];
/// Bits of the burst.
pub const BURST_BITS: usize = 148;
/// First bit of the training sequence in the burst.
pub const SYNC_AT: usize = 42;
/// First coded bit of each half.
const HALVES: [usize; 2] = [3, 106];
/// Information, parity and tail bits.
const INFO: usize = 25;
const PARITY: usize = 10;
const CODED_IN: usize = INFO + PARITY + 4;
/// g(D), highest power first.
const GENERATOR: [u8; PARITY + 1] = [1, 0, 1, 0, 1, 1, 1, 0, 1, 0, 1];

/// What the SCH says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SchInfo {
    /// Base station identity code, NCC · 8 + BCC.
    pub bsic: u8,
    /// T1: frame number div (26 × 51), modulo 2048.
    pub t1: u16,
    /// T2: frame number mod 26.
    pub t2: u8,
    /// T3': (frame number mod 51 − 1) / 10.
    pub t3p: u8,
}

/// Which field and bit each information bit carries (TS 44.018 §9.1.30 as TS 45.003 orders
/// them for coding).
#[derive(Clone, Copy)]
enum Field {
    Ncc,
    Bcc,
    T1,
    T2,
    T3p,
}
const LAYOUT: [(Field, u8); INFO] = [
    (Field::T1, 9),
    (Field::T1, 10),
    (Field::Bcc, 0),
    (Field::Bcc, 1),
    (Field::Bcc, 2),
    (Field::Ncc, 0),
    (Field::Ncc, 1),
    (Field::Ncc, 2),
    (Field::T1, 1),
    (Field::T1, 2),
    (Field::T1, 3),
    (Field::T1, 4),
    (Field::T1, 5),
    (Field::T1, 6),
    (Field::T1, 7),
    (Field::T1, 8),
    (Field::T3p, 1),
    (Field::T3p, 2),
    (Field::T2, 0),
    (Field::T2, 1),
    (Field::T2, 2),
    (Field::T2, 3),
    (Field::T2, 4),
    (Field::T1, 0),
    (Field::T3p, 0),
];

impl SchInfo {
    /// The SCH of TDMA frame `fn_` (an SCH frame: 1, 11, 21, 31 or 41 of the 51-multiframe).
    #[must_use]
    pub fn for_frame(bsic: u8, fn_: u32) -> Self {
        let t3 = fn_ % 51;
        Self {
            bsic: bsic & 63,
            t1: ((fn_ / (26 * 51)) % 2048) as u16,
            t2: (fn_ % 26) as u8,
            t3p: (t3.saturating_sub(1) / 10) as u8,
        }
    }

    /// Network colour code.
    #[must_use]
    pub fn ncc(&self) -> u8 {
        self.bsic >> 3
    }

    /// Base station colour code.
    #[must_use]
    pub fn bcc(&self) -> u8 {
        self.bsic & 7
    }

    fn field(&self, f: Field) -> u16 {
        match f {
            Field::Ncc => u16::from(self.ncc()),
            Field::Bcc => u16::from(self.bcc()),
            Field::T1 => self.t1,
            Field::T2 => u16::from(self.t2),
            Field::T3p => u16::from(self.t3p),
        }
    }

    fn to_bits(self) -> [u8; INFO] {
        LAYOUT.map(|(f, b)| ((self.field(f) >> b) & 1) as u8)
    }

    fn from_bits(d: &[u8]) -> Self {
        let mut v = [0u16; 5];
        for (&bit, &(f, b)) in d.iter().zip(&LAYOUT) {
            v[f as usize] |= u16::from(bit & 1) << b;
        }
        Self {
            bsic: ((v[Field::Ncc as usize] << 3) | v[Field::Bcc as usize]) as u8,
            t1: v[Field::T1 as usize],
            t2: v[Field::T2 as usize] as u8,
            t3p: v[Field::T3p as usize] as u8,
        }
    }
}

/// Remainder of d(D) · D¹⁰ divided by g(D) (d₀ the highest power).
fn remainder(d: &[u8]) -> [u8; PARITY] {
    let mut buf = [0u8; INFO + PARITY];
    buf[..d.len()].copy_from_slice(d);
    for i in 0..INFO {
        if buf[i] == 1 {
            for (j, g) in GENERATOR.iter().enumerate() {
                buf[i + j] ^= g;
            }
        }
    }
    let mut r = [0u8; PARITY];
    r.copy_from_slice(&buf[INFO..]);
    r
}

/// The ten parity bits of 25 information bits, as sent (inverted).
#[must_use]
pub fn parity(d: &[u8; INFO]) -> [u8; PARITY] {
    remainder(d).map(|b| b ^ 1)
}

/// Rate-½ convolutional code of the SCH: two coded bits per input bit, starting from zeros.
#[must_use]
pub fn conv_encode(u: &[u8]) -> Vec<u8> {
    let bit = |k: usize, back: usize| if k >= back { u[k - back] } else { 0 };
    (0..u.len())
        .flat_map(|k| {
            let c0 = bit(k, 0) ^ bit(k, 3) ^ bit(k, 4);
            let c1 = bit(k, 0) ^ bit(k, 1) ^ bit(k, 3) ^ bit(k, 4);
            [c0, c1]
        })
        .collect()
}

/// Soft-decision Viterbi decoding of [`conv_encode`]: `soft` holds one value per coded bit,
/// positive for 0. Starts and ends in the zero state (the four tail bits); returns the input
/// bits and how many coded bits' signs disagree with the decoded sequence re-encoded.
#[must_use]
pub fn conv_decode(soft: &[f32]) -> (Vec<u8>, usize) {
    let n = soft.len() / 2;
    // State: the last four inputs, newest in bit 0.
    let mut metric = [f32::NEG_INFINITY; 16];
    metric[0] = 0.0;
    let mut from: Vec<[u8; 16]> = Vec::with_capacity(n);
    for k in 0..n {
        let (r0, r1) = (soft[2 * k], soft[2 * k + 1]);
        let mut next = [f32::NEG_INFINITY; 16];
        let mut prev = [0u8; 16];
        for (s, &m) in metric.iter().enumerate() {
            if m == f32::NEG_INFINITY {
                continue;
            }
            let (u1, u3, u4) = (s & 1, (s >> 2) & 1, (s >> 3) & 1);
            for u in 0..2usize {
                let c0 = u ^ u3 ^ u4;
                let c1 = u ^ u1 ^ u3 ^ u4;
                let sign = |c: usize| if c == 0 { 1.0 } else { -1.0 };
                let cand = m + sign(c0) * r0 + sign(c1) * r1;
                let ns = ((s << 1) | u) & 15;
                if cand > next[ns] {
                    next[ns] = cand;
                    prev[ns] = s as u8;
                }
            }
        }
        metric = next;
        from.push(prev);
    }
    let mut bits = vec![0u8; n];
    let mut s = 0usize;
    for k in (0..n).rev() {
        bits[k] = (s & 1) as u8;
        s = usize::from(from[k][s]);
    }
    let recoded = conv_encode(&bits);
    let disagree = recoded
        .iter()
        .zip(soft)
        .filter(|&(&c, &r)| (c == 0) != (r > 0.0))
        .count();
    (bits, disagree)
}

/// The 148 bits of the SCH burst carrying `info`.
#[must_use]
pub fn burst_bits(info: &SchInfo) -> [u8; BURST_BITS] {
    let d = info.to_bits();
    let mut u = [0u8; CODED_IN];
    u[..INFO].copy_from_slice(&d);
    u[INFO..INFO + PARITY].copy_from_slice(&parity(&d));
    let c = conv_encode(&u);
    let mut b = [0u8; BURST_BITS];
    b[HALVES[0]..HALVES[0] + 39].copy_from_slice(&c[..39]);
    b[SYNC_AT..SYNC_AT + 64].copy_from_slice(&SYNC_BITS);
    b[HALVES[1]..HALVES[1] + 39].copy_from_slice(&c[39..]);
    b
}

/// A decoded SCH.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SchDecode {
    /// The content.
    pub info: SchInfo,
    /// Coded bits whose received sign the decoded word contradicts (of 78).
    pub coded_errors: usize,
    /// Training-sequence correlation, normalised (1 = noiseless).
    pub sync_quality: f64,
}

/// Most coded bits the decoded word may contradict: beyond this the word is not trusted even
/// when its parity checks (the code corrects about four in a burst; chance words contradict
/// half of the 78).
const MAX_CODED_ERRORS: usize = 12;

/// Decodes the information bits from soft values of the 148 burst bits (positive for 0).
#[must_use]
pub fn decode_soft_burst(soft: &[f32; BURST_BITS]) -> Option<(SchInfo, usize)> {
    let mut c = Vec::with_capacity(78);
    for h in HALVES {
        c.extend_from_slice(&soft[h..h + 39]);
    }
    let (u, errors) = conv_decode(&c);
    let d = &u[..INFO];
    let mut sent = [0u8; INFO];
    sent.copy_from_slice(d);
    let ok = u[INFO..INFO + PARITY] == parity(&sent) && u[INFO + PARITY..].iter().all(|&b| b == 0);
    (ok && errors <= MAX_CODED_ERRORS).then(|| (SchInfo::from_bits(d), errors))
}

/// Decodes an SCH from `y`: the carrier at four samples per symbol, shifted down by a quarter
/// of the symbol rate (its FCCH at 0 Hz), with the burst's first bit near sample
/// `expected_start`, searched ± `search` samples.
#[must_use]
pub fn decode_sch(y: &[Complex32], expected_start: usize, search: usize) -> Option<SchDecode> {
    const SPS: usize = 4;
    let refs: Vec<f32> = SYNC_BITS
        .iter()
        .map(|&b| 1.0 - 2.0 * f32::from(b))
        .collect();
    let first = expected_start.saturating_sub(search);
    let last = (expected_start + search).min(y.len().checked_sub(BURST_BITS * SPS + SPS)?);
    // Timing: the training sequence's correlation at symbol spacing.
    let (start, quality) = (first..=last)
        .map(|t| {
            let at = |k: usize| y[t + (SYNC_AT + k) * SPS];
            let c: Complex32 = refs.iter().enumerate().map(|(k, r)| at(k) * r).sum();
            let e: f32 = (0..64).map(|k| at(k).norm_sqr()).sum();
            (t, f64::from(c.norm_sqr() / (64.0 * e).max(1e-30)))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))?;
    let z: Vec<Complex32> = (0..BURST_BITS).map(|n| y[start + n * SPS]).collect();
    // Three taps (next, this, previous symbol) by least squares over the training sequence's
    // interior, where all three symbols are known.
    let s = |n: usize| refs[n - SYNC_AT];
    let mut ata = [[0f32; 3]; 3];
    let mut atz = [Complex32::default(); 3];
    for (n, &zn) in z.iter().enumerate().take(SYNC_AT + 63).skip(SYNC_AT + 1) {
        let a = [s(n + 1), s(n), s(n - 1)];
        for (row, &ai) in ata.iter_mut().zip(&a) {
            for (v, &aj) in row.iter_mut().zip(&a) {
                *v += ai * aj;
            }
        }
        for (v, &ai) in atz.iter_mut().zip(&a) {
            *v += zn * ai;
        }
    }
    let h = solve3(ata, atz)?;
    // Known symbols: tails and training sequence (0 → +1).
    let known = |n: usize| -> Option<f32> {
        if n < HALVES[0] || n >= HALVES[1] + 39 {
            Some(1.0)
        } else if (SYNC_AT..SYNC_AT + 64).contains(&n) {
            Some(refs[n - SYNC_AT])
        } else {
            None
        }
    };
    let decided = equalise(&z, h, known);
    // Soft values: each sample with its neighbours' part removed, projected on the main tap.
    let mut soft = [0f32; BURST_BITS];
    let h0 = h[1];
    for n in 0..BURST_BITS {
        let next = if n + 1 < BURST_BITS {
            decided[n + 1]
        } else {
            1.0
        };
        let prev = if n > 0 { decided[n - 1] } else { 1.0 };
        let r = z[n] - h[0] * next - h[2] * prev;
        soft[n] = (r * h0.conj()).re / h0.norm_sqr().max(1e-30);
    }
    let (info, coded_errors) = decode_soft_burst(&soft)?;
    Some(SchDecode {
        info,
        coded_errors,
        sync_quality: quality,
    })
}

/// Solves the real 3×3 system `a` · h = `b` (complex right side) by Cramer's rule.
fn solve3(a: [[f32; 3]; 3], b: [Complex32; 3]) -> Option<[Complex32; 3]> {
    let det = |m: [[f32; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
            - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det(a);
    if d.abs() < 1e-6 {
        return None;
    }
    let col = |i: usize, part: fn(Complex32) -> f32| {
        let mut m = a;
        for r in 0..3 {
            m[r][i] = part(b[r]);
        }
        det(m) / d
    };
    Some(std::array::from_fn(|i| {
        Complex32::new(col(i, |c| c.re), col(i, |c| c.im))
    }))
}

/// Maximum-likelihood symbols (±1) of `z[n] ≈ h[0]·s[n+1] + h[1]·s[n] + h[2]·s[n−1]`, with the
/// symbols `known` returns fixed, by a Viterbi search over (s[n−1], s[n]).
fn equalise(z: &[Complex32], h: [Complex32; 3], known: impl Fn(usize) -> Option<f32>) -> Vec<f32> {
    let n = z.len();
    let sym = |bit: usize| if bit == 0 { 1.0f32 } else { -1.0 };
    let allowed = |i: usize, bit: usize| known(i).is_none_or(|k| k == sym(bit));
    // State after step i: (s[i−1], s[i]) as bits (prev << 1 | cur); s[−1] = +1 (guard).
    let mut metric = [f32::INFINITY; 4];
    for (cur, m) in metric.iter_mut().enumerate().take(2) {
        if allowed(0, cur) {
            *m = 0.0;
        }
    }
    let mut from: Vec<[u8; 4]> = Vec::with_capacity(n);
    for (i, &zi) in z.iter().enumerate() {
        // Emit z[i], which needs s[i+1] (taken as +1 past the end).
        let mut next = [f32::INFINITY; 4];
        let mut prev = [0u8; 4];
        for (st, &m) in metric.iter().enumerate() {
            if !m.is_finite() {
                continue;
            }
            let (p, c) = (st >> 1, st & 1);
            for nb in 0..2 {
                if i + 1 < n && !allowed(i + 1, nb) || i + 1 >= n && nb != 0 {
                    continue;
                }
                let model = h[0] * sym(nb) + h[1] * sym(c) + h[2] * sym(p);
                let cand = m + (zi - model).norm_sqr();
                let ns = (c << 1) | nb;
                if cand < next[ns] {
                    next[ns] = cand;
                    prev[ns] = st as u8;
                }
            }
        }
        metric = next;
        from.push(prev);
    }
    // Best end state, then back: state after step i holds s[i] in its high bit.
    let mut st = (0..4)
        .min_by(|&a, &b| metric[a].total_cmp(&metric[b]))
        .unwrap_or(0);
    let mut out = vec![1.0f32; n];
    for i in (0..n).rev() {
        out[i] = sym(st >> 1);
        st = usize::from(from[i][st]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn information_bits_round_trip_through_the_layout() {
        for (bsic, fn_) in [(0u8, 1u32), (63, 2_715_647), (0o53, 1_000_041)] {
            let info = SchInfo::for_frame(bsic, fn_);
            assert_eq!(SchInfo::from_bits(&info.to_bits()), info);
            assert_eq!(info.ncc() * 8 + info.bcc(), bsic);
        }
    }

    #[test]
    fn parity_of_a_valid_word_leaves_the_all_ones_remainder() {
        // A codeword d · D¹⁰ + p with p the remainder divides by g(D); sent inverted, the
        // check of d and the sent parity leaves all ones (the receiver's test).
        let d = SchInfo::for_frame(0o27, 123_457).to_bits();
        let p = parity(&d);
        let mut word = [0u8; INFO + PARITY];
        word[..INFO].copy_from_slice(&d);
        word[INFO..].copy_from_slice(&p);
        let mut buf = word;
        for i in 0..INFO {
            if buf[i] == 1 {
                for (j, g) in GENERATOR.iter().enumerate() {
                    buf[i + j] ^= g;
                }
            }
        }
        assert_eq!(&buf[INFO..], &[1u8; PARITY]);
        // One flipped information bit breaks it.
        let mut bad = d;
        bad[3] ^= 1;
        assert_ne!(parity(&bad), p);
    }

    #[test]
    fn the_code_corrects_scattered_errors_and_its_tail_ends_at_zero() {
        let info = SchInfo::for_frame(0o35, 777_011);
        let b = burst_bits(&info);
        let mut soft: [f32; BURST_BITS] = b.map(|x| 1.0 - 2.0 * f32::from(x));
        assert_eq!(decode_soft_burst(&soft), Some((info, 0)));
        // Four coded bits wrong, spread out: corrected, and counted.
        for &i in &[5usize, 20, 110, 140] {
            soft[i] = -soft[i];
        }
        assert_eq!(decode_soft_burst(&soft), Some((info, 4)));
        // Noise gives no word (parity and the error count both guard).
        let mut r = crate::synth::rng(3);
        let mut misses = 0;
        for _ in 0..2000 {
            let noise: [f32; BURST_BITS] =
                std::array::from_fn(|_| crate::synth::complex_gaussian(&mut r, 1.0).re);
            misses += usize::from(decode_soft_burst(&noise).is_none());
        }
        assert_eq!(misses, 2000);
    }
}
