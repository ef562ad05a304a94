//! `OutboxStore` and `InvocationStore`: claiming deliveries under leases, retries, dead
//! letters, cron fires, and the record of script runs.
//!
//! A claimed delivery's lease *is* its `next_attempt_at` (also kept in `lease_until` for
//! inspection): when a worker dies, the delivery simply becomes due again once the lease
//! runs out. Rescue is by lease, never by age. Completing, retrying or dead-lettering
//! checks `lease_owner`, so a worker that lost its lease cannot undo another's claim.

use async_trait::async_trait;
use picloud_core::dispatch::{DeadLetter, Delivery, Invocation};
use picloud_core::ids::{new_id, AppId};
use picloud_core::store::{InvocationStore, OutboxStore, StoreResult};
use picloud_core::trigger::{TriggerFilter, TriggerKind};
use picloud_core::StoreError;
use serde_json::{json, Value};

use crate::db::{now_ms, on_pool};
use crate::emit::{emit, stored_filter};
use crate::{error, Db, SqlStore};

/// Claim, PostgreSQL: apps are visited starting after `$6` (rotation), each contributing
/// its oldest due deliveries (`$5` at most) through the `(app_id, next_attempt_at)` index;
/// `SKIP LOCKED` lets concurrent dispatchers take disjoint sets.
const CLAIM_POSTGRES: &str = "WITH picked AS ( \
       SELECT o.id FROM (SELECT id AS app FROM apps ORDER BY (id <= $6), id) a \
       CROSS JOIN LATERAL (SELECT id FROM outbox WHERE app_id = a.app AND next_attempt_at <= $2 \
         ORDER BY next_attempt_at, id LIMIT $5 FOR UPDATE SKIP LOCKED) o \
       LIMIT $4) \
     UPDATE outbox SET attempts = outbox.attempts + 1, lease_owner = $1, lease_until = $3, \
       next_attempt_at = $3 \
     FROM picked WHERE outbox.id = picked.id \
     RETURNING outbox.id, outbox.app_id, outbox.trigger_id, outbox.event, outbox.attempts";

/// Claim, SQLite: one statement, so the single writer makes it atomic.
const CLAIM_SQLITE: &str = "UPDATE outbox SET attempts = attempts + 1, lease_owner = $1, \
       lease_until = $3, next_attempt_at = $3 \
     WHERE id IN (SELECT o.id FROM (SELECT id AS app, (id <= $6) AS wrapped FROM apps) a \
       JOIN outbox o ON o.id IN (SELECT id FROM outbox WHERE app_id = a.app \
         AND next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $5) \
       ORDER BY a.wrapped, a.app LIMIT $4) \
     RETURNING id, app_id, trigger_id, event, attempts";

type ClaimRow = (i64, String, String, String, i32);

fn parse_json(s: &str) -> StoreResult<Value> {
    serde_json::from_str(s).map_err(|e| StoreError::Internal(format!("stored JSON: {e}")))
}

type DeadRow = (String, String, String, i32, String, i64, Option<i64>);

fn dead_letter(
    (id, trigger_id, event, attempts, last_error, created_at, replayed_at): DeadRow,
) -> StoreResult<DeadLetter> {
    Ok(DeadLetter {
        id,
        trigger_id,
        event: parse_json(&event)?,
        attempts: attempts.max(0) as u32,
        last_error,
        created_at,
        replayed_at,
    })
}

#[async_trait]
impl OutboxStore for SqlStore {
    async fn claim_deliveries(
        &self,
        owner: &str,
        now: i64,
        lease_ms: i64,
        limit: u32,
        per_app: u32,
        after_app: Option<&AppId>,
    ) -> StoreResult<Vec<Delivery>> {
        let sql = match self.db {
            Db::Sqlite(_) => CLAIM_SQLITE,
            Db::Postgres(_) => CLAIM_POSTGRES,
        };
        let rows: Vec<ClaimRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(sql)
                .bind(owner)
                .bind(now)
                .bind(now + lease_ms)
                .bind(i64::from(limit))
                .bind(i64::from(per_app))
                .bind(after_app.map_or("", |a| a.as_str()))
                .fetch_all(pool)
                .await
                .map_err(error::other)?
        });
        let mut out = rows
            .into_iter()
            .map(|(id, app, trigger_id, event, attempts)| {
                Ok(Delivery {
                    id,
                    app_id: AppId(app),
                    trigger_id,
                    event: parse_json(&event)?,
                    attempt: attempts.max(1) as u32,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        out.sort_by_key(|d| d.id);
        Ok(out)
    }

    async fn renew_leases(&self, owner: &str, ids: &[i64], until: i64) -> StoreResult<Vec<i64>> {
        let mut lost = Vec::new();
        for &id in ids {
            let n = on_pool!(&self.db, pool => {
                sqlx::query(
                    "UPDATE outbox SET lease_until = $3, next_attempt_at = $3 \
                     WHERE id = $1 AND lease_owner = $2",
                )
                .bind(id)
                .bind(owner)
                .bind(until)
                .execute(pool)
                .await
                .map_err(error::other)?
                .rows_affected()
            });
            if n == 0 {
                lost.push(id);
            }
        }
        Ok(lost)
    }

    async fn complete_deliveries(&self, owner: &str, ids: &[i64]) -> StoreResult<Vec<i64>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let done: Vec<i64> = match &self.db {
            Db::Postgres(pool) => sqlx::query_scalar(
                "DELETE FROM outbox WHERE id = ANY($1) AND lease_owner = $2 RETURNING id",
            )
            .bind(ids)
            .bind(owner)
            .fetch_all(pool)
            .await
            .map_err(error::other)?,
            Db::Sqlite(pool) => {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "DELETE FROM outbox WHERE lease_owner = ",
                );
                q.push_bind(owner).push(" AND id IN (");
                let mut sep = q.separated(", ");
                for id in ids {
                    sep.push_bind(*id);
                }
                q.push(") RETURNING id");
                q.build_query_scalar()
                    .fetch_all(pool)
                    .await
                    .map_err(error::other)?
            }
        };
        Ok(done)
    }

    async fn retry_delivery(
        &self,
        owner: &str,
        id: i64,
        next_attempt_at: i64,
        err: &str,
    ) -> StoreResult<bool> {
        self.reschedule(owner, id, next_attempt_at, Some(err)).await
    }

    async fn release_delivery(
        &self,
        owner: &str,
        id: i64,
        next_attempt_at: i64,
    ) -> StoreResult<bool> {
        self.reschedule(owner, id, next_attempt_at, None).await
    }

    async fn dead_letter_delivery(
        &self,
        owner: &str,
        id: i64,
        err: &str,
    ) -> StoreResult<Option<DeadLetter>> {
        let now = now_ms();
        let dl = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            let row: Option<(String, String, String, i32)> = sqlx::query_as(
                "DELETE FROM outbox WHERE id = $1 AND lease_owner = $2 \
                 RETURNING app_id, trigger_id, event, attempts",
            )
            .bind(id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::other)?;
            let Some((app, trigger_id, event, attempts)) = row else {
                return Ok(None);
            };
            let dl_id = new_id();
            sqlx::query(
                "INSERT INTO dead_letters (id, app_id, trigger_id, event, attempts, last_error, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&dl_id)
            .bind(&app)
            .bind(&trigger_id)
            .bind(&event)
            .bind(attempts)
            .bind(err)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(error::other)?;
            // A failed dead_letter handler's letter fans out to nobody: two catch-all
            // dead_letter triggers would otherwise feed each other forever.
            let failed_kind: Option<String> =
                sqlx::query_scalar("SELECT kind FROM triggers WHERE id = $1")
                    .bind(&trigger_id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(error::other)?;
            if failed_kind.as_deref() != Some(TriggerKind::DeadLetter.as_str()) {
                let event_json = json!({
                    "kind": "dead_letter", "trigger": trigger_id, "event": parse_json(&event)?,
                    "error": err, "attempts": attempts, "dead_letter_id": dl_id,
                });
                // Never to the failed trigger itself; else every catch-all, and every one
                // filtered to the failed trigger.
                let accepts = |id: &str, f: &TriggerFilter| {
                    id != trigger_id
                        && matches!(f, TriggerFilter::DeadLetter { trigger }
                            if trigger.as_deref().is_none_or(|t| t == trigger_id))
                };
                emit!(tx, app, TriggerKind::DeadLetter, accepts, event_json);
            }
            tx.commit().await.map_err(error::other)?;
            DeadLetter {
                id: dl_id,
                trigger_id,
                event: parse_json(&event)?,
                attempts: attempts.max(0) as u32,
                last_error: err.to_owned(),
                created_at: now,
                replayed_at: None,
            }
        });
        Ok(Some(dl))
    }

    async fn list_dead_letters(&self, app: &AppId, limit: u32) -> StoreResult<Vec<DeadLetter>> {
        let rows: Vec<DeadRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, trigger_id, event, attempts, last_error, created_at, replayed_at \
                 FROM dead_letters WHERE app_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
            )
            .bind(app.as_str())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        rows.into_iter().map(dead_letter).collect()
    }

    async fn count_waiting_dead_letters(&self, app: &AppId) -> StoreResult<u64> {
        let n: i64 = on_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM dead_letters WHERE app_id = $1 AND replayed_at IS NULL",
            )
            .bind(app.as_str())
            .fetch_one(pool)
            .await
            .map_err(error::other)?
        });
        Ok(n.max(0) as u64)
    }

    async fn replay_dead_letter(&self, app: &AppId, id: &str) -> StoreResult<Option<i64>> {
        let now = now_ms();
        let delivery = on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await.map_err(error::other)?;
            let row: Option<(String, String)> = sqlx::query_as(
                "UPDATE dead_letters SET replayed_at = $3 WHERE app_id = $1 AND id = $2 \
                 RETURNING trigger_id, event",
            )
            .bind(app.as_str())
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await
            .map_err(error::other)?;
            let Some((trigger_id, event)) = row else {
                return Ok(None);
            };
            let delivery: i64 = sqlx::query_scalar(
                "INSERT INTO outbox (app_id, trigger_id, event, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $4) RETURNING id",
            )
            .bind(app.as_str())
            .bind(&trigger_id)
            .bind(&event)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(error::other)?;
            tx.commit().await.map_err(error::other)?;
            delivery
        });
        Ok(Some(delivery))
    }

    async fn fire_cron(&self, now: i64, max_catch_up: usize) -> StoreResult<u64> {
        let triggers: Vec<(String, String, String, Option<i64>, i64)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, app_id, filter, cron_cursor, created_at FROM triggers \
                 WHERE kind = 'cron' AND enabled",
            )
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        let mut written = 0;
        for (id, app, filter, cursor, created_at) in triggers {
            let Some(TriggerFilter::Cron { schedule }) = stored_filter(TriggerKind::Cron, &filter)
            else {
                continue;
            };
            let ticks = schedule.times_between(cursor.unwrap_or(created_at), now, max_catch_up);
            let Some(&last) = ticks.last() else { continue };
            written += on_pool!(&self.db, pool => {
                let mut tx = pool.begin().await.map_err(error::other)?;
                let mut n = 0u64;
                for tick in &ticks {
                    // The unique (trigger, time) row is what makes a time fire once per
                    // cluster: a second node's insert does nothing.
                    let fresh = sqlx::query(
                        "INSERT INTO cron_fires (trigger_id, scheduled_for) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(&id)
                    .bind(*tick)
                    .execute(&mut *tx)
                    .await
                    .map_err(error::other)?
                    .rows_affected();
                    if fresh == 0 {
                        continue;
                    }
                    let at = chrono::DateTime::from_timestamp_millis(*tick)
                        .unwrap_or_default()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                    let event = json!({"kind": "cron", "schedule": schedule.as_str(), "scheduled_for": at});
                    sqlx::query(
                        "INSERT INTO outbox (app_id, trigger_id, event, next_attempt_at, created_at) \
                         VALUES ($1, $2, $3, $4, $4)",
                    )
                    .bind(&app)
                    .bind(&id)
                    .bind(event.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(error::other)?;
                    n += 1;
                }
                sqlx::query(
                    "UPDATE triggers SET cron_cursor = $2 WHERE id = $1 \
                     AND (cron_cursor IS NULL OR cron_cursor < $2)",
                )
                .bind(&id)
                .bind(last)
                .execute(&mut *tx)
                .await
                .map_err(error::other)?;
                // Fires older than a day can never be produced again (the cursor is past
                // them on every node), so their rows are dropped here.
                sqlx::query("DELETE FROM cron_fires WHERE trigger_id = $1 AND scheduled_for < $2")
                    .bind(&id)
                    .bind(now - 86_400_000)
                    .execute(&mut *tx)
                    .await
                    .map_err(error::other)?;
                tx.commit().await.map_err(error::other)?;
                n
            });
        }
        Ok(written)
    }

    async fn next_due(&self) -> StoreResult<Option<i64>> {
        Ok(on_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT MIN(next_attempt_at) FROM outbox")
                .fetch_one(pool)
                .await
                .map_err(error::other)?
        }))
    }
}

impl SqlStore {
    /// Gives up `owner`'s lease and makes the delivery due at `next_attempt_at`: after a
    /// failed attempt (`error`), or without one, in which case the claim's attempt is
    /// taken back.
    async fn reschedule(
        &self,
        owner: &str,
        id: i64,
        next_attempt_at: i64,
        error: Option<&str>,
    ) -> StoreResult<bool> {
        let n = on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE outbox SET next_attempt_at = $3, lease_owner = NULL, lease_until = NULL, \
                 last_error = COALESCE($4, last_error), \
                 attempts = CASE WHEN $4 IS NULL AND attempts > 0 THEN attempts - 1 ELSE attempts END \
                 WHERE id = $1 AND lease_owner = $2",
            )
            .bind(id)
            .bind(owner)
            .bind(next_attempt_at)
            .bind(error)
            .execute(pool)
            .await
            .map_err(error::other)?
            .rows_affected()
        });
        Ok(n > 0)
    }
}

type InvocationRow = (
    i64,
    String,
    i64,
    String,
    Option<String>,
    i64,
    i64,
    i64,
    String,
    Option<String>,
    String,
);

#[async_trait]
impl InvocationStore for SqlStore {
    async fn record_invocations(&self, items: &[(AppId, Invocation)]) -> StoreResult<()> {
        for chunk in items.chunks(500) {
            on_pool!(&self.db, pool => {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO invocations (app_id, script, version, source, delivery_id, \
                     started_at, duration_us, operations, outcome, error, logs) ",
                );
                q.push_values(chunk, |mut row, (app, inv)| {
                    row.push_bind(app.as_str())
                        .push_bind(&inv.script)
                        .push_bind(inv.version)
                        .push_bind(&inv.source)
                        .push_bind(&inv.delivery_id)
                        .push_bind(inv.started_at)
                        .push_bind(inv.duration_us)
                        .push_bind(inv.operations)
                        .push_bind(&inv.outcome)
                        .push_bind(&inv.error)
                        .push_bind(inv.logs.to_string());
                });
                q.build().execute(pool).await.map_err(error::other)?;
            });
        }
        Ok(())
    }

    async fn list_invocations(
        &self,
        app: &AppId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Invocation>> {
        let rows: Vec<InvocationRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT id, script, version, source, delivery_id, started_at, duration_us, \
                 operations, outcome, error, logs FROM invocations \
                 WHERE app_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            )
            .bind(app.as_str())
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        rows.into_iter()
            .map(
                |(
                    id,
                    script,
                    version,
                    source,
                    delivery_id,
                    started_at,
                    duration_us,
                    operations,
                    outcome,
                    error,
                    logs,
                )| {
                    Ok(Invocation {
                        id,
                        script,
                        version,
                        source,
                        delivery_id,
                        started_at,
                        duration_us,
                        operations,
                        outcome,
                        error,
                        logs: parse_json(&logs)?,
                    })
                },
            )
            .collect()
    }

    async fn prune_invocations(&self, keep_per_app: u32, before_ms: i64) -> StoreResult<u64> {
        let mut n = on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM invocations WHERE started_at < $1")
                .bind(before_ms)
                .execute(pool)
                .await
                .map_err(error::other)?
                .rows_affected()
        });
        // Per app: everything older than its `keep_per_app`-th newest record.
        n += on_pool!(&self.db, pool => {
            sqlx::query(
                "DELETE FROM invocations WHERE id IN (SELECT id FROM (SELECT id, row_number() \
                 OVER (PARTITION BY app_id ORDER BY id DESC) AS r FROM invocations) ranked \
                 WHERE r > $1)",
            )
            .bind(i64::from(keep_per_app))
            .execute(pool)
            .await
            .map_err(error::other)?
            .rows_affected()
        });
        Ok(n)
    }
}
