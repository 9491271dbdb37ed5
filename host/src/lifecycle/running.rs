//! The host's side of its workers: what a worker shares with the rest of the
//! host ([`Running`]), starting its thread, stopping it, and recording how it
//! ended. A worker reports why it stopped ([`Stop`]); its failure is recorded
//! here, once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use parking_lot::Mutex;

use super::Host;
use super::progress::Progress;
use super::worker::{Fault, Stop, Worker};
use crate::clock::now_ms;
use crate::error::{Error, Result, io};
use crate::registry::{Failure, Stored, VersionId, VersionRecord};
use crate::runtime::{Instance, Plugin};
use crate::store::View;

/// What a worker shares with the rest of the host.
pub(super) struct Running {
    pub(super) record: VersionRecord,
    pub(super) view: Arc<View>,
    pub(super) stop: AtomicBool,
    /// When set, the worker applies nothing at or past these offsets: the
    /// diff barrier that brings two views to the same log position (see
    /// `super::barrier`).
    pub(super) hold: Mutex<Option<Vec<u64>>>,
    pub(super) progress: Mutex<Progress>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Running {
    /// Whether the worker was asked to stop.
    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Asks the worker to stop and waits until it has.
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

impl Host {
    pub(super) fn resume(self: &Arc<Self>, record: VersionRecord) -> Result<()> {
        let plugin = self.plugin(&record.digest, None)?;
        self.start(record, plugin, None)
    }

    /// Opens the view of `record` and starts its worker, with `instance` or
    /// a new instance of `plugin`.
    pub(super) fn start(
        self: &Arc<Self>,
        record: VersionRecord,
        plugin: Arc<Plugin>,
        instance: Option<Instance>,
    ) -> Result<()> {
        let id = record.id();
        let path = self.view_path(&id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        let view = Arc::new(View::open_with(&path, self.options.view_options())?);
        // The worker reads the topic's partitions and start offsets itself,
        // retrying, so that a host restarts even while the log (a Kafka
        // broker) is unreachable.
        let running = Arc::new(Running {
            record,
            view,
            stop: AtomicBool::new(false),
            hold: Mutex::new(None),
            progress: Mutex::new(Progress::default()),
            thread: Mutex::new(None),
        });
        let host = self.clone();
        let worker = running.clone();
        let handle = std::thread::Builder::new()
            .name(format!("kappa-{id}"))
            .spawn(move || host.run_worker(worker, plugin, instance))
            .map_err(|e| Error::Internal(format!("starting the worker of {id}: {e}")))?;
        *running.thread.lock() = Some(handle);
        self.running.lock().insert(id, running);
        Ok(())
    }

    /// The body of a worker thread: runs the worker until it stops and
    /// records its failure, if it failed.
    fn run_worker(&self, run: Arc<Running>, plugin: Arc<Plugin>, instance: Option<Instance>) {
        let id = run.record.id();
        let env = self.env();
        let stop = match Worker::start(&env, run, plugin, instance) {
            Ok(worker) => worker.run(&env),
            Err(fault) => Stop::Failed(fault),
        };
        match stop {
            Stop::Requested => {}
            Stop::Failed(fault) => self.fail(&id, fault),
        }
    }

    /// Records that `id` failed: logs it, counts it, keeps its view readable
    /// and stores the failure in the registry.
    pub(super) fn fail(&self, id: &VersionId, fault: Fault) {
        let Fault { place, message } = fault;
        let at = if place.is_known() {
            format!(" {place}")
        } else {
            String::new()
        };
        tracing::error!("plugin {id} failed{at}: {message}");
        self.metrics.failure(id, false);
        let failure = Failure {
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
