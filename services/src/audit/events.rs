//! Audit phase 2, [`scan_events`]: every entry decoded once, in log order — counts per event
//! kind, and every `ManifestVerified` signature checked against its blob's acceptance.
//!
//! The scan (one thread: the [`ManifestBook`] needs log order) reads and decodes; the
//! signature checks (ed25519, the costly part) go in chunks to one worker per core, so a log
//! full of verifications still uses every core. Memory: the book (about 100 bytes per blob),
//! a bounded queue of chunks, and at most [`MAX_LISTED`] bad signatures kept for the report.
//!
//! Not here: whether the bytes are intact (phase 1 checked that, so this scan reads with CRC
//! checks only) and what the projections make of the events (phase 3).

use super::manifest_book::{self, ManifestBook};
use super::offline::{not_a_raft_entry, scan_history};
use super::progress::{Batched, Tick};
use hearth_log::{Log, Verification};
use hearth_proto::v1::envelope::Event;
use hearth_proto::v1::{BlobAccepted, ManifestVerified};
use openraft::EntryPayload;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Bad signatures listed in the report (all are counted).
pub const MAX_LISTED: usize = 100;
/// Signature checks per chunk handed to a worker.
const CHUNK: usize = 64;

/// Kind name of a raft blank entry, as `hearth log dump` prints it.
pub const KIND_RAFT_BLANK: &str = "RaftBlank";
/// Kind name of a raft membership entry.
pub const KIND_RAFT_MEMBERSHIP: &str = "RaftMembership";
/// Kind name of an event that does not decode.
pub const KIND_UNDECODABLE: &str = "Undecodable";

/// One `ManifestVerified` that does not stand.
#[derive(Debug, Clone, Serialize)]
pub struct BadSignature {
    /// Log index of its entry.
    pub index: u64,
    /// Position in the entry when it is a batch.
    pub position: Option<u32>,
    /// Blob hash (hex).
    pub blob: String,
    /// Verifier PeerId bytes (hex).
    pub verifier: String,
    /// Why it does not stand.
    pub reason: String,
}

/// What phase 2 found.
#[derive(Debug, Clone, Default)]
pub struct EventScan {
    /// Entries read.
    pub entries: u64,
    /// Events (envelopes) among them, decodable or not.
    pub events: u64,
    /// Entries and events per kind (`RaftBlank`, `RaftMembership`, event kinds,
    /// `Undecodable`).
    pub kinds: BTreeMap<&'static str, u64>,
    /// Blobs accepted (distinct hashes).
    pub blobs: u64,
    /// `ManifestVerified` signatures checked.
    pub signatures_checked: u64,
    /// Of which bad.
    pub signatures_bad: u64,
    /// The first [`MAX_LISTED`] bad ones, in log order.
    pub bad: Vec<BadSignature>,
    /// Worker threads checking signatures.
    pub threads: usize,
    /// Wall time, seconds.
    pub secs: f64,
}

/// A signature to check.
struct Job {
    index: u64,
    position: Option<u32>,
    mv: ManifestVerified,
    manifest: Option<[u8; 32]>,
}

/// What one worker found.
#[derive(Default)]
struct Checked {
    count: u64,
    bad: Vec<BadSignature>,
    bad_count: u64,
}

/// Reads every entry of `log` in order; see the module docs. An entry that is not a raft
/// entry is an error naming its index (exit code 2: the node could not have applied it).
pub fn scan_events(log: &Log, threads: usize, tick: Tick<'_>) -> anyhow::Result<EventScan> {
    scan_events_through(log, u64::MAX, threads, tick)
}

/// [`scan_events`] of the entries up to `through` (inclusive).
pub fn scan_events_through(
    log: &Log,
    through: u64,
    threads: usize,
    tick: Tick<'_>,
) -> anyhow::Result<EventScan> {
    scan_events_in(&[log], through, threads, tick)
}

/// [`scan_events_through`] over `logs` one after the other (an archive of purged entries,
/// then the live log), as one history.
pub fn scan_events_in(
    logs: &[&Log],
    through: u64,
    threads: usize,
    tick: Tick<'_>,
) -> anyhow::Result<EventScan> {
    let start = Instant::now();
    let threads = threads.max(1);
    let (tx, rx) = sync_channel::<Vec<Job>>(threads * 4);
    let rx = Arc::new(Mutex::new(rx));
    let mut scan = EventScan {
        threads,
        ..EventScan::default()
    };
    let (read, workers) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let rx = rx.clone();
                s.spawn(move || worker(&rx))
            })
            .collect();
        let read = read_all(logs, through, &mut scan, tx, tick);
        let workers: Vec<std::thread::Result<Checked>> =
            workers.into_iter().map(|h| h.join()).collect();
        (read, workers)
    });
    read?;
    for w in workers {
        let w = w.map_err(|_| anyhow::anyhow!("a signature worker panicked"))?;
        scan.signatures_checked += w.count;
        scan.signatures_bad += w.bad_count;
        scan.bad.extend(w.bad);
    }
    scan.bad.sort_by_key(|b| (b.index, b.position));
    scan.bad.truncate(MAX_LISTED);
    scan.secs = start.elapsed().as_secs_f64();
    Ok(scan)
}

/// The reading side: decodes, counts, keeps the book, queues signature jobs. Dropping `tx`
/// at the end (or on error) lets the workers finish.
fn read_all(
    logs: &[&Log],
    through: u64,
    scan: &mut EventScan,
    tx: std::sync::mpsc::SyncSender<Vec<Job>>,
    tick: Tick<'_>,
) -> anyhow::Result<()> {
    let mut book = ManifestBook::new();
    let mut chunk: Vec<Job> = Vec::with_capacity(CHUNK);
    let mut ticks = Batched::new(tick);
    let mut failed: Option<anyhow::Error> = None;
    scan_history(logs, 0, through, Verification::Crc, |rec| {
        let entry = match hearth_raft::codec::decode_record(&rec) {
            Ok(entry) => entry,
            Err(e) => {
                failed = Some(not_a_raft_entry(rec.index, e));
                return Ok(false);
            }
        };
        scan.entries += 1;
        match entry.payload {
            EntryPayload::Blank => *scan.kinds.entry(KIND_RAFT_BLANK).or_default() += 1,
            EntryPayload::Membership(_) => {
                *scan.kinds.entry(KIND_RAFT_MEMBERSHIP).or_default() += 1
            }
            EntryPayload::Normal(proposal) => {
                let batch = proposal.envelopes.len() > 1;
                for (position, payload) in (0u32..).zip(&proposal.envelopes) {
                    scan.events += 1;
                    let env = match hearth_proto::decode_envelope(payload) {
                        Ok(env) => env,
                        Err(_) => {
                            *scan.kinds.entry(KIND_UNDECODABLE).or_default() += 1;
                            continue;
                        }
                    };
                    *scan
                        .kinds
                        .entry(hearth_proto::event_kind(&env))
                        .or_default() += 1;
                    match env.event {
                        Some(Event::BlobAccepted(acc)) => book.accepted(&acc),
                        Some(Event::BlobDeleted(del)) => book.deleted(&del.blob_hash),
                        Some(Event::ParityAdded(pa)) => {
                            let base = book.widened(&pa.blob_hash).cloned().or_else(|| {
                                logs.iter().find_map(|l| {
                                    acceptance_at(l, pa.accepted_index, &pa.blob_hash)
                                })
                            });
                            if let Some(base) = base {
                                book.parity_added(base, &pa);
                            }
                        }
                        Some(Event::ManifestVerified(mv)) => {
                            let manifest = book.manifest_for(&mv);
                            chunk.push(Job {
                                index: rec.index,
                                position: batch.then_some(position),
                                mv,
                                manifest,
                            });
                            if chunk.len() == CHUNK
                                && tx
                                    .send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                                    .is_err()
                            {
                                failed = Some(anyhow::anyhow!("the signature workers stopped"));
                                return Ok(false);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        ticks.one();
        Ok(true)
    })?;

    ticks.finish();
    if let Some(e) = failed {
        return Err(e);
    }
    if !chunk.is_empty() && tx.send(chunk).is_err() {
        anyhow::bail!("the signature workers stopped");
    }
    scan.blobs = book.len() as u64;
    Ok(())
}

/// The `BlobAccepted` of blob `hash` in entry `index` of `log` (a `ParityAdded` names the
/// acceptance it widens); `None` when that entry holds none (the index rejected the event).
fn acceptance_at(log: &Log, index: u64, hash: &[u8]) -> Option<BlobAccepted> {
    let rec = log.read(index..=index).ok()?.into_iter().next()?;
    let EntryPayload::Normal(proposal) = hearth_raft::codec::decode_record(&rec).ok()?.payload
    else {
        return None;
    };
    proposal.envelopes.iter().find_map(|payload| {
        match hearth_proto::decode_envelope(payload).ok()?.event? {
            Event::BlobAccepted(acc) if acc.blob_hash[..] == *hash => Some(acc),
            _ => None,
        }
    })
}

fn worker(rx: &Mutex<Receiver<Vec<Job>>>) -> Checked {
    let mut checked = Checked::default();
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(jobs) = next else {
            return checked;
        };
        for job in jobs {
            checked.count += 1;
            if let Err(e) = manifest_book::check(&job.mv, job.manifest) {
                checked.bad_count += 1;
                if checked.bad.len() < MAX_LISTED {
                    checked.bad.push(BadSignature {
                        index: job.index,
                        position: job.position,
                        blob: crate::hex::encode(&job.mv.blob_hash),
                        verifier: crate::hex::encode(&job.mv.verifier),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }
}
