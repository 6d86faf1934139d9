//! Spectral analysis windows and the figures that scale a PSD made with them.

use serde::{Deserialize, Serialize};

/// Window shapes. All are the periodic (DFT-even) form used for spectral analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum WindowKind {
    /// No window: best resolution, worst leakage.
    Rectangular,
    /// Hann: the default, as in rtl_power and scipy.
    #[default]
    Hann,
    /// Hamming.
    Hamming,
    /// 4-term Blackman-Harris: −92 dB sidelobes, for strong-next-to-weak scenes.
    BlackmanHarris,
    /// Flat-top: amplitude-accurate tones, wide main lobe.
    FlatTop,
}

impl WindowKind {
    fn cosine_terms(self) -> &'static [f64] {
        match self {
            Self::Rectangular => &[1.0],
            Self::Hann => &[0.5, 0.5],
            Self::Hamming => &[0.54, 0.46],
            Self::BlackmanHarris => &[0.35875, 0.48829, 0.14128, 0.01168],
            Self::FlatTop => &[
                0.215_578_95,
                0.416_631_58,
                0.277_263_158,
                0.083_578_947,
                0.006_947_368,
            ],
        }
    }
}

/// A window of fixed length with its sums precomputed.
#[derive(Debug, Clone)]
pub struct Window {
    kind: WindowKind,
    coeffs: Vec<f32>,
    sum: f64,
    sum_sq: f64,
}

impl Window {
    /// Builds a window of `len` points.
    ///
    /// # Panics
    /// Never for `len >= 1`; `len == 0` gives an empty window whose sums are zero.
    #[must_use]
    pub fn new(kind: WindowKind, len: usize) -> Self {
        let terms = kind.cosine_terms();
        let coeffs: Vec<f32> = (0..len)
            .map(|n| {
                let x = 2.0 * std::f64::consts::PI * n as f64 / len as f64;
                terms
                    .iter()
                    .enumerate()
                    .map(|(k, a)| {
                        let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
                        sign * a * (k as f64 * x).cos()
                    })
                    .sum::<f64>() as f32
            })
            .collect();
        let sum = coeffs.iter().map(|&w| f64::from(w)).sum();
        let sum_sq = coeffs.iter().map(|&w| f64::from(w) * f64::from(w)).sum();
        Self {
            kind,
            coeffs,
            sum,
            sum_sq,
        }
    }

    /// The window shape.
    #[must_use]
    pub fn kind(&self) -> WindowKind {
        self.kind
    }

    /// The coefficients.
    #[must_use]
    pub fn coeffs(&self) -> &[f32] {
        &self.coeffs
    }

    /// Σ w[n].
    #[must_use]
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Σ w[n]².
    #[must_use]
    pub fn sum_sq(&self) -> f64 {
        self.sum_sq
    }

    /// Equivalent noise bandwidth in bins: N Σw² / (Σw)². 1.5 for Hann.
    #[must_use]
    pub fn enbw_bins(&self) -> f64 {
        self.coeffs.len() as f64 * self.sum_sq / (self.sum * self.sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hann_enbw_is_one_and_a_half_bins() {
        let w = Window::new(WindowKind::Hann, 1024);
        assert!((w.enbw_bins() - 1.5).abs() < 1e-6, "{}", w.enbw_bins());
        assert!((w.sum() - 512.0).abs() < 1e-3);
    }

    #[test]
    fn rectangular_enbw_is_one_bin() {
        let w = Window::new(WindowKind::Rectangular, 256);
        assert!((w.enbw_bins() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn blackman_harris_enbw_matches_published_figure() {
        // Harris (1978): 2.00 bins for the 4-term −92 dB window.
        let w = Window::new(WindowKind::BlackmanHarris, 4096);
        assert!((w.enbw_bins() - 2.0).abs() < 0.01, "{}", w.enbw_bins());
    }
}
