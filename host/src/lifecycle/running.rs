//! The host's side of its workers: what a version's workers share with the
//! rest of the host ([`Running`]), starting them, stopping them, and
//! recording how they ended. A worker reports why it stopped ([`Stop`]);
//! a failure is recorded here, once.
//!
//! Each running version has a coordinator thread that starts its workers,
//! one per [`Lane`], each on a thread of its own: one lane for a version of
//! contract 0.1.0 or 0.2.0 (one shared view, whose reads see every
//! partition's writes, which only one thread can keep deterministic), and up
//! to [`HostOptions::threads_per_version`](super::HostOptions) lanes for a
//! version whose state is per partition. A replaying lane runs at a lower
//! priority (`super::priority`); when it catches up, the coordinator, which
//! never lowered its own priority, starts a thread that carries the lane on
//! at normal priority. The version is caught up when every lane has.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::{JoinHandle, Scope};

use parking_lot::Mutex;

use super::Host;
use super::env::Env;
use super::priority;
use super::progress::Progress;
use super::worker::{Fault, Lane, Stop, Worker};
use crate::clock::now_ms;
use crate::error::{Error, Result, io};
use crate::registry::{Failure, Stored, VersionId, VersionRecord};
use crate::runtime::{Instance, Plugin};
use crate::store::{Layout, Shards};

/// What a version's workers share with the rest of the host.
pub(super) struct Running {
    pub(super) record: VersionRecord,
    pub(super) view: Arc<Shards>,
    pub(super) stop: AtomicBool,
    /// When set, the workers apply nothing at or past these offsets (by
    /// topic index, then partition; a topic or partition left out is not
    /// held): the diff barrier that brings two views to the same log
    /// position (see `super::barrier`).
    pub(super) hold: Mutex<Option<Vec<Vec<u64>>>>,
    pub(super) progress: Mutex<Progress>,
    /// How many threads process the version's partitions (0 until the
    /// coordinator has started them).
    pub(super) lanes: AtomicUsize,
    /// The coordinator thread.
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Running {
    /// Whether the workers were asked to stop.
    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Asks the workers to stop and waits until they have.
    pub(super) fn stop_and_join(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.join();
    }

    fn join(&self) {
        if let Some(handle) = self.thread.lock().take() {
            let _ = handle.join();
        }
    }
}

/// How a lane's thread ended, as it tells the coordinator.
enum LaneEnd {
    /// The lane caught up while replaying: its worker, to carry on.
    CaughtUp(Box<Worker>),
    /// The lane stopped (asked to, or failed).
    Stopped(Stop),
}

/// How a lane's thread starts.
enum LaneStart {
    /// A new worker of this lane, replaying or not, with the deploy's
    /// instance for the first lane.
    New(Lane, bool, Option<Instance>),
    /// A lane that caught up, carried on live.
    Live(Box<Worker>),
}

impl Host {
    pub(super) fn resume(self: &Arc<Self>, record: VersionRecord) -> Result<()> {
        let plugin = self.plugin(&record.digest, None)?;
        self.start(record, plugin, None)
    }

    /// Opens the view of `record` and starts its workers, with `instance` or
    /// a new instance of `plugin` for the first one.
    pub(super) fn start(
        self: &Arc<Self>,
        record: VersionRecord,
        plugin: Arc<Plugin>,
        instance: Option<Instance>,
    ) -> Result<()> {
        let id = record.id();
        let layout = if plugin.contract().state_per_partition() {
            Layout::PerPartition
        } else {
            Layout::Shared
        };
        let path = self.view_path(&id, layout);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        let view = Arc::new(Shards::open(&path, layout, self.options.view_options())?);
        // The workers read the topic's partitions and start offsets
        // themselves, retrying, so that a host restarts even while the log (a
        // Kafka broker) is unreachable.
        let running = Arc::new(Running {
            record,
            view,
            stop: AtomicBool::new(false),
            hold: Mutex::new(None),
            progress: Mutex::new(Progress::default()),
            lanes: AtomicUsize::new(0),
            thread: Mutex::new(None),
        });
        let host = self.clone();
        let coordinated = running.clone();
        let handle = std::thread::Builder::new()
            .name(format!("kappa-{id}"))
            .spawn(move || host.coordinate(&coordinated, &plugin, instance))
            .map_err(|e| Error::Internal(format!("starting the worker of {id}: {e}")))?;
        *running.thread.lock() = Some(handle);
        self.running.lock().insert(id, running);
        Ok(())
    }

    /// How many lanes a version of `layout` reading `topic` gets: one for a
    /// shared view; else one per partition this host processes, at most
    /// `threads` (the deploy's setting; 0: `threads_per_version`), and that
    /// many when the log cannot be asked now.
    fn lane_count(&self, layout: Layout, topic: &str, threads: u32) -> usize {
        let most = match usize::try_from(threads) {
            Ok(0) | Err(_) => self.options.threads_per_version,
            Ok(n) => n,
        }
        .max(1);
        match layout {
            Layout::Shared => 1,
            Layout::PerPartition => match self.log.end_offsets(topic) {
                Ok(ends) => (0..ends.len())
                    .filter(|p| self.owns(*p))
                    .count()
                    .clamp(1, most),
                Err(_) => most,
            },
        }
    }

    /// The body of a version's coordinator thread: starts one thread per
    /// lane, restarts a lane that caught up at normal priority, records the
    /// catch-up once every lane has, and records the first failure (asking
    /// the other lanes to stop). Returns when every lane has stopped.
    fn coordinate(&self, run: &Arc<Running>, plugin: &Arc<Plugin>, instance: Option<Instance>) {
        let id = run.record.id();
        let count = self.lane_count(
            run.view.layout(),
            &run.record.topic,
            run.record.settings.threads,
        );
        run.lanes.store(count, Ordering::Relaxed);
        let env = self.env();
        let replaying = !run.record.caught_up;
        std::thread::scope(|scope| {
            let (tx, rx) = mpsc::channel();
            let mut instance = instance;
            let mut active = 0;
            let mut failed = false;
            let mut fail_once = |fault: Fault| {
                run.stop.store(true, Ordering::Relaxed);
                if !std::mem::replace(&mut failed, true) {
                    self.fail(&id, fault);
                }
            };
            for index in 0..count {
                let start = LaneStart::New(Lane { index, count }, replaying, instance.take());
                match spawn_lane(scope, &env, run, plugin, start, tx.clone()) {
                    Ok(()) => active += 1,
                    Err(fault) => fail_once(fault),
                }
            }
            let mut caught_up = 0;
            while active > 0 {
                let Ok(end) = rx.recv() else { break };
                match end {
                    LaneEnd::CaughtUp(worker) => {
                        caught_up += 1;
                        if caught_up == count {
                            env.caught_up(run);
                        }
                        if let Err(fault) = spawn_lane(
                            scope,
                            &env,
                            run,
                            plugin,
                            LaneStart::Live(worker),
                            tx.clone(),
                        ) {
                            active -= 1;
                            fail_once(fault);
                        }
                    }
                    LaneEnd::Stopped(Stop::Failed(fault)) => {
                        active -= 1;
                        fail_once(fault);
                    }
                    LaneEnd::Stopped(_) => active -= 1,
                }
            }
        });
    }

    /// Records that `id` failed: logs it, counts it, keeps its view readable
    /// and stores the failure in the registry.
    pub(super) fn fail(&self, id: &VersionId, fault: Fault) {
        let Fault {
            place,
            topic,
            message,
        } = fault;
        let at = match (&topic, place.is_known()) {
            (Some(topic), true) => format!(
                " at topic {topic} {}",
                place.to_string().trim_start_matches("at ")
            ),
            (None, true) => format!(" {place}"),
            (_, false) => String::new(),
        };
        tracing::error!("plugin {id} failed{at}: {message}");
        self.metrics.failure(id, false);
        let failure = Failure {
            event_topic: topic,
            partition: place.partition,
            offset: place.offset,
            message,
            at_ms: now_ms(),
        };
        // The view moves to the stopped ones before the state says failed:
        // a status read as failed then shows the view's committed offsets
        // (which include the good events of the failed batch), not the
        // worker's progress from before that batch. Inserted before being
        // removed, so that the view stays readable throughout.
        let run = self.running.lock().get(id).cloned();
        if let Some(run) = run {
            self.stopped_views
                .lock()
                .insert(id.clone(), run.view.clone());
            self.running.lock().remove(id);
        }
        let result = self.registry.update(id, |rec, _| {
            if let Some(rec) = rec {
                rec.stored = Stored::Failed(failure.clone());
            }
            Ok(())
        });
        if let Err(e) = result {
            tracing::error!(version = %id, "recording the failure: {e}");
        }
    }

    /// Stops every worker and makes every view durable.
    pub fn shutdown(&self) {
        let running: Vec<Arc<Running>> = self.running.lock().values().cloned().collect();
        for run in &running {
            run.stop.store(true, Ordering::Relaxed);
        }
        for run in running {
            run.join();
        }
    }
}

/// Starts the thread of one lane in `scope`; it tells `tx` how it ended.
fn spawn_lane<'scope>(
    scope: &'scope Scope<'scope, '_>,
    env: &'scope Env<'_>,
    run: &'scope Arc<Running>,
    plugin: &'scope Arc<Plugin>,
    start: LaneStart,
    tx: mpsc::Sender<LaneEnd>,
) -> std::result::Result<(), Fault> {
    let id = run.record.id();
    let index = match &start {
        LaneStart::New(lane, ..) => lane.index,
        LaneStart::Live(worker) => worker.lane().index,
    };
    std::thread::Builder::new()
        .name(format!("kappa-{id}-{index}"))
        .spawn_scoped(scope, move || {
            let worker = match start {
                LaneStart::New(lane, replaying, instance) => {
                    if replaying && env.lower_replay_priority {
                        priority::lower_for_replay();
                    }
                    Worker::start(env, run.clone(), plugin.clone(), lane, replaying, instance)
                }
                LaneStart::Live(mut worker) => {
                    worker.go_live();
                    Ok(*worker)
                }
            };
            let end = match worker {
                Ok(worker) => match worker.run(env) {
                    Stop::CaughtUp(worker) => LaneEnd::CaughtUp(worker),
                    stop => LaneEnd::Stopped(stop),
                },
                Err(fault) => LaneEnd::Stopped(Stop::Failed(fault)),
            };
            // The coordinator outlives every lane: a send cannot fail.
            let _ = tx.send(end);
        })
        .map(|_| ())
        .map_err(|e| Fault::unplaced(format!("starting a worker thread of {id}: {e}")))
}
