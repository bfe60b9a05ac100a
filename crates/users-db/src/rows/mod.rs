//! Rows several repository modules share, and the writes any change's effects make
//! (`Effects::write`): leaves that import none of the repository modules, so those
//! modules never import one another for a type.

pub(crate) mod api_key;
pub(crate) mod outbox;
pub(crate) mod session;
pub(crate) mod user;
