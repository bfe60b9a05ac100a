//! Who a request comes from, as the flows record it: the session it starts and the
//! audit events it raises keep these. A leaf: events, the outbox and every flow name
//! it, and it names none of them.

/// Where a request comes from: what a session and an audit event record of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClientInfo {
    pub ip: Option<String>,
    /// Kept to its first 256 characters.
    pub user_agent: Option<String>,
    /// The request's `X-Request-Id`.
    #[serde(default)]
    pub request_id: Option<String>,
}
