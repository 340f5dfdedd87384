//! [`ShardStore`]: a node's shard files, `DATA/shards/`.
//!
//! ```text
//! DATA/shards/blobs/ab/abcdef…(64 hex)/0 … /{k+m-1}   one file per shard of a blob
//! DATA/shards/tmp/<random>/0 …                         a blob being written
//! ```
//!
//! A blob is written by a [`ShardWriter`] (streaming: memory is one stripe and its chunks,
//! whatever the blob's size): every stripe is encoded into its `k + m` chunks, appended to the
//! shard files in `tmp/`, and hashed (blake3 of the whole blob, of every shard, of every stripe).
//! [`ShardWriter::finish`] fsyncs every file and the directory, renames the directory to its
//! place under `blobs/` (named by the blob's hash, which is only known at the end) and fsyncs the
//! parents. A crash leaves either nothing under `blobs/` or the complete directory; leftovers in
//! `tmp/` are removed at open. A writer dropped before `finish` removes its directory.
//!
//! Reads ([`ShardStore::read_chunk`]) return `None` for a missing or short shard file: the
//! caller then rebuilds from other shards. Nothing here trusts the bytes it reads; the stripe
//! hashes in the manifest do (see [`super::stripe`]).

use super::layout::Layout;
use super::stripe::{StripeCodec, StripeError};
use crate::hex;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Buffer of each shard file's writer.
const WRITE_BUFFER: usize = 256 << 10;

/// A shard-store failure.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// A filesystem operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The body was longer or shorter than announced.
    #[error("the blob has {got} bytes, {expected} were announced")]
    SizeMismatch {
        /// Announced.
        expected: u64,
        /// Received (so far, when too long).
        got: u64,
    },
    /// The erasure code is not usable.
    #[error(transparent)]
    Stripe(#[from] StripeError),
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ShardError {
    let path = path.to_path_buf();
    move |source| ShardError::Io { op, path, source }
}

/// What a finished [`ShardWriter`] wrote: the blob's manifest hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// blake3 of the blob.
    pub hash: [u8; 32],
    /// Its layout.
    pub layout: Layout,
    /// blake3 of every shard file, in shard order.
    pub shard_hashes: Vec<[u8; 32]>,
    /// blake3 of every stripe's bytes, in stripe order.
    pub stripe_hashes: Vec<[u8; 32]>,
    /// False when the blob's directory already existed (same bytes written before): the new
    /// files were discarded.
    pub fresh: bool,
}

/// The shard files of one node.
#[derive(Debug, Clone)]
pub struct ShardStore {
    root: PathBuf,
}

impl ShardStore {
    /// Opens (creating) the store under `root` (`DATA/shards`) and removes unfinished writes.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, ShardError> {
        let root = root.into();
        let store = ShardStore { root };
        for dir in [store.root.clone(), store.blobs_dir(), store.tmp_dir()] {
            create_dir_synced(&dir)?;
        }
        let tmp = store.tmp_dir();
        for entry in fs::read_dir(&tmp).map_err(io_err("list", &tmp))? {
            let path = entry.map_err(io_err("list", &tmp))?.path();
            remove_any(&path)?;
        }
        sync_dir(&tmp)?;
        Ok(store)
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// The directory of blob `hash`.
    pub fn blob_dir(&self, hash: &[u8; 32]) -> PathBuf {
        let hex = hex::encode(hash);
        self.blobs_dir().join(&hex[..2]).join(hex)
    }

    /// The file of shard `index` of blob `hash`.
    pub fn shard_path(&self, hash: &[u8; 32], index: u32) -> PathBuf {
        self.blob_dir(hash).join(index.to_string())
    }

    /// Every blob directory under `blobs/` with its last modification time (directories whose
    /// names are not blob hashes are skipped).
    pub fn blob_dirs(&self) -> Result<Vec<([u8; 32], std::time::SystemTime)>, ShardError> {
        let mut out = Vec::new();
        let blobs = self.blobs_dir();
        for prefix in fs::read_dir(&blobs).map_err(io_err("list", &blobs))? {
            let prefix = prefix.map_err(io_err("list", &blobs))?.path();
            let Ok(entries) = fs::read_dir(&prefix) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let hash =
                    hex::decode(&name.to_string_lossy()).and_then(|b| <[u8; 32]>::try_from(b).ok());
                let modified = entry.metadata().and_then(|m| m.modified());
                if let (Some(hash), Ok(modified)) = (hash, modified) {
                    out.push((hash, modified));
                }
            }
        }
        Ok(out)
    }

    /// Whether this node holds a directory for blob `hash`.
    pub fn has_blob(&self, hash: &[u8; 32]) -> bool {
        self.blob_dir(hash).is_dir()
    }

    /// Starts writing a blob of `layout` (its size must be known up front).
    pub fn writer(&self, layout: Layout) -> Result<ShardWriter, ShardError> {
        let codec = StripeCodec::new(layout.data_shards(), layout.parity_shards())?;
        let dir = self
            .tmp_dir()
            .join(format!("{:016x}", rand::random::<u64>()));
        fs::create_dir(&dir).map_err(io_err("create", &dir))?;
        let mut files = Vec::new();
        for i in 0..layout.shard_count() {
            let path = dir.join(i.to_string());
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io_err("create", &path))?;
            files.push(BufWriter::with_capacity(WRITE_BUFFER, f));
        }
        Ok(ShardWriter {
            store: self.clone(),
            layout,
            codec,
            dir: Some(dir),
            files,
            shard_hashers: (0..layout.shard_count())
                .map(|_| blake3::Hasher::new())
                .collect(),
            blob_hasher: blake3::Hasher::new(),
            stripe_hashes: Vec::new(),
            buf: Vec::with_capacity(layout.stripe_size().min(layout.size()) as usize),
            received: 0,
        })
    }

    /// `len` bytes at `offset` of shard `index` of blob `hash`; `None` when the file is missing
    /// or too short (the caller rebuilds it from other shards).
    pub fn read_chunk(
        &self,
        hash: &[u8; 32],
        index: u32,
        offset: u64,
        len: usize,
    ) -> Result<Option<Vec<u8>>, ShardError> {
        let path = self.shard_path(hash, index);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let mut buf = vec![0u8; len];
        match f.read_exact_at(&mut buf, offset) {
            Ok(()) => Ok(Some(buf)),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Rewrites `bytes` at `offset` of shard `index` (a repaired chunk), creating the file with
    /// `shard_size` bytes when it is missing. Not durable until [`Self::sync_shard`]: a repair
    /// lost in a crash leaves the chunk as bad as it was, and the next read repairs it again.
    pub fn repair_chunk(
        &self,
        hash: &[u8; 32],
        index: u32,
        shard_size: u64,
        offset: u64,
        bytes: &[u8],
    ) -> Result<(), ShardError> {
        let path = self.shard_path(hash, index);
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("open", &path))?;
        if f.metadata().map_err(io_err("stat", &path))?.len() != shard_size {
            f.set_len(shard_size).map_err(io_err("resize", &path))?;
        }
        f.write_all_at(bytes, offset)
            .map_err(io_err("write", &path))?;
        Ok(())
    }

    /// Makes shard `index`'s file (and its directory entry) durable after repairs.
    pub fn sync_shard(&self, hash: &[u8; 32], index: u32) -> Result<(), ShardError> {
        let path = self.shard_path(hash, index);
        File::open(&path)
            .and_then(|f| f.sync_data())
            .map_err(io_err("fsync", &path))?;
        sync_dir(&self.blob_dir(hash))
    }

    /// Up to `len` bytes at `offset` of shard `index` of blob `hash` (fewer at the end of the
    /// file) and the file's size; `None` when the file is missing.
    pub fn read_at(
        &self,
        hash: &[u8; 32],
        index: u32,
        offset: u64,
        len: usize,
    ) -> Result<Option<(Vec<u8>, u64)>, ShardError> {
        let path = self.shard_path(hash, index);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let size = f.metadata().map_err(io_err("stat", &path))?.len();
        let len = (size.saturating_sub(offset)).min(len as u64) as usize;
        let mut buf = vec![0u8; len];
        f.read_exact_at(&mut buf, offset)
            .map_err(io_err("read", &path))?;
        Ok(Some((buf, size)))
    }

    /// blake3 and length of shard `index` of blob `hash`, read in a stream (memory: one
    /// buffer, whatever the shard's size); `None` when the file is missing.
    pub fn shard_digest(
        &self,
        hash: &[u8; 32],
        index: u32,
    ) -> Result<Option<([u8; 32], u64)>, ShardError> {
        let path = self.shard_path(hash, index);
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", &path)(e)),
        };
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_reader(io::BufReader::with_capacity(WRITE_BUFFER, f))
            .map_err(io_err("read", &path))?;
        Ok(Some((*hasher.finalize().as_bytes(), hasher.count())))
    }

    /// The shard indexes this node has files for, of blob `hash` (none when it has no
    /// directory for it).
    pub fn held_shards(&self, hash: &[u8; 32]) -> Vec<u32> {
        let Ok(entries) = fs::read_dir(self.blob_dir(hash)) else {
            return Vec::new();
        };
        let mut out: Vec<u32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect();
        out.sort_unstable();
        out
    }

    /// Starts receiving shard `index` of blob `hash` from another node, into a file under
    /// `tmp/`; [`ShardReceiver::finish`] checks and publishes it.
    pub fn receiver(&self, hash: [u8; 32], index: u32) -> Result<ShardReceiver, ShardError> {
        let path = self
            .tmp_dir()
            .join(format!("recv-{:016x}", rand::random::<u64>()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        Ok(ShardReceiver {
            store: self.clone(),
            hash,
            index,
            path,
            file: Some(BufWriter::with_capacity(WRITE_BUFFER, file)),
            hasher: blake3::Hasher::new(),
            len: 0,
        })
    }

    /// Removes this node's copy of shard `index` of blob `hash` (and the blob's directory when
    /// it was the last); durable on return. A missing file is not an error.
    pub fn remove_shard(&self, hash: &[u8; 32], index: u32) -> Result<(), ShardError> {
        let path = self.shard_path(hash, index);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err("remove", &path)(e)),
        }
        let dir = self.blob_dir(hash);
        sync_dir(&dir)?;
        if fs::remove_dir(&dir).is_ok() {
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Removes blob `hash`'s shard files (a missing blob is not an error); durable on return.
    pub fn remove_blob(&self, hash: &[u8; 32]) -> Result<(), ShardError> {
        let dir = self.blob_dir(hash);
        if !dir.exists() {
            return Ok(());
        }
        remove_any(&dir)?;
        match dir.parent() {
            Some(parent) => sync_dir(parent),
            None => Ok(()),
        }
    }
}

/// One shard arriving from another node: written to a temp file and hashed as it comes;
/// [`ShardReceiver::finish`] checks it against the manifest, fsyncs it and renames it into the
/// blob's directory (fsyncing the directories). Dropped unfinished, it removes its file.
pub struct ShardReceiver {
    store: ShardStore,
    hash: [u8; 32],
    index: u32,
    path: PathBuf,
    file: Option<BufWriter<File>>,
    hasher: blake3::Hasher,
    len: u64,
}

/// Why a received shard was not kept.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    /// The bytes are not the shard the manifest names.
    #[error("received shard {index} has {got_len} bytes hashing to {got}, the manifest says {expected_len} bytes hashing to {expected}")]
    Mismatch {
        /// Shard index.
        index: u32,
        /// blake3 received.
        got: String,
        /// blake3 expected.
        expected: String,
        /// Bytes received.
        got_len: u64,
        /// Bytes expected.
        expected_len: u64,
    },
    /// Storing it failed.
    #[error(transparent)]
    Store(#[from] ShardError),
}

impl ShardReceiver {
    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was received yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the next bytes of the shard.
    pub fn write(&mut self, data: &[u8]) -> Result<(), ShardError> {
        let path = self.path.clone();
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        file.write_all(data).map_err(io_err("write", &path))?;
        self.hasher.update(data);
        self.len += data.len() as u64;
        Ok(())
    }

    /// Checks the shard against `expected_hash` and `expected_len`, then makes it durable in
    /// the blob's directory (file fsync, rename, directory fsyncs).
    pub fn finish(mut self, expected_hash: &[u8], expected_len: u64) -> Result<(), ReceiveError> {
        let got = self.hasher.finalize();
        if got.as_bytes().as_slice() != expected_hash || self.len != expected_len {
            return Err(ReceiveError::Mismatch {
                index: self.index,
                got: hex::encode(got.as_bytes()),
                expected: hex::encode(expected_hash),
                got_len: self.len,
                expected_len,
            });
        }
        let path = self.path.clone();
        let file = self
            .file
            .take()
            .ok_or_else(|| io_err("finish", &path)(io::ErrorKind::Other.into()))?;
        let file = file
            .into_inner()
            .map_err(|e| io_err("write", &path)(e.into_error()))?;
        file.sync_data().map_err(io_err("fsync", &path))?;
        drop(file);
        let dir = self.store.blob_dir(&self.hash);
        if let Some(parent) = dir.parent() {
            create_dir_synced(parent)?;
        }
        create_dir_synced(&dir)?;
        let dest = self.store.shard_path(&self.hash, self.index);
        fs::rename(&path, &dest).map_err(io_err("rename", &dest))?;
        sync_dir(&dir)?;
        sync_dir(&self.store.tmp_dir())?;
        Ok(())
    }
}

impl Drop for ShardReceiver {
    fn drop(&mut self) {
        if self.file.take().is_some() || self.path.exists() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Streams one blob into shard files; see the module docs.
pub struct ShardWriter {
    store: ShardStore,
    layout: Layout,
    codec: StripeCodec,
    /// The temp directory; `None` once published.
    dir: Option<PathBuf>,
    files: Vec<BufWriter<File>>,
    shard_hashers: Vec<blake3::Hasher>,
    blob_hasher: blake3::Hasher,
    stripe_hashes: Vec<[u8; 32]>,
    buf: Vec<u8>,
    received: u64,
}

impl ShardWriter {
    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Appends blob bytes; refuses more than the layout's size.
    pub fn write(&mut self, mut data: &[u8]) -> Result<(), ShardError> {
        let size = self.layout.size();
        if self.received + data.len() as u64 > size {
            return Err(ShardError::SizeMismatch {
                expected: size,
                got: self.received + data.len() as u64,
            });
        }
        self.received += data.len() as u64;
        self.blob_hasher.update(data);
        while !data.is_empty() {
            let stripe = self.stripe_hashes.len() as u64;
            let want = self.layout.stripe_range(stripe);
            let room = (want.end - want.start) as usize - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() as u64 == want.end - want.start {
                self.flush_stripe()?;
            }
        }
        Ok(())
    }

    fn flush_stripe(&mut self) -> Result<(), ShardError> {
        let chunks = self.codec.encode(&self.buf)?;
        for (i, chunk) in chunks.iter().enumerate() {
            self.shard_hashers[i].update(chunk);
            if let Err(source) = self.files[i].write_all(chunk) {
                return Err(ShardError::Io {
                    op: "write",
                    path: self.dir.clone().unwrap_or_default().join(i.to_string()),
                    source,
                });
            }
        }
        self.stripe_hashes.push(*blake3::hash(&self.buf).as_bytes());
        self.buf.clear();
        Ok(())
    }

    /// Checks the size, makes every shard durable and publishes the blob's directory.
    pub fn finish(self) -> Result<Written, ShardError> {
        self.finish_replacing(|_| false)
    }

    /// [`Self::finish`], but an existing directory for the same hash for which `stale` answers
    /// true (left by a deleted blob, with only some of its shards) is replaced by this one.
    pub fn finish_replacing(
        mut self,
        stale: impl FnOnce(&[u8; 32]) -> bool,
    ) -> Result<Written, ShardError> {
        if self.received != self.layout.size() {
            return Err(ShardError::SizeMismatch {
                expected: self.layout.size(),
                got: self.received,
            });
        }
        let dir = self.dir.clone().unwrap_or_default();
        for (i, f) in std::mem::take(&mut self.files).into_iter().enumerate() {
            let path = dir.join(i.to_string());
            let f = f
                .into_inner()
                .map_err(|e| io_err("write", &path)(e.into_error()))?;
            f.sync_data().map_err(io_err("fsync", &path))?;
        }
        // The directory's age is what the start-up orphan sweep goes by: it starts now, not
        // when the upload began.
        File::open(&dir)
            .and_then(|d| d.set_modified(std::time::SystemTime::now()))
            .map_err(io_err("touch", &dir))?;
        sync_dir(&dir)?;
        let hash = *self.blob_hasher.finalize().as_bytes();
        let target = self.store.blob_dir(&hash);
        if target.exists() && stale(&hash) {
            remove_any(&target)?;
        }
        let fresh = !target.exists();
        if fresh {
            let parent = target.parent().unwrap_or(&target).to_path_buf();
            create_dir_synced(&parent)?;
            fs::rename(&dir, &target).map_err(io_err("rename", &target))?;
            sync_dir(&parent)?;
            sync_dir(&self.store.tmp_dir())?;
            self.dir = None;
        }
        Ok(Written {
            hash,
            layout: self.layout,
            shard_hashes: self
                .shard_hashers
                .iter()
                .map(|h| *h.finalize().as_bytes())
                .collect(),
            stripe_hashes: std::mem::take(&mut self.stripe_hashes),
            fresh,
        })
        // An unpublished directory (the blob existed) is removed by Drop.
    }
}

impl Drop for ShardWriter {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.take() {
            self.files.clear();
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "removing an unfinished blob");
            }
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), ShardError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync", dir))
}

/// Creates `dir` if missing and fsyncs its parent when it did.
fn create_dir_synced(dir: &Path) -> Result<(), ShardError> {
    match fs::create_dir(dir) {
        Ok(()) => match dir.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
            _ => Ok(()),
        },
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err("create", dir)(e)),
    }
}

fn remove_any(path: &Path) -> Result<(), ShardError> {
    let r = if path.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    r.map_err(io_err("remove", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn write_blob(store: &ShardStore, data: &[u8], layout: Layout, piece: usize) -> Written {
        let mut w = store.writer(layout).expect("writer");
        for p in data.chunks(piece.max(1)) {
            w.write(p).expect("write");
        }
        w.finish().expect("finish")
    }

    /// Reads the whole blob back stripe by stripe through the codec.
    fn read_blob(store: &ShardStore, w: &Written) -> Vec<u8> {
        let l = w.layout;
        let codec = StripeCodec::new(l.data_shards(), l.parity_shards()).expect("codec");
        let mut out = Vec::new();
        for s in 0..l.stripe_count() {
            let chunks: Vec<_> = (0..l.shard_count())
                .map(|i| {
                    store
                        .read_chunk(&w.hash, i, l.shard_offset(s), l.chunk_len(s) as usize)
                        .expect("read")
                })
                .collect();
            let r = l.stripe_range(s);
            let d = codec
                .decode(
                    &chunks,
                    (r.end - r.start) as usize,
                    &w.stripe_hashes[s as usize],
                )
                .expect("decode");
            out.extend(d.data);
        }
        out
    }

    #[test]
    fn a_blob_round_trips_and_its_hashes_match_the_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ShardStore::open(dir.path().join("shards")).expect("open");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
        let layout = Layout::new(data.len() as u64, 4, 3, 4096).expect("layout");
        let w = write_blob(&store, &data, layout, 7_000);
        assert!(w.fresh);
        assert_eq!(w.hash, *blake3::hash(&data).as_bytes());
        assert_eq!(w.stripe_hashes.len() as u64, layout.stripe_count());
        for i in 0..7 {
            let bytes = fs::read(store.shard_path(&w.hash, i)).expect("shard");
            assert_eq!(bytes.len() as u64, layout.shard_size());
            assert_eq!(*blake3::hash(&bytes).as_bytes(), w.shard_hashes[i as usize]);
        }
        assert_eq!(read_blob(&store, &w), data);
        assert!(fs::read_dir(dir.path().join("shards/tmp"))
            .expect("tmp")
            .next()
            .is_none());

        // Three shard files lost: still readable.
        for i in [0, 3, 6] {
            fs::remove_file(store.shard_path(&w.hash, i)).expect("rm");
        }
        assert_eq!(read_blob(&store, &w), data);

        // The same bytes again: nothing new published.
        let again = write_blob(&store, &data, layout, 100_000);
        assert!(!again.fresh);
        assert_eq!(again.shard_hashes, w.shard_hashes);
        store.remove_blob(&w.hash).expect("remove");
        assert!(!store.has_blob(&w.hash));
    }

    #[test]
    fn wrong_sizes_and_abandoned_writes_leave_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ShardStore::open(dir.path()).expect("open");
        let layout = Layout::new(10, 2, 1, 4).expect("layout");
        let mut w = store.writer(layout).expect("writer");
        w.write(b"12345").expect("write");
        assert!(matches!(
            w.write(b"678901"),
            Err(ShardError::SizeMismatch {
                expected: 10,
                got: 11
            })
        ));
        assert!(matches!(
            w.finish(),
            Err(ShardError::SizeMismatch {
                expected: 10,
                got: 5
            })
        ));
        let mut w = store.writer(layout).expect("writer");
        w.write(b"123").expect("write");
        drop(w);
        let left: Vec<_> = fs::read_dir(dir.path().join("tmp")).expect("tmp").collect();
        assert!(left.is_empty(), "{left:?}");
        assert!(fs::read_dir(dir.path().join("blobs"))
            .expect("blobs")
            .next()
            .is_none());
    }

    #[test]
    fn open_sweeps_unfinished_writes_and_repair_restores_a_chunk() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ShardStore::open(dir.path()).expect("open");
        fs::create_dir_all(dir.path().join("tmp/crashed")).expect("mkdir");
        fs::write(dir.path().join("tmp/crashed/0"), b"half").expect("write");
        let store2 = ShardStore::open(dir.path()).expect("reopen");
        assert!(!dir.path().join("tmp/crashed").exists());

        let data = b"a small blob that fits one stripe".to_vec();
        let layout = Layout::new(data.len() as u64, 2, 1, 1024).expect("layout");
        let w = write_blob(&store, &data, layout, 5);
        fs::remove_file(store2.shard_path(&w.hash, 1)).expect("rm");
        assert_eq!(
            store2
                .read_chunk(&w.hash, 1, 0, layout.chunk_len(0) as usize)
                .expect("read"),
            None
        );
        let codec = StripeCodec::new(2, 1).expect("codec");
        let good = codec.encode(&data).expect("encode");
        store2
            .repair_chunk(&w.hash, 1, layout.shard_size(), 0, &good[1])
            .expect("repair");
        store2.sync_shard(&w.hash, 1).expect("sync");
        let bytes = fs::read(store2.shard_path(&w.hash, 1)).expect("read");
        assert_eq!(*blake3::hash(&bytes).as_bytes(), w.shard_hashes[1]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn any_blob_round_trips(
            data in proptest::collection::vec(any::<u8>(), 0..20_000),
            k in 1u32..5,
            m in 0u32..3,
            stripe in 1u64..3_000,
            piece in 1usize..5_000,
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let store = ShardStore::open(dir.path()).expect("open");
            let layout = Layout::new(data.len() as u64, k, m, stripe).expect("layout");
            let w = write_blob(&store, &data, layout, piece);
            prop_assert_eq!(read_blob(&store, &w), data);
        }
    }
}
