//! Small durable-file helpers of the state machine: atomic replace (temp + fsync + rename +
//! directory fsync), directory fsync, and a *sealed* file format for small metadata (magic,
//! version, length, body, blake3 over everything before it), so that damage is detected, never
//! misread.

use crate::error::{Result, StoreError};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::Path;

/// Maps an IO error on `path` during `op` to [`StoreError::Io`].
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

/// fsyncs a directory, making the creates, renames and unlinks inside it durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// The parent of `path` (`.` for a bare name).
fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to a new file at `path` (which must not exist) and fsyncs it. The caller
/// fsyncs the directory.
pub(crate) fn write_new_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_err("create", path))?;
    file.write_all(bytes).map_err(io_err("write", path))?;
    file.sync_all().map_err(io_err("fsync", path))
}

/// Replaces `path` with `bytes` atomically and durably: a temp file next to it, written and
/// fsynced, renamed over `path`, then the directory fsynced. After a crash `path` holds either
/// the old or the new contents, never a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    remove_file_if_exists(&tmp)?;
    write_new_synced(&tmp, bytes)?;
    fs::rename(&tmp, path).map_err(io_err("rename", &tmp))?;
    sync_dir(parent(path))
}

/// Removes a file; a missing one is fine.
pub(crate) fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Removes a directory tree; a missing one is fine.
pub(crate) fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err("remove directory", path)(e)),
        _ => Ok(()),
    }
}

/// Whether `path` exists (an error other than "not found" is an error).
pub(crate) fn exists(path: &Path) -> Result<bool> {
    path.try_exists().map_err(io_err("stat", path))
}

/// Reads a whole file; `None` when it does not exist.
pub(crate) fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

/// Bytes of a sealed file around `body`: `magic ‖ version u32 LE ‖ len u32 LE ‖ body ‖
/// blake3(all before)`.
pub(crate) fn seal(magic: &[u8; 8], version: u32, body: &[u8]) -> Result<Vec<u8>, String> {
    let len = u32::try_from(body.len()).map_err(|_| format!("body of {} bytes", body.len()))?;
    let mut out = Vec::with_capacity(body.len() + 48);
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    Ok(out)
}

/// The body of a sealed file, after checking magic, version, length and checksum.
pub(crate) fn unseal<'a>(
    magic: &[u8; 8],
    version: u32,
    bytes: &'a [u8],
) -> Result<&'a [u8], String> {
    let fixed = magic.len() + 8;
    if bytes.len() < fixed + 32 {
        return Err(format!(
            "{} bytes, shorter than the smallest sealed file",
            bytes.len()
        ));
    }
    let (content, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(content).as_bytes() != sum {
        return Err("checksum mismatch".into());
    }
    let (head, body) = content.split_at(fixed);
    if &head[..8] != magic {
        return Err("bad magic".into());
    }
    let mut word = [0u8; 4];
    word.copy_from_slice(&head[8..12]);
    let found = u32::from_le_bytes(word);
    if found != version {
        return Err(format!("version {found}, this build reads {version}"));
    }
    word.copy_from_slice(&head[12..16]);
    let len = u32::from_le_bytes(word);
    if usize::try_from(len).ok() != Some(body.len()) {
        return Err(format!("length field {len}, body of {} bytes", body.len()));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_round_trip_and_damage() {
        let magic = *b"TESTMAG1";
        let sealed = seal(&magic, 3, b"hello").unwrap();
        assert_eq!(unseal(&magic, 3, &sealed).unwrap(), b"hello");
        assert!(unseal(&magic, 4, &sealed).is_err());
        assert!(unseal(b"OTHERMAG", 3, &sealed).is_err());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(unseal(&magic, 3, &bad).is_err(), "flip at {i}");
        }
        for len in 0..sealed.len() {
            assert!(unseal(&magic, 3, &sealed[..len]).is_err());
        }
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(read_if_exists(&path).unwrap().unwrap(), b"two");
        assert!(!exists(&dir.path().join("f.tmp")).unwrap());
        assert!(read_if_exists(&dir.path().join("none")).unwrap().is_none());
    }
}
