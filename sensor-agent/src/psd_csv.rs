//! `sensor-agent psd`: a recording's spectrum as rtl_power-compatible CSV.
//!
//! One line per averaged frame: `date, time, Hz low, Hz high, Hz step, samples, dB, dB, …` where
//! each dB value is the power in that bin (dBFS, Hann window), lowest frequency first — the
//! layout rtl_power writes and heatmap tools read.

use std::io::Write;
use std::path::Path;

use dsp::psd::{Averaging, Welch, WelchConfig};
use dsp::to_db;
use dsp::window::WindowKind;
use hardware::sigmf::SigmfSource;
use hardware::{IqSource, ReadOutcome};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

use crate::AgentError;

/// Writes the CSV for a recording; returns the number of lines.
///
/// # Errors
/// [`AgentError::Hardware`] for a bad recording, [`AgentError::Dsp`] for a bad FFT size or
/// overlap, [`AgentError::Output`] when writing fails.
pub fn write_psd_csv(
    path: &Path,
    fft_size: usize,
    overlap: f64,
    interval_s: f64,
    out: &mut dyn Write,
) -> Result<usize, AgentError> {
    let mut src = SigmfSource::open(path)?;
    let meta = src.metadata().clone();
    let fs = meta.sample_rate_hz;
    let mut welch = Welch::new(WelchConfig {
        fft_size,
        overlap,
        window: WindowKind::Hann,
        averaging: Averaging::Seconds(interval_s),
        sample_rate_hz: fs,
        center_hz: 0.0,
    })?;
    let date_fmt = format_description!("[year]-[month]-[day]");
    let time_fmt = format_description!("[hour]:[minute]:[second]");
    let hop = welch.config().hop() as u64;
    let mut lines = 0;
    let mut buf = vec![dsp::Complex32::default(); 1 << 16];
    let mut pending = Vec::new();
    for ci in 0..meta.captures.len() {
        let tuned = src.select_capture(ci)?;
        let cap = &meta.captures[ci];
        let t0 = cap
            .datetime
            .as_deref()
            .and_then(|d| OffsetDateTime::parse(d, &Rfc3339).ok())
            .unwrap_or(
                OffsetDateTime::UNIX_EPOCH
                    + time::Duration::seconds_f64(cap.sample_start as f64 / fs),
            );
        welch.reset(tuned.center_hz);
        let base = welch.next_frame_first_sample();
        let mut lines_in_capture = 0usize;
        loop {
            let done = match src.read(&mut buf)? {
                ReadOutcome::Samples(n) | ReadOutcome::Overflow { n, .. } => {
                    welch.process(&buf[..n], |f| pending.push(f.clone()));
                    false
                }
                ReadOutcome::EndOfData => {
                    // Like rtl_power, a line integrates a whole interval: a tail shorter than
                    // half of one is dropped unless it is all the capture holds.
                    let per_frame = welch.segments_per_frame();
                    welch.flush(|f| {
                        if f.segments * 2 >= per_frame
                            || lines_in_capture == 0 && pending.is_empty()
                        {
                            pending.push(f.clone());
                        }
                    });
                    true
                }
                ReadOutcome::Timeout => false,
            };
            for f in pending.drain(..) {
                let at = t0 + time::Duration::seconds_f64((f.first_sample - base) as f64 / fs);
                let bin = f.bin_hz();
                // rtl_power: `Hz low` is the first bin, `Hz high` one step past the last.
                let lo = f.freq_of(0);
                let hi = lo + bin * f.density.len() as f64;
                let samples = (f.segments as u64 - 1) * hop + fft_size as u64;
                let mut line = format!(
                    "{}, {}, {:.0}, {:.0}, {:.2}, {}",
                    at.format(&date_fmt).unwrap_or_default(),
                    at.format(&time_fmt).unwrap_or_default(),
                    lo,
                    hi,
                    bin,
                    samples
                );
                for &d in &f.density {
                    line.push_str(&format!(", {:.2}", to_db(f64::from(d) * bin)));
                }
                line.push('\n');
                out.write_all(line.as_bytes()).map_err(AgentError::Output)?;
                lines += 1;
                lines_in_capture += 1;
            }
            if done {
                break;
            }
        }
    }
    Ok(lines)
}
