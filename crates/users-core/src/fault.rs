//! What can go wrong in any flow for reasons that are not the caller's: the database is
//! unreachable or saturated, or something that should not fail did. Every flow's outcome
//! type carries these as one variant.

use std::time::Duration;

use users_db::DbError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Fault {
    /// The database cannot be reached (or the identity provider's configuration could
    /// not be loaded yet): worth retrying shortly.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The database answers, but no connection became free in time.
    #[error("busy: no database connection became free within {0:?}")]
    Busy(Duration),
    /// A bug or an unexpected failure; the cause goes to the log, never to the client.
    #[error("internal: {0}")]
    Internal(String),
}

impl Fault {
    pub fn internal(e: impl std::fmt::Display) -> Fault {
        Fault::Internal(e.to_string())
    }
}

impl From<DbError> for Fault {
    fn from(e: DbError) -> Fault {
        match e {
            DbError::Busy(wait) => Fault::Busy(wait),
            e if e.is_unavailable() => Fault::Unavailable(e.to_string()),
            e => Fault::Internal(e.to_string()),
        }
    }
}

impl From<crate::hashing::HashError> for Fault {
    fn from(e: crate::hashing::HashError) -> Fault {
        Fault::Internal(e.to_string())
    }
}
