//! Noticing that a file changed, for certificate reload and policy hot swap.
//!
//! Polling, not inotify: Kubernetes updates a mounted Secret or ConfigMap by swapping a
//! symlink (`..data`) to a new folder. An inotify watch on the file sees nothing of
//! that, and a watch on the folder sees a burst of events. Comparing the followed
//! file's identity (device, inode, size, mtime) every few seconds catches both a swap
//! and a plain overwrite, costs one `stat` per file, and cannot miss an event.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// What identifies one version of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    })
}

/// A set of files that are read together, such as a certificate and its key.
#[derive(Debug)]
pub struct FileSetWatch {
    paths: Vec<PathBuf>,
    last: Vec<Option<Stamp>>,
}

impl FileSetWatch {
    /// Starts from the files as they are now (the caller has just read them).
    pub fn new(paths: Vec<PathBuf>) -> FileSetWatch {
        let last = paths.iter().map(|p| stamp(p)).collect();
        FileSetWatch { paths, last }
    }

    /// True once after any of the files changed. A file that is missing for a while
    /// (between a delete and a rename) is not a change; its return is.
    pub fn changed(&mut self) -> bool {
        let now: Vec<Option<Stamp>> = self.paths.iter().map(|p| stamp(p)).collect();
        let changed = now.iter().zip(&self.last).any(|(n, l)| n.is_some() && n != l);
        if changed {
            self.last = now;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_overwrites_and_symlink_swaps_but_not_absence() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, "one").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let mut watch = FileSetWatch::new(vec![link.clone()]);
        assert!(!watch.changed());

        // A Secret update: a new file, the link swapped to it.
        let b = dir.path().join("b");
        std::fs::write(&b, "two").unwrap();
        let tmp = dir.path().join("link.tmp");
        std::os::unix::fs::symlink(&b, &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
        assert!(watch.changed());
        assert!(!watch.changed(), "a change is reported once");

        std::fs::remove_file(&link).unwrap();
        assert!(!watch.changed(), "a missing file is not a change");
        std::os::unix::fs::symlink(&a, &link).unwrap();
        assert!(watch.changed());
    }
}
