//! Evidence clips: when a gap opens at `critical`, the agent keeps the IQ of the hops that
//! showed it as a recorded sweep of its own (SigMF with the `centinela` extension and the
//! dataset's `core:sha512`), which `sensor-agent replay` turns back into the gap. The gap event
//! names the clip and its hash; the event is signed, so the hash binds the clip to it.
//!
//! Disk budget: the clips of a directory never take more than `max_bytes`. When a new clip
//! would pass it, the oldest clips are deleted first (the server is where evidence is kept for
//! good; a sensor keeps the most recent); a clip larger than the whole budget is not kept. Each
//! clip written, deleted for room, skipped and failed is counted.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde_json::json;
use time::OffsetDateTime;

use crate::AgentError;
use crate::pipeline::{ClipStats, EvidenceKeeper, HopCapture, ScanPlan, SweepSettings};
use crate::recording::{SweepHeader, SweepOrigin, SweepRecorder};

/// Where clips go and how much room they may take.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipPolicy {
    /// Directory of the clips (created with mode 0700).
    pub dir: PathBuf,
    /// Most bytes all clips together may take.
    pub max_bytes: u64,
}

/// A clip budget from megabytes.
///
/// # Errors
/// [`AgentError::Input`] for a budget that is not a positive number.
pub fn clip_policy(dir: &Path, max_mb: f64) -> Result<ClipPolicy, AgentError> {
    if !(max_mb.is_finite() && max_mb > 0.0) {
        return Err(AgentError::Input(format!(
            "the evidence clip budget {max_mb} MB must be a positive number"
        )));
    }
    Ok(ClipPolicy {
        dir: dir.to_path_buf(),
        max_bytes: (max_mb * 1e6) as u64,
    })
}

/// The clips of one directory, oldest first.
#[derive(Debug)]
pub struct ClipStore {
    policy: ClipPolicy,
    source: SweepOrigin,
    files: VecDeque<(String, u64)>,
    /// Counters.
    pub stats: ClipStats,
    /// Clips not kept in the current run of failures (logged once when it starts, once when
    /// it ends).
    failing: u64,
}

/// Bytes a clip's metadata may take, counted against the budget before it is written.
const META_ALLOWANCE: u64 = 64 * 1024;

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

impl ClipStore {
    /// Opens (creating) the directory and counts the clips already there.
    ///
    /// # Errors
    /// [`AgentError::Input`] when the directory cannot be made or read.
    pub fn open(policy: ClipPolicy, source: SweepOrigin) -> Result<Self, AgentError> {
        let dir = &policy.dir;
        let err = |e: std::io::Error| {
            AgentError::Runtime(format!("evidence clip directory {}: {e}", dir.display()))
        };
        std::fs::create_dir_all(dir).map_err(err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map_err(err)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".sigmf-meta"))
                    .map(str::to_string)
            })
            .collect();
        // Names start with the time of the sweep: name order is age order.
        names.sort();
        let files: VecDeque<(String, u64)> = names
            .into_iter()
            .map(|n| {
                let bytes = file_len(&dir.join(format!("{n}.sigmf-meta")))
                    + file_len(&dir.join(format!("{n}.sigmf-data")));
                (n, bytes)
            })
            .collect();
        let stats = ClipStats {
            bytes: files.iter().map(|f| f.1).sum(),
            ..ClipStats::default()
        };
        Ok(Self {
            policy,
            source,
            files,
            stats,
            failing: 0,
        })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.policy.dir
    }

    /// Clips kept now, oldest first (base names).
    #[must_use]
    pub fn clips(&self) -> Vec<String> {
        self.files.iter().map(|f| f.0.clone()).collect()
    }

    /// Writes the clip of `gap` from `captures` (a plan of those hops alone, with `settings`);
    /// `None` when it is larger than the whole budget.
    ///
    /// # Errors
    /// A clip that cannot be written (the half-written files are removed), or no capture.
    pub fn write(
        &mut self,
        plan: ScanPlan,
        settings: SweepSettings,
        at: OffsetDateTime,
        gap: &protocol::GapEvent,
        captures: &[HopCapture<'_>],
    ) -> Result<Option<protocol::Evidence>, AgentError> {
        if captures.is_empty() {
            return Err(AgentError::Input("no hop holds the gap's carrier".into()));
        }
        let need: u64 = captures
            .iter()
            .map(|c| c.samples.len() as u64 * 8)
            .sum::<u64>()
            + META_ALLOWANCE;
        if need > self.policy.max_bytes {
            self.stats.skipped += 1;
            tracing::warn!(
                "evidence clip of gap {} ({need} bytes) is larger than the whole budget ({} bytes): not kept",
                gap.gap_key,
                self.policy.max_bytes
            );
            return Ok(None);
        }
        while self.stats.bytes + need > self.policy.max_bytes {
            let Some((old, bytes)) = self.files.pop_front() else {
                break;
            };
            for ext in ["sigmf-meta", "sigmf-data"] {
                let _ = std::fs::remove_file(self.policy.dir.join(format!("{old}.{ext}")));
            }
            self.stats.bytes = self.stats.bytes.saturating_sub(bytes);
            self.stats.evicted += 1;
            tracing::info!("evidence clip {old} deleted to make room (budget full)");
        }
        let stamp = at
            .format(time::macros::format_description!(
                "[year][month][day]T[hour][minute][second].[subsecond digits:6]Z"
            ))
            .unwrap_or_default();
        let key: String = gap
            .gap_key
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let name = format!("{stamp}-{key}");
        let base = self.policy.dir.join(&name);
        let header = SweepHeader {
            clip: Some(json!({
                "event_id": gap.event_id,
                "gap_key": gap.gap_key,
                "band": gap.band,
                "center_hz": gap.center_hz,
                "severity": gap.severity,
            })),
            ..SweepHeader::new(&self.source, &plan, &settings, 0, at)
        };
        let written = (|| {
            let mut rec = SweepRecorder::create(&base, header)?;
            for c in captures {
                rec.hop(c)?;
            }
            rec.finish()
        })();
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                for ext in ["sigmf-meta", "sigmf-data"] {
                    let _ = std::fs::remove_file(self.policy.dir.join(format!("{name}.{ext}")));
                }
                return Err(e);
            }
        };
        let bytes = written.data_bytes + file_len(&written.meta_path);
        self.files.push_back((name.clone(), bytes));
        self.stats.bytes += bytes;
        self.stats.written += 1;
        tracing::info!(
            "evidence clip {name} kept for gap {} ({bytes} bytes)",
            gap.gap_key
        );
        Ok(Some(protocol::Evidence {
            clip: format!("{name}.sigmf-meta"),
            sha512: written.sha512,
            bytes: written.data_bytes,
        }))
    }
}

impl EvidenceKeeper for ClipStore {
    fn keep(
        &mut self,
        plan: ScanPlan,
        settings: SweepSettings,
        at: OffsetDateTime,
        gap: &protocol::GapEvent,
        captures: &[HopCapture<'_>],
    ) -> Option<protocol::Evidence> {
        match self.write(plan, settings, at, gap, captures) {
            Ok(e) => {
                if self.failing > 0 {
                    tracing::warn!(
                        "evidence clips are written again; {} clip(s) were not kept meanwhile (counted as clips_lost)",
                        self.failing
                    );
                    self.failing = 0;
                }
                e
            }
            Err(err) => {
                self.stats.failed += 1;
                if self.failing == 0 {
                    tracing::error!(
                        "evidence clip of gap {} not kept: {err}; later failures are counted (clips_lost in the status, an alert at the server) and said once when clips are written again",
                        gap.gap_key
                    );
                }
                self.failing += 1;
                None
            }
        }
    }

    fn stats(&self) -> ClipStats {
        self.stats.clone()
    }
}
