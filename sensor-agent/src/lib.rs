//! The Centinela sensor agent: the sensing pipeline from IQ to observations and wire events.
//!
//! [`analysis`] turns a spectrum into carriers with their band and margin and a jammer verdict
//! per band; [`tracker`] turns successive observations into gap and jammer events with
//! hysteresis; [`pipeline`] is the one sensing pipeline (plan, capture, spectrum, analysis, cell
//! search, trackers) that `run`, `scan`, `record` and the replay of a recorded sweep drive;
//! [`recording`] writes and reads recorded sweeps; [`replay`] analyses foreign SigMF recordings
//! window by window; [`cli`] is the command line. `main.rs` only parses and calls.

pub mod analysis;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod evidence;
pub mod files;
pub mod keys;
pub mod pipeline;
pub mod psd_csv;
pub mod recording;
pub mod replay;
pub mod source;
pub mod tracker;

/// Errors of the agent library. Bad input is exit code 2, runtime failures 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// A source could not be opened, tuned or read.
    #[error(transparent)]
    Hardware(#[from] hardware::HwError),
    /// A DSP stage or band plan rejected its configuration.
    #[error(transparent)]
    Dsp(#[from] dsp::DspError),
    /// A command-line or config value, or a file given as input, is wrong (exit code 2).
    #[error("{0}")]
    Input(String),
    /// Something failed while running that no input could have avoided: the machine, the
    /// radio, a thread (exit code 1).
    #[error("{0}")]
    Runtime(String),
    /// A sweep was abandoned for shutdown.
    #[error("cancelled")]
    Cancelled,
    /// Writing output failed.
    #[error("writing output: {0}")]
    Output(#[source] std::io::Error),
}

impl AgentError {
    /// The process exit code for this error: 2 for bad input, 1 for runtime failures.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Hardware(
                hardware::HwError::Metadata { .. }
                | hardware::HwError::Data { .. }
                | hardware::HwError::Io { .. }
                | hardware::HwError::Scene(_)
                | hardware::HwError::Tuning { .. },
            )
            | Self::Dsp(_)
            | Self::Input(_) => 2,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::AgentError;

    #[test]
    fn bad_input_exits_2_and_runtime_failures_1() {
        assert_eq!(AgentError::Input("bad --rate".into()).exit_code(), 2);
        assert_eq!(AgentError::Runtime("thread ended".into()).exit_code(), 1);
        assert_eq!(AgentError::Cancelled.exit_code(), 1);
        let io = std::io::Error::other("disk full");
        assert_eq!(AgentError::Output(io).exit_code(), 1);
    }
}
