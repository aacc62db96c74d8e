//! Where the control-plane binaries are: an envtest-style folder holding `etcd`,
//! `kube-apiserver` and `kube-controller-manager`.
//!
//! `KUBEBUILDER_ASSETS` first (Go's envtest convention, so people who have binaries from
//! `setup-envtest` use theirs), then the cache `scripts/provision-kube-test-assets` fills.

use std::path::{Path, PathBuf};

use crate::Error;

/// The command that fills the cache; named in every "assets missing" error.
pub const PROVISION_COMMAND: &str = "scripts/provision-kube-test-assets";

/// The binaries of one control plane.
#[derive(Clone, Debug)]
pub struct Assets {
    /// The folder holding `etcd`, `kube-apiserver` and `kube-controller-manager`.
    pub dir: PathBuf,
}

impl Assets {
    /// The etcd binary.
    pub fn etcd(&self) -> PathBuf {
        self.dir.join("etcd")
    }

    /// The kube-apiserver binary.
    pub fn kube_apiserver(&self) -> PathBuf {
        self.dir.join("kube-apiserver")
    }

    /// The kube-controller-manager binary.
    pub fn kube_controller_manager(&self) -> PathBuf {
        self.dir.join("kube-controller-manager")
    }

    /// Finds the assets, or says where it looked and how to provision them.
    pub fn find() -> Result<Assets, Error> {
        Assets::find_among(candidates())
    }

    /// The first folder of `dirs` that holds at least etcd and kube-apiserver.
    pub fn find_among(dirs: impl IntoIterator<Item = PathBuf>) -> Result<Assets, Error> {
        let mut looked = Vec::new();
        for dir in dirs {
            if is_complete(&dir) {
                return Ok(Assets { dir });
            }
            looked.push(dir);
        }
        Err(Error::AssetsMissing { looked })
    }
}

/// `$KUBEBUILDER_ASSETS`, then `~/.cache/flink-ha/kube-assets/current` (a link or a file
/// naming the versioned folder the provisioning script filled).
fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("KUBEBUILDER_ASSETS").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("FLINK_HA_KUBE_ASSETS").filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let current = Path::new(&home).join(".cache/flink-ha/kube-assets/current");
        match std::fs::read_to_string(&current) {
            // A file holding the folder's path.
            Ok(text) if !text.trim().is_empty() => dirs.push(PathBuf::from(text.trim())),
            // A symbolic link to (or a copy of) the folder.
            _ => dirs.push(current),
        }
    }
    dirs
}

fn is_complete(dir: &Path) -> bool {
    ["etcd", "kube-apiserver"].iter().all(|b| dir.join(b).is_file())
}
