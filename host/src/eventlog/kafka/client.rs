//! Talking to the cluster: where it is and with which librdkafka properties
//! ([`KafkaConfig`]), the client context that forwards librdkafka's logs and
//! delivery reports, and which of its errors are transient.

use std::sync::mpsc;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::ProducerContext;

/// Where the Kafka cluster is and how to talk to it.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: `host:port[,host:port...]`.
    pub bootstrap: String,
    /// Extra librdkafka properties for every client (security.protocol,
    /// sasl.mechanism, sasl.username, ssl.ca.location, ...). They override
    /// kappa's defaults.
    pub options: Vec<(String, String)>,
    /// Replication factor of topics created by `kappa topic create`
    /// (-1: the broker's default).
    pub replication_factor: i32,
    /// Time limit of metadata and offset requests.
    pub request_timeout: Duration,
}

impl KafkaConfig {
    /// A configuration with kappa's defaults for `bootstrap`.
    pub fn new(bootstrap: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap: bootstrap.into(),
            options: Vec::new(),
            replication_factor: -1,
            request_timeout: Duration::from_secs(5),
        }
    }

    /// A client configuration: `defaults` first, then the user's options.
    pub(super) fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        // Reconnect within a second of a broker coming back (librdkafka
        // backs off up to 10 s by default).
        config.set("reconnect.backoff.max.ms", "1000");
        for (k, v) in defaults {
            config.set(*k, *v);
        }
        for (k, v) in &self.options {
            config.set(k, v);
        }
        config
    }
}

/// Forwards librdkafka's logs to `tracing`; its errors are mostly transient
/// connection errors that it retries by itself, so they go to debug and the
/// callers report what fails for good.
#[derive(Debug, Clone, Default)]
pub(super) struct Context;

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        // Connection failures (FAIL) repeat every second per client while a
        // broker is down; the workers and produce report those once.
        match level {
            RDKafkaLogLevel::Emerg
            | RDKafkaLogLevel::Alert
            | RDKafkaLogLevel::Critical
            | RDKafkaLogLevel::Error
                if fac != "FAIL" =>
            {
                tracing::warn!(target: "librdkafka", "{fac}: {message}")
            }
            _ => tracing::debug!(target: "librdkafka", "{fac}: {message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", "{error}: {reason}");
    }
}

impl ConsumerContext for Context {}

/// The outcome of one produced record: its index in the batch and its offset.
pub(super) type Delivered = (usize, Result<i64, KafkaError>);

impl ProducerContext for Context {
    type DeliveryOpaque = Box<(usize, mpsc::Sender<Delivered>)>;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: Self::DeliveryOpaque) {
        let (index, tx) = *opaque;
        let outcome = match result {
            Ok(message) => Ok(message.offset()),
            Err((e, _)) => Err(e.clone()),
        };
        // The appender may have given up waiting; nothing to do then.
        let _ = tx.send((index, outcome));
    }
}

/// The error code of `e`, including the admin API's (which rdkafka's
/// `rdkafka_error_code` leaves out).
pub(super) fn code_of(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    match e {
        KafkaError::AdminOp(code) => Some(*code),
        other => other.rdkafka_error_code(),
    }
}

/// Errors that go away by themselves when the cluster is reachable again.
pub(super) fn transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::Resolve
            | C::MessageTimedOut
            | C::OperationTimedOut
            | C::TimedOutQueue
            | C::RequestTimedOut
            | C::NetworkException
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::QueueFull
            | C::CoordinatorNotAvailable
    )
}

/// A client for metadata and watermark requests.
pub(super) fn meta_client(config: &KafkaConfig) -> Result<BaseConsumer<Context>, KafkaError> {
    BaseConsumer::from_config_and_context(
        &config.client(&[("allow.auto.create.topics", "false")]),
        Context,
    )
}
