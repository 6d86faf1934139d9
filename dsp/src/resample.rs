//! Frequency-domain resampling: pick a slice of a capture's spectrum around an offset and bring
//! it to the rate a search needs (1.92 MS/s for LTE sync, for example).
//!
//! One FFT of the input, a window of its bins centred on the offset, one inverse FFT at the new
//! length: an ideal low-pass, frequency shift and rate change in one step, exact when the rate
//! ratio is rational with a small denominator (every rate a radio uses).

use num_complex::Complex32;
use rustfft::FftPlanner;

use crate::DspError;

/// Smallest (p, q) with p / q = `ratio` within 1e-9, denominators up to 100 000.
fn rational(ratio: f64) -> Option<(u64, u64)> {
    for q in 1..=100_000u64 {
        let p = (ratio * q as f64).round();
        if p >= 1.0 && (p / q as f64 - ratio).abs() < 1e-9 * ratio {
            return Some((p as u64, q));
        }
    }
    None
}

/// rate_out / rate_in as (p, q), checking both rates.
fn rate_ratio(rate_in_hz: f64, rate_out_hz: f64) -> Result<(u64, u64), DspError> {
    if !(rate_in_hz > 0.0 && rate_out_hz > 0.0 && rate_in_hz.is_finite() && rate_out_hz.is_finite())
    {
        return Err(DspError::config(
            "sample rate",
            rate_in_hz,
            "rates must be positive",
        ));
    }
    rational(rate_out_hz / rate_in_hz).ok_or_else(|| {
        DspError::config(
            "sample rate",
            rate_in_hz,
            "rate ratio has no small rational form",
        )
    })
}

/// FFT plans and scratch kept from one resampling to the next: a search that resamples capture
/// after capture at the same lengths plans each FFT once and allocates nothing after its first
/// capture.
pub struct ResampleWorkspace {
    planner: FftPlanner<f32>,
    scratch: Vec<Complex32>,
}

impl Default for ResampleWorkspace {
    fn default() -> Self {
        Self {
            planner: FftPlanner::new(),
            scratch: Vec::new(),
        }
    }
}

impl std::fmt::Debug for ResampleWorkspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResampleWorkspace")
            .field("scratch_len", &self.scratch.len())
            .finish_non_exhaustive()
    }
}

impl ResampleWorkspace {
    /// Runs the planned FFT of `buf`'s length in place, forward or inverse.
    fn fft(&mut self, buf: &mut [Complex32], inverse: bool) {
        if buf.is_empty() {
            return;
        }
        let fft = if inverse {
            self.planner.plan_fft_inverse(buf.len())
        } else {
            self.planner.plan_fft_forward(buf.len())
        };
        let need = fft.get_inplace_scratch_len();
        if self.scratch.len() < need {
            self.scratch.resize(need, Complex32::default());
        }
        fft.process_with_scratch(buf, &mut self.scratch[..need]);
    }
}

/// The spectrum of one capture, ready to cut any number of resampled views from it (one FFT
/// for many candidate carriers).
#[derive(Debug, Clone, Default)]
pub struct Resampler {
    spectrum: Vec<Complex32>,
    rate_in_hz: f64,
}

impl Resampler {
    /// Transforms the whole of `x`.
    #[must_use]
    pub fn new(x: &[Complex32], rate_in_hz: f64) -> Self {
        let mut r = Self::default();
        r.load(x, rate_in_hz, &mut ResampleWorkspace::default());
        r
    }

    /// Transforms the whole of `x` in place of the capture held before, reusing its memory and
    /// `ws`'s plans.
    pub fn load(&mut self, x: &[Complex32], rate_in_hz: f64, ws: &mut ResampleWorkspace) {
        self.spectrum.clear();
        self.spectrum.extend_from_slice(x);
        self.rate_in_hz = rate_in_hz;
        ws.fft(&mut self.spectrum, false);
    }

    /// Transforms the longest prefix of `x` that gives at most `max_out` samples at
    /// `rate_out_hz` with a whole-number input length: the one FFT behind any number of
    /// [`Resampler::extract`] calls at that rate (as [`resample`] does for one).
    ///
    /// # Errors
    /// As [`resample`].
    pub fn for_output(
        x: &[Complex32],
        rate_in_hz: f64,
        rate_out_hz: f64,
        max_out: usize,
    ) -> Result<Self, DspError> {
        let (p, q) = rate_ratio(rate_in_hz, rate_out_hz)?;
        // Output length a multiple of p so that the input length (out · q / p) is whole.
        let max_out_from_input = x.len() as u64 * p / q;
        let n_out = (max_out as u64).min(max_out_from_input) / p * p;
        let n_in = (n_out * q / p) as usize;
        Ok(Self::new(&x[..n_in], rate_in_hz))
    }

    /// The view at `rate_out_hz` centred on `offset_hz`, at most `max_out` samples, using the
    /// longest prefix of the capture whose length fits the rate ratio exactly.
    ///
    /// # Errors
    /// As [`resample`].
    pub fn extract(
        &self,
        offset_hz: f64,
        rate_out_hz: f64,
        max_out: usize,
    ) -> Result<Vec<Complex32>, DspError> {
        let mut out = Vec::new();
        self.extract_into(
            offset_hz,
            rate_out_hz,
            max_out,
            &mut ResampleWorkspace::default(),
            &mut out,
        )?;
        Ok(out)
    }

    /// [`Resampler::extract`] into `out` (its memory reused), with `ws`'s plans.
    ///
    /// # Errors
    /// As [`resample`].
    pub fn extract_into(
        &self,
        offset_hz: f64,
        rate_out_hz: f64,
        max_out: usize,
        ws: &mut ResampleWorkspace,
        out: &mut Vec<Complex32>,
    ) -> Result<(), DspError> {
        let rate_in_hz = self.rate_in_hz;
        let (p, q) = rate_ratio(rate_in_hz, rate_out_hz)?;
        let len = self.spectrum.len() as u64;
        // The whole capture's spectrum is used; its length must map to a whole output length.
        if !(len * p).is_multiple_of(q) {
            return Err(DspError::config(
                "samples",
                len,
                "capture length does not map to a whole number of output samples",
            ));
        }
        let n_in = len as usize;
        let n_full = (len * p / q) as usize;
        out.clear();
        if n_full == 0 {
            return Ok(());
        }
        let shift = (offset_hz * n_in as f64 / rate_in_hz).round() as i64;
        out.resize(n_full, Complex32::default());
        let half = (n_full / 2) as i64;
        let half_in = (n_in / 2) as i64;
        for k in -half..(n_full as i64 - half) {
            let src = k + shift;
            if src < -half_in || src >= n_in as i64 - half_in {
                continue;
            }
            out[k.rem_euclid(n_full as i64) as usize] =
                self.spectrum[src.rem_euclid(n_in as i64) as usize];
        }
        ws.fft(out, true);
        let scale = 1.0 / n_in as f32;
        for v in out.iter_mut() {
            *v *= scale;
        }
        out.truncate(max_out);
        Ok(())
    }
}

/// Resamples `x` (at `rate_in_hz`) to `rate_out_hz`, centred on `offset_hz` (the input frequency
/// that becomes 0 Hz), keeping at most `max_out` output samples. Bins outside ±`rate_out_hz`/2
/// around the offset are dropped; parts of that window outside the input's span are zero.
///
/// # Errors
/// [`DspError::InvalidConfig`] for non-positive rates or a ratio with no small rational form.
pub fn resample(
    x: &[Complex32],
    rate_in_hz: f64,
    offset_hz: f64,
    rate_out_hz: f64,
    max_out: usize,
) -> Result<Vec<Complex32>, DspError> {
    Resampler::for_output(x, rate_in_hz, rate_out_hz, max_out)?.extract(
        offset_hz,
        rate_out_hz,
        usize::MAX,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::tone;

    #[test]
    fn a_tone_moves_to_its_offset_and_keeps_its_amplitude() {
        let x = tone(24_000, 2.4e6, 300e3, 0.7, 0.0);
        // Centre on 250 kHz at 1.92 MS/s: the tone lands at +50 kHz.
        let y = resample(&x, 2.4e6, 250e3, 1.92e6, 1 << 20).expect("resample");
        assert_eq!(y.len(), 19_200);
        let want = tone(y.len(), 1.92e6, 50e3, 0.7, 0.0);
        let c: Complex32 = y.iter().zip(&want).map(|(a, b)| a * b.conj()).sum();
        let norm = (y.iter().map(|v| v.norm_sqr()).sum::<f32>()
            * want.iter().map(|v| v.norm_sqr()).sum::<f32>())
        .sqrt();
        assert!(c.norm() / norm > 0.999, "{}", c.norm() / norm);
        let p = y.iter().map(|v| v.norm_sqr()).sum::<f32>() / y.len() as f32;
        assert!((p - 0.49).abs() < 0.005, "{p}");
    }

    #[test]
    fn out_of_window_signals_are_removed() {
        let x = tone(19_200 * 10, 19.2e6, 5e6, 1.0, 0.0);
        let y = resample(&x, 19.2e6, 0.0, 1.92e6, 1 << 20).expect("resample");
        let p = y.iter().map(|v| v.norm_sqr()).sum::<f32>() / y.len() as f32;
        assert!(p < 1e-6, "{p}");
    }
}
