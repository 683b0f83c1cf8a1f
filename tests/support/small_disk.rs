//! A size-limited tmpfs on a directory of the test (root only): a state disk that fills up.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs of a given size mounted on a directory, lazily unmounted on drop (files a daemon
/// still holds open there keep it busy until the daemon is gone).
pub struct SmallDisk {
    /// The mount point.
    pub dir: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `256k`) on `dir`, creating it.
    pub fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).expect("the mount point");
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "mount a tmpfs on {}", dir.display());
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }

    /// Gives the mounted tmpfs a new size (`mount -o remount,size=`).
    pub fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "resize the tmpfs on {}", self.dir.display());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
