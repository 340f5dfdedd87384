//! The persisted peer list, `DATA/peers.json`: where this node last saw its peers and how they
//! scored, so a restarted node reconnects to the best of them first — in parallel, before
//! anything else — instead of waiting for raft to name them. Written every
//! [`SAVE_EVERY`] and at a clean shutdown (temp file, fsync, rename, directory fsync); peers unseen for
//! [`FORGET_AFTER`] drop out of it (not out of the log). A missing list is normal on a new
//! node; a corrupt one is ignored with a warning and the node falls back to its configured
//! addresses (the raft membership and `--join`).

use super::Node;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the list is saved.
pub const SAVE_EVERY: Duration = Duration::from_secs(60);

/// Peers unseen for this long leave the list.
pub const FORGET_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// Version of the file's format.
const VERSION: u32 = hearth_migrations::versions::PEER_LIST_FORMAT;

/// The file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PeerList {
    /// Format version (1).
    pub version: u32,
    /// Peers, best score first.
    pub peers: Vec<KnownPeer>,
}

/// One peer of the list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KnownPeer {
    /// Its PeerId.
    pub peer_id: String,
    /// Where it was last seen.
    pub addresses: Vec<String>,
    /// Its score when saved.
    pub score: f64,
    /// Log time it was last seen (Unix ms).
    pub last_seen_ms: u64,
}

/// `DATA/peers.json`.
pub fn path(data: &Path) -> PathBuf {
    data.join(hearth_migrations::layout::PEER_LIST)
}

/// Reads the list: `Ok(None)` when there is none, `Err` (one line) when it is unreadable.
pub fn load(data: &Path) -> Result<Option<PeerList>, String> {
    let p = path(data);
    let text = match std::fs::read_to_string(&p) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", p.display())),
    };
    let list: PeerList =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))?;
    if list.version != VERSION {
        return Err(format!(
            "{}: version {}, expected {VERSION}",
            p.display(),
            list.version
        ));
    }
    Ok(Some(list))
}

impl Node {
    /// The list as it would be saved now: peers seen within [`FORGET_AFTER`] (and members),
    /// best score first, this node left out.
    pub fn peer_list(&self) -> PeerList {
        let now = super::now_ms();
        let me = self.peer_id().to_bytes();
        let members = self.member_peers();
        let mut peers: Vec<KnownPeer> = self
            .peer_records()
            .unwrap_or_default()
            .into_iter()
            .filter(|(p, r)| {
                *p != me
                    && !r.addresses.is_empty()
                    && (members.contains(p)
                        || now.saturating_sub(r.last_seen_log_ms) < FORGET_AFTER.as_millis() as u64)
            })
            .filter_map(|(p, r)| {
                Some(KnownPeer {
                    peer_id: PeerId::from_bytes(&p).ok()?.to_string(),
                    score: hearth_projections::score(&r, now).value,
                    addresses: r.addresses,
                    last_seen_ms: r.last_seen_log_ms,
                })
            })
            .collect();
        peers.sort_by(|a, b| b.score.total_cmp(&a.score));
        PeerList {
            version: VERSION,
            peers,
        }
    }

    /// Saves [`Self::peer_list`] durably.
    pub fn save_peer_list(&self) -> std::io::Result<()> {
        let list = self.peer_list();
        let bytes = serde_json::to_vec_pretty(&list).map_err(std::io::Error::other)?;
        crate::fsutil::write_durably(&path(&self.inner.settings.data_dir), &bytes)
    }

    /// Connects to the peers of the saved list, best first, all at once (the transport dials
    /// in parallel). Returns how many were asked for.
    pub(super) async fn reconnect_known_peers(&self) -> usize {
        let list = match load(&self.inner.settings.data_dir) {
            Ok(Some(list)) => list,
            Ok(None) => return 0,
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "the saved peer list is unreadable; using the configured addresses"
                );
                return 0;
            }
        };
        let mut n = 0;
        for p in list.peers {
            let Ok(peer) = p.peer_id.parse::<PeerId>() else {
                continue;
            };
            let addrs: Vec<Multiaddr> = p.addresses.iter().filter_map(|a| a.parse().ok()).collect();
            if addrs.is_empty() {
                continue;
            }
            for a in &addrs {
                let _ = self.inner.net.add_peer_address(peer, a.clone()).await;
            }
            let _ = self.inner.net.connect(peer, addrs).await;
            n += 1;
        }
        n
    }
}

/// Saves the list every [`SAVE_EVERY`] (the first time soon after start-up).
pub(super) async fn peer_list_saver(node: Node) {
    tokio::time::sleep(Duration::from_secs(5)).await;
    loop {
        if node.ready().is_ok() {
            let n = node.clone();
            match tokio::task::spawn_blocking(move || n.save_peer_list()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "saving the peer list"),
                Err(e) => tracing::warn!(error = %e, "saving the peer list"),
            }
        }
        tokio::time::sleep(SAVE_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_corrupt_and_valid_lists() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(dir.path()), Ok(None));
        std::fs::write(path(dir.path()), b"{ not json").expect("write");
        assert!(load(dir.path()).is_err_and(|e| e.contains("peers.json")));
        let list = PeerList {
            version: 1,
            peers: vec![KnownPeer {
                peer_id: "12D3KooWabc".into(),
                addresses: vec!["/ip4/127.0.0.1/tcp/1".into()],
                score: 0.9,
                last_seen_ms: 5,
            }],
        };
        std::fs::write(path(dir.path()), serde_json::to_vec(&list).expect("json")).expect("write");
        assert_eq!(load(dir.path()), Ok(Some(list.clone())));
        let newer = PeerList { version: 2, ..list };
        std::fs::write(path(dir.path()), serde_json::to_vec(&newer).expect("json")).expect("write");
        assert!(load(dir.path()).is_err_and(|e| e.contains("version 2")));
    }
}
