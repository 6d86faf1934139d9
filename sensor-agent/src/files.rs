//! Small files the agent reads whole (its configuration, a scene, PEM certificates and keys):
//! regular files only, and bounded, so that a path to a FIFO or `/dev/zero` is a clear error
//! instead of a hang.

use std::path::Path;

use crate::AgentError;

/// Largest configuration, scene or PEM file read, bytes.
pub const MAX_SMALL_FILE_BYTES: u64 = 4 << 20;

/// Reads a small regular file.
///
/// # Errors
/// A sentence naming the file: missing, unreadable, not a regular file, or too large.
pub fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    let at = path.display();
    let m = std::fs::metadata(path).map_err(|e| format!("{at}: {e}"))?;
    if !m.is_file() {
        return Err(format!(
            "{at}: not a regular file (a FIFO, a device or a directory cannot be read here)"
        ));
    }
    if m.len() > MAX_SMALL_FILE_BYTES {
        return Err(format!(
            "{at}: {} bytes is over the {MAX_SMALL_FILE_BYTES}-byte limit for this kind of file",
            m.len()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{at}: {e}"))
}

/// Reads a small regular text file (UTF-8).
///
/// # Errors
/// As [`read_small`], or text that is not UTF-8.
pub fn read_small_text(path: &Path) -> Result<String, String> {
    String::from_utf8(read_small(path)?)
        .map_err(|e| format!("{}: not UTF-8 text: {e}", path.display()))
}

/// Reads a simulator scene (TOML).
///
/// # Errors
/// [`AgentError::Input`] naming the file and the problem.
pub fn load_scene(path: &Path) -> Result<hardware::sim::Scene, AgentError> {
    let text = read_small_text(path).map_err(AgentError::Input)?;
    hardware::sim::Scene::from_toml(&text)
        .map_err(|e| AgentError::Input(format!("{}: {e}", path.display())))
}
