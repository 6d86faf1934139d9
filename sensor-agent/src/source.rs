//! Where samples come from: a source spec (`sim`, `sim:SCENE.toml`, `sigmf:RECORDING`,
//! `soapy:ARGS`) parsed once into a [`SourceSpec`], the radio it stands for (a device profile's
//! limits, rate and noise figure), and the [`IqSource`] it opens. The daemon, `scan`, `record`
//! and `check-config` all go through here.

use std::path::PathBuf;

use dsp::bandplan::TuningLimits;
use hardware::IqSource;
use hardware::profile::{self, DeviceProfile};
use hardware::sim::{SIM_MAX_RATE_HZ, Scene, SimSource};

use crate::AgentError;
use crate::recording::{RecordedSweep, SweepHeader};

/// A parsed source spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// The simulator, on the demo facility or on a scene file.
    Sim {
        /// The scene file; `None` for the demo facility.
        scene: Option<PathBuf>,
    },
    /// A SigMF recording: a sweep recorded by the agent plays back hop by hop with its own
    /// calibration; any other recording plays its captures at its own rate.
    Sigmf(PathBuf),
    /// A radio through SoapySDR, by its device arguments.
    Soapy(String),
}

/// The sentence that lists the source kinds.
const KINDS: &str = "use sim, sim:SCENE.toml, sigmf:RECORDING.sigmf-meta or soapy:DEVICE-ARGS";

impl SourceSpec {
    /// Parses `sim`, `sim:SCENE.toml`, `sigmf:RECORDING`, `soapy:ARGS`.
    ///
    /// # Errors
    /// [`AgentError::Input`] naming an unknown kind or a missing path.
    pub fn parse(spec: &str) -> Result<Self, AgentError> {
        let (kind, arg) = spec.split_once(':').unwrap_or((spec, ""));
        match kind {
            "sim" if arg.is_empty() => Ok(Self::Sim { scene: None }),
            "sim" => Ok(Self::Sim {
                scene: Some(PathBuf::from(arg)),
            }),
            "sigmf" if arg.is_empty() => Err(AgentError::Input(
                "source `sigmf:` needs a recording: sigmf:RECORDING.sigmf-meta".into(),
            )),
            "sigmf" => Ok(Self::Sigmf(PathBuf::from(arg))),
            "soapy" => Ok(Self::Soapy(arg.to_string())),
            other => Err(AgentError::Input(format!(
                "unknown source `{}` ({KINDS})",
                other.chars().take(64).collect::<String>()
            ))),
        }
    }

    /// Problems a configuration check can name before anything is opened: a scene or recording
    /// that does not exist.
    #[must_use]
    pub fn problem(&self) -> Option<String> {
        match self {
            Self::Sim { scene: Some(p) } if !p.exists() => {
                Some(format!("scene file `{}` does not exist", p.display()))
            }
            Self::Sigmf(p) if !hardware::sigmf::recording_paths(p).0.exists() => {
                Some(format!("recording `{}` does not exist", p.display()))
            }
            _ => None,
        }
    }

    /// The simulator's scene, when the source is the simulator.
    ///
    /// # Errors
    /// A scene file that cannot be read or is not a valid scene.
    pub fn scene(&self) -> Result<Option<Scene>, AgentError> {
        match self {
            Self::Sim { scene: None } => Ok(Some(Scene::demo())),
            Self::Sim { scene: Some(p) } => Ok(Some(crate::files::load_scene(p)?)),
            _ => Ok(None),
        }
    }

    /// The header of the recorded sweep this source plays, if it is one.
    ///
    /// # Errors
    /// A recording that cannot be read, or a Centinela sweep whose fields are wrong.
    pub fn recorded_sweep(&self) -> Result<Option<SweepHeader>, AgentError> {
        let Self::Sigmf(p) = self else {
            return Ok(None);
        };
        let meta = hardware::sigmf::Metadata::open(p)?;
        if !RecordedSweep::is_sweep(&meta) {
            return Ok(None);
        }
        Ok(Some(RecordedSweep::open(p)?.header))
    }

    /// The sample rate of a recording (which scans at its own rate).
    ///
    /// # Errors
    /// A recording that cannot be read.
    pub fn recorded_rate(&self) -> Result<Option<f64>, AgentError> {
        match self {
            Self::Sigmf(p) => Ok(Some(hardware::sigmf::Metadata::open(p)?.sample_rate_hz)),
            _ => Ok(None),
        }
    }

    /// Opens the source; the simulator on `scene` when given (a sensor's own view of it).
    ///
    /// # Errors
    /// [`AgentError::Input`] for a build without SoapySDR; scene, recording and device errors
    /// from the hardware crate.
    pub fn open(&self, scene: Option<Scene>) -> Result<Box<dyn IqSource>, AgentError> {
        match self {
            Self::Sim { .. } => {
                let scene = match scene {
                    Some(s) => s,
                    None => self.scene()?.unwrap_or_else(Scene::demo),
                };
                Ok(Box::new(SimSource::new(scene)?))
            }
            Self::Sigmf(p) => {
                if RecordedSweep::is_sweep(&hardware::sigmf::Metadata::open(p)?) {
                    Ok(Box::new(RecordedSweep::open(p)?))
                } else {
                    Ok(Box::new(hardware::sigmf::SigmfSource::open(p)?))
                }
            }
            #[cfg(feature = "soapy")]
            Self::Soapy(args) => Ok(Box::new(hardware::soapy::SoapySource::open(
                hardware::soapy::SoapyConfig::new(args),
            )?)),
            #[cfg(not(feature = "soapy"))]
            Self::Soapy(_) => Err(AgentError::Input(
                "this build has no SoapySDR support: rebuild with `--features soapy`".into(),
            )),
        }
    }

    /// The radio's name, tuning limits and scanning rate, from a device profile when given.
    #[must_use]
    pub fn radio(
        &self,
        device: Option<&'static DeviceProfile>,
        rate: Option<f64>,
    ) -> (String, TuningLimits, f64) {
        match (device, self) {
            (Some(p), _) => (
                p.name.to_string(),
                p.limits(),
                rate.unwrap_or(p.default_sample_rate_hz),
            ),
            (None, Self::Sim { .. }) => (
                "simulated radio".to_string(),
                TuningLimits {
                    min_hz: 1e6,
                    max_hz: 6e9,
                    max_sample_rate_hz: SIM_MAX_RATE_HZ,
                },
                rate.unwrap_or(15.36e6),
            ),
            (None, _) => (
                "radio".to_string(),
                TuningLimits {
                    min_hz: 1e6,
                    max_hz: 6e9,
                    max_sample_rate_hz: rate.unwrap_or(2.4e6),
                },
                rate.unwrap_or(2.4e6),
            ),
        }
    }
}

/// A device profile by id (`hackrf`, `usrp-b2xx`, …).
///
/// # Errors
/// [`AgentError::Input`] naming the known ids.
pub fn device_profile(name: Option<&str>) -> Result<Option<&'static DeviceProfile>, AgentError> {
    name.map(|d| {
        profile::profile(d).ok_or_else(|| {
            let known: Vec<&str> = profile::PROFILES.iter().map(|p| p.id).collect();
            AgentError::Input(format!(
                "unknown device `{d}` (known: {})",
                known.join(", ")
            ))
        })
    })
    .transpose()
}
