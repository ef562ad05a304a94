//! Outbox rows for an event, written inside the transaction of the change that caused it
//! (DESIGN §7). One mechanism for every event source of this crate: kv, docs and file
//! writes, dead letters. (Publish matches its triggers inside its own batch statement.)

use picloud_core::trigger::{TriggerFilter, TriggerKind};

/// A stored trigger filter, as written by `create_trigger` (always valid; `None` only if
/// the row was edited by hand).
pub(crate) fn stored_filter(kind: TriggerKind, filter: &str) -> Option<TriggerFilter> {
    let json: serde_json::Value = serde_json::from_str(filter).ok()?;
    TriggerFilter::parse(kind, &json).ok()
}

/// The ids of the triggers (`(id, filter)` rows of `kind`) that accept the event.
pub(crate) fn matching(
    rows: Vec<(String, String)>,
    kind: TriggerKind,
    accepts: impl Fn(&str, &TriggerFilter) -> bool,
) -> Vec<String> {
    rows.into_iter()
        .filter(|(id, filter)| stored_filter(kind, filter).is_some_and(|f| accepts(id, &f)))
        .map(|(id, _)| id)
        .collect()
}

/// Inside an open transaction `$tx`: one outbox row per enabled trigger of `$kind` in
/// `$app` that `$accepts(id, filter)`, each carrying `$event`.
macro_rules! emit {
    ($tx:expr, $app:expr, $kind:expr, $accepts:expr, $event:expr) => {{
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT id, filter FROM triggers WHERE app_id = $1 AND kind = $2 AND enabled",
        )
        .bind($app.as_str())
        .bind($kind.as_str())
        .fetch_all(&mut *$tx)
        .await
        .map_err($crate::error::other)?;
        let ids = $crate::emit::matching(rows, $kind, $accepts);
        if !ids.is_empty() {
            let event: String = $event.to_string();
            let now = $crate::db::now_ms();
            for id in ids {
                sqlx::query(
                    "INSERT INTO outbox (app_id, trigger_id, event, next_attempt_at, created_at) \
                     VALUES ($1, $2, $3, $4, $4)",
                )
                .bind($app.as_str())
                .bind(&id)
                .bind(&event)
                .bind(now)
                .execute(&mut *$tx)
                .await
                .map_err($crate::error::other)?;
            }
        }
    }};
}
pub(crate) use emit;
