//! The host's error type: what a caller (the HTTP API, the CLI, a test)
//! matches on. Each variant is a kind of failure the caller reacts to
//! differently (a 400, a 404, a 409, a 500); the message says what to do.

use crate::log::LogError;
use crate::store::StoreError;

/// A failed host operation.
#[derive(Debug, thiserror::Error)]
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
}

/// Result with the host's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

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
    /// A stable machine-readable name of the kind, for the API's JSON errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "invalid",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::TooLarge(_) => "too_large",
            Error::Storage(_) => "storage",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
            Error::Unsupported(_) => "unsupported",
        }
    }
}

impl From<LogError> for Error {
    fn from(e: LogError) -> Self {
        let msg = e.to_string();
        match e {
            LogError::UnknownTopic(_) | LogError::UnknownPartition { .. } => Error::NotFound(msg),
            LogError::TopicExists(_) | LogError::RequestIdReused { .. } => Error::Conflict(msg),
            LogError::RequestInFlight { .. } => Error::Unavailable(msg),
            LogError::InvalidTopicName { .. }
            | LogError::InvalidRequestId { .. }
            | LogError::InvalidPartitionCount(_)
            | LogError::OffsetOutOfRange { .. } => Error::Invalid(msg),
            LogError::RecordTooLarge { .. } => Error::TooLarge(msg),
            LogError::Corrupt { .. } | LogError::Io { .. } => Error::Storage(msg),
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Storage(e.to_string())
    }
}

/// Adds context to I/O errors on the data directory.
pub(crate) fn io(context: impl std::fmt::Display) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::Storage(format!("{context}: {e}"))
}
