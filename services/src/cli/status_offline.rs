//! `hearth status HASH --data-dir DIR`: a blob as the blob index of a *stopped* node's data
//! directory — or of a `hearth replay` output — holds it, read offline (read-only, changes
//! nothing). Answers "what did we know about blob X at index N": the store's applied index and
//! log time are printed with the record.
//!
//! Not the live status (`hearth status HASH --server URL`): no tier and no check of local
//! shard files, only what the log had said by that index.

use crate::audit::OfflineDir;
use crate::hex;
use hearth_projections::{BlobIndexProjection, BlobRecord, HolderRecord};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// A blob as an offline blob index holds it (`--json`).
#[derive(Debug, Clone, Serialize)]
pub struct OfflineBlobStatus {
    /// blake3 of the blob (hex).
    pub hash: String,
    /// The index the store has applied through (what this answer is "as of").
    pub as_of_index: Option<u64>,
    /// The store's log time then, Unix ms.
    pub as_of_log_time_ms: u64,
    /// Size in bytes.
    pub size: u64,
    /// Whether the bytes travel inside the log.
    pub inline: bool,
    /// Data shards (0 when inline).
    pub k: u32,
    /// Parity shards.
    pub m: u32,
    /// Bytes of blob data per stripe.
    pub stripe_size: u64,
    /// Media type given at upload.
    pub content_type: String,
    /// Node that accepted it (PeerId).
    pub accepted_by: String,
    /// Index of the acceptance.
    pub accepted_index: u64,
    /// Log time of the acceptance, Unix ms.
    pub accepted_log_time_ms: u64,
    /// Whether it was deleted by then.
    pub deleted: bool,
    /// Index of the deletion (0 unless deleted).
    pub deleted_index: u64,
    /// Current placements: shard, holder, epoch, confirmed.
    pub holders: Vec<OfflineHolder>,
}

/// One placement of a shard.
#[derive(Debug, Clone, Serialize)]
pub struct OfflineHolder {
    /// Shard index.
    pub shard: u32,
    /// Holder PeerId.
    pub peer_id: String,
    /// Placement epoch.
    pub epoch: u64,
    /// Index of the placement.
    pub placed_index: u64,
    /// Whether the holder confirmed it.
    pub confirmed: bool,
}

/// A PeerId's text form (hex when the bytes are not a PeerId).
fn peer_text(bytes: &[u8]) -> String {
    libp2p_identity::PeerId::from_bytes(bytes)
        .map_or_else(|_| hex::encode(bytes), |p| p.to_base58())
}

fn ms_text(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Looks blob `hash` (32 bytes) up in the store of `data_dir` and prints it.
pub fn status(hash: &[u8], data_dir: &Path, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let dir = OfflineDir::lock(data_dir)?;
    let store = dir.open_store()?;
    let as_of = store.applied().map(|(index, _)| index);
    let as_of_text = as_of.map_or_else(|| "nothing applied".to_string(), |i| format!("index {i}"));
    let Some(record) = store
        .get(
            BlobIndexProjection::NAME,
            &BlobIndexProjection::blob_key(hash),
        )?
        .as_deref()
        .and_then(BlobIndexProjection::decode_blob)
    else {
        anyhow::bail!(
            "blob {} is not in the blob index of {} (as of {as_of_text})",
            hex::encode(hash),
            data_dir.display()
        );
    };
    let holders: Vec<OfflineHolder> = store
        .scan_prefix(
            BlobIndexProjection::NAME,
            &BlobIndexProjection::holders_prefix(hash),
        )?
        .into_iter()
        .filter_map(|(k, v)| {
            let (shard, holder) = BlobIndexProjection::parse_holder_key(&k)?;
            let h: HolderRecord = BlobIndexProjection::decode_holder(&v)?;
            h.is_current(&record).then(|| OfflineHolder {
                shard,
                peer_id: peer_text(&holder),
                epoch: h.placement_epoch,
                placed_index: h.placed_index,
                confirmed: h.confirmed,
            })
        })
        .collect();
    let st = offline_status(hash, &record, as_of, store.log_time_ms(), holders);
    if json {
        serde_json::to_writer_pretty(&mut *out, &st)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "blob     {}", st.hash)?;
    writeln!(
        out,
        "as of    {as_of_text} (log time {})",
        ms_text(st.as_of_log_time_ms)
    )?;
    writeln!(out, "size     {} bytes", st.size)?;
    writeln!(
        out,
        "accepted at log index {} ({}) by {}",
        st.accepted_index,
        ms_text(st.accepted_log_time_ms),
        st.accepted_by
    )?;
    if st.deleted {
        writeln!(
            out,
            "deleted  at log index {} ({})",
            st.deleted_index,
            ms_text(record.deleted_log_time_ms)
        )?;
    }
    if st.inline {
        writeln!(out, "stored   inline in the log")?;
        return Ok(());
    }
    writeln!(
        out,
        "code     {}+{}, stripes of {} bytes",
        st.k, st.m, st.stripe_size
    )?;
    writeln!(
        out,
        "{:>5} {:>6} {:<10} holder",
        "shard", "epoch", "confirmed"
    )?;
    for h in &st.holders {
        writeln!(
            out,
            "{:>5} {:>6} {:<10} {}",
            h.shard, h.epoch, h.confirmed, h.peer_id
        )?;
    }
    Ok(())
}

fn offline_status(
    hash: &[u8],
    r: &BlobRecord,
    as_of_index: Option<u64>,
    as_of_log_time_ms: u64,
    holders: Vec<OfflineHolder>,
) -> OfflineBlobStatus {
    OfflineBlobStatus {
        hash: hex::encode(hash),
        as_of_index,
        as_of_log_time_ms,
        size: r.size,
        inline: r.data_shards == 0,
        k: r.data_shards,
        m: r.parity_shards,
        stripe_size: r.stripe_size,
        content_type: r.content_type.clone(),
        accepted_by: peer_text(&r.accepted_by),
        accepted_index: r.accepted_index,
        accepted_log_time_ms: r.accepted_log_time_ms,
        deleted: r.deleted,
        deleted_index: r.deleted_index,
        holders,
    }
}
