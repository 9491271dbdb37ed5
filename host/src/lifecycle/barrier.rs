//! The diff barrier: brings two views of one processor to the same log
//! position so that they can be compared. Their workers are held (they apply
//! nothing at or past the target offsets) for as long as a [`Hold`] lives;
//! it releases them when dropped, whichever way the diff ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::inputs::read_offset;
use super::running::Running;
use crate::error::{Error, Result};
use crate::registry::VersionId;
use crate::runtime::timers::Keys;
use crate::store::{Shards, Snapshot};

/// Where a view is in each topic it reads: topic name to the next offset of
/// each partition.
type Position = BTreeMap<String, Vec<u64>>;

/// Workers held at target offsets; released on drop.
pub(super) struct Hold {
    runs: Vec<Arc<Running>>,
}

impl Hold {
    /// Holds the workers of `runs` at `target`.
    pub(super) fn new(runs: Vec<Arc<Running>>, target: &Position) -> Self {
        let hold = Hold { runs };
        hold.move_to(target);
        hold
    }

    /// Moves the hold to `target`: each worker is held in the topics of
    /// `target` it reads, by its own topic indices, and not in the others.
    pub(super) fn move_to(&self, target: &Position) {
        for run in &self.runs {
            let by_index = run
                .record
                .topics()
                .iter()
                .map(|t| target.get(t).cloned().unwrap_or_default())
                .collect();
            *run.hold.lock() = Some(by_index);
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

/// One side of a diff: a version, its view and the topics it reads.
pub(super) type Side<'a> = (&'a VersionId, &'a Shards, &'a [String]);

/// Snapshots of the views `a` and `b` at one log position: holds their
/// workers (`runs`) at the furthest position either has applied, then
/// waits, up to `wait` (at least 5 s), until both are exactly there. A
/// batch already in flight when the hold is raised may carry a worker past
/// the target; then the target moves up to that position and the hold with
/// it. Once both workers see the hold, neither moves, so this converges.
/// The workers are released on return.
///
/// The position is that of every topic both versions read (for versions of
/// one topic, that topic). A topic only one of them reads is not held: the
/// merge of its version delivers its events in timestamp order with those
/// of the held topics, so it stops with them. Two versions reading several
/// topics whose live interleaving differed (late events) may find no common
/// position; the diff then fails with a conflict, never compares two views
/// at different positions.
pub(super) fn meet(
    (ida, a, ta): Side<'_>,
    (idb, b, tb): Side<'_>,
    runs: Vec<Arc<Running>>,
    wait: Duration,
) -> Result<(Snapshot, Snapshot)> {
    let common: Vec<String> = ta.iter().filter(|t| tb.contains(t)).cloned().collect();
    let (pa, pb) = (position(&a.snapshot()?, ta)?, position(&b.snapshot()?, tb)?);
    let mut target: Position = common
        .iter()
        .map(|t| (t.clone(), furthest(&[], &pa[t], &pb[t])))
        .collect();
    let hold = Hold::new(runs, &target);
    let deadline = Instant::now() + wait.max(Duration::from_secs(5));
    loop {
        let (sa, sb) = (a.snapshot()?, b.snapshot()?);
        let (pa, pb) = (position(&sa, ta)?, position(&sb, tb)?);
        let at = |p: &Position| {
            common.iter().all(|t| {
                let (now, goal) = (&p[t], &target[t]);
                (0..now.len().max(goal.len())).all(|i| at_index(now, i) == at_index(goal, i))
            })
        };
        if at(&pa) && at(&pb) {
            return Ok((sa, sb));
        }
        let raised: Position = common
            .iter()
            .map(|t| (t.clone(), furthest(&target[t], &pa[t], &pb[t])))
            .collect();
        if raised != target {
            target = raised;
            hold.move_to(&target);
        }
        if Instant::now() >= deadline {
            return Err(Error::conflict(format!(
                "{ida} and {idb} did not reach the same log position in time (one may have \
                 stopped or failed, or, reading several topics, seen their events in another \
                 order live); applied offsets: {ida} {pa:?}, {idb} {pb:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Where the view of `snapshot`, reading `topics`, is in each of them:
/// topic 0 from the view's offsets, the others from the host rows of each
/// shard (`super::inputs`).
fn position(snapshot: &Snapshot, topics: &[String]) -> Result<Position> {
    let offsets = snapshot.offsets()?;
    let partitions = offsets.keys().copied().max().map_or(0, |m| m + 1);
    let mut out = Position::new();
    let Some((first, more)) = topics.split_first() else {
        return Ok(out);
    };
    let first_offsets = (0..partitions).map(|p| offsets.get(&p).copied().unwrap_or(0));
    out.insert(first.clone(), first_offsets.collect());
    for (t, topic) in (1u32..).zip(more) {
        let mut nexts = Vec::new();
        for p in 0..partitions {
            let row = snapshot.get(&Keys::new(p).offset(t))?;
            nexts.push(row.as_deref().and_then(read_offset).unwrap_or(0));
        }
        out.insert(topic.clone(), nexts);
    }
    Ok(out)
}

/// Per partition, the largest of three offset lists.
fn furthest(x: &[u64], y: &[u64], z: &[u64]) -> Vec<u64> {
    let len = x.len().max(y.len()).max(z.len());
    (0..len)
        .map(|i| at_index(x, i).max(at_index(y, i)).max(at_index(z, i)))
        .collect()
}

/// The offset at `i` (0 if none yet).
fn at_index(offsets: &[u64], i: usize) -> u64 {
    offsets.get(i).copied().unwrap_or(0)
}
