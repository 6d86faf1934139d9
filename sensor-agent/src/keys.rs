//! The sensor's signing key on disk: written once by `sensor-agent keygen` with mode 0600 in a
//! directory of mode 0700, refused when anyone but its owner can read it.

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use protocol::signed::{PublicKey, SensorKey};

use crate::AgentError;

/// File name of the private key inside a key directory.
pub const KEY_FILE: &str = "sensor.key";
/// File name of the public key inside a key directory.
pub const PUBLIC_FILE: &str = "sensor.pub";

/// Makes a new key pair in `dir` (created 0700 if missing): `sensor.key` (PKCS#8 PEM, 0600) and
/// `sensor.pub` (one line, `ed25519:…`). An existing key is never overwritten.
///
/// # Errors
/// [`AgentError::Input`] when the key exists or the directory cannot be written.
pub fn keygen(dir: &Path) -> Result<(PathBuf, PublicKey), AgentError> {
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        AgentError::Input(format!("{}: {what}: {e}", p.display()))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| fail("cannot create the key directory", dir, e))?;
    let key_path = dir.join(KEY_FILE);
    if key_path.exists() {
        return Err(AgentError::Input(format!(
            "{}: a key is already there; a sensor keeps its key (move it away to make a new one, \
             and register the new public key)",
            key_path.display()
        )));
    }
    let key = SensorKey::generate().map_err(|e| AgentError::Input(e.to_string()))?;
    let pem = key
        .to_pkcs8_pem()
        .map_err(|e| AgentError::Input(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(|e| fail("cannot create the key file", &key_path, e))?;
    f.write_all(pem.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| fail("cannot write the key file", &key_path, e))?;
    let public = key.public();
    let pub_path = dir.join(PUBLIC_FILE);
    std::fs::write(&pub_path, format!("{public}\n"))
        .map_err(|e| fail("cannot write the public key", &pub_path, e))?;
    Ok((key_path, public))
}

/// Reads the private key at `path`, refusing a file that its group or others may read or
/// write, or that is not a regular file.
///
/// # Errors
/// [`AgentError::Input`] naming the file and what is wrong (with the `chmod` that mends it).
pub fn load_key(path: &Path) -> Result<SensorKey, AgentError> {
    let at = path.display();
    let m = std::fs::metadata(path).map_err(|e| AgentError::Input(format!("{at}: {e}")))?;
    let mode = m.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AgentError::Input(format!(
            "{at}: the private key is open to others (mode {mode:04o}); it must be readable by \
             its owner only: chmod 600 {at}"
        )));
    }
    let text = crate::files::read_small_text(path).map_err(AgentError::Input)?;
    SensorKey::from_pkcs8_pem(&text).map_err(|e| AgentError::Input(format!("{at}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let kd = dir.path().join("keys");
        let (path, public) = keygen(&kd).expect("keygen");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(&kd).expect("meta").permissions().mode() & 0o777;
        assert_eq!(dmode, 0o700);
        let key = load_key(&path).expect("load");
        assert_eq!(key.public(), public);
        let printed = std::fs::read_to_string(kd.join(PUBLIC_FILE)).expect("pub");
        assert_eq!(printed.trim(), public.to_string());
        let before = std::fs::read(&path).expect("read");
        assert!(
            keygen(&kd).is_err(),
            "a second keygen must not replace the key"
        );
        assert_eq!(std::fs::read(&path).expect("read"), before);
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().expect("tmp");
        let (path, _) = keygen(dir.path()).expect("keygen");
        for mode in [0o644, 0o640, 0o604, 0o660, 0o606] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let e = load_key(&path).expect_err("open key");
            let text = e.to_string();
            assert!(
                text.contains("chmod 600") && text.contains(&format!("{mode:04o}")),
                "{text}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        load_key(&path).expect("owner read-only is fine");
    }
}
