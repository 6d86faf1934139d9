//! SigMF 1.x recordings: [`SigmfSource`] replays one, [`SigmfWriter`] records one.
//!
//! Supported datatypes are the complex ones: `cu8` (RTL-SDR offset binary), `ci8`, `ci16_le`,
//! `ci16_be`, `cu16_le`, `ci32_le`, `cf32_le`, `cf32_be`, `cf64_le`. A recording may hold several
//! captures (a sweep recorded hop by hop), each with its own `core:frequency` and optional
//! `core:header_bytes`; a capture without `core:frequency` is baseband (centre 0 Hz).
//!
//! Everything read from a recording is bounded before it sizes anything: the metadata file's
//! size, the sample rate (what a radio does: [`MIN_SAMPLE_RATE_HZ`]–[`MAX_SAMPLE_RATE_HZ`]), the
//! number of captures ([`MAX_CAPTURES`]), each capture's frequency (0 to
//! [`MAX_FREQUENCY_HZ`]), its `core:datetime` (RFC 3339 or an error), and every offset and
//! length by checked arithmetic. Both files must be regular files (not a FIFO or a device). A
//! recording that is valid but odd — non-finite samples, float samples whose values look like
//! another datatype's bytes — gets warnings ([`Metadata::inspect`], [`SigmfSource::non_finite`]).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use dsp::Complex32;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::{HwError, IqSource, ReadOutcome, SourceInfo, Tuned, Tuning};

/// Lowest sample rate accepted, samples per second.
pub const MIN_SAMPLE_RATE_HZ: f64 = 1e3;
/// Highest sample rate accepted, samples per second (no SDR front end streams more).
pub const MAX_SAMPLE_RATE_HZ: f64 = 1e9;
/// Highest capture frequency accepted, hertz (beyond the reach of any radio front end,
/// millimetre-wave test receivers included).
pub const MAX_FREQUENCY_HZ: f64 = 100e9;
/// Most captures in one recording (a sweep of a whole band plan has a few hundred hops).
pub const MAX_CAPTURES: usize = 16_384;
/// Largest `.sigmf-meta` file read, bytes.
pub const MAX_META_BYTES: u64 = 16 << 20;

/// A SigMF sample format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Datatype {
    /// Unsigned 8-bit offset binary, (b − 127.5) / 127.5.
    Cu8,
    /// Signed 8-bit.
    Ci8,
    /// Signed 16-bit little-endian.
    Ci16Le,
    /// Signed 16-bit big-endian.
    Ci16Be,
    /// Unsigned 16-bit little-endian, offset binary.
    Cu16Le,
    /// Signed 32-bit little-endian.
    Ci32Le,
    /// 32-bit float little-endian.
    Cf32Le,
    /// 32-bit float big-endian.
    Cf32Be,
    /// 64-bit float little-endian.
    Cf64Le,
}

impl Datatype {
    /// Parses a `core:datatype` string.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "cu8" => Self::Cu8,
            "ci8" => Self::Ci8,
            "ci16_le" => Self::Ci16Le,
            "ci16_be" => Self::Ci16Be,
            "cu16_le" => Self::Cu16Le,
            "ci32_le" => Self::Ci32Le,
            "cf32_le" => Self::Cf32Le,
            "cf32_be" => Self::Cf32Be,
            "cf64_le" => Self::Cf64Le,
            _ => return None,
        })
    }

    /// The `core:datatype` string.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cu8 => "cu8",
            Self::Ci8 => "ci8",
            Self::Ci16Le => "ci16_le",
            Self::Ci16Be => "ci16_be",
            Self::Cu16Le => "cu16_le",
            Self::Ci32Le => "ci32_le",
            Self::Cf32Le => "cf32_le",
            Self::Cf32Be => "cf32_be",
            Self::Cf64Le => "cf64_le",
        }
    }

    /// Bytes per complex sample.
    #[must_use]
    pub fn sample_bytes(self) -> usize {
        match self {
            Self::Cu8 | Self::Ci8 => 2,
            Self::Ci16Le | Self::Ci16Be | Self::Cu16Le => 4,
            Self::Ci32Le | Self::Cf32Le | Self::Cf32Be => 8,
            Self::Cf64Le => 16,
        }
    }

    /// Converts whole samples from `bytes` into `out` (as many as both allow).
    pub fn decode(self, bytes: &[u8], out: &mut [Complex32]) -> usize {
        let sb = self.sample_bytes();
        let n = (bytes.len() / sb).min(out.len());
        let h = sb / 2;
        for (o, b) in out[..n].iter_mut().zip(bytes.chunks_exact(sb)) {
            let (re, im) = b.split_at(h);
            *o = Complex32::new(self.component(re), self.component(im));
        }
        n
    }

    /// As [`Datatype::decode`], with NaN and infinite values (of float datatypes, or a `cf64`
    /// value beyond `f32`) read as 0: one NaN would poison every average it enters. Returns
    /// the samples decoded and the values replaced.
    pub fn decode_finite(self, bytes: &[u8], out: &mut [Complex32]) -> (usize, u64) {
        let n = self.decode(bytes, out);
        let mut replaced = 0;
        if matches!(self, Self::Cf32Le | Self::Cf32Be | Self::Cf64Le) {
            for s in &mut out[..n] {
                for v in [&mut s.re, &mut s.im] {
                    if !v.is_finite() {
                        *v = 0.0;
                        replaced += 1;
                    }
                }
            }
        }
        (n, replaced)
    }

    fn component(self, b: &[u8]) -> f32 {
        match self {
            Self::Cu8 => (f32::from(b[0]) - 127.5) / 127.5,
            Self::Ci8 => f32::from(b[0] as i8) / 128.0,
            Self::Ci16Le => f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0,
            Self::Ci16Be => f32::from(i16::from_be_bytes([b[0], b[1]])) / 32768.0,
            Self::Cu16Le => (f32::from(u16::from_le_bytes([b[0], b[1]])) - 32767.5) / 32767.5,
            Self::Ci32Le => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0,
            Self::Cf32Le => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            Self::Cf32Be => f32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            Self::Cf64Le => {
                f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
        }
    }
}

/// One capture segment, resolved against the data file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Capture {
    /// First sample (index into the recording's samples, headers excluded).
    pub sample_start: u64,
    /// Number of samples up to the next capture or the end of the file.
    pub sample_count: u64,
    /// Centre frequency, hertz; `None` for baseband.
    pub frequency_hz: Option<f64>,
    /// Bytes of non-sample header before this capture's samples.
    pub header_bytes: u64,
    /// Byte offset of the capture's first sample in the data file.
    pub data_offset: u64,
    /// `core:datetime`, if given.
    pub datetime: Option<String>,
    /// The capture's fields of extension namespaces (every key outside `core:`), as written.
    pub extensions: Map<String, Value>,
}

/// The parsed metadata of a recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    /// Path of the `.sigmf-meta` file.
    pub meta_path: PathBuf,
    /// Path of the `.sigmf-data` file.
    pub data_path: PathBuf,
    /// Sample format.
    pub datatype: Datatype,
    /// Sample rate, hertz.
    pub sample_rate_hz: f64,
    /// `core:version`.
    pub version: String,
    /// `core:description`, if any.
    pub description: Option<String>,
    /// `core:hw`, if any.
    pub hw: Option<String>,
    /// Captures in sample order.
    pub captures: Vec<Capture>,
    /// Total samples in the data file.
    pub total_samples: u64,
    /// The global fields of extension namespaces (every key outside `core:`), as written.
    pub extensions: Map<String, Value>,
    /// `core:sha512`, the dataset's hash, if given.
    pub sha512: Option<String>,
}

/// SHA-512 of a file, lowercase hex, read in pieces.
///
/// # Errors
/// [`HwError::Io`] when the file cannot be read.
pub fn file_sha512(path: &Path) -> Result<String, HwError> {
    let io = |source| HwError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = File::open(path).map_err(io)?;
    let mut digest = <sha2::Sha512 as sha2::Digest>::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        sha2::Digest::update(&mut digest, &buf[..n]);
    }
    Ok(sha2::Digest::finalize(digest)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The fields of an object whose keys are outside the `core:` namespace.
fn extension_fields(object: &Map<String, Value>) -> Map<String, Value> {
    object
        .iter()
        .filter(|(k, _)| !k.starts_with("core:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The `.sigmf-meta` and `.sigmf-data` paths for a path given as either, or as the base name.
#[must_use]
pub fn recording_paths(path: &Path) -> (PathBuf, PathBuf) {
    let s = path.to_string_lossy();
    let base = s
        .strip_suffix(".sigmf-meta")
        .or_else(|| s.strip_suffix(".sigmf-data"))
        .or_else(|| s.strip_suffix(".sigmf"))
        .unwrap_or(&s)
        .to_string();
    (
        PathBuf::from(format!("{base}.sigmf-meta")),
        PathBuf::from(format!("{base}.sigmf-data")),
    )
}

fn meta_err(path: &Path, message: impl Into<String>) -> HwError {
    HwError::Metadata {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl Metadata {
    /// Reads and checks a recording's metadata against its data file.
    ///
    /// # Errors
    /// [`HwError::Io`] when a file is missing or unreadable; [`HwError::Metadata`] for bad JSON,
    /// a missing or wrong-typed field, an unsupported datatype, a sample rate that is not a
    /// positive number, more than one channel, or captures out of order; [`HwError::Data`] when
    /// the data file is shorter than its headers or holds a partial sample.
    pub fn open(path: &Path) -> Result<Self, HwError> {
        let (meta_path, data_path) = recording_paths(path);
        let meta_len = regular_file_len(&meta_path)?;
        if meta_len > MAX_META_BYTES {
            return Err(meta_err(
                &meta_path,
                format!(
                    "the metadata file is {meta_len} bytes (at most {MAX_META_BYTES} are read)"
                ),
            ));
        }
        let text = std::fs::read_to_string(&meta_path).map_err(|source| HwError::Io {
            path: meta_path.clone(),
            source,
        })?;
        let data_len = regular_file_len(&data_path)?;
        Self::parse(&text, data_len, meta_path, data_path)
    }

    /// Checks a recording's metadata text against the length of its data file, without
    /// touching the file system (the paths only name the files in errors).
    ///
    /// # Errors
    /// As [`Metadata::open`], but for the files themselves.
    pub fn parse(
        text: &str,
        data_len: u64,
        meta_path: PathBuf,
        data_path: PathBuf,
    ) -> Result<Self, HwError> {
        let root: Value = serde_json::from_str(text).map_err(|e| {
            meta_err(
                &meta_path,
                format!(
                    "invalid JSON at line {} column {}: {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let global = root
            .get("global")
            .and_then(Value::as_object)
            .ok_or_else(|| meta_err(&meta_path, "missing object `global`"))?;
        let dt = global
            .get("core:datatype")
            .and_then(Value::as_str)
            .ok_or_else(|| meta_err(&meta_path, "missing string `global.core:datatype`"))?;
        let datatype = Datatype::parse(dt).ok_or_else(|| {
            meta_err(
                &meta_path,
                format!(
                    "unsupported datatype `{dt}` in `global.core:datatype` (complex cu8, ci8, ci16_le, ci16_be, cu16_le, ci32_le, cf32_le, cf32_be, cf64_le are supported)"
                ),
            )
        })?;
        let sample_rate_hz = global
            .get("core:sample_rate")
            .and_then(Value::as_f64)
            .ok_or_else(|| meta_err(&meta_path, "missing number `global.core:sample_rate`"))?;
        if !(sample_rate_hz.is_finite() && sample_rate_hz > 0.0) {
            return Err(meta_err(
                &meta_path,
                format!("`global.core:sample_rate` is {sample_rate_hz}: must be a positive number"),
            ));
        }
        if !(MIN_SAMPLE_RATE_HZ..=MAX_SAMPLE_RATE_HZ).contains(&sample_rate_hz) {
            return Err(meta_err(
                &meta_path,
                format!(
                    "`global.core:sample_rate` is {sample_rate_hz}: a positive number from {MIN_SAMPLE_RATE_HZ} to {MAX_SAMPLE_RATE_HZ} samples per second (what a radio does)"
                ),
            ));
        }
        let version = global
            .get("core:version")
            .and_then(Value::as_str)
            .ok_or_else(|| meta_err(&meta_path, "missing string `global.core:version`"))?
            .to_string();
        if !version.starts_with("1.") {
            return Err(meta_err(
                &meta_path,
                format!("`global.core:version` is `{version}`: only SigMF 1.x is supported"),
            ));
        }
        if let Some(ch) = global.get("core:num_channels")
            && ch.as_u64() != Some(1)
        {
            return Err(meta_err(
                &meta_path,
                format!(
                    "`global.core:num_channels` is {ch}: only single-channel recordings are supported"
                ),
            ));
        }
        let text_of = |k: &str| global.get(k).and_then(Value::as_str).map(str::to_string);

        let caps = root
            .get("captures")
            .and_then(Value::as_array)
            .ok_or_else(|| meta_err(&meta_path, "missing array `captures`"))?;
        if caps.is_empty() {
            return Err(meta_err(&meta_path, "`captures` is empty"));
        }
        if caps.len() > MAX_CAPTURES {
            return Err(meta_err(
                &meta_path,
                format!(
                    "`captures` holds {} entries (at most {MAX_CAPTURES} are accepted)",
                    caps.len()
                ),
            ));
        }
        let sb = datatype.sample_bytes() as u64;
        let mut raw = Vec::with_capacity(caps.len());
        for (i, c) in caps.iter().enumerate() {
            let field = |k: &str| c.get(k);
            let start = match field("core:sample_start") {
                None => 0,
                Some(v) => v.as_u64().ok_or_else(|| {
                    meta_err(&meta_path, format!("`captures[{i}].core:sample_start` must be a non-negative integer, got {v}"))
                })?,
            };
            let frequency_hz = match field("core:frequency") {
                None => None,
                Some(v) => Some(
                    v.as_f64()
                        .filter(|f| (0.0..=MAX_FREQUENCY_HZ).contains(f))
                        .ok_or_else(|| {
                            meta_err(
                                &meta_path,
                                format!(
                                    "`captures[{i}].core:frequency` must be a number of hertz from 0 to {MAX_FREQUENCY_HZ}, got {v}"
                                ),
                            )
                        })?,
                ),
            };
            let header_bytes = match field("core:header_bytes") {
                None => 0,
                Some(v) => v.as_u64().ok_or_else(|| {
                    meta_err(&meta_path, format!("`captures[{i}].core:header_bytes` must be a non-negative integer, got {v}"))
                })?,
            };
            if let Some((prev, _, _, _, _)) = raw.last()
                && start <= *prev
            {
                return Err(meta_err(
                    &meta_path,
                    format!(
                        "`captures[{i}].core:sample_start` {start} does not follow the previous capture's {prev}"
                    ),
                ));
            }
            let datetime = match field("core:datetime") {
                None => None,
                Some(v) => {
                    let text = v.as_str().ok_or_else(|| {
                        meta_err(
                            &meta_path,
                            format!("`captures[{i}].core:datetime` must be a string, got {v}"),
                        )
                    })?;
                    parse_datetime(text).map_err(|e| {
                        meta_err(
                            &meta_path,
                            format!(
                                "`captures[{i}].core:datetime` `{}` is not an RFC 3339 UTC time such as 2026-11-26T10:00:00Z: {e}",
                                text.chars().take(64).collect::<String>()
                            ),
                        )
                    })?;
                    Some(text.to_string())
                }
            };
            let extensions = c.as_object().map(extension_fields).unwrap_or_default();
            raw.push((start, frequency_hz, header_bytes, datetime, extensions));
        }
        let headers = raw.iter().try_fold(0u64, |acc, r| acc.checked_add(r.2));
        let Some(headers) = headers.filter(|&h| h <= data_len) else {
            let declared = headers.map_or_else(|| "more than 2^64".to_string(), |h| h.to_string());
            return Err(HwError::Data {
                path: data_path,
                message: format!(
                    "file is {data_len} bytes but its captures declare {declared} header bytes (`core:header_bytes`)"
                ),
            });
        };
        let payload = data_len - headers;
        if !payload.is_multiple_of(sb) {
            return Err(HwError::Data {
                path: data_path,
                message: format!(
                    "truncated: {payload} sample bytes is not a whole number of {} samples ({sb} bytes each); the last sample stops at byte {}",
                    datatype.as_str(),
                    data_len
                ),
            });
        }
        let total_samples = payload / sb;
        if total_samples == 0 {
            return Err(HwError::Data {
                path: data_path,
                message: "the data file holds no samples".into(),
            });
        }
        let mut captures = Vec::with_capacity(raw.len());
        let mut headers_so_far = 0;
        for (i, (start, frequency_hz, header_bytes, datetime, extensions)) in
            raw.iter().cloned().enumerate()
        {
            // Bounded by the file's length above, so none of this overflows; checked anyway.
            headers_so_far += header_bytes;
            let end = raw.get(i + 1).map_or(total_samples, |r| r.0);
            if start > total_samples || end > total_samples {
                return Err(HwError::Data {
                    path: data_path,
                    message: format!(
                        "`captures[{i}].core:sample_start` is {start} but the file holds only {total_samples} samples"
                    ),
                });
            }
            let data_offset = start
                .checked_mul(sb)
                .and_then(|b| b.checked_add(headers_so_far))
                .filter(|&o| o <= data_len)
                .ok_or_else(|| HwError::Data {
                    path: data_path.clone(),
                    message: format!(
                        "capture {i}: sample {start} after {headers_so_far} header bytes is past the end of the file ({data_len} bytes)"
                    ),
                })?;
            captures.push(Capture {
                sample_start: start,
                sample_count: end - start,
                frequency_hz,
                header_bytes,
                data_offset,
                datetime,
                extensions,
            });
        }
        Ok(Self {
            meta_path,
            data_path,
            datatype,
            sample_rate_hz,
            version,
            description: text_of("core:description"),
            hw: text_of("core:hw"),
            captures,
            total_samples,
            extensions: extension_fields(global),
            sha512: text_of("core:sha512"),
        })
    }

    /// Duration of the recording in seconds.
    #[must_use]
    pub fn duration_s(&self) -> f64 {
        self.total_samples as f64 / self.sample_rate_hz
    }

    /// Looks at the first samples of the data (at most 1 MiB) for what is valid but odd, and
    /// says what in one sentence each: non-finite float samples, float samples whose magnitudes
    /// look like the bytes of another datatype, data that is all zeros.
    ///
    /// # Errors
    /// [`HwError::Io`] when the data file cannot be read.
    pub fn inspect(&self) -> Result<Vec<String>, HwError> {
        let io = |source| HwError::Io {
            path: self.data_path.clone(),
            source,
        };
        let mut f = File::open(&self.data_path).map_err(io)?;
        let first = self.captures.first().map_or(0, |c| c.data_offset);
        f.seek(SeekFrom::Start(first)).map_err(io)?;
        let sb = self.datatype.sample_bytes();
        let mut bytes = Vec::new();
        f.take(1 << 20).read_to_end(&mut bytes).map_err(io)?;
        let n = bytes.len() / sb;
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut samples = vec![Complex32::default(); n];
        self.datatype.decode(&bytes[..n * sb], &mut samples);
        let mut warnings = Vec::new();
        let name = self.data_path.display();
        let values = samples.iter().flat_map(|s| [s.re, s.im]);
        let non_finite = values.clone().filter(|v| !v.is_finite()).count();
        if non_finite > 0 {
            warnings.push(format!(
                "{name}: {non_finite} of the first {} sample values are NaN or infinite; they are read as 0",
                2 * n
            ));
        }
        if matches!(
            self.datatype,
            Datatype::Cf32Le | Datatype::Cf32Be | Datatype::Cf64Le
        ) {
            // IQ in floats sits near full scale 1; bytes of 8- or 16-bit integers read as
            // floats land at absurd exponents (huge, or tiny but not zero).
            let absurd = values
                .clone()
                .filter(|v| v.is_finite() && (v.abs() > 1e6 || (*v != 0.0 && v.abs() < 1e-20)))
                .count();
            if absurd * 100 > 2 * n {
                warnings.push(format!(
                    "{name}: {absurd} of the first {} values are beyond 1e6 or below 1e-20 in magnitude: is the data really `{}`? (bytes of 8- or 16-bit samples look like this)",
                    2 * n,
                    self.datatype.as_str()
                ));
            }
        }
        if values.clone().all(|v| v == 0.0) {
            warnings.push(format!(
                "{name}: the first {n} samples are all zero: nothing was recorded?"
            ));
        }
        Ok(warnings)
    }
}

/// Parses a SigMF `core:datetime` (RFC 3339, UTC recommended).
///
/// # Errors
/// The parser's message.
pub fn parse_datetime(text: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())
}

/// The length of a regular file: a FIFO, a device (`/dev/zero`) or a directory is no recording.
fn regular_file_len(path: &Path) -> Result<u64, HwError> {
    let m = std::fs::metadata(path).map_err(|source| HwError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !m.is_file() {
        return Err(HwError::Data {
            path: path.to_path_buf(),
            message: "not a regular file (a FIFO, a device or a directory cannot be a recording)"
                .into(),
        });
    }
    Ok(m.len())
}

/// Replays a SigMF recording, one capture at a time.
#[derive(Debug)]
pub struct SigmfSource {
    meta: Metadata,
    reader: BufReader<File>,
    capture: usize,
    left_in_capture: u64,
    bytes: Vec<u8>,
    non_finite: u64,
}

impl SigmfSource {
    /// Opens a recording (path to the `.sigmf-meta`, the `.sigmf-data` or the base name) and
    /// positions it at the first capture.
    ///
    /// # Errors
    /// As [`Metadata::open`].
    pub fn open(path: &Path) -> Result<Self, HwError> {
        let meta = Metadata::open(path)?;
        let file = File::open(&meta.data_path).map_err(|source| HwError::Io {
            path: meta.data_path.clone(),
            source,
        })?;
        let mut s = Self {
            reader: BufReader::with_capacity(1 << 20, file),
            capture: 0,
            left_in_capture: 0,
            bytes: Vec::new(),
            non_finite: 0,
            meta,
        };
        s.select_capture(0)?;
        Ok(s)
    }

    /// The recording's metadata.
    #[must_use]
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// Sample values that were NaN or infinite and were read as 0, so far.
    #[must_use]
    pub fn non_finite(&self) -> u64 {
        self.non_finite
    }

    /// Index of the current capture.
    #[must_use]
    pub fn current_capture(&self) -> usize {
        self.capture
    }

    /// Moves to the start of capture `index`.
    ///
    /// # Errors
    /// [`HwError::Tuning`] for an index past the last capture; [`HwError::Io`] when seeking fails.
    pub fn select_capture(&mut self, index: usize) -> Result<Tuned, HwError> {
        let cap = self
            .meta
            .captures
            .get(index)
            .ok_or_else(|| HwError::Tuning {
                what: "capture",
                value: index.to_string(),
                reason: format!("the recording has {} captures", self.meta.captures.len()),
            })?;
        self.reader
            .seek(SeekFrom::Start(cap.data_offset))
            .map_err(|source| HwError::Io {
                path: self.meta.data_path.clone(),
                source,
            })?;
        self.capture = index;
        self.left_in_capture = cap.sample_count;
        Ok(Tuned {
            center_hz: cap.frequency_hz.unwrap_or(0.0),
            sample_rate_hz: self.meta.sample_rate_hz,
            gain_db: None,
        })
    }
}

impl SigmfSource {
    /// Moves to the start of capture `index`, refusing a sample rate other than the recording's.
    ///
    /// # Errors
    /// [`HwError::Tuning`] for another rate or an index past the last capture.
    pub fn tune_capture(&mut self, index: usize, sample_rate_hz: f64) -> Result<Tuned, HwError> {
        let fs = self.meta.sample_rate_hz;
        if (sample_rate_hz - fs).abs() > 1e-6 * fs {
            return Err(HwError::Tuning {
                what: "sample_rate_hz",
                value: sample_rate_hz.to_string(),
                reason: format!("the recording is at {fs} S/s"),
            });
        }
        self.select_capture(index)
    }
}

impl IqSource for SigmfSource {
    fn info(&self) -> SourceInfo {
        SourceInfo {
            kind: "sigmf",
            name: self.meta.meta_path.display().to_string(),
            noise_figure_db: None,
        }
    }

    /// Selects the first capture whose span contains the requested centre (a baseband capture
    /// matches any request). The sample rate must be the recording's.
    fn tune(&mut self, t: &Tuning) -> Result<Tuned, HwError> {
        let fs = self.meta.sample_rate_hz;
        if (t.sample_rate_hz - fs).abs() > 1e-6 * fs {
            return Err(HwError::Tuning {
                what: "sample_rate_hz",
                value: t.sample_rate_hz.to_string(),
                reason: format!("the recording is at {fs} S/s"),
            });
        }
        let idx = self
            .meta
            .captures
            .iter()
            .position(|c| {
                c.frequency_hz
                    .is_none_or(|f| (t.center_hz - f).abs() <= fs / 2.0)
            })
            .ok_or_else(|| HwError::Tuning {
                what: "center_hz",
                value: t.center_hz.to_string(),
                reason: "no capture of the recording covers it".into(),
            })?;
        self.select_capture(idx)
    }

    fn read(&mut self, buf: &mut [Complex32]) -> Result<ReadOutcome, HwError> {
        if self.left_in_capture == 0 || buf.is_empty() {
            return Ok(if self.left_in_capture == 0 {
                ReadOutcome::EndOfData
            } else {
                ReadOutcome::Samples(0)
            });
        }
        let sb = self.meta.datatype.sample_bytes();
        let n = (buf.len() as u64).min(self.left_in_capture) as usize;
        self.bytes.resize(n * sb, 0);
        let offset = self.reader.stream_position().unwrap_or(0);
        self.reader
            .read_exact(&mut self.bytes)
            .map_err(|e| HwError::Data {
                path: self.meta.data_path.clone(),
                message: format!("read of {} bytes at offset {offset} failed: {e}", n * sb),
            })?;
        let (got, replaced) = self.meta.datatype.decode_finite(&self.bytes, buf);
        self.non_finite += replaced;
        self.left_in_capture -= got as u64;
        Ok(ReadOutcome::Samples(got))
    }
}

/// Records IQ to a SigMF recording (`cf32_le` or `ci16_le`), capture by capture.
#[derive(Debug)]
pub struct SigmfWriter {
    base: PathBuf,
    data: BufWriter<File>,
    datatype: Datatype,
    sample_rate_hz: f64,
    global_extra: Map<String, Value>,
    captures: Vec<Value>,
    written: u64,
    digest: sha2::Sha512,
}

/// A finished recording: where its metadata is, and its dataset's hash and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The `.sigmf-meta` file.
    pub meta_path: PathBuf,
    /// SHA-512 of the `.sigmf-data` file, lowercase hex (also its `core:sha512`).
    pub sha512: String,
    /// Size of the `.sigmf-data` file, bytes.
    pub data_bytes: u64,
}

impl SigmfWriter {
    /// Creates `BASE.sigmf-data` (metadata is written by [`SigmfWriter::finish`]).
    ///
    /// # Errors
    /// [`HwError::Tuning`] for a datatype other than `cf32_le`/`ci16_le` or a bad rate;
    /// [`HwError::Io`] when the file cannot be created.
    pub fn create(base: &Path, datatype: Datatype, sample_rate_hz: f64) -> Result<Self, HwError> {
        if !matches!(datatype, Datatype::Cf32Le | Datatype::Ci16Le) {
            return Err(HwError::Tuning {
                what: "datatype",
                value: datatype.as_str().into(),
                reason: "the writer records cf32_le or ci16_le".into(),
            });
        }
        if !(sample_rate_hz.is_finite() && sample_rate_hz > 0.0) {
            return Err(HwError::Tuning {
                what: "sample_rate_hz",
                value: sample_rate_hz.to_string(),
                reason: "must be a positive number".into(),
            });
        }
        let (_, data_path) = recording_paths(base);
        let file = File::create(&data_path).map_err(|source| HwError::Io {
            path: data_path.clone(),
            source,
        })?;
        Ok(Self {
            base: base.to_path_buf(),
            data: BufWriter::new(file),
            datatype,
            sample_rate_hz,
            global_extra: Map::new(),
            captures: Vec::new(),
            written: 0,
            digest: sha2::Digest::new(),
        })
    }

    /// Sets a `global` field (e.g. `core:description`, `core:hw`, `core:author`).
    pub fn set_global(&mut self, key: &str, value: Value) {
        self.global_extra.insert(key.to_string(), value);
    }

    /// Starts a new capture at the current sample: a hop of a sweep.
    pub fn start_capture(&mut self, frequency_hz: Option<f64>, datetime: Option<&str>) {
        self.start_capture_with(frequency_hz, datetime, Map::new());
    }

    /// Starts a new capture carrying extension fields (keys outside `core:`, e.g.
    /// `centinela:hop`); `core:` keys among them are ignored.
    pub fn start_capture_with(
        &mut self,
        frequency_hz: Option<f64>,
        datetime: Option<&str>,
        extensions: Map<String, Value>,
    ) {
        let mut c = extension_fields(&extensions);
        c.insert("core:sample_start".into(), json!(self.written));
        if let Some(f) = frequency_hz {
            c.insert("core:frequency".into(), json!(f));
        }
        if let Some(d) = datetime {
            c.insert("core:datetime".into(), json!(d));
        }
        // A capture with no samples yet replaces an empty one at the same index.
        if let Some(last) = self.captures.last()
            && last.get("core:sample_start") == Some(&json!(self.written))
        {
            self.captures.pop();
        }
        self.captures.push(Value::Object(c));
    }

    /// Appends samples to the current capture (one is started at baseband if none was).
    ///
    /// # Errors
    /// [`HwError::Io`] on a write failure.
    pub fn write(&mut self, samples: &[Complex32]) -> Result<(), HwError> {
        if self.captures.is_empty() {
            self.start_capture(None, None);
        }
        let mut chunk = Vec::with_capacity(samples.len() * self.datatype.sample_bytes());
        for s in samples {
            match self.datatype {
                Datatype::Ci16Le => {
                    for v in [s.re, s.im] {
                        let q = (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
                        chunk.extend_from_slice(&q.to_le_bytes());
                    }
                }
                _ => {
                    chunk.extend_from_slice(&s.re.to_le_bytes());
                    chunk.extend_from_slice(&s.im.to_le_bytes());
                }
            }
        }
        self.data.write_all(&chunk).map_err(|source| HwError::Io {
            path: recording_paths(&self.base).1,
            source,
        })?;
        sha2::Digest::update(&mut self.digest, &chunk);
        self.written += samples.len() as u64;
        Ok(())
    }

    /// Samples written so far.
    #[must_use]
    pub fn samples_written(&self) -> u64 {
        self.written
    }

    /// Flushes the data and writes `BASE.sigmf-meta`; returns the metadata path.
    ///
    /// # Errors
    /// [`HwError::Io`] on a write failure.
    pub fn finish(self) -> Result<PathBuf, HwError> {
        Ok(self.finish_written()?.meta_path)
    }

    /// As [`SigmfWriter::finish`], returning the dataset's SHA-512 and size as well.
    ///
    /// # Errors
    /// [`HwError::Io`] on a write failure.
    pub fn finish_written(mut self) -> Result<Written, HwError> {
        let (meta_path, data_path) = recording_paths(&self.base);
        self.data.flush().map_err(|source| HwError::Io {
            path: data_path,
            source,
        })?;
        if self.captures.is_empty() {
            self.start_capture(None, None);
        }
        let mut global = Map::new();
        global.insert("core:datatype".into(), json!(self.datatype.as_str()));
        global.insert("core:sample_rate".into(), json!(self.sample_rate_hz));
        global.insert("core:version".into(), json!("1.2.0"));
        global.insert("core:num_channels".into(), json!(1));
        let digest = std::mem::take(&mut self.digest);
        let sha512: String = sha2::Digest::finalize(digest)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        global.insert("core:sha512".into(), json!(sha512));
        global.insert(
            "core:recorder".into(),
            json!(concat!("centinela ", env!("CARGO_PKG_VERSION"))),
        );
        for (k, v) in std::mem::take(&mut self.global_extra) {
            global.insert(k, v);
        }
        let doc = json!({
            "global": global,
            "captures": self.captures,
            "annotations": [],
        });
        let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        std::fs::write(&meta_path, text + "\n").map_err(|source| HwError::Io {
            path: meta_path.clone(),
            source,
        })?;
        Ok(Written {
            meta_path,
            sha512,
            data_bytes: self.written * self.datatype.sample_bytes() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_datatype() {
        let mut out = [Complex32::default(); 2];
        assert_eq!(Datatype::Cu8.decode(&[255, 0, 128, 127], &mut out), 2);
        assert_eq!(out[0], Complex32::new(1.0, -1.0));
        assert!((out[1].re - 0.5 / 127.5).abs() < 1e-7);
        Datatype::Ci8.decode(&[0x80, 0x7f], &mut out);
        assert_eq!(out[0], Complex32::new(-1.0, 127.0 / 128.0));
        Datatype::Ci16Le.decode(&[0x00, 0x80, 0x00, 0x40], &mut out);
        assert_eq!(out[0], Complex32::new(-1.0, 0.5));
        Datatype::Ci16Be.decode(&[0x40, 0x00, 0x80, 0x00], &mut out);
        assert_eq!(out[0], Complex32::new(0.5, -1.0));
        let mut b = Vec::new();
        b.extend_from_slice(&0.25f32.to_le_bytes());
        b.extend_from_slice(&(-2.0f32).to_le_bytes());
        Datatype::Cf32Le.decode(&b, &mut out);
        assert_eq!(out[0], Complex32::new(0.25, -2.0));
        let mut b = Vec::new();
        b.extend_from_slice(&0.125f64.to_le_bytes());
        b.extend_from_slice(&3.0f64.to_le_bytes());
        Datatype::Cf64Le.decode(&b, &mut out);
        assert_eq!(out[0], Complex32::new(0.125, 3.0));
        assert!(Datatype::parse("rf32_le").is_none());
    }

    #[test]
    fn paths_from_any_form() {
        for p in ["a/x.sigmf-meta", "a/x.sigmf-data", "a/x"] {
            let (m, d) = recording_paths(Path::new(p));
            assert_eq!(m, PathBuf::from("a/x.sigmf-meta"));
            assert_eq!(d, PathBuf::from("a/x.sigmf-data"));
        }
    }
}
