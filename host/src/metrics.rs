//! The host's metrics, served at `/metrics` in the Prometheus text format
//! (version 0.0.4) by the `prometheus-client` encoder.
//!
//! Two kinds of series:
//! - recorded as things happen, by small hooks in `lifecycle`: the batch
//!   latency and size histograms, failures, and events appended per topic;
//! - read from the host's status at scrape time: lag, progress, events
//!   processed, rate, ETA, state, and the topics' end offsets.
//!
//! - about the host itself, there from the first scrape of a fresh host:
//!   build info, the number of topics, HTTP requests and their latency
//!   (recorded by a middleware of `crate::api`), and the process figures
//!   (CPU, memory, threads, open files, start time; read from `/proc` on
//!   Linux).
//!
//! Every name is listed, with its labels, in `docs/operating.md`. All counters
//! start at zero when the host process starts.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::model::{State, StatusReport};
use crate::registry::VersionId;

/// `Content-Type` of the `/metrics` answer.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Labels of a per-version series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    processor: String,
    version: String,
}

impl VersionLabels {
    fn of(id: &VersionId) -> Self {
        VersionLabels {
            processor: id.name.clone(),
            version: id.version.to_string(),
        }
    }
}

/// Labels of the failure counter: the version and what the host did.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FailureLabels {
    processor: String,
    version: String,
    /// `stopped` (the version failed) or `skipped` (a dead letter).
    action: String,
}

/// Labels of the state series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    processor: String,
    version: String,
    state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TopicLabels {
    topic: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: String,
}

/// Labels of the HTTP request counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: String,
    /// The route's pattern (`/v1/processors/{name}`), never the raw path,
    /// so the number of series stays bounded.
    route: String,
    status: String,
}

/// Labels of the HTTP latency histogram.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;
type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

fn duration_histogram() -> Histogram {
    // 0.5 ms to ~16 s (the default batch time limit is 10 s).
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn size_histogram() -> Histogram {
    // 1 to 4096 events (the default batch is at most 1024).
    Histogram::new(exponential_buckets(1.0, 4.0, 7))
}

/// What the host records as it runs.
#[derive(Debug)]
pub struct Metrics {
    batch_seconds: HistogramFamily<VersionLabels>,
    batch_events: HistogramFamily<VersionLabels>,
    failures: Family<FailureLabels, Counter>,
    appended: Family<TopicLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_seconds: HistogramFamily<RouteLabels>,
    /// When the host started, seconds since the Unix epoch.
    started_at: f64,
}

fn http_histogram() -> Histogram {
    // 0.1 ms to ~13 s: a status read, a produce batch, a deploy that compiles.
    Histogram::new(exponential_buckets(0.0001, 4.0, 9))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            batch_seconds: Family::new_with_constructor(duration_histogram),
            batch_events: Family::new_with_constructor(size_histogram),
            failures: Family::default(),
            appended: Family::default(),
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(http_histogram),
            started_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        }
    }
}

impl Metrics {
    /// One batch of `events` events was processed and committed by `id` in `took`.
    pub fn batch(&self, id: &VersionId, events: u64, took: Duration) {
        let labels = VersionLabels::of(id);
        self.batch_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        self.batch_events
            .get_or_create(&labels)
            .observe(events as f64);
    }

    /// `id` failed (`skipped == false`) or skipped a poison event.
    pub fn failure(&self, id: &VersionId, skipped: bool) {
        self.failures
            .get_or_create(&FailureLabels {
                processor: id.name.clone(),
                version: id.version.to_string(),
                action: if skipped { "skipped" } else { "stopped" }.to_owned(),
            })
            .inc();
    }

    /// `events` events were appended to `topic`.
    pub fn appended(&self, topic: &str, events: u64) {
        self.appended
            .get_or_create(&TopicLabels {
                topic: topic.to_owned(),
            })
            .inc_by(events);
    }

    /// An HTTP request to `route` (the route's pattern) was answered with
    /// `status` after `took`.
    pub fn http(&self, method: &str, route: &str, status: u16, took: Duration) {
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "OPTIONS" | "PATCH" => method,
            _ => "other",
        };
        self.http_requests
            .get_or_create(&HttpLabels {
                method: method.to_owned(),
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
        self.http_seconds
            .get_or_create(&RouteLabels {
                method: method.to_owned(),
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// The series about the host itself: build, topics, HTTP, process.
    fn register_host(&self, registry: &mut Registry, status: &StatusReport) {
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register(
            "kappa_build_info",
            "Always 1, with the version of this kappa build as a label",
            build,
        );
        let topics = Gauge::<i64>::default();
        topics.set(i64::try_from(status.topics.len()).unwrap_or(i64::MAX));
        registry.register("kappa_topics", "Topics in the log", topics);
        registry.register(
            "kappa_http_requests",
            "HTTP requests answered since the host started, by method, route and status",
            self.http_requests.clone(),
        );
        registry.register(
            "kappa_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route",
            self.http_seconds.clone(),
        );
        let start = FloatGauge::default();
        start.set(self.started_at);
        registry.register(
            "process_start_time_seconds",
            "Start time of the host since the Unix epoch, seconds",
            start,
        );
        if let Some(p) = process_figures() {
            let cpu = Counter::<f64, std::sync::atomic::AtomicU64>::default();
            cpu.inc_by(p.cpu_seconds);
            registry.register(
                "process_cpu_seconds",
                "CPU time of the host process, user and system, seconds",
                cpu,
            );
            for (name, help, value) in [
                (
                    "process_resident_memory_bytes",
                    "Resident memory of the host process, bytes",
                    p.resident_bytes,
                ),
                (
                    "process_virtual_memory_bytes",
                    "Virtual memory of the host process, bytes",
                    p.virtual_bytes,
                ),
                ("process_threads", "Threads of the host process", p.threads),
                (
                    "process_open_fds",
                    "Open file descriptors of the host process",
                    p.open_fds,
                ),
            ] {
                let gauge = Gauge::<i64>::default();
                gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
                registry.register(name, help, gauge);
            }
        }
    }

    /// Every series, as Prometheus text, with the per-version and per-topic
    /// gauges taken from `status`.
    #[expect(
        clippy::too_many_lines,
        reason = "one registration per series, in the order they are printed"
    )]
    pub fn render(&self, status: &StatusReport) -> String {
        let mut registry = Registry::default();
        self.register_host(&mut registry, status);
        let versions = status.processors.iter().flat_map(|p| p.versions.iter());

        let lag = Family::<VersionLabels, Gauge>::default();
        let progress = Family::<VersionLabels, FloatGauge>::default();
        let processed = Family::<VersionLabels, Counter>::default();
        let rate = Family::<VersionLabels, FloatGauge>::default();
        let eta = Family::<VersionLabels, FloatGauge>::default();
        let state = Family::<StateLabels, Gauge>::default();
        let dead_letters = Family::<VersionLabels, Counter>::default();
        let late = Family::<VersionLabels, Counter>::default();
        for v in versions {
            let labels = VersionLabels {
                processor: v.name.clone(),
                version: v.version.clone(),
            };
            if v.state == State::Retired {
                // A retired version has no view any more: only its state.
                state.get_or_create(&state_labels(&labels, v.state)).set(1);
                continue;
            }
            lag.get_or_create(&labels)
                .set(i64::try_from(v.lag.unwrap_or(0)).unwrap_or(i64::MAX));
            progress
                .get_or_create(&labels)
                .set(v.progress.unwrap_or(0.0));
            processed
                .get_or_create(&labels)
                .inc_by(v.processed_since_start);
            rate.get_or_create(&labels).set(v.events_per_second);
            if let Some(s) = v.eta_seconds {
                eta.get_or_create(&labels).set(s);
            }
            dead_letters
                .get_or_create(&labels)
                .inc_by(v.dead_letter_count);
            if let Some(n) = v.late_events {
                late.get_or_create(&labels).inc_by(n);
            }
            state.get_or_create(&state_labels(&labels, v.state)).set(1);
        }
        let end_offset = Family::<PartitionLabels, Gauge>::default();
        for t in &status.topics {
            // Every topic has the appended series, zero until the first append.
            drop(self.appended.get_or_create(&TopicLabels {
                topic: t.name.clone(),
            }));
            for (p, o) in t.end_offsets.iter().enumerate() {
                end_offset
                    .get_or_create(&PartitionLabels {
                        topic: t.name.clone(),
                        partition: p.to_string(),
                    })
                    .set(i64::try_from(*o).unwrap_or(i64::MAX));
            }
        }

        registry.register(
            "kappa_version_events_processed",
            "Events processed by the version since the host started",
            processed,
        );
        registry.register(
            "kappa_version_late_events",
            "Events of a version reading several topics delivered late since the host started",
            late,
        );
        registry.register(
            "kappa_version_lag_events",
            "Events in the log not yet applied to the version's view",
            lag,
        );
        registry.register(
            "kappa_version_progress_ratio",
            "Share of the log applied to the version's view, 0 to 1 (replay progress)",
            progress,
        );
        registry.register(
            "kappa_version_events_per_second",
            "Recent processing rate of the version",
            rate,
        );
        registry.register(
            "kappa_version_eta_seconds",
            "Estimated seconds until a replaying version catches up",
            eta,
        );
        registry.register(
            "kappa_version_state",
            "1 for the state the version is in (replaying, caught_up, promoted, failed, retired)",
            state,
        );
        registry.register(
            "kappa_version_dead_letters",
            "Poison events skipped by the version under the skip policy, in all",
            dead_letters,
        );
        registry.register(
            "kappa_version_failures",
            "Failures of the version since the host started: action=stopped when the version \
             failed, action=skipped for each poison event skipped",
            self.failures.clone(),
        );
        registry.register(
            "kappa_batch_duration_seconds",
            "Time to process and commit one batch of events, per version",
            self.batch_seconds.clone(),
        );
        registry.register(
            "kappa_batch_events",
            "Events in one batch, per version",
            self.batch_events.clone(),
        );
        registry.register(
            "kappa_topic_events_appended",
            "Events appended to the topic since the host started",
            self.appended.clone(),
        );
        registry.register(
            "kappa_topic_end_offset",
            "Next offset of each partition of each topic (events appended so far)",
            end_offset,
        );
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail; an encoding error would be a bug
        // of the encoder, and a partial answer is still better than none.
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry) {
            tracing::error!("encoding metrics: {e}");
        }
        out
    }
}

/// What the operating system says about this process.
struct ProcessFigures {
    cpu_seconds: f64,
    resident_bytes: u64,
    virtual_bytes: u64,
    threads: u64,
    open_fds: u64,
}

/// The process figures from `/proc/self` (Linux); `None` elsewhere or when
/// they cannot be read.
fn process_figures() -> Option<ProcessFigures> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command name in parentheses: state is field 3, utime and
    // stime are fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| -> Option<f64> { fields.get(i)?.parse::<f64>().ok() };
    let cpu_seconds = (ticks(11)? + ticks(12)?) / 100.0;
    Some(ProcessFigures {
        cpu_seconds,
        resident_bytes: field("VmRSS:")? * 1024,
        virtual_bytes: field("VmSize:")? * 1024,
        threads: field("Threads:")?,
        open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as u64,
    })
}

fn state_labels(v: &VersionLabels, state: State) -> StateLabels {
    StateLabels {
        processor: v.processor.clone(),
        version: v.version.clone(),
        state: serde_json::to_value(state)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn renders_recorded_series_in_prometheus_text() {
        let m = Metrics::default();
        let id = VersionId::new("payments", "1.0.0").unwrap();
        m.batch(&id, 10, Duration::from_millis(3));
        m.failure(&id, false);
        m.appended("payments", 7);
        let text = m.render(&StatusReport {
            processors: Vec::new(),
            topics: Vec::new(),
        });
        assert!(
            text.contains("# TYPE kappa_batch_duration_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"kappa_batch_duration_seconds_count{processor="payments",version="1.0.0"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"kappa_batch_duration_seconds_bucket{le="0.004",processor="payments",version="1.0.0"} 1"#)
                || text.contains(r#"kappa_batch_duration_seconds_bucket{processor="payments",version="1.0.0",le="0.004"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"kappa_version_failures_total{processor="payments",version="1.0.0",action="stopped"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"kappa_topic_events_appended_total{topic="payments"} 7"#),
            "{text}"
        );
    }
}
