//! Small crash-safe file operations shared by the node's state files.

use std::io;
use std::path::Path;

/// Replaces `path` with `bytes` crash-safely (temp file, fsync, rename, directory fsync): the
/// data directory's formats live in `hearth-migrations`, and so does their writer.
pub use hearth_migrations::manifest::write_durably;

/// Bytes available to unprivileged writers on the filesystem holding `path` (`statvfs`).
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` is writable memory of the right type;
    // statvfs initializes it when it returns 0.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    // The field types differ between platforms (u32 or u64).
    #[allow(clippy::unnecessary_cast)]
    let (blocks, size) = (st.f_bavail as u64, st.f_frsize as u64);
    Ok(blocks.saturating_mul(size))
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

    #[test]
    fn free_space_is_reported_and_a_missing_path_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(super::free_bytes(dir.path()).expect("statvfs") > 0);
        assert!(super::free_bytes(&dir.path().join("missing")).is_err());
    }
}
