//! Reading the audit log (docs/audit-and-webhooks.md): superusers read every event, a user
//! their own; newest first, a page at a time, each page naming where the next begins.

use users_db::audit::AuditQuery;
use users_domain::UserId;

use crate::events::{EventType, StoredEvent};
use crate::{Core, Fault};

/// Events per page when none is asked for.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub user_id: Option<UserId>,
    pub kind: Option<EventType>,
    /// Only events older than this event (the previous page's `next_before`).
    pub before: Option<String>,
    /// 1 to [`MAX_LIMIT`].
    pub limit: i64,
}

/// A page of events, newest first.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<StoredEvent>,
    /// Where the next page begins; `None` on the last page.
    pub next_before: Option<String>,
}

/// A page of the events `filter` selects.
#[tracing::instrument(level = "debug", name = "audit::list", skip_all)]
pub async fn list(core: &Core, filter: Filter) -> Result<Page, Fault> {
    let limit = filter.limit.clamp(1, MAX_LIMIT);
    let query = AuditQuery {
        user_id: filter.user_id.map(|u| u.to_string()),
        event_type: filter.kind.map(|k| k.as_str().to_owned()),
        before: filter.before,
        // one more than asked: whether there is a next page
        limit: limit + 1,
    };
    let mut rows = core
        .store
        .run(move |c| users_db::audit::list(c, &query))
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_before = if more {
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(Page {
        items: rows.into_iter().map(StoredEvent::from).collect(),
        next_before,
    })
}
