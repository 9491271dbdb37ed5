//! The diff barrier: brings two views of one processor to the same log
//! position so that they can be compared. Their workers are held (they apply
//! nothing at or past the target offsets) for as long as a [`Hold`] lives;
//! it releases them when dropped, whichever way the diff ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::running::Running;
use crate::error::{Error, Result};
use crate::registry::VersionId;
use crate::store::{Shards, Snapshot};

/// Workers held at target offsets; released on drop.
pub(super) struct Hold {
    runs: Vec<Arc<Running>>,
}

impl Hold {
    /// Holds the workers of `runs` at `target`.
    pub(super) fn new(runs: Vec<Arc<Running>>, target: &[u64]) -> Self {
        let hold = Hold { runs };
        hold.move_to(target);
        hold
    }

    /// Moves the hold to `target`.
    pub(super) fn move_to(&self, target: &[u64]) {
        for run in &self.runs {
            *run.hold.lock() = Some(target.to_vec());
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        for run in &self.runs {
            *run.hold.lock() = None;
        }
    }
}

/// Snapshots of the views `a` (of `ida`) and `b` (of `idb`) at one log
/// position: holds their workers (`runs`) at the furthest position either
/// has applied, then waits, up to `wait` (at least 5 s), until both are
/// exactly there. A batch already in flight when the hold is raised may
/// carry a worker past the target; then the target moves up to that
/// position and the hold with it. Once both workers see the hold, neither
/// moves, so this converges. The workers are released on return.
pub(super) fn meet(
    (ida, a): (&VersionId, &Shards),
    (idb, b): (&VersionId, &Shards),
    runs: Vec<Arc<Running>>,
    wait: Duration,
) -> Result<(Snapshot, Snapshot)> {
    let (oa, ob) = (a.offsets()?, b.offsets()?);
    let partitions = oa
        .keys()
        .chain(ob.keys())
        .copied()
        .max()
        .map_or(0, |m| m + 1) as usize;
    let mut target: Vec<u64> = (0..partitions)
        .map(|p| offset(&oa, p).max(offset(&ob, p)))
        .collect();
    let hold = Hold::new(runs, &target);
    let deadline = Instant::now() + wait.max(Duration::from_secs(5));
    loop {
        let (sa, sb) = (a.snapshot()?, b.snapshot()?);
        let (oa, ob) = (sa.offsets()?, sb.offsets()?);
        let parts = partitions.max(oa.len()).max(ob.len());
        target.resize(parts, 0);
        if (0..parts).all(|p| offset(&oa, p) == target[p] && offset(&ob, p) == target[p]) {
            return Ok((sa, sb));
        }
        if (0..parts).any(|p| offset(&oa, p) > target[p] || offset(&ob, p) > target[p]) {
            target = (0..parts)
                .map(|p| target[p].max(offset(&oa, p)).max(offset(&ob, p)))
                .collect();
            hold.move_to(&target);
        }
        if Instant::now() >= deadline {
            return Err(Error::conflict(format!(
                "{ida} and {idb} did not reach the same log position in time (one may have \
                 stopped or failed); applied offsets: {ida} {oa:?}, {idb} {ob:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The offset applied to `partition` in `offsets` (0 if none yet).
#[expect(
    clippy::cast_possible_truncation,
    reason = "`partition` indexes the topic's partitions, which a u32 counts"
)]
fn offset(offsets: &BTreeMap<u32, u64>, partition: usize) -> u64 {
    offsets.get(&(partition as u32)).copied().unwrap_or(0)
}
