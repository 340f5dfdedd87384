//! [`ReadBudget`]: one bound, per node, on the memory that blob reads hold at once.
//!
//! A streamed GET holds a piece being read and verified, pieces read ahead of the client, and
//! the shard chunks they were rebuilt from; many large reads at once add up (64 concurrent
//! 64 MiB GETs took a node past 1.4 GB before this bound). Each piece is read only once the
//! read holds permits for it (in MiB, twice the piece: its shard chunks and its output), and
//! gives them back once the client has taken the piece. Waiting is FIFO; a read that cannot
//! get its first permits within [`READ_WAIT`] is answered 503, so slow clients that hold the
//! budget delay other reads but never hang them.
//!
//! Not here: what a read reads (`reader`, `http::blobs`), and upload memory (bounded by
//! `--max-blob-puts` and the PUT path's own buffers).

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The unit of the budget.
const MIB: u64 = 1 << 20;

/// How long a read waits for its permits before giving up.
pub const READ_WAIT: Duration = Duration::from_secs(30);

/// The node's read memory budget; cheap to clone.
#[derive(Clone, Debug)]
pub struct ReadBudget {
    permits: Arc<Semaphore>,
    total: u32,
}

/// Permits held for one piece of a read; dropping it gives them back.
#[derive(Debug)]
pub struct Held {
    _permits: OwnedSemaphorePermit,
}

/// The budget was not granted in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many reads in progress: {mib} MiB of read buffers not free within {secs} s")]
pub struct Busy {
    /// MiB asked for.
    pub mib: u32,
    /// Seconds waited.
    pub secs: u64,
}

impl ReadBudget {
    /// A budget of `bytes` (at least 1 MiB).
    pub fn new(bytes: u64) -> Self {
        let total = (bytes / MIB).clamp(1, u64::from(u32::MAX >> 4)) as u32;
        ReadBudget {
            permits: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// MiB to hold while a piece of `piece_bytes` is read, verified and sent: twice the piece,
    /// rounded up, never more than the whole budget (a piece larger than the budget waits for
    /// all of it).
    pub fn cost(&self, piece_bytes: u64) -> u32 {
        (piece_bytes.saturating_mul(2).div_ceil(MIB)).clamp(1, u64::from(self.total)) as u32
    }

    /// Waits (at most `wait`) for the permits of a piece of `piece_bytes`.
    pub async fn acquire(&self, piece_bytes: u64, wait: Duration) -> Result<Held, Busy> {
        let mib = self.cost(piece_bytes);
        match tokio::time::timeout(wait, self.permits.clone().acquire_many_owned(mib)).await {
            Ok(Ok(p)) => Ok(Held { _permits: p }),
            // The semaphore is never closed; treat it like a timeout all the same.
            Ok(Err(_)) | Err(_) => Err(Busy {
                mib,
                secs: wait.as_secs(),
            }),
        }
    }

    /// MiB free now.
    pub fn free_mib(&self) -> usize {
        self.permits.available_permits()
    }

    /// MiB in all.
    pub fn total_mib(&self) -> u32 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_are_twice_the_piece_in_whole_mib_and_fit_the_budget() {
        let b = ReadBudget::new(64 * MIB);
        assert_eq!(b.total_mib(), 64);
        assert_eq!(b.cost(0), 1);
        assert_eq!(b.cost(1), 1);
        assert_eq!(b.cost(4 * MIB), 8);
        assert_eq!(b.cost(4 * MIB + 1), 9);
        assert_eq!(b.cost(1 << 40), 64);
        assert_eq!(ReadBudget::new(0).total_mib(), 1);
    }

    #[tokio::test]
    async fn a_read_waits_for_the_budget_and_gives_up_after_the_wait() {
        let b = ReadBudget::new(16 * MIB);
        let first = b.acquire(4 * MIB, READ_WAIT).await.expect("8 MiB");
        let second = b.acquire(4 * MIB, READ_WAIT).await.expect("8 MiB");
        assert_eq!(b.free_mib(), 0);
        // Nothing is free and nothing will be: the third waits its whole wait, then is refused.
        let busy = b
            .acquire(MIB, Duration::from_millis(20))
            .await
            .expect_err("busy");
        assert_eq!(busy.mib, 2);
        // Given back when a piece is sent: the next one gets it at once.
        drop(first);
        let third = b.acquire(MIB, READ_WAIT).await.expect("free again");
        assert_eq!(b.free_mib(), 6);
        drop((second, third));
        assert_eq!(b.free_mib(), 16);
    }
}
