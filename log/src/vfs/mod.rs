//! The file-IO seam of the log.
//!
//! Every byte the log reads or writes, every fsync, create, rename and unlink goes through
//! [`Vfs`] and [`VfsFile`]. [`StdVfs`] is the real file system; [`SimVfs`] is an in-memory file
//! system that models what is durable and can inject write and fsync failures, byte flips and
//! power loss (unsynced writes dropped or torn at an arbitrary byte).
//!
//! # Contract
//!
//! * `write_all_at` makes bytes visible to later reads through any handle at once; they are
//!   **not** durable until `sync_data` on that file returns `Ok`.
//! * `sync_data` makes every earlier write and `set_len` of that file durable (fdatasync).
//! * `create`, `rename` and `remove` change the directory at once, but the change is durable
//!   only after `sync_dir` of the parent directory returns `Ok`.
//! * An `Err` from any call leaves durability unknown: callers must treat it as fatal for the
//!   data involved (the log poisons itself after a failed write or fsync).

mod sim;
mod std_vfs;

pub use sim::{SimFault, SimVfs};
pub use std_vfs::StdVfs;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open file. Positional IO only: handles carry no cursor, so they can be shared by threads.
pub trait VfsFile: Send + Sync + std::fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed. Not durable until
    /// [`VfsFile::sync_data`].
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// fdatasync: every earlier write and length change of this file is durable on `Ok`.
    fn sync_data(&self) -> io::Result<()>;
    /// The current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Truncates or extends (with zeros) to `len`. Not durable until [`VfsFile::sync_data`].
    fn set_len(&self, len: u64) -> io::Result<()>;

    /// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_at(buf, offset)?;
            if n == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "short read"));
            }
            buf = &mut buf[n..];
            offset += n as u64;
        }
        Ok(())
    }
}

/// The file system the log lives on.
pub trait Vfs: Send + Sync + std::fmt::Debug {
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>>;
    /// Creates a new, empty file (fails if it exists). The directory entry is durable only after
    /// [`Vfs::sync_dir`] of the parent.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>>;
    /// Atomically renames `from` to `to`, replacing `to`. Durable after [`Vfs::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file. Durable after [`Vfs::sync_dir`].
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// fsyncs a directory, making creates, renames and removes in it durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// The names (not paths) of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Creates `dir` and its parents if missing, fsyncing each parent whose entry it adds.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Whether `path` exists.
    fn exists(&self, path: &Path) -> bool;
    /// Takes an exclusive advisory lock on `path` (created if missing), held until the returned
    /// guard is dropped; fails at once if another process holds it. In-memory file systems
    /// need no lock and return `None`.
    fn lock(&self, path: &Path) -> io::Result<Option<Box<dyn std::any::Any + Send + Sync>>> {
        let _ = path;
        Ok(None)
    }
}

/// The parent directory of `path` (`.` when it has none).
pub(crate) fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
