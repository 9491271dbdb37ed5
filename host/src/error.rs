//! The host's error type: what a caller (the HTTP API, the CLI, a test)
//! matches on. Each [`Kind`] is a kind of failure the caller reacts to
//! differently (a 400, a 404, a 409, a 500); the message says what to do.
//! Failures of the log, the views, the registry and the file system keep
//! their typed cause (as the error's `source`), and show its text.

use std::path::PathBuf;

use crate::eventlog::{LogError, ModelError};
use crate::store::StoreError;

/// A failed host operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request itself is wrong (bad name, malformed event, not a plugin).
    #[error("{0}")]
    Invalid(String),
    /// The named topic, processor, version or key does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state (same version with other
    /// bytes, retiring the promoted version, a diff while a view replays).
    #[error("{0}")]
    Conflict(String),
    /// A payload is larger than the configured maximum.
    #[error("{0}")]
    TooLarge(String),
    /// Reading or writing the data directory failed.
    #[error("{0}")]
    Storage(String),
    /// The log cannot be reached right now (a Kafka broker is down): retry.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected state of the host.
    #[error("{0}")]
    Internal(String),
    /// The request asks for something this host's configuration does not
    /// offer (a request id on the Kafka log).
    #[error("{0}")]
    Unsupported(String),
    /// The event log refused or failed the operation; its kind follows the
    /// cause (an unknown topic is not found, a broker down unavailable).
    #[error("{0}")]
    Log(#[from] LogError),
    /// A view's store failed (a storage failure).
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A file or directory of the data directory could not be read or
    /// written (a storage failure).
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `creating /data/views`.
        context: String,
        /// What the system reported.
        #[source]
        source: std::io::Error,
    },
    /// The registry's database failed (a storage failure).
    #[error("registry {}: {source}", path.display())]
    Registry {
        /// The registry file.
        path: PathBuf,
        /// What redb reported.
        #[source]
        source: Box<redb::Error>,
    },
    /// A record of the registry cannot be decoded (a storage failure).
    #[error("registry {}: record `{key}` is unreadable: {source}", path.display())]
    Record {
        /// The registry file.
        path: PathBuf,
        /// The record's key.
        key: String,
        /// What the decoder reported.
        #[source]
        source: serde_json::Error,
    },
    /// A record could not be encoded (a bug: an internal failure).
    #[error("encoding a record: {0}")]
    Encode(#[source] serde_json::Error),
}

/// Result with the host's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds of failure a caller tells apart (see [`Error::class`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// See [`Error::Invalid`].
    Invalid,
    /// See [`Error::NotFound`].
    NotFound,
    /// See [`Error::Conflict`].
    Conflict,
    /// See [`Error::TooLarge`].
    TooLarge,
    /// See [`Error::Storage`].
    Storage,
    /// See [`Error::Unavailable`].
    Unavailable,
    /// See [`Error::Internal`].
    Internal,
    /// See [`Error::Unsupported`].
    Unsupported,
}

impl Kind {
    /// A stable machine-readable name, for the API's JSON errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Invalid => "invalid",
            Kind::NotFound => "not_found",
            Kind::Conflict => "conflict",
            Kind::TooLarge => "too_large",
            Kind::Storage => "storage",
            Kind::Unavailable => "unavailable",
            Kind::Internal => "internal",
            Kind::Unsupported => "unsupported",
        }
    }
}

impl Error {
    /// Shorthand for [`Error::Invalid`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
    /// Shorthand for [`Error::NotFound`].
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }
    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(msg: impl Into<String>) -> Self {
        Error::Conflict(msg.into())
    }

    /// The kind of failure, whatever its cause.
    pub fn class(&self) -> Kind {
        match self {
            Error::Invalid(_) => Kind::Invalid,
            Error::NotFound(_) => Kind::NotFound,
            Error::Conflict(_) => Kind::Conflict,
            Error::TooLarge(_) => Kind::TooLarge,
            Error::Storage(_)
            | Error::Store(_)
            | Error::Io { .. }
            | Error::Registry { .. }
            | Error::Record { .. } => Kind::Storage,
            Error::Unavailable(_) => Kind::Unavailable,
            Error::Internal(_) | Error::Encode(_) => Kind::Internal,
            Error::Unsupported(_) => Kind::Unsupported,
            Error::Log(e) => log_kind(e),
        }
    }

    /// A stable machine-readable name of the kind, for the API's JSON errors.
    pub fn kind(&self) -> &'static str {
        self.class().as_str()
    }
}

/// The kind of a failure of the log, whichever the backend.
fn log_kind(e: &LogError) -> Kind {
    match e {
        LogError::Log(e) => model_kind(e),
        LogError::Unavailable(_) => Kind::Unavailable,
        LogError::Backend(_) => Kind::Storage,
    }
}

/// The kind of a failure of the log's data model or of the embedded log.
fn model_kind(e: &ModelError) -> Kind {
    match e {
        ModelError::UnknownTopic(_) | ModelError::UnknownPartition { .. } => Kind::NotFound,
        ModelError::TopicExists(_) | ModelError::RequestIdReused { .. } => Kind::Conflict,
        ModelError::RequestInFlight { .. } => Kind::Unavailable,
        ModelError::InvalidTopicName { .. }
        | ModelError::InvalidRequestId { .. }
        | ModelError::InvalidPartitionCount(_)
        | ModelError::OffsetOutOfRange { .. } => Kind::Invalid,
        ModelError::RecordTooLarge { .. } => Kind::TooLarge,
        ModelError::Corrupt { .. } | ModelError::Io { .. } => Kind::Storage,
    }
}

impl From<ModelError> for Error {
    fn from(e: ModelError) -> Self {
        Error::Log(LogError::Log(e))
    }
}

/// Adds context to I/O errors on the data directory.
pub fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Io {
        context: context.to_string(),
        source: e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_keep_their_text_and_their_kind() {
        let e = Error::from(ModelError::UnknownTopic("t".into()));
        assert_eq!(e.to_string(), "topic \"t\" does not exist; create it first");
        assert_eq!(e.kind(), "not_found");
        assert!(matches!(
            e,
            Error::Log(LogError::Log(ModelError::UnknownTopic(_)))
        ));
        let e = Error::from(LogError::Unavailable("broker down".into()));
        assert_eq!(
            (e.to_string().as_str(), e.kind()),
            ("broker down", "unavailable")
        );

        let e = io("creating /x")(std::io::Error::other("denied"));
        assert_eq!(e.to_string(), "creating /x: denied");
        assert_eq!(e.kind(), "storage");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("denied"));
    }
}
