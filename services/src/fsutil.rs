//! Small crash-safe file operations shared by the node's state files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `bytes` crash-safely: `PATH.tmp` is written and fsynced, renamed over
/// `path`, and the parent directory fsynced. After a crash the file is either the old or the new
/// one, never a mix.
pub fn write_durably(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(tmp, path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        super::write_durably(&p, b"one").expect("write");
        super::write_durably(&p, b"two").expect("write");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        assert!(!dir.path().join("f.tmp").exists());
    }
}
