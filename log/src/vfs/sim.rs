//! [`SimVfs`]: an in-memory file system that models durability precisely and injects faults.
//!
//! # Model
//!
//! * **Inodes.** A file is an inode (`Arc<Mutex<Inode>>`). Each inode holds
//!   - `durable`: its content as of the last successful `sync_data`;
//!   - `pending`: the writes and length changes made since, in order (`Op::Write { offset,
//!     bytes }` or `Op::SetLen(len)`), applied on top of `durable`;
//!   - `current`: a cached copy of `durable` with every pending op applied. Reads copy from it,
//!     writes update it and append to `pending`, so neither is quadratic in the number of ops.
//!
//!   `sync_data` folds `pending` into `durable` (cost proportional to the pending bytes) and
//!   clears it.
//! * **Directories.** Directories are a set of known paths, created durably by
//!   `create_dir_all` (and never removed). `.` and `/` always exist. Each directory has two
//!   namespaces, maps of file name → inode: the *current* one (what `open`, `list` and `exists`
//!   see, changed at once by `create`, `rename` and `remove`) and the *durable* one (what
//!   survives power loss). `sync_dir(dir)` copies the current namespace of `dir` into its durable
//!   one. A path's directory is [`Path::parent`] (`.` when it has none); paths are used as given,
//!   without canonicalisation.
//! * **Handles** hold the inode, so a removed or renamed file stays readable and writable through
//!   handles opened earlier, as on POSIX.
//! * **Power loss** ([`SimVfs::power_loss`]): every inode reachable from the durable namespace
//!   keeps `durable`, then a random prefix of its pending ops (0..=all) is applied; the first op
//!   not fully applied may be *torn*: only a prefix of its bytes, of length uniform in `0..len`,
//!   lands (a torn `SetLen` does not land). The namespace becomes the durable namespace, so
//!   unsynced creates, renames and removes are lost and inodes no longer named anywhere are
//!   dropped. The randomness comes from a `StdRng` seeded by the caller: a seed always gives the
//!   same result. [`SimVfs::power_loss_durable_only`] lands no pending op at all;
//!   [`SimVfs::power_loss_keep_all`] lands every one and keeps the current namespace (a process
//!   crash, e.g. SIGKILL, with the OS surviving). Note the prefix model is kinder than real
//!   disks, which may write back pages out of order; the log never relies on ordering between
//!   unsynced writes anyway.
//! * **Stale handles.** Every crash bumps a generation counter; handles remember the generation
//!   they were opened in, and every call on a handle from an older generation fails with
//!   [`io::ErrorKind::Other`] ("stale handle after power loss"). Crashes build fresh inodes, so
//!   nothing written through an old handle can reach the new world.
//! * **Faults** ([`SimFault`], [`SimVfs::inject`], [`SimVfs::clear_faults`]): after `after`
//!   successful calls, every later `write_all_at` / `sync_data` / `sync_dir` fails with
//!   [`io::ErrorKind::Other`] until `clear_faults` (faults survive power loss). A failed call
//!   changes nothing: a failed write lands no byte, a failed `sync_data` leaves the data pending
//!   (not durable), a failed `sync_dir` leaves the durable namespace as it was. Once the write
//!   fault has tripped, `set_len` fails too (without consuming the budget).
//!   [`SimVfs::flip_byte`] corrupts one byte so the flip is both visible and durable.
//! * **Atomicity.** Every call, on the VFS or on a handle, runs entirely under one VFS-wide lock
//!   (then the inode's), so a crash happens strictly between calls: a `sync_data` that returned
//!   `Ok` before `power_loss` is durable, and one called after fails as stale.
//! * Files are capped at [`MAX_FILE_LEN`] bytes; larger offsets or lengths fail with an io error
//!   instead of exhausting memory.

use super::{parent_of, Vfs, VfsFile};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The largest file [`SimVfs`] will hold (1 GiB).
pub const MAX_FILE_LEN: u64 = 1 << 30;

/// A fault to inject with [`SimVfs::inject`]. Each replaces an earlier fault of the same kind and
/// lasts until [`SimVfs::clear_faults`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimFault {
    /// The next `after` calls to `write_all_at` succeed; every later one fails (and, from then
    /// on, so does `set_len`).
    FailWrites {
        /// How many writes still succeed.
        after: u32,
    },
    /// The next `after` calls to `sync_data` succeed; every later one fails, leaving the data
    /// pending.
    FailSync {
        /// How many file syncs still succeed.
        after: u32,
    },
    /// The next `after` calls to `sync_dir` succeed; every later one fails, leaving the durable
    /// namespace unchanged.
    FailSyncDir {
        /// How many directory syncs still succeed.
        after: u32,
    },
}

/// A write or length change not yet made durable.
#[derive(Debug, Clone)]
enum Op {
    Write { offset: usize, bytes: Vec<u8> },
    SetLen(usize),
}

#[derive(Debug, Default)]
struct Inode {
    /// Content as of the last successful `sync_data`.
    durable: Vec<u8>,
    /// Ops since, in order.
    pending: Vec<Op>,
    /// `durable` with every op of `pending` applied.
    current: Vec<u8>,
}

type InodeRef = Arc<Mutex<Inode>>;

/// Writes `bytes` at `offset`, zero-filling any gap; an empty write changes nothing.
fn apply_write(buf: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let end = offset + bytes.len();
    if buf.len() < end {
        buf.resize(end, 0);
    }
    buf[offset..end].copy_from_slice(bytes);
}

fn apply_op(buf: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, bytes } => apply_write(buf, *offset, bytes),
        Op::SetLen(len) => buf.resize(*len, 0),
    }
}

impl Inode {
    fn with_content(content: Vec<u8>) -> Self {
        Inode {
            durable: content.clone(),
            pending: Vec::new(),
            current: content,
        }
    }

    fn write(&mut self, offset: usize, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        apply_write(&mut self.current, offset, bytes);
        self.pending.push(Op::Write {
            offset,
            bytes: bytes.to_vec(),
        });
    }

    fn set_len(&mut self, len: usize) {
        self.current.resize(len, 0);
        self.pending.push(Op::SetLen(len));
    }

    fn sync(&mut self) {
        for op in self.pending.drain(..) {
            apply_op(&mut self.durable, &op);
        }
    }

    /// The content after a crash that landed the first `whole` pending ops and `torn` bytes of
    /// the next one (if it is a write).
    fn crash_image(&self, whole: usize, torn: usize) -> Vec<u8> {
        let mut img = self.durable.clone();
        for op in &self.pending[..whole] {
            apply_op(&mut img, op);
        }
        if let Some(Op::Write { offset, bytes }) = self.pending.get(whole) {
            apply_write(&mut img, *offset, &bytes[..torn.min(bytes.len())]);
        }
        img
    }

    /// Whether the current byte at `offset` (which must be `< current.len()`) was written by
    /// someone (durable content or a pending write), rather than being an unsynced zero-filled
    /// gap left by extending the file.
    fn byte_is_written(&self, offset: usize) -> bool {
        #[derive(PartialEq)]
        enum Src {
            Absent,
            Gap,
            Data,
        }
        let mut len = self.durable.len();
        let mut src = if offset < len { Src::Data } else { Src::Absent };
        for op in &self.pending {
            match op {
                Op::Write { offset: o, bytes } => {
                    let end = o + bytes.len();
                    if *o <= offset && offset < end {
                        src = Src::Data;
                    } else if src == Src::Absent && end > offset {
                        src = Src::Gap;
                    }
                    len = len.max(end);
                }
                Op::SetLen(l) => {
                    if *l <= offset {
                        src = Src::Absent;
                    } else if src == Src::Absent {
                        src = Src::Gap;
                    }
                    len = *l;
                }
            }
        }
        debug_assert_eq!(len, self.current.len());
        src == Src::Data
    }
}

#[derive(Debug, Default)]
struct Dir {
    /// What `open`, `list` and `exists` see.
    current: BTreeMap<String, InodeRef>,
    /// What survives power loss.
    durable: BTreeMap<String, InodeRef>,
}

/// Remaining successes before a fault trips; `None` = no fault.
#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    writes: Option<u32>,
    syncs: Option<u32>,
    sync_dirs: Option<u32>,
}

/// Consumes one success from `budget`; `false` when the fault has tripped.
fn admit(budget: &mut Option<u32>) -> bool {
    match budget {
        None => true,
        Some(0) => false,
        Some(n) => {
            *n -= 1;
            true
        }
    }
}

#[derive(Debug)]
struct State {
    generation: u64,
    dirs: BTreeMap<PathBuf, Dir>,
    faults: Faults,
    syncs: u64,
    dir_syncs: u64,
}

impl State {
    fn new() -> Self {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::from("."), Dir::default());
        dirs.insert(PathBuf::from("/"), Dir::default());
        State {
            generation: 0,
            dirs,
            faults: Faults::default(),
            syncs: 0,
            dir_syncs: 0,
        }
    }

    /// The inode `path` names in the current namespace.
    fn lookup(&self, path: &Path) -> Option<&InodeRef> {
        let name = file_name(path).ok()?;
        self.dirs.get(&parent_of(path))?.current.get(name)
    }

    fn lookup_or_not_found(&self, path: &Path) -> io::Result<&InodeRef> {
        self.lookup(path).ok_or_else(|| not_found(path))
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such directory: {}", dir.display()),
            )
        })
    }

    fn handle(&self, inode: InodeRef, shared: &Arc<Mutex<State>>) -> Arc<dyn VfsFile> {
        Arc::new(SimFile {
            state: Arc::clone(shared),
            inode,
            generation: self.generation,
        })
    }

    /// Replaces the world by its image after a crash. `keep_current` takes the current
    /// namespace (else the durable one); `image` gives each surviving inode's new content.
    fn crash(&mut self, keep_current: bool, mut image: impl FnMut(&Inode) -> Vec<u8>) {
        // Fresh inodes, so writes through old handles cannot reach the new world. One inode
        // named twice (a cross-directory rename synced on one side only) stays one inode.
        let mut fresh: HashMap<*const Mutex<Inode>, InodeRef> = HashMap::new();
        for dir in self.dirs.values_mut() {
            let names = if keep_current {
                &dir.current
            } else {
                &dir.durable
            };
            let mut next = BTreeMap::new();
            for (name, inode) in names {
                let new = fresh
                    .entry(Arc::as_ptr(inode))
                    .or_insert_with(|| {
                        Arc::new(Mutex::new(Inode::with_content(image(&inode.lock()))))
                    })
                    .clone();
                next.insert(name.clone(), new);
            }
            dir.current = next.clone();
            dir.durable = next;
        }
        self.generation += 1;
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no such file: {}", path.display()),
    )
}

fn file_name(path: &Path) -> io::Result<&str> {
    path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a UTF-8 file path: {}", path.display()),
        )
    })
}

/// `offset + len` as a `usize` end within [`MAX_FILE_LEN`].
fn checked_end(offset: u64, len: usize) -> io::Result<usize> {
    let end = u64::try_from(len)
        .ok()
        .and_then(|l| offset.checked_add(l))
        .filter(|&e| e <= MAX_FILE_LEN)
        .ok_or_else(|| io::Error::other("file too large for SimVfs"))?;
    usize::try_from(end).map_err(|_| io::Error::other("file too large for SimVfs"))
}

/// An in-memory file system that models durability and injects faults.
///
/// Each file has durable content plus pending (unsynced) writes; each directory has a current
/// and a durable namespace, the latter updated by `sync_dir`. [`SimVfs::power_loss`] keeps the
/// durable state plus a seeded-random prefix of each file's pending writes (the last possibly
/// torn) and makes every open handle stale. [`SimVfs::inject`] makes writes or syncs fail.
/// The full model is documented at the top of `log/src/vfs/sim.rs`. Use it as `Arc<dyn Vfs>`.
pub struct SimVfs {
    state: Arc<Mutex<State>>,
}

impl Default for SimVfs {
    fn default() -> Self {
        SimVfs {
            state: Arc::new(Mutex::new(State::new())),
        }
    }
}

impl fmt::Debug for SimVfs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.lock();
        f.debug_struct("SimVfs")
            .field("generation", &st.generation)
            .field("dirs", &st.dirs.len())
            .field("faults", &st.faults)
            .field("syncs", &st.syncs)
            .field("dir_syncs", &st.dir_syncs)
            .finish()
    }
}

impl SimVfs {
    /// An empty file system holding only the directories `.` and `/`.
    pub fn new() -> Arc<SimVfs> {
        Arc::new(SimVfs::default())
    }

    /// Simulates power loss: each file keeps its durable content plus a random prefix of its
    /// unsynced ops, the last possibly torn; unsynced namespace changes are lost; every handle
    /// opened before goes stale. Deterministic for a given `rng_seed`.
    pub fn power_loss(&self, rng_seed: u64) {
        let mut rng = StdRng::seed_from_u64(rng_seed);
        self.state.lock().crash(false, |inode| {
            let whole = rng.gen_range(0..=inode.pending.len());
            let torn = match inode.pending.get(whole) {
                Some(Op::Write { bytes, .. }) if !bytes.is_empty() => rng.gen_range(0..bytes.len()),
                _ => 0,
            };
            inode.crash_image(whole, torn)
        });
    }

    /// Simulates power loss in which no unsynced byte and no unsynced namespace change lands.
    pub fn power_loss_durable_only(&self) {
        self.state
            .lock()
            .crash(false, |inode| inode.durable.clone());
    }

    /// Simulates a process crash (SIGKILL) with the OS surviving: every write and namespace
    /// change so far lands, and every handle opened before goes stale.
    pub fn power_loss_keep_all(&self) {
        self.state.lock().crash(true, |inode| inode.current.clone());
    }

    /// Injects `fault`, replacing an earlier fault of the same kind.
    pub fn inject(&self, fault: SimFault) {
        let mut st = self.state.lock();
        match fault {
            SimFault::FailWrites { after } => st.faults.writes = Some(after),
            SimFault::FailSync { after } => st.faults.syncs = Some(after),
            SimFault::FailSyncDir { after } => st.faults.sync_dirs = Some(after),
        }
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        self.state.lock().faults = Faults::default();
    }

    /// XORs the byte at `offset` of `path` with `0xFF`, in its durable content and in every
    /// pending write covering it, so the flip is visible now and survives power loss. Fails with
    /// `NotFound` for a missing file and `InvalidInput` past the end or on an unsynced
    /// zero-filled gap (bytes no one wrote).
    pub fn flip_byte(&self, path: &Path, offset: u64) -> io::Result<()> {
        let st = self.state.lock();
        let mut inode = st.lookup_or_not_found(path)?.lock();
        let off = usize::try_from(offset)
            .ok()
            .filter(|&o| o < inode.current.len())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("offset {offset} past the end of {}", path.display()),
                )
            })?;
        if !inode.byte_is_written(off) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "offset {offset} of {} is an unsynced zero-filled gap",
                    path.display()
                ),
            ));
        }
        let inode = &mut *inode;
        if let Some(b) = inode.durable.get_mut(off) {
            *b ^= 0xFF;
        }
        for op in &mut inode.pending {
            if let Op::Write { offset: o, bytes } = op {
                if let Some(b) = off.checked_sub(*o).and_then(|i| bytes.get_mut(i)) {
                    *b ^= 0xFF;
                }
            }
        }
        inode.current[off] ^= 0xFF;
        Ok(())
    }

    /// The current length of `path`, if it exists.
    pub fn file_len(&self, path: &Path) -> Option<u64> {
        let st = self.state.lock();
        let len = st.lookup(path)?.lock().current.len();
        Some(len as u64)
    }

    /// The current content of `path` (what reads see), if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let content = st.lookup(path)?.lock().current.clone();
        Some(content)
    }

    /// The length of the durable (synced) content of the file `path` names now, if it exists.
    pub fn durable_len(&self, path: &Path) -> Option<u64> {
        let st = self.state.lock();
        let len = st.lookup(path)?.lock().durable.len();
        Some(len as u64)
    }

    /// The durable (synced) content of the file `path` names now, if it exists.
    pub fn read_durable(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let content = st.lookup(path)?.lock().durable.clone();
        Some(content)
    }

    /// Whether `path` is a file in the durable namespace (would still be named after power loss).
    pub fn durable_exists(&self, path: &Path) -> bool {
        let st = self.state.lock();
        let Ok(name) = file_name(path) else {
            return false;
        };
        st.dirs
            .get(&parent_of(path))
            .is_some_and(|d| d.durable.contains_key(name))
    }

    /// The paths of every file in the current namespace, sorted.
    pub fn list_all(&self) -> Vec<PathBuf> {
        let st = self.state.lock();
        let mut out: Vec<PathBuf> = st
            .dirs
            .iter()
            .flat_map(|(dir, d)| d.current.keys().map(move |name| dir.join(name)))
            .collect();
        out.sort();
        out
    }

    /// How many `sync_data` calls succeeded.
    pub fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }

    /// How many `sync_dir` calls succeeded.
    pub fn dir_syncs(&self) -> u64 {
        self.state.lock().dir_syncs
    }
}

impl Vfs for SimVfs {
    fn open(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let st = self.state.lock();
        let inode = Arc::clone(st.lookup_or_not_found(path)?);
        Ok(st.handle(inode, &self.state))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn VfsFile>> {
        let mut st = self.state.lock();
        let name = file_name(path)?.to_string();
        if st.dirs.contains_key(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("is a directory: {}", path.display()),
            ));
        }
        let dir = st.dir_mut(&parent_of(path))?;
        if dir.current.contains_key(&name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("file exists: {}", path.display()),
            ));
        }
        let inode: InodeRef = Arc::new(Mutex::new(Inode::default()));
        dir.current.insert(name, Arc::clone(&inode));
        Ok(st.handle(inode, &self.state))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        let from_name = file_name(from)?;
        let to_name = file_name(to)?.to_string();
        let inode = Arc::clone(st.lookup_or_not_found(from)?);
        if st.dirs.contains_key(to) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("is a directory: {}", to.display()),
            ));
        }
        // Check the target directory before unlinking the source.
        st.dir_mut(&parent_of(to))?;
        st.dir_mut(&parent_of(from))?.current.remove(from_name);
        st.dir_mut(&parent_of(to))?.current.insert(to_name, inode);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        let name = file_name(path)?;
        st.dir_mut(&parent_of(path))?
            .current
            .remove(name)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.dir_mut(dir)?;
        if !admit(&mut st.faults.sync_dirs) {
            return Err(io::Error::other("injected sync_dir failure"));
        }
        let d = st.dir_mut(dir)?;
        d.durable = d.current.clone();
        st.dir_syncs += 1;
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut st = self.state.lock();
        Ok(st.dir_mut(dir)?.current.keys().cloned().collect())
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        for d in dir.ancestors().filter(|d| !d.as_os_str().is_empty()) {
            if st.lookup(d).is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("a file is in the way: {}", d.display()),
                ));
            }
            st.dirs.entry(d.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.state.lock();
        st.dirs.contains_key(path) || st.lookup(path).is_some()
    }
}

/// A handle on a [`SimVfs`] file.
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: InodeRef,
    /// The crash generation this handle was opened in.
    generation: u64,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

impl SimFile {
    /// Locks the VFS (held for the whole call, so a crash cannot interleave) after checking the
    /// handle is not stale.
    fn lock(&self) -> io::Result<parking_lot::MutexGuard<'_, State>> {
        let st = self.state.lock();
        if st.generation != self.generation {
            return Err(io::Error::other("stale handle after power loss"));
        }
        Ok(st)
    }
}

impl VfsFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let _st = self.lock()?;
        let inode = self.inode.lock();
        let cur = &inode.current;
        let Some(start) = usize::try_from(offset).ok().filter(|&o| o < cur.len()) else {
            return Ok(0);
        };
        let n = buf.len().min(cur.len() - start);
        buf[..n].copy_from_slice(&cur[start..start + n]);
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut st = self.lock()?;
        let end = checked_end(offset, buf.len())?;
        if !admit(&mut st.faults.writes) {
            return Err(io::Error::other("injected write failure"));
        }
        self.inode.lock().write(end - buf.len(), buf);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut st = self.lock()?;
        if !admit(&mut st.faults.syncs) {
            return Err(io::Error::other("injected sync_data failure"));
        }
        self.inode.lock().sync();
        st.syncs += 1;
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let _st = self.lock()?;
        let len = self.inode.lock().current.len();
        Ok(len as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let st = self.lock()?;
        let len = checked_end(len, 0)?;
        if st.faults.writes == Some(0) {
            return Err(io::Error::other("injected write failure (set_len)"));
        }
        self.inode.lock().set_len(len);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    /// A VFS with directory `d` and file `d/f` holding `synced` durably (entry and content).
    fn setup(synced: &[u8]) -> (Arc<SimVfs>, Arc<dyn VfsFile>) {
        let vfs = SimVfs::new();
        vfs.create_dir_all(&p("d")).unwrap();
        let f = vfs.create(&p("d/f")).unwrap();
        f.write_all_at(synced, 0).unwrap();
        f.sync_data().unwrap();
        vfs.sync_dir(&p("d")).unwrap();
        (vfs, f)
    }

    fn read_all(f: &dyn VfsFile) -> Vec<u8> {
        let mut buf = vec![0; f.len().unwrap() as usize];
        f.read_exact_at(&mut buf, 0).unwrap();
        buf
    }

    /// `current` equals `durable` with `pending` replayed, for every inode.
    fn check_invariant(vfs: &SimVfs) {
        let st = vfs.state.lock();
        for d in st.dirs.values() {
            for inode in d.current.values().chain(d.durable.values()) {
                let i = inode.lock();
                assert_eq!(i.crash_image(i.pending.len(), 0), i.current);
            }
        }
    }

    #[test]
    fn unsynced_write_lost_synced_kept() {
        let (vfs, f) = setup(b"hello");
        f.write_all_at(b" world", 5).unwrap();
        assert_eq!(read_all(&*f), b"hello world");
        assert_eq!(vfs.durable_len(&p("d/f")), Some(5));
        vfs.power_loss_durable_only();
        assert_eq!(vfs.read_file(&p("d/f")).unwrap(), b"hello");

        let f = vfs.open(&p("d/f")).unwrap();
        f.write_all_at(b" world", 5).unwrap();
        f.sync_data().unwrap();
        for seed in 0..20 {
            vfs.power_loss(seed);
            assert_eq!(vfs.read_file(&p("d/f")).unwrap(), b"hello world");
        }
    }

    #[test]
    fn power_loss_is_deterministic_and_lands_a_prefix_of_ops() {
        let run = |seed| {
            let (vfs, f) = setup(b"");
            for i in 0..10u8 {
                f.write_all_at(&[i; 4], u64::from(i) * 4).unwrap();
            }
            vfs.power_loss(seed);
            vfs.read_file(&p("d/f")).unwrap()
        };
        let mut lens = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let got = run(seed);
            assert_eq!(got, run(seed), "seed {seed} not deterministic");
            let full: Vec<u8> = (0..10u8).flat_map(|i| [i; 4]).collect();
            assert_eq!(got[..], full[..got.len()], "seed {seed}: not a prefix");
            lens.insert(got.len());
        }
        assert!(lens.contains(&0) && lens.contains(&40), "{lens:?}");
        assert!(lens.len() > 15, "too little variety: {lens:?}");
    }

    #[test]
    fn torn_write_lands_a_strict_prefix() {
        let data: Vec<u8> = (0..100u8).collect();
        let (mut none, mut full, mut torn) = (false, false, false);
        for seed in 0..300 {
            let (vfs, f) = setup(b"base");
            f.write_all_at(&data, 4).unwrap();
            vfs.power_loss(seed);
            let got = vfs.read_file(&p("d/f")).unwrap();
            assert_eq!(&got[..4], b"base");
            let landed = &got[4..];
            assert_eq!(landed, &data[..landed.len()]);
            match landed.len() {
                0 => none = true,
                100 => full = true,
                _ => torn = true,
            }
        }
        assert!(none && full && torn);
    }

    #[test]
    fn torn_set_len_and_overwrite() {
        // Shrink then overwrite, unsynced: any crash shows a state some prefix would produce.
        let (vfs, f) = setup(b"0123456789");
        f.set_len(4).unwrap();
        f.write_all_at(b"ab", 6).unwrap();
        assert_eq!(read_all(&*f), b"0123\0\0ab");
        check_invariant(&vfs);
        let ok: [&[u8]; 4] = [b"0123456789", b"0123", b"0123\0\0a", b"0123\0\0ab"];
        for seed in 0..100 {
            let (vfs, f) = setup(b"0123456789");
            f.set_len(4).unwrap();
            f.write_all_at(b"ab", 6).unwrap();
            vfs.power_loss(seed);
            let got = vfs.read_file(&p("d/f")).unwrap();
            assert!(ok.contains(&&got[..]), "seed {seed}: {got:?}");
        }
    }

    #[test]
    fn create_not_durable_until_sync_dir() {
        let vfs = SimVfs::new();
        vfs.create_dir_all(&p("d")).unwrap();
        let f = vfs.create(&p("d/new")).unwrap();
        f.write_all_at(b"x", 0).unwrap();
        f.sync_data().unwrap();
        assert!(!vfs.durable_exists(&p("d/new")));
        vfs.power_loss_durable_only();
        assert!(!vfs.exists(&p("d/new")));
        assert!(vfs.exists(&p("d")), "directories are durable");
        assert_eq!(vfs.list(&p("d")).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn rename_not_durable_until_sync_dir() {
        let (vfs, _f) = setup(b"data");
        vfs.rename(&p("d/f"), &p("d/g")).unwrap();
        assert_eq!(vfs.list(&p("d")).unwrap(), vec!["g".to_string()]);
        assert!(!vfs.exists(&p("d/f")));
        vfs.power_loss(7);
        assert_eq!(vfs.list(&p("d")).unwrap(), vec!["f".to_string()]);
        assert_eq!(vfs.read_file(&p("d/f")).unwrap(), b"data");

        vfs.rename(&p("d/f"), &p("d/g")).unwrap();
        vfs.sync_dir(&p("d")).unwrap();
        assert!(vfs.durable_exists(&p("d/g")));
        vfs.power_loss(7);
        assert_eq!(vfs.list(&p("d")).unwrap(), vec!["g".to_string()]);
        assert_eq!(vfs.read_file(&p("d/g")).unwrap(), b"data");
    }

    #[test]
    fn rename_replaces_target() {
        let (vfs, _f) = setup(b"old");
        let g = vfs.create(&p("d/tmp")).unwrap();
        g.write_all_at(b"new", 0).unwrap();
        vfs.rename(&p("d/tmp"), &p("d/f")).unwrap();
        assert_eq!(vfs.read_file(&p("d/f")).unwrap(), b"new");
        assert_eq!(vfs.list_all(), vec![p("d/f")]);
        let err = vfs.rename(&p("d/tmp"), &p("d/f")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let err = vfs.rename(&p("d/f"), &p("nodir/f")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            vfs.exists(&p("d/f")),
            "failed rename must not unlink the source"
        );
    }

    #[test]
    fn remove_not_durable_until_sync_dir() {
        let (vfs, f) = setup(b"data");
        vfs.remove(&p("d/f")).unwrap();
        assert!(!vfs.exists(&p("d/f")));
        // Still readable and writable through the open handle.
        f.write_all_at(b"!", 4).unwrap();
        assert_eq!(read_all(&*f), b"data!");
        vfs.power_loss_durable_only();
        assert_eq!(vfs.read_file(&p("d/f")).unwrap(), b"data");

        vfs.remove(&p("d/f")).unwrap();
        vfs.sync_dir(&p("d")).unwrap();
        vfs.power_loss(1);
        assert!(!vfs.exists(&p("d/f")));
        assert!(vfs.list_all().is_empty());
        assert_eq!(
            vfs.remove(&p("d/f")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn injected_sync_failure_keeps_data_pending() {
        let (vfs, f) = setup(b"a");
        let syncs = vfs.syncs();
        vfs.inject(SimFault::FailSync { after: 1 });
        f.write_all_at(b"b", 1).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b"c", 2).unwrap();
        assert!(f.sync_data().is_err());
        assert!(f.sync_data().is_err());
        assert_eq!(vfs.syncs(), syncs + 1);
        assert_eq!(vfs.read_file(&p("d/f")).unwrap(), b"abc");
        assert_eq!(vfs.read_durable(&p("d/f")).unwrap(), b"ab");
        vfs.power_loss_durable_only();
        assert_eq!(vfs.read_file(&p("d/f")).unwrap(), b"ab");

        // Faults survive the crash until cleared.
        let f = vfs.open(&p("d/f")).unwrap();
        assert!(f.sync_data().is_err());
        vfs.clear_faults();
        f.sync_data().unwrap();
    }

    #[test]
    fn injected_sync_dir_failure() {
        let vfs = SimVfs::new();
        vfs.create_dir_all(&p("d")).unwrap();
        vfs.inject(SimFault::FailSyncDir { after: 0 });
        vfs.create(&p("d/f")).unwrap();
        assert!(vfs.sync_dir(&p("d")).is_err());
        assert_eq!(vfs.dir_syncs(), 0);
        assert!(!vfs.durable_exists(&p("d/f")));
        vfs.clear_faults();
        vfs.sync_dir(&p("d")).unwrap();
        assert_eq!(vfs.dir_syncs(), 1);
        assert!(vfs.durable_exists(&p("d/f")));
    }

    #[test]
    fn injected_write_failure() {
        let (vfs, f) = setup(b"");
        vfs.inject(SimFault::FailWrites { after: 2 });
        f.write_all_at(b"1", 0).unwrap();
        f.write_all_at(b"2", 1).unwrap();
        let err = f.write_all_at(b"3", 2).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert!(f.write_all_at(b"4", 2).is_err());
        assert!(f.set_len(0).is_err());
        assert_eq!(read_all(&*f), b"12", "a failed write lands nothing");
        vfs.clear_faults();
        f.write_all_at(b"3", 2).unwrap();
        assert_eq!(read_all(&*f), b"123");
    }

    #[test]
    fn flip_byte_visible_and_durable() {
        let (vfs, f) = setup(b"abcd");
        f.write_all_at(b"XY", 2).unwrap(); // pending write covering offset 2
        vfs.flip_byte(&p("d/f"), 2).unwrap();
        vfs.flip_byte(&p("d/f"), 0).unwrap();
        assert_eq!(read_all(&*f), [b'a' ^ 0xFF, b'b', b'X' ^ 0xFF, b'Y']);
        check_invariant(&vfs);
        vfs.power_loss_durable_only();
        assert_eq!(
            vfs.read_file(&p("d/f")).unwrap(),
            [b'a' ^ 0xFF, b'b', b'c' ^ 0xFF, b'd']
        );
        let e = vfs.flip_byte(&p("d/f"), 4).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = vfs.flip_byte(&p("d/nope"), 0).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);

        // An unsynced zero-filled gap cannot be flipped.
        let f = vfs.open(&p("d/f")).unwrap();
        f.write_all_at(b"z", 8).unwrap();
        let e = vfs.flip_byte(&p("d/f"), 6).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        vfs.flip_byte(&p("d/f"), 8).unwrap();
        check_invariant(&vfs);
    }

    #[test]
    fn stale_handles_fail_after_power_loss() {
        let (vfs, f) = setup(b"abc");
        vfs.power_loss(3);
        let mut buf = [0u8; 3];
        for r in [
            f.read_at(&mut buf, 0).map(drop),
            f.write_all_at(b"x", 0),
            f.sync_data(),
            f.len().map(drop),
            f.set_len(0),
        ] {
            assert_eq!(r.unwrap_err().kind(), io::ErrorKind::Other);
        }
        // New handles work, and old-handle writes cannot reach the new world.
        let g = vfs.open(&p("d/f")).unwrap();
        assert_eq!(read_all(&*g), b"abc");
        vfs.power_loss_keep_all();
        assert!(g.len().is_err());
    }

    #[test]
    fn power_loss_keep_all_keeps_everything() {
        let (vfs, f) = setup(b"abc");
        f.write_all_at(b"def", 3).unwrap();
        vfs.create(&p("d/g"))
            .unwrap()
            .write_all_at(b"g", 0)
            .unwrap();
        vfs.rename(&p("d/f"), &p("d/h")).unwrap();
        vfs.power_loss_keep_all();
        assert_eq!(vfs.list_all(), vec![p("d/g"), p("d/h")]);
        assert_eq!(vfs.read_file(&p("d/h")).unwrap(), b"abcdef");
        assert_eq!(vfs.read_file(&p("d/g")).unwrap(), b"g");
        // ...and it is now all durable.
        vfs.power_loss_durable_only();
        assert_eq!(vfs.list_all(), vec![p("d/g"), p("d/h")]);
        assert_eq!(vfs.read_file(&p("d/h")).unwrap(), b"abcdef");
    }

    #[test]
    fn namespace_errors_and_listing() {
        let vfs = SimVfs::new();
        let e = vfs.open(&p("d/f")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = vfs.create(&p("d/f")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "missing parent dir");
        let e = vfs.list(&p("d")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        vfs.create_dir_all(&p("a/b/c")).unwrap();
        vfs.create_dir_all(&p("a/b")).unwrap();
        assert!(vfs.exists(&p("a")) && vfs.exists(&p("a/b/c")));
        for name in ["z", "m", "a"] {
            vfs.create(&p("a/b").join(name)).unwrap();
        }
        let e = vfs.create(&p("a/b/m")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(vfs.list(&p("a/b")).unwrap(), vec!["a", "m", "z"]);
        assert_eq!(vfs.list(&p("a/b/c")).unwrap(), Vec::<String>::new());
        assert_eq!(vfs.file_len(&p("a/b/m")), Some(0));
        assert_eq!(vfs.file_len(&p("a/b/q")), None);
        // Files with no parent live in ".".
        vfs.create(&p("top")).unwrap();
        assert_eq!(vfs.list(&p(".")).unwrap(), vec!["top"]);
        let vfs: Arc<dyn Vfs> = vfs;
        assert!(vfs.exists(&p("top")));
    }

    #[test]
    fn reads_and_lengths() {
        let (_vfs, f) = setup(b"0123456789");
        let mut buf = [0u8; 4];
        assert_eq!(f.read_at(&mut buf, 8).unwrap(), 2);
        assert_eq!(&buf[..2], b"89");
        assert_eq!(f.read_at(&mut buf, 10).unwrap(), 0);
        assert_eq!(f.read_at(&mut buf, u64::MAX).unwrap(), 0);
        let e = f.read_exact_at(&mut buf, 8).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        f.set_len(12).unwrap();
        assert_eq!(read_all(&*f), b"0123456789\0\0");
        f.set_len(3).unwrap();
        assert!(!f.is_empty().unwrap());
        assert_eq!(f.len().unwrap(), 3);
        f.write_all_at(b"", 100).unwrap();
        assert_eq!(f.len().unwrap(), 3, "an empty write does not extend");
        assert!(f.write_all_at(b"x", MAX_FILE_LEN).is_err());
        assert!(f.set_len(MAX_FILE_LEN + 1).is_err());
    }

    #[test]
    fn cross_directory_rename_synced_on_one_side_keeps_one_inode() {
        let (vfs, _f) = setup(b"x");
        vfs.create_dir_all(&p("e")).unwrap();
        vfs.rename(&p("d/f"), &p("e/f")).unwrap();
        vfs.sync_dir(&p("e")).unwrap();
        vfs.power_loss(0);
        assert_eq!(vfs.list_all(), vec![p("d/f"), p("e/f")]);
        vfs.open(&p("d/f")).unwrap().write_all_at(b"y", 0).unwrap();
        assert_eq!(vfs.read_file(&p("e/f")).unwrap(), b"y");
    }

    #[test]
    fn many_small_writes_are_fast() {
        let (vfs, f) = setup(b"");
        let chunk = [7u8; 64];
        for i in 0..20_000u64 {
            f.write_all_at(&chunk, i * 64).unwrap();
            if i % 1000 == 999 {
                f.sync_data().unwrap();
            }
        }
        assert_eq!(vfs.durable_len(&p("d/f")), Some(20_000 * 64));
        check_invariant(&vfs);
    }
}
