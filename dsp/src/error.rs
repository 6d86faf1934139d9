//! The one error type of the `dsp` crate: raised when a stage is built with a bad configuration.

/// What went wrong building a DSP stage. The hot path itself never fails.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum DspError {
    /// A configuration field is out of range.
    #[error("invalid {field}: {value} ({reason})")]
    InvalidConfig {
        /// The field name as a user would write it.
        field: &'static str,
        /// The offending value, rendered.
        value: String,
        /// What would be accepted.
        reason: &'static str,
    },
    /// A frequency has no channel number in the named band (or the band is unknown).
    #[error("{what}: {value} is outside {band}")]
    OutOfBand {
        /// What was being converted (e.g. `EARFCN`).
        what: &'static str,
        /// The value given.
        value: String,
        /// The band or raster it should lie in.
        band: String,
    },
    /// A band or country name is not in the plan.
    #[error("unknown {what} `{name}`")]
    Unknown {
        /// `band`, `country`, …
        what: &'static str,
        /// The name as given.
        name: String,
    },
}

impl DspError {
    pub(crate) fn config(field: &'static str, value: impl ToString, reason: &'static str) -> Self {
        Self::InvalidConfig {
            field,
            value: value.to_string(),
            reason,
        }
    }
}
