//! Which log backend a host runs on ([`LogBackend`]), and the `kappa serve`
//! options that choose it ([`LogArgs`]), kept out of the log interface so
//! that the interface knows neither the command line nor a backend's
//! configuration.

use super::kafka::KafkaConfig;

/// Which log a host runs on.
#[derive(Debug, Clone, Default)]
pub enum LogBackend {
    /// The embedded log in the data directory.
    #[default]
    Embedded,
    /// Topics of a Kafka cluster.
    Kafka(KafkaConfig),
}

/// `kappa serve` options that choose the log.
#[derive(Debug, Clone, clap::Args)]
pub struct LogArgs {
    /// The log: `embedded` (files in the data directory) or `kafka`.
    #[arg(long = "log", env = "KAPPA_LOG_BACKEND", default_value = "embedded",
          value_parser = ["embedded", "kafka"])]
    pub log: String,
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...] (with --log kafka).
    #[arg(long, env = "KAPPA_KAFKA_BOOTSTRAP", value_name = "HOST:PORT")]
    pub kafka_bootstrap: Option<String>,
    /// A librdkafka property for every Kafka client, KEY=VALUE; repeat it.
    /// Security settings go here: security.protocol=SASL_SSL,
    /// sasl.mechanism=PLAIN, sasl.username=..., ssl.ca.location=...
    #[arg(long = "kafka-option", value_name = "KEY=VALUE")]
    pub kafka_options: Vec<String>,
    /// Replication factor of topics created by `kappa topic create` on
    /// Kafka (-1: the broker's default).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub kafka_replication_factor: i32,
    /// Scale-out: the partitions this host processes, e.g. `0,1` (default:
    /// all). Hosts sharing a topic own disjoint sets; each keeps the views
    /// of its partitions.
    #[arg(long, value_delimiter = ',', value_name = "P,P,...")]
    pub kafka_partitions: Option<Vec<u32>>,
    /// Scale-out: another host sharing the topic (its API URL); keys not
    /// found here are asked of the peers. Repeat it for each peer.
    #[arg(long = "peer", value_name = "URL")]
    pub peers: Vec<String>,
}

impl LogArgs {
    /// The backend these options select, or why they are wrong.
    pub fn backend(&self) -> Result<LogBackend, String> {
        for peer in &self.peers {
            if !(peer.starts_with("http://") || peer.starts_with("https://")) {
                return Err(format!(
                    "--peer {peer:?} is not a URL such as http://10.0.0.2:7070"
                ));
            }
        }
        if self.log == "embedded" {
            if self.kafka_bootstrap.is_some()
                || !self.kafka_options.is_empty()
                || self.kafka_partitions.is_some()
            {
                return Err(
                    "--kafka-bootstrap, --kafka-option and --kafka-partitions need --log kafka \
                     (the log is embedded by default)"
                        .to_owned(),
                );
            }
            return Ok(LogBackend::Embedded);
        }
        let bootstrap = self
            .kafka_bootstrap
            .clone()
            .filter(|b| !b.trim().is_empty())
            .ok_or("--log kafka needs --kafka-bootstrap HOST:PORT (or KAPPA_KAFKA_BOOTSTRAP)")?;
        let mut config = KafkaConfig::new(bootstrap);
        config.replication_factor = self.kafka_replication_factor;
        for option in &self.kafka_options {
            let (key, value) = option
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| format!("--kafka-option {option:?} is not KEY=VALUE"))?;
            config
                .options
                .push((key.trim().to_owned(), value.to_owned()));
        }
        Ok(LogBackend::Kafka(config))
    }
}
