//! IQ sources for Centinela: the front of the sensing pipeline.
//!
//! Everything the agent reads IQ from implements [`IqSource`]: a SigMF recording
//! ([`sigmf::SigmfSource`], and [`sigmf::SigmfWriter`] to record one), the facility simulator
//! ([`sim::SimSource`]), and real radios through SoapySDR (`soapy::SoapySource`, behind the
//! `soapy` feature). [`profile`] holds what each supported radio can tune and how noisy it is.
//! Sources are used from one dedicated radio thread: they block, and never await.

pub mod error;
pub mod profile;
pub mod sigmf;
pub mod sim;
#[cfg(feature = "soapy")]
pub mod soapy;
pub mod source;

pub use error::HwError;
pub use source::{IqSource, ReadOutcome, SourceInfo, Tuned, Tuning};
