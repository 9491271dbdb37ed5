//! Live work first: the threads of a version that is replaying run at a
//! lower scheduling priority than those of versions that have caught up, so
//! that a replay using every core never delays the promoted version's live
//! events by more than the scheduler's wake-up of a higher-priority thread.
//!
//! Why the operating system's scheduler rather than a pool of our own: a
//! replay and live work both run plugin code that cannot be interrupted in
//! the middle of a batch, so a host-side queue could only reorder whole
//! batches (16,384 events, milliseconds of work), while the scheduler
//! preempts a low-priority thread as soon as a live thread wakes up.
//!
//! A thread lowers its own priority by 10 `nice` levels (at most to 19, the
//! lowest) when it starts replaying.
//! An unprivileged thread cannot raise its priority again, so a replaying
//! thread that catches up hands its work to a new thread started by the
//! version's coordinator, which never lowered its own (see `super::running`).
//! On systems other than Linux the priority is left as it is.

/// How many `nice` levels a replaying thread gives up: a CPU-bound thread 10
/// levels lower gets about a tenth of the share of the other when both want
/// a core.
pub(super) const REPLAY_NICE: i32 = 10;
/// The lowest priority there is.
const LOWEST: i32 = 19;

/// Lowers the calling thread's scheduling priority for a replay.
pub(super) fn lower_for_replay() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        // Relative to the host's own niceness (a host started with `nice`
        // keeps its replays below its live work too).
        let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
        let lowered = (current + REPLAY_NICE).min(LOWEST);
        if let Err(e) = rustix::process::setpriority_process(Some(tid), lowered) {
            tracing::debug!("lowering a replaying thread's priority: {e}");
        }
    }
}

/// The calling thread's niceness, for tests (Linux only).
#[cfg(all(test, target_os = "linux"))]
fn current_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(i32::MIN)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_replaying_thread_runs_at_lower_priority_and_others_do_not() {
        let before = current_nice();
        let replaying = std::thread::spawn(|| {
            lower_for_replay();
            current_nice()
        })
        .join()
        .unwrap_or(i32::MIN);
        assert_eq!(replaying, (before + REPLAY_NICE).min(LOWEST));
        // The spawning thread, and a thread it starts afterwards, keep theirs.
        assert_eq!(current_nice(), before);
        let fresh = std::thread::spawn(current_nice).join().unwrap_or(i32::MIN);
        assert_eq!(fresh, before);
    }
}
