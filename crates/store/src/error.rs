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
    /// The backend has no such operation (its engine's own tools do it).
    #[error("not supported by this store: {0}")]
    Unsupported(&'static str),
    #[error("store is closed")]
    Closed,
    #[error("storage backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(Box::new(e))
    }
}
