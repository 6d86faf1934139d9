//! A small filesystem that a test fills up: a tmpfs of a few MiB mounted by the test itself
//! (which needs root; CI runs as root), for what a server or an agent does when its disk is
//! full and when space comes back. Without the right to mount, the tests that need one say
//! `SKIP` and why, unless `CENTINELA_REQUIRE_MOUNT` is set (CI): then they fail.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted at a directory of the test's, unmounted when dropped.
#[derive(Debug)]
pub struct SmallDisk {
    /// Where it is mounted.
    pub path: PathBuf,
    filler: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mib` MiB at `at` (created), or `None` with a message when this
    /// process may not mount and `CENTINELA_REQUIRE_MOUNT` is not set.
    ///
    /// # Panics
    /// When mounting is required and fails.
    #[must_use]
    pub fn mount(at: &Path, mib: u32) -> Option<Self> {
        std::fs::create_dir_all(at).expect("mount point");
        let r = run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={mib}m,mode=0755"))
            .arg("centinela-test")
            .arg(at));
        if !mounted("a full-disk test needs to mount a small tmpfs", at, r) {
            return None;
        }
        Some(Self {
            path: at.to_path_buf(),
            filler: at.join("filler"),
        })
    }

    /// Gives the directory to `user` (e.g. `postgres`, for a tablespace).
    ///
    /// # Panics
    /// When `chown` fails.
    pub fn give_to(&self, user: &str) {
        let ok = Command::new("chown")
            .arg(format!("{user}:{user}"))
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "chown {user} {}", self.path.display());
    }

    /// Fills every free byte with a file of zeros (until the filesystem says it is full).
    /// Returns the bytes written.
    ///
    /// # Panics
    /// When the filler cannot be created.
    pub fn fill(&self) -> u64 {
        let mut f = std::fs::File::create(&self.filler).expect("filler");
        let block = vec![0u8; 64 * 1024];
        let mut n = 0u64;
        loop {
            match f.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(w) => n += w as u64,
            }
        }
        // The last partial pages too.
        loop {
            match f.write(&block[..512]) {
                Ok(0) | Err(_) => break,
                Ok(w) => n += w as u64,
            }
        }
        let _ = f.flush();
        n
    }

    /// Deletes the filler: the space comes back.
    pub fn free(&self) {
        let _ = std::fs::remove_file(&self.filler);
    }

    /// Bytes free now.
    #[must_use]
    pub fn available(&self) -> u64 {
        Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.path)
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .nth(1)
                    .and_then(|l| l.trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        unmount(&self.path);
    }
}

/// An ext4 filesystem in an image file, mounted through a loop device, whose state after a
/// power cut a test can look at: writes the kernel has not yet sent to the device (nothing
/// synced them) are in the page cache only, and [`PowerCutDisk::cut`] copies the image as the
/// device holds it — what a machine that lost power would find on reboot. The journal commit
/// interval is long (300 s), so unsynced data stays in memory for the length of a test
/// instead of being written out every 5 s.
///
/// What this simulates: the loss of everything not synced (`fsync`, `fdatasync`) when the
/// machine stops. What it does not: a disk that acknowledges a flush it has not made (its own
/// volatile cache), writes reordered below the flush, torn sectors.
#[derive(Debug)]
pub struct PowerCutDisk {
    /// Where it is mounted.
    pub path: PathBuf,
    image: PathBuf,
}

/// A copy of a [`PowerCutDisk`] as a power cut left it, mounted; unmounted when dropped.
#[derive(Debug)]
pub struct AfterCut {
    /// Where it is mounted.
    pub path: PathBuf,
}

/// Whether a mount at `at` succeeded; if not, `false` with a message saying `what` needs it,
/// or a failure when `CENTINELA_REQUIRE_MOUNT` is set (CI, as root).
fn mounted(what: &str, at: &Path, r: Result<(), String>) -> bool {
    let Err(why) = r else { return true };
    assert!(
        std::env::var_os("CENTINELA_REQUIRE_MOUNT").is_none(),
        "CENTINELA_REQUIRE_MOUNT is set but {what} at {}: {why}",
        at.display()
    );
    eprintln!("SKIP: {what} (run as root): {why}");
    false
}

/// Unmounts `at` lazily (a process of the test may still hold a file open there).
fn unmount(at: &Path) {
    let _ = Command::new("umount").arg("-l").arg(at).status();
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let o = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ))
    }
}

impl PowerCutDisk {
    /// Makes an ext4 image of `mib` MiB at `image` and mounts it at `at`, or `None` with a
    /// message when this process may not (not root, no loop devices, no `mkfs.ext4`) and
    /// `CENTINELA_REQUIRE_MOUNT` is not set.
    ///
    /// # Panics
    /// When mounting is required and fails.
    #[must_use]
    pub fn mount(image: &Path, at: &Path, mib: u32) -> Option<Self> {
        let made = (|| {
            std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
            let f = std::fs::File::create(image).map_err(|e| e.to_string())?;
            f.set_len(u64::from(mib) << 20).map_err(|e| e.to_string())?;
            run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(image))?;
            run(Command::new("mount")
                .args(["-o", "loop,commit=300"])
                .arg(image)
                .arg(at))
        })();
        if !mounted("a power-cut test needs to mount an ext4 image", at, made) {
            return None;
        }
        Some(Self {
            path: at.to_path_buf(),
            image: image.to_path_buf(),
        })
    }

    /// Cuts the power: copies the image as the device holds it now (nothing is synced first)
    /// to `copy` and mounts the copy at `at` (ext4 replays its journal, as at a reboot).
    ///
    /// # Panics
    /// When the copy cannot be made or mounted.
    #[must_use]
    pub fn cut(&self, copy: &Path, at: &Path) -> AfterCut {
        std::fs::copy(&self.image, copy).expect("copy of the image");
        std::fs::create_dir_all(at).expect("mount point");
        run(Command::new("mount").args(["-o", "loop"]).arg(copy).arg(at))
            .unwrap_or_else(|e| panic!("{e}"));
        AfterCut {
            path: at.to_path_buf(),
        }
    }
}

impl Drop for PowerCutDisk {
    fn drop(&mut self) {
        unmount(&self.path);
    }
}

impl Drop for AfterCut {
    fn drop(&mut self) {
        unmount(&self.path);
    }
}
