//! Streaming Welch power spectral density, and the spectrum operations that follow it:
//! DC-spike suppression, edge crop and stitching of hops into one band spectrum.
//!
//! Scaling: a frame holds a one-sided-free (complex baseband) density in full-scale units per
//! hertz, `|X[k]|² / (fs Σw²)` averaged over segments, so that the sum of density × bin width is
//! the mean power of the input (Parseval) and a full-scale complex tone reads 0 dBFS in total.

use std::sync::Arc;

use num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};

use crate::window::{Window, WindowKind};
use crate::{DspError, to_db};

/// How many segments make one output frame.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Averaging {
    /// A fixed number of FFT segments per frame.
    Segments(usize),
    /// As many segments as fit in this many seconds of input (at least one).
    Seconds(f64),
}

/// Configuration of a [`Welch`] stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WelchConfig {
    /// FFT size: a power of two from 256 to 65536.
    pub fft_size: usize,
    /// Fraction of each segment shared with the next, 0 ≤ overlap < 1.
    pub overlap: f64,
    /// Window shape.
    pub window: WindowKind,
    /// Segments per output frame.
    pub averaging: Averaging,
    /// Sample rate of the input in hertz.
    pub sample_rate_hz: f64,
    /// Tuned centre frequency (0 for baseband), carried into frames.
    pub center_hz: f64,
}

impl WelchConfig {
    /// A Hann-windowed, 50 %-overlap configuration averaging `segments` segments.
    #[must_use]
    pub fn new(fft_size: usize, sample_rate_hz: f64, center_hz: f64, segments: usize) -> Self {
        Self {
            fft_size,
            overlap: 0.5,
            window: WindowKind::Hann,
            averaging: Averaging::Segments(segments),
            sample_rate_hz,
            center_hz,
        }
    }

    /// Samples between the starts of consecutive segments.
    #[must_use]
    pub fn hop(&self) -> usize {
        let shared = (self.fft_size as f64 * self.overlap).round() as usize;
        (self.fft_size - shared.min(self.fft_size - 1)).max(1)
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`DspError::InvalidConfig`] naming the first bad field.
    pub fn validate(&self) -> Result<(), DspError> {
        if !(256..=65536).contains(&self.fft_size) || !self.fft_size.is_power_of_two() {
            return Err(DspError::config(
                "fft_size",
                self.fft_size,
                "must be a power of two from 256 to 65536",
            ));
        }
        if !(0.0..1.0).contains(&self.overlap) {
            return Err(DspError::config(
                "overlap",
                self.overlap,
                "must be at least 0 and below 1",
            ));
        }
        if !(self.sample_rate_hz.is_finite() && self.sample_rate_hz > 0.0) {
            return Err(DspError::config(
                "sample_rate_hz",
                self.sample_rate_hz,
                "must be a positive number",
            ));
        }
        if !self.center_hz.is_finite() {
            return Err(DspError::config(
                "center_hz",
                self.center_hz,
                "must be finite",
            ));
        }
        match self.averaging {
            Averaging::Segments(0) => Err(DspError::config(
                "averaging",
                0,
                "at least one segment per frame",
            )),
            Averaging::Seconds(s) if !(s.is_finite() && s > 0.0) => Err(DspError::config(
                "averaging",
                s,
                "seconds must be a positive number",
            )),
            _ => Ok(()),
        }
    }

    /// Segments per frame once the averaging time is turned into a count.
    #[must_use]
    pub fn segments_per_frame(&self) -> usize {
        match self.averaging {
            Averaging::Segments(n) => n.max(1),
            Averaging::Seconds(s) => {
                let samples = s * self.sample_rate_hz;
                if samples < self.fft_size as f64 {
                    1
                } else {
                    ((samples - self.fft_size as f64) / self.hop() as f64).floor() as usize + 1
                }
            }
        }
    }
}

/// One averaged spectrum of one tuning, bins in ascending frequency (DC in the middle).
#[derive(Debug, Clone, PartialEq)]
pub struct PsdFrame {
    /// Tuned centre frequency in hertz.
    pub center_hz: f64,
    /// Sample rate in hertz; the frame spans `center_hz ± sample_rate_hz / 2`.
    pub sample_rate_hz: f64,
    /// Power density per bin, full-scale units per hertz (linear).
    pub density: Vec<f32>,
    /// Segments averaged into this frame.
    pub segments: usize,
    /// Index (in input samples since the stage started) of the first sample of this frame.
    pub first_sample: u64,
    /// Equivalent noise bandwidth of one bin in hertz.
    pub rbw_hz: f64,
}

impl PsdFrame {
    /// Bin spacing in hertz.
    #[must_use]
    pub fn bin_hz(&self) -> f64 {
        self.sample_rate_hz / self.density.len() as f64
    }

    /// Absolute frequency of bin `i`'s centre.
    #[must_use]
    pub fn freq_of(&self, i: usize) -> f64 {
        let n = self.density.len() as f64;
        self.center_hz + (i as f64 - n / 2.0) * self.bin_hz()
    }

    /// The bin whose centre is nearest to `freq_hz`, if inside the frame.
    #[must_use]
    pub fn bin_of(&self, freq_hz: f64) -> Option<usize> {
        let n = self.density.len() as f64;
        let i = ((freq_hz - self.center_hz) / self.bin_hz() + n / 2.0).round();
        (i >= 0.0 && i < n).then_some(i as usize)
    }

    /// Total power in full-scale units (Σ density × bin width).
    #[must_use]
    pub fn total_power(&self) -> f64 {
        self.density.iter().map(|&d| f64::from(d)).sum::<f64>() * self.bin_hz()
    }

    /// The frame as a standalone spectrum.
    #[must_use]
    pub fn to_spectrum(&self) -> Spectrum {
        Spectrum {
            start_hz: self.freq_of(0),
            bin_hz: self.bin_hz(),
            density: self.density.clone(),
            rbw_hz: self.rbw_hz,
        }
    }
}

/// A spectrum over an arbitrary span: one frame, a cropped frame, or several hops stitched.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum {
    /// Centre frequency of bin 0 in hertz.
    pub start_hz: f64,
    /// Bin spacing in hertz.
    pub bin_hz: f64,
    /// Power density per bin (linear units per hertz; full scale or milliwatts).
    pub density: Vec<f32>,
    /// Equivalent noise bandwidth of one bin in hertz.
    pub rbw_hz: f64,
}

impl Spectrum {
    /// Centre frequency of bin `i`.
    #[must_use]
    pub fn freq_of(&self, i: usize) -> f64 {
        self.start_hz + i as f64 * self.bin_hz
    }

    /// The bin nearest to `freq_hz`, if inside.
    #[must_use]
    pub fn bin_of(&self, freq_hz: f64) -> Option<usize> {
        let i = ((freq_hz - self.start_hz) / self.bin_hz).round();
        (i >= 0.0 && (i as usize) < self.density.len()).then_some(i as usize)
    }

    /// Lowest and highest frequency covered (bin edges).
    #[must_use]
    pub fn span_hz(&self) -> (f64, f64) {
        (
            self.start_hz - self.bin_hz / 2.0,
            self.start_hz + (self.density.len() as f64 - 0.5) * self.bin_hz,
        )
    }

    /// Total power (Σ density × bin width).
    #[must_use]
    pub fn total_power(&self) -> f64 {
        self.density.iter().map(|&d| f64::from(d)).sum::<f64>() * self.bin_hz
    }

    /// Density of each bin in dB (dBFS/Hz or dBm/Hz, as the units of the spectrum).
    #[must_use]
    pub fn density_db(&self) -> Vec<f32> {
        self.density
            .iter()
            .map(|&d| to_db(f64::from(d)) as f32)
            .collect()
    }

    /// Replaces the `half_width` bins either side of `dc_hz` (and the DC bin) with the mean of
    /// the `half_width` bins just outside them: removes the LO leakage spike of direct-conversion
    /// radios without creating a hole that a detector would read as a gap.
    pub fn suppress_dc(&mut self, dc_hz: f64, half_width: usize) {
        let Some(dc) = self.bin_of(dc_hz) else { return };
        let n = self.density.len();
        let lo = dc.saturating_sub(half_width);
        let hi = (dc + half_width).min(n - 1);
        let left = lo.saturating_sub(half_width.max(1))..lo;
        let right = (hi + 1)..(hi + 1 + half_width.max(1)).min(n);
        let (sum, count) = left.chain(right).fold((0.0f64, 0usize), |(s, c), i| {
            (s + f64::from(self.density[i]), c + 1)
        });
        if count == 0 {
            return;
        }
        let fill = (sum / count as f64) as f32;
        self.density[lo..=hi].fill(fill);
    }

    /// Keeps only the middle of the spectrum, dropping `fraction` of the bins at each edge
    /// (where the radio's anti-alias filter rolls off).
    ///
    /// # Panics
    /// Never: a fraction of 0.5 or more is clamped so that at least one bin remains.
    pub fn crop_edges(&mut self, fraction: f64) {
        let n = self.density.len();
        let drop = ((n as f64 * fraction.clamp(0.0, 0.5)).floor() as usize).min((n - 1) / 2);
        if drop == 0 {
            return;
        }
        self.density.drain(n - drop..);
        self.density.drain(..drop);
        self.start_hz += drop as f64 * self.bin_hz;
    }

    /// The part of the spectrum between two frequencies, if any bin lies inside.
    #[must_use]
    pub fn slice_hz(&self, lo_hz: f64, hi_hz: f64) -> Option<Spectrum> {
        let first = ((lo_hz - self.start_hz) / self.bin_hz).ceil().max(0.0) as usize;
        let last = ((hi_hz - self.start_hz) / self.bin_hz).floor();
        if last < 0.0 {
            return None;
        }
        let last = (last as usize).min(self.density.len().checked_sub(1)?);
        (first <= last).then(|| Spectrum {
            start_hz: self.freq_of(first),
            bin_hz: self.bin_hz,
            density: self.density[first..=last].to_vec(),
            rbw_hz: self.rbw_hz,
        })
    }

    /// Stitches hop spectra into one spectrum on the grid of the finest hop, from the lowest to
    /// the highest covered frequency. Where hops overlap, each output bin takes the hop whose
    /// centre is nearest (the flattest part of its filter); bins that no hop covers are NaN.
    ///
    /// Returns `None` for an empty list.
    #[must_use]
    pub fn stitch(hops: &[Spectrum]) -> Option<Spectrum> {
        let bin_hz = hops.iter().map(|h| h.bin_hz).fold(f64::INFINITY, f64::min);
        if !bin_hz.is_finite() {
            return None;
        }
        let lo = hops
            .iter()
            .map(|h| h.span_hz().0)
            .fold(f64::INFINITY, f64::min);
        let hi = hops
            .iter()
            .map(|h| h.span_hz().1)
            .fold(f64::NEG_INFINITY, f64::max);
        let n = ((hi - lo) / bin_hz).round().max(1.0) as usize;
        let start_hz = lo + bin_hz / 2.0;
        let mut density = vec![f32::NAN; n];
        let mut best = vec![f64::INFINITY; n];
        for hop in hops {
            let (hlo, hhi) = hop.span_hz();
            let mid = (hlo + hhi) / 2.0;
            for (i, (d, b)) in density.iter_mut().zip(best.iter_mut()).enumerate() {
                let f = start_hz + i as f64 * bin_hz;
                if f < hlo || f >= hhi {
                    continue;
                }
                let dist = (f - mid).abs();
                if dist < *b
                    && let Some(j) = hop.bin_of(f)
                {
                    *b = dist;
                    *d = hop.density[j];
                }
            }
        }
        let rbw_hz = hops.iter().map(|h| h.rbw_hz).fold(0.0, f64::max);
        Some(Spectrum {
            start_hz,
            bin_hz,
            density,
            rbw_hz,
        })
    }
}

/// Streaming Welch estimator: planned once, allocation-free per call after construction.
pub struct Welch {
    cfg: WelchConfig,
    fft: Arc<dyn Fft<f32>>,
    window: Window,
    scratch: Vec<Complex32>,
    work: Vec<Complex32>,
    pending: Vec<Complex32>,
    acc: Vec<f32>,
    acc_segments: usize,
    per_frame: usize,
    hop: usize,
    scale: f32,
    consumed: u64,
    next_segment_start: u64,
    frame_first_sample: u64,
    frame: PsdFrame,
}

impl std::fmt::Debug for Welch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Welch")
            .field("cfg", &self.cfg)
            .field("acc_segments", &self.acc_segments)
            .finish_non_exhaustive()
    }
}

impl Welch {
    /// Plans the FFT and allocates every buffer.
    ///
    /// # Errors
    /// [`DspError::InvalidConfig`] when the configuration does not validate.
    pub fn new(cfg: WelchConfig) -> Result<Self, DspError> {
        cfg.validate()?;
        let n = cfg.fft_size;
        let fft = FftPlanner::<f32>::new().plan_fft_forward(n);
        let window = Window::new(cfg.window, n);
        let scale = (1.0 / (cfg.sample_rate_hz * window.sum_sq())) as f32;
        let rbw_hz = window.enbw_bins() * cfg.sample_rate_hz / n as f64;
        let scratch = vec![Complex32::default(); fft.get_inplace_scratch_len()];
        Ok(Self {
            per_frame: cfg.segments_per_frame(),
            hop: cfg.hop(),
            frame: PsdFrame {
                center_hz: cfg.center_hz,
                sample_rate_hz: cfg.sample_rate_hz,
                density: vec![0.0; n],
                segments: 0,
                first_sample: 0,
                rbw_hz,
            },
            fft,
            window,
            scratch,
            work: vec![Complex32::default(); n],
            pending: Vec::with_capacity(n),
            acc: vec![0.0; n],
            acc_segments: 0,
            scale,
            consumed: 0,
            next_segment_start: 0,
            frame_first_sample: 0,
            cfg,
        })
    }

    /// The configuration the stage was built with.
    #[must_use]
    pub fn config(&self) -> &WelchConfig {
        &self.cfg
    }

    /// Input-sample index at which the next frame will start.
    #[must_use]
    pub fn next_frame_first_sample(&self) -> u64 {
        if self.acc_segments == 0 {
            self.next_segment_start
        } else {
            self.frame_first_sample
        }
    }

    /// Segments that make one frame.
    #[must_use]
    pub fn segments_per_frame(&self) -> usize {
        self.per_frame
    }

    /// Drops buffered input and partial averages, and retunes the frames' centre frequency
    /// (after the radio hops). Allocation-free.
    pub fn reset(&mut self, center_hz: f64) {
        self.pending.clear();
        self.acc.fill(0.0);
        self.acc_segments = 0;
        self.frame.center_hz = center_hz;
        self.cfg.center_hz = center_hz;
        self.next_segment_start = self.consumed;
        self.frame_first_sample = self.consumed;
    }

    /// Feeds samples; `sink` is called with each completed frame.
    pub fn process(&mut self, mut input: &[Complex32], mut sink: impl FnMut(&PsdFrame)) {
        let n = self.cfg.fft_size;
        while !input.is_empty() {
            if self.pending.is_empty() && input.len() >= n {
                // Fast path: whole segments straight from the caller's buffer.
                let (seg, _) = input.split_at(n);
                self.segment_from(seg, &mut sink);
                let step = self.hop.min(input.len());
                self.consumed += step as u64;
                input = &input[step..];
                continue;
            }
            let take = (n - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            self.consumed += take as u64;
            if self.pending.len() == n {
                let pending = std::mem::take(&mut self.pending);
                self.segment_from(&pending, &mut sink);
                self.pending = pending;
                self.pending.copy_within(self.hop.., 0);
                self.pending.truncate(n - self.hop);
                // Samples kept for overlap were counted when they arrived.
            }
        }
    }

    /// Emits the partial average (if any segment is in it) as a frame.
    pub fn flush(&mut self, mut sink: impl FnMut(&PsdFrame)) {
        if self.acc_segments > 0 {
            self.emit(&mut sink);
        }
    }

    fn segment_from(&mut self, seg: &[Complex32], sink: &mut impl FnMut(&PsdFrame)) {
        if self.acc_segments == 0 {
            self.frame_first_sample = self.next_segment_start;
        }
        self.next_segment_start += self.hop as u64;
        for ((w, &x), &c) in self.work.iter_mut().zip(seg).zip(self.window.coeffs()) {
            *w = x * c;
        }
        self.fft
            .process_with_scratch(&mut self.work, &mut self.scratch);
        for (a, x) in self.acc.iter_mut().zip(&self.work) {
            *a += x.norm_sqr();
        }
        self.acc_segments += 1;
        if self.acc_segments == self.per_frame {
            self.emit(sink);
        }
    }

    fn emit(&mut self, sink: &mut impl FnMut(&PsdFrame)) {
        let n = self.cfg.fft_size;
        let half = n / 2;
        let k = self.scale / self.acc_segments as f32;
        // fftshift: bin 0 of the output is −fs/2.
        let (neg, pos) = self.frame.density.split_at_mut(half);
        for (d, &a) in neg.iter_mut().zip(&self.acc[half..]) {
            *d = a * k;
        }
        for (d, &a) in pos.iter_mut().zip(&self.acc[..half]) {
            *d = a * k;
        }
        self.frame.segments = self.acc_segments;
        self.frame.first_sample = self.frame_first_sample;
        sink(&self.frame);
        self.acc.fill(0.0);
        self.acc_segments = 0;
        self.frame_first_sample = self.next_segment_start;
    }
}

/// Convenience: the Welch average of a whole buffer as one frame (all segments averaged).
///
/// # Errors
/// [`DspError::InvalidConfig`] for a bad configuration or a buffer shorter than one segment.
pub fn welch_once(
    samples: &[Complex32],
    fft_size: usize,
    overlap: f64,
    window: WindowKind,
    sample_rate_hz: f64,
    center_hz: f64,
) -> Result<PsdFrame, DspError> {
    if samples.len() < fft_size {
        return Err(DspError::config(
            "samples",
            samples.len(),
            "need at least one FFT segment of input",
        ));
    }
    let cfg = WelchConfig {
        fft_size,
        overlap,
        window,
        averaging: Averaging::Segments(usize::MAX),
        sample_rate_hz,
        center_hz,
    };
    let mut welch = Welch::new(cfg)?;
    let mut out = None;
    welch.process(samples, |f| out = Some(f.clone()));
    welch.flush(|f| out = Some(f.clone()));
    out.ok_or_else(|| DspError::config("samples", samples.len(), "produced no segment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(start_hz: f64, bin_hz: f64, n: usize, v: f32) -> Spectrum {
        Spectrum {
            start_hz,
            bin_hz,
            density: vec![v; n],
            rbw_hz: bin_hz,
        }
    }

    #[test]
    fn stitch_covers_all_hops_and_prefers_hop_centres() {
        // Two hops of 100 bins of 1 kHz, overlapping by 20 bins.
        let a = flat(0.0, 1e3, 100, 1.0);
        let b = flat(80e3, 1e3, 100, 2.0);
        let s = Spectrum::stitch(&[b.clone(), a.clone()]).expect("stitched");
        assert_eq!(s.density.len(), 180);
        assert!((s.start_hz - 0.0).abs() < 1e-6);
        // Overlap 80..99 kHz: the first half is nearer hop a's centre (49.5 kHz) than b's.
        assert_eq!(s.density[85], 1.0);
        assert_eq!(s.density[95], 2.0);
        assert!(s.density.iter().all(|d| d.is_finite()));
        // A gap between hops stays NaN rather than being invented.
        let c = flat(300e3, 1e3, 10, 3.0);
        let s = Spectrum::stitch(&[a, c]).expect("stitched");
        assert!(s.density[200].is_nan());
        assert_eq!(s.density[s.density.len() - 1], 3.0);
    }

    #[test]
    fn dc_suppression_fills_from_neighbours_and_crop_keeps_the_middle() {
        let mut s = flat(-50e3, 1e3, 101, 1.0);
        s.density[50] = 1000.0;
        s.suppress_dc(0.0, 2);
        assert!(s.density[48..=52].iter().all(|&d| (d - 1.0).abs() < 1e-6));
        s.crop_edges(0.1);
        assert_eq!(s.density.len(), 81);
        assert!((s.start_hz - -40e3).abs() < 1e-6);
        let sl = s.slice_hz(-5e3, 5e3).expect("slice");
        assert_eq!(sl.density.len(), 11);
    }
}
