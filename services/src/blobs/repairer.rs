//! Putting shards right after a read found them missing or rotten, off the read's path.
//!
//! [`rebuild_shards`] recreates whole shard files that are gone: stripe by stripe from the
//! other shards (memory: one stripe), into `i.rebuild` files that are fsynced and renamed over
//! `i`. [`Repairer`] is the node's background worker: reads hand it what they found
//! ([`Repairer::submit`], never blocking: when its queue is full the work is dropped and the
//! next read finds it again); a missing file becomes one whole-shard rebuild (at most one at a
//! time per shard, started half a second later so the read that found the loss is not slowed
//! by its repair), rotten chunks in a present file are rewritten in place
//! ([`super::reader::apply_repairs`]).

use super::reader::{apply_repairs, Manifest, ReadReport, Repair};
use super::shard_store::{ShardError, ShardStore};
use super::stripe::StripeCodec;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io::{BufWriter, Write};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Jobs waiting for the worker at most.
const QUEUE: usize = 64;
/// How long a whole-shard rebuild waits before it starts.
const REBUILD_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

/// Recreates shard files `shards` of `manifest`'s blob from its other shards.
pub fn rebuild_shards(
    store: &ShardStore,
    manifest: &Manifest,
    shards: &[u32],
) -> Result<(), ShardError> {
    let l = manifest.layout;
    let codec = StripeCodec::new(l.data_shards(), l.parity_shards())?;
    let dir = store.blob_dir(&manifest.hash);
    let io = |op: &'static str, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| ShardError::Io { op, path, source }
    };
    let mut outs = Vec::new();
    for &i in shards {
        let tmp = dir.join(format!("{i}.rebuild"));
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io("create", &tmp))?;
        outs.push((i, tmp, BufWriter::with_capacity(256 << 10, f)));
    }
    let mut in_place: Vec<Repair> = Vec::new();
    for s in 0..l.stripe_count() {
        let (offset, len) = (l.shard_offset(s), l.chunk_len(s) as usize);
        let mut chunks = Vec::with_capacity(codec.total());
        for i in 0..l.shard_count() {
            chunks.push(match shards.contains(&i) {
                true => None,
                false => store.read_chunk(&manifest.hash, i, offset, len)?,
            });
        }
        let Some(hash) = manifest.stripe_hashes.get(s as usize) else {
            return Err(ShardError::Stripe(super::stripe::StripeError::Shape(
                format!("no stripe hash for stripe {s}"),
            )));
        };
        let r = l.stripe_range(s);
        let decoded = codec.decode_owned(chunks, (r.end - r.start) as usize, hash)?;
        for (i, bytes) in decoded.repaired {
            let i = i as u32;
            match outs.iter_mut().find(|(o, _, _)| *o == i) {
                Some((_, tmp, w)) => w.write_all(&bytes).map_err(io("write", tmp))?,
                None => in_place.push(Repair {
                    shard: i,
                    stripe: s,
                    offset,
                    bytes,
                }),
            }
        }
    }
    for (i, tmp, w) in outs {
        let f = w
            .into_inner()
            .map_err(|e| io("write", &tmp)(e.into_error()))?;
        f.sync_data().map_err(io("fsync", &tmp))?;
        let path = store.shard_path(&manifest.hash, i);
        fs::rename(&tmp, &path).map_err(io("rename", &path))?;
    }
    fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(io("fsync", &dir))?;
    apply_repairs(store, manifest, &in_place)
}

/// (blob, shard) whole-shard rebuilds queued or running.
type Pending = Arc<Mutex<HashSet<([u8; 32], u32)>>>;

enum Job {
    Shards(Manifest, Vec<u32>),
    Chunks(Manifest, Vec<Repair>),
}

/// The node's background repair worker. Cheap to clone.
#[derive(Clone)]
pub struct Repairer {
    tx: mpsc::Sender<Job>,
    store: ShardStore,
    /// (blob, shard) whole-shard rebuilds queued or running.
    pending: Pending,
}

impl Repairer {
    /// Starts the worker for `store`.
    pub fn start(store: ShardStore) -> (Repairer, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        let pending: Pending = Arc::default();
        let repairer = Repairer {
            tx,
            store: store.clone(),
            pending: pending.clone(),
        };
        let task = tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                if matches!(job, Job::Shards(..)) {
                    // Let the read that found the loss finish before its rebuild competes
                    // with it for the disk and the CPU.
                    tokio::time::sleep(REBUILD_DELAY).await;
                }
                let store = store.clone();
                let pending = pending.clone();
                let _ = tokio::task::spawn_blocking(move || {
                    let (hash, what, result) = match &job {
                        Job::Shards(m, shards) => {
                            let r = rebuild_shards(&store, m, shards);
                            let mut p = pending.lock();
                            for &i in shards {
                                p.remove(&(m.hash, i));
                            }
                            (m.hash, format!("shard files {shards:?}"), r)
                        }
                        Job::Chunks(m, repairs) => (
                            m.hash,
                            format!("{} chunks", repairs.len()),
                            apply_repairs(&store, m, repairs),
                        ),
                    };
                    let hash = crate::hex::encode(&hash);
                    match result {
                        Ok(()) => tracing::info!(%hash, "repaired {what}"),
                        Err(e) => tracing::warn!(%hash, error = %e, "repairing {what}"),
                    }
                })
                .await;
            }
        });
        (repairer, task)
    }

    /// Jobs queued and not yet taken by the worker.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Hands over what a read of `manifest`'s blob found; never blocks.
    pub fn submit(&self, manifest: &Manifest, report: ReadReport) {
        let mut missing = Vec::new();
        let mut chunks: BTreeMap<u32, Vec<Repair>> = BTreeMap::new();
        for r in report.repairs {
            if self.store.shard_path(&manifest.hash, r.shard).exists() {
                chunks.entry(r.shard).or_default().push(r);
            } else if !missing.contains(&r.shard) {
                missing.push(r.shard);
            }
        }
        {
            let mut pending = self.pending.lock();
            missing.retain(|&i| pending.insert((manifest.hash, i)));
        }
        if !missing.is_empty() {
            if let Err(mpsc::error::TrySendError::Full(Job::Shards(m, shards))) =
                self.tx.try_send(Job::Shards(manifest.clone(), missing))
            {
                let mut pending = self.pending.lock();
                for i in shards {
                    pending.remove(&(m.hash, i));
                }
            }
        }
        let repairs: Vec<Repair> = chunks.into_values().flatten().collect();
        if !repairs.is_empty() {
            let _ = self.tx.try_send(Job::Chunks(manifest.clone(), repairs));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blobs::reader::read_range;
    use crate::blobs::Layout;

    #[test]
    fn missing_shard_files_are_rebuilt_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ShardStore::open(dir.path()).expect("open");
        let data: Vec<u8> = (0..50_000u32).map(|i| (i * 13 % 251) as u8).collect();
        let layout = Layout::new(data.len() as u64, 4, 3, 4_000).expect("layout");
        let mut w = store.writer(layout).expect("writer");
        w.write(&data).expect("write");
        let written = w.finish().expect("finish");
        let m = Manifest {
            hash: written.hash,
            layout,
            stripe_hashes: written.stripe_hashes.clone(),
        };
        for i in [1, 4, 6] {
            fs::remove_file(store.shard_path(&written.hash, i)).expect("rm");
        }
        rebuild_shards(&store, &m, &[1, 4, 6]).expect("rebuild");
        for i in 0..7 {
            let bytes = fs::read(store.shard_path(&written.hash, i)).expect("shard");
            assert_eq!(
                *blake3::hash(&bytes).as_bytes(),
                written.shard_hashes[i as usize]
            );
        }
        let leftovers = fs::read_dir(store.blob_dir(&written.hash))
            .expect("dir")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".rebuild"))
            })
            .count();
        assert_eq!(leftovers, 0);
        let (got, report) = read_range(
            &store,
            &crate::blobs::StripeCache::disabled(),
            &m,
            0..data.len() as u64,
        )
        .expect("read");
        assert_eq!(got, data);
        assert!(report.repairs.is_empty());
    }

    #[tokio::test]
    async fn the_worker_rebuilds_what_reads_report() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = ShardStore::open(dir.path()).expect("open");
        let data = vec![7u8; 30_000];
        let layout = Layout::new(data.len() as u64, 2, 1, 2_000).expect("layout");
        let mut w = store.writer(layout).expect("writer");
        w.write(&data).expect("write");
        let written = w.finish().expect("finish");
        let m = Manifest {
            hash: written.hash,
            layout,
            stripe_hashes: written.stripe_hashes.clone(),
        };
        let (repairer, _task) = Repairer::start(store.clone());
        fs::remove_file(store.shard_path(&written.hash, 0)).expect("rm");
        let (got, report) = read_range(
            &store,
            &crate::blobs::StripeCache::disabled(),
            &m,
            0..30_000,
        )
        .expect("read");
        assert_eq!(got, data);
        repairer.submit(&m, report);
        let path = store.shard_path(&written.hash, 0);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while !fs::read(&path)
            .is_ok_and(|b| *blake3::hash(&b).as_bytes() == written.shard_hashes[0])
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "shard 0 not rebuilt"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
