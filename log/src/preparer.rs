//! Preparing the next segment ahead of time: a file of the full segment size, zero-filled and
//! fsynced, so appends overwrite allocated blocks instead of extending the file (an extending
//! write makes `fdatasync` also flush the inode's size and block map).
//!
//! Task: one thread, `hearth-log-prep`, woken when the active segment is a quarter full (so the
//! next one is ready before it is needed, without its 64 MiB of zeros competing with appends
//! long before that).
//! Without the thread (tests, read-only) the writer prepares inline when it rotates.

use crate::error::{LogError, Result};
use crate::format::{PREPARED_NAME, PREPARING_NAME};
use crate::vfs::Vfs;
use parking_lot::{Condvar, Mutex};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

#[derive(Debug, Default)]
struct Slot {
    ready: bool,
    /// The writer asked for the next segment (the active one is filling up).
    wanted: bool,
    busy: bool,
    stop: bool,
    failed: Option<String>,
}

/// Hands the writer a prepared segment file at rotation.
#[derive(Debug)]
pub(crate) struct Preparer {
    shared: Arc<(Mutex<Slot>, Condvar)>,
    vfs: Arc<dyn Vfs>,
    dir: PathBuf,
    size: u64,
    thread: Option<JoinHandle<()>>,
}

/// Writes a zero-filled, fsynced file of `size` bytes at `PREPARED_NAME` (via a temp name).
fn prepare(vfs: &Arc<dyn Vfs>, dir: &Path, size: u64) -> Result<()> {
    let tmp = dir.join(PREPARING_NAME);
    if vfs.exists(&tmp) {
        vfs.remove(&tmp)
            .map_err(|e| LogError::io("remove", &tmp, e))?;
    }
    let f = vfs
        .create(&tmp)
        .map_err(|e| LogError::io("create segment", &tmp, e))?;
    let zeros = vec![0u8; (1 << 20).min(size as usize)];
    let mut off = 0u64;
    while off < size {
        let n = ((size - off) as usize).min(zeros.len());
        f.write_all_at(&zeros[..n], off)
            .map_err(|e| LogError::io("zero-fill segment", &tmp, e))?;
        off += n as u64;
    }
    f.sync_data()
        .map_err(|e| LogError::io("fsync prepared segment", &tmp, e))?;
    let dst = dir.join(PREPARED_NAME);
    vfs.rename(&tmp, &dst)
        .map_err(|e| LogError::io("rename prepared segment", &dst, e))?;
    vfs.sync_dir(dir)
        .map_err(|e| LogError::io("fsync log directory", dir, e))
}

impl Preparer {
    /// Starts preparing (in the background if `background`). `have_one`: a prepared file is
    /// already there from an earlier run.
    pub fn start(
        vfs: Arc<dyn Vfs>,
        dir: PathBuf,
        size: u64,
        background: bool,
        have_one: bool,
    ) -> Self {
        let shared = Arc::new((
            Mutex::new(Slot {
                ready: have_one,
                ..Slot::default()
            }),
            Condvar::new(),
        ));
        let thread = background.then(|| {
            let (shared, vfs, dir) = (shared.clone(), vfs.clone(), dir.clone());
            std::thread::Builder::new()
                .name("hearth-log-prep".into())
                .spawn(move || loop {
                    {
                        let (m, cv) = &*shared;
                        let mut s = m.lock();
                        while (s.ready || !s.wanted) && !s.stop {
                            cv.wait(&mut s);
                        }
                        if s.stop {
                            return;
                        }
                        s.busy = true;
                    }
                    let r = prepare(&vfs, &dir, size);
                    let (m, cv) = &*shared;
                    let mut s = m.lock();
                    s.busy = false;
                    match r {
                        Ok(()) => s.ready = true,
                        Err(e) => {
                            tracing::warn!(error = %e, "preparing the next segment failed");
                            s.failed = Some(e.to_string());
                            s.ready = false;
                            cv.notify_all();
                            return;
                        }
                    }
                    cv.notify_all();
                })
        });
        let thread = match thread {
            Some(Ok(t)) => Some(t),
            _ => None,
        };
        Preparer {
            shared,
            vfs,
            dir,
            size,
            thread,
        }
    }

    /// Moves the prepared segment to `dst` (waiting for or doing the preparation), then lets
    /// the next one be prepared. The rename happens under the slot lock, so the background
    /// thread can never rename a newer file over the one being taken. The caller fsyncs the
    /// directory.
    pub fn take_to(&self, dst: &Path) -> Result<()> {
        let (m, cv) = &*self.shared;
        let mut s = m.lock();
        if self.thread.is_some() {
            // while wanted and not ready the thread is working on it, unless it failed
            while !s.ready && s.wanted && s.failed.is_none() {
                cv.wait(&mut s);
            }
        }
        if !s.ready {
            prepare(&self.vfs, &self.dir, self.size)?;
        }
        let src = self.dir.join(PREPARED_NAME);
        self.vfs
            .rename(&src, dst)
            .map_err(|e| LogError::io("rename prepared segment", dst, e))?;
        s.ready = false;
        s.wanted = false;
        Ok(())
    }

    /// Asks for the next segment to be prepared in the background (cheap; idempotent).
    pub fn request(&self) {
        let (m, cv) = &*self.shared;
        let mut s = m.lock();
        if !s.ready && !s.wanted {
            s.wanted = true;
            cv.notify_all();
        }
    }
}

impl Drop for Preparer {
    fn drop(&mut self) {
        {
            let (m, cv) = &*self.shared;
            m.lock().stop = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
