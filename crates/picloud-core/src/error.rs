//! Errors shared across crates. Only validation messages ever reach a client verbatim.

/// Input that breaks a rule. The message is safe to show to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Why a store call failed. Clone: caches that load once for many waiters hand each the error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was hit (duplicate slug, duplicate domain, …). The string names
    /// what was duplicated and is safe to show.
    #[error("{0} already exists")]
    Conflict(&'static str),
    /// The database could not be reached or did not answer in time. Retryable.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The database's storage is full (SQLite `SQLITE_FULL`, PostgreSQL `53100`): the write
    /// was not committed. Retryable once space returns; reads go on working.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// Anything else: a bug or a broken database. Never shown to clients.
    #[error("database error: {0}")]
    Internal(String),
}

impl StoreError {
    /// True for failures that say nothing about the request itself (the database is full,
    /// unreachable or busy): retrying the same write alone would fail the same way.
    pub fn is_storage_condition(&self) -> bool {
        matches!(self, Self::StorageFull(_) | Self::Unavailable(_))
    }
}

/// What a cache that loads once for many waiters (moka's `try_get_with`) hands each waiter.
impl From<std::sync::Arc<StoreError>> for StoreError {
    fn from(e: std::sync::Arc<StoreError>) -> Self {
        std::sync::Arc::unwrap_or_clone(e)
    }
}
