use thiserror::Error;

/// What can go wrong at the storage seam. The typed kinds are the answers a
/// caller acts on; `Backend` carries the engine's own error for the log and is
/// never shown to clients.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("username taken")]
    UsernameTaken,
    #[error("group too large")]
    GroupTooLarge,
    #[error("not a member")]
    NotAMember,
    /// One of the users blocked the other.
    #[error("blocked")]
    Blocked,
    /// The message named (to change, or to reply to) does not exist in the
    /// channel, or was deleted (for a change other than a delete).
    #[error("no such message")]
    MessageNotFound,
    /// Only a message's sender (for a delete, also the group's creator)
    /// may change it.
    #[error("not allowed")]
    NotAllowed,
    /// An edit would leave a message with neither text nor attachments.
    #[error("text empty")]
    TextEmpty,
    /// An upload would take its owner past their storage quota.
    #[error("storage quota exceeded")]
    QuotaExceeded,
    /// The backend has no such operation (its engine's own tools do it).
    #[error("not supported by this store: {0}")]
    Unsupported(&'static str),
    #[error("store is closed")]
    Closed,
    /// The engine cannot be reached right now (restart, failover): worth
    /// retrying soon. Nothing was written, or the write committed and a
    /// retry with the same idempotency key finds it.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    /// Lost connections and a server shutting down or starting up are
    /// `Unavailable`; everything else is a backend failure.
    fn from(e: tokio_postgres::Error) -> Self {
        use tokio_postgres::error::SqlState;
        let transient_codes = [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ];
        let transient = match e.code() {
            Some(code) => transient_codes.contains(code) || code.code().starts_with("08"),
            None => e.is_closed() || std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()),
        };
        if transient {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Backend(Box::new(e))
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            deadpool_postgres::PoolError::Closed => StoreError::Closed,
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}
