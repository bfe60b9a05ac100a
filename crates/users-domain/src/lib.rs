//! The domain of the `users` service: what a user is, what a valid email address is,
//! which passwords are acceptable; and the cryptographic helpers every crate shares
//! (`crypto`). Pure rules and types: no web framework, no database, no I/O, so every
//! rule here is unit-testable and shared by the server, the CLI and the persistence
//! layer alike.

pub mod access;
pub mod crypto;
pub mod email;
pub mod oauth;
pub mod password;
pub mod time;
pub mod trace_context;
pub mod user;

pub use email::{EmailAddress, EmailError};
pub use password::{PasswordPolicy, PasswordRejection};
pub use time::{Clock, Timestamp};
pub use user::{User, UserId};
