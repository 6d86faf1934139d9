//! The one error type of the `hardware` crate.

use std::path::PathBuf;

/// What went wrong opening, tuning or reading a source. Overflows, timeouts and the end of a
/// recording are not errors: see [`crate::ReadOutcome`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HwError {
    /// A file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A SigMF metadata file is malformed or missing a required field.
    #[error("{path}: {message}")]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A SigMF data file does not match its metadata.
    #[error("{path}: {message}")]
    Data {
        /// The data file.
        path: PathBuf,
        /// What is wrong, with the byte offset where it applies.
        message: String,
    },
    /// A tuning request the source cannot honour.
    #[error("cannot tune {what} to {value}: {reason}")]
    Tuning {
        /// `center_hz`, `sample_rate_hz`, …
        what: &'static str,
        /// The requested value.
        value: String,
        /// Why not.
        reason: String,
    },
    /// A simulator scene that does not make sense.
    #[error("scene: {0}")]
    Scene(String),
    /// A radio driver reported an error.
    #[error("device {args}: {message}")]
    Device {
        /// The device arguments.
        args: String,
        /// What the driver said.
        message: String,
    },
    /// A DSP stage could not be built.
    #[error(transparent)]
    Dsp(#[from] dsp::DspError),
}
