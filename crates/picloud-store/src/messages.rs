//! `MessageStore`: publishing (seq allocation, history, outbox) and reading history.
//!
//! A publish batch is one transaction (on PostgreSQL one statement). Items are grouped by
//! topic and the groups visited in (app, topic) order, so two batches touching the same
//! topics lock their rows in the same order and cannot deadlock. Each group takes its seqs
//! with one upsert on the topic row (`last_seq = last_seq + n`), which holds the row lock
//! until commit: a later seq can never commit before an earlier one. SQLite has one writer
//! at a time, which gives the same.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use picloud_core::ids::AppId;
use picloud_core::message::{HistoryCount, Message, PublishItem};
use picloud_core::store::{Committed, MessageStore, StoreResult};
use picloud_core::topic::{Retention, TopicName};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::db::{now_ms, on_pool};
use crate::{error, Db, SqlStore};

/// The head of the statement that takes seqs: one row per topic of the batch, each adding
/// its count to `last_seq`, creating the topic internal when it has no row. The upsert
/// holds each topic row's lock until commit. Rows are written in (app, topic) order.
const TAKE_SEQS_HEAD: &str = "INSERT INTO topics (app_id, name, description, \
     external_subscribable, auth_mode, retention_max_messages, retention_max_age_secs, \
     last_seq, created_at, updated_at) ";
const TAKE_SEQS_TAIL: &str = " ON CONFLICT (app_id, name) DO UPDATE \
     SET last_seq = topics.last_seq + excluded.last_seq RETURNING app_id, name, last_seq";

// The `pubsub` trigger match, defined once and spliced into both backends' statements: a
// trigger `t` (enabled, kind `pubsub`, with a topic filter: `topic_match` is the topic, or
// `prefix.` for a `prefix.*` filter, never matching the prefix itself) matches a message
// `n`, and the delivery's event is built from `n`. Topic names need no escaping (see
// `TopicName`); the payload is stored JSON. Macros, not consts: `concat!` takes literals.
macro_rules! pubsub_trigger {
    () => {
        "t.kind = 'pubsub' AND t.enabled AND t.topic_match IS NOT NULL"
    };
}
macro_rules! pubsub_match {
    () => {
        "((NOT t.topic_prefix AND t.topic_match = n.topic) OR \
         (t.topic_prefix AND length(n.topic) > length(t.topic_match) \
          AND substr(n.topic, 1, length(t.topic_match)) = t.topic_match))"
    };
}
macro_rules! pubsub_event {
    () => {
        "'{\"kind\":\"pubsub\",\"topic\":\"' || n.topic || '\",\"seq\":' || n.seq \
         || ',\"message\":' || n.payload || '}'"
    };
}
/// Per trigger, its messages in seq order.
macro_rules! pubsub_order {
    () => {
        "ORDER BY n.app_id, n.topic, t.id, n.seq"
    };
}

/// Most rows in one SQLite `INSERT … VALUES` (SQLite allows 32,766 bound values).
const SQLITE_ROWS_PER_INSERT: usize = 1000;

/// One topic's share of a batch.
struct Group<'a> {
    app: &'a AppId,
    topic: &'a TopicName,
    /// Indexes into the batch, in publish order.
    items: Vec<usize>,
}

fn group(items: &[PublishItem]) -> Vec<Group<'_>> {
    let mut groups: BTreeMap<(&AppId, &TopicName), Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        groups
            .entry((&item.app_id, &item.topic))
            .or_default()
            .push(i);
    }
    groups
        .into_iter()
        .map(|((app, topic), items)| Group { app, topic, items })
        .collect()
}

#[async_trait]
impl MessageStore for SqlStore {
    async fn publish_batch(&self, items: &[PublishItem]) -> StoreResult<Committed> {
        if items.is_empty() {
            return Ok(Committed {
                seqs: Vec::new(),
                deliveries: 0,
            });
        }
        match &self.db {
            Db::Sqlite(pool) => {
                let mut writer = self.sqlite_writer.lock().await;
                if writer.is_none() {
                    *writer = Some(pool.acquire().await.map_err(error::other)?);
                }
                let conn = writer.as_mut().expect("just set");
                let result = publish_sqlite(conn, items).await;
                if result.is_err() {
                    // Whatever went wrong, the next batch starts on a fresh connection.
                    *writer = None;
                }
                result
            }
            Db::Postgres(pool) => {
                let kept = self.pg_writers.lock().expect("not poisoned").pop();
                let mut conn = match kept {
                    Some(c) => c,
                    None => pool.acquire().await.map_err(error::other)?,
                };
                let result = publish_postgres(&mut conn, items).await;
                // A failed batch may have left the connection broken: it goes back to the
                // pool (which drops it if so) rather than being kept.
                if result.is_ok() {
                    self.pg_writers.lock().expect("not poisoned").push(conn);
                }
                result
            }
        }
    }

    async fn last_seqs(&self, topics: &[(AppId, TopicName)]) -> StoreResult<Vec<i64>> {
        // Pairs per query: well inside both databases' limits on bound parameters.
        const CHUNK: usize = 200;
        let mut found: std::collections::HashMap<(String, String), i64> =
            std::collections::HashMap::with_capacity(topics.len());
        for chunk in topics.chunks(CHUNK) {
            let pairs: Vec<String> = (0..chunk.len())
                .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                .collect();
            let sql = format!(
                "SELECT app_id, name, last_seq FROM topics WHERE (app_id, name) IN (VALUES {})",
                pairs.join(", ")
            );
            let rows: Vec<(String, String, i64)> = on_pool!(&self.db, pool => {
                let mut q = sqlx::query_as(&sql);
                for (app, topic) in chunk {
                    q = q.bind(app.as_str()).bind(topic.as_str());
                }
                q.fetch_all(pool).await.map_err(error::other)?
            });
            found.extend(rows.into_iter().map(|(a, t, last)| ((a, t), last)));
        }
        Ok(topics
            .iter()
            .map(|(a, t)| {
                found
                    .get(&(a.as_str().to_owned(), t.as_str().to_owned()))
                    .copied()
                    .unwrap_or(0)
            })
            .collect())
    }

    async fn read_after(
        &self,
        app: &AppId,
        topic: &TopicName,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows: Vec<(i64, String, i64)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT seq, payload, published_at FROM messages \
                 WHERE app_id = $1 AND topic = $2 AND seq > $3 ORDER BY seq LIMIT $4",
            )
            .bind(app.as_str())
            .bind(topic.as_str())
            .bind(after)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        Ok(messages(app, topic, rows))
    }

    async fn read_before(
        &self,
        app: &AppId,
        topic: &TopicName,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let rows: Vec<(i64, String, i64)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT seq, payload, published_at FROM messages \
                 WHERE app_id = $1 AND topic = $2 AND seq < $3 ORDER BY seq DESC LIMIT $4",
            )
            .bind(app.as_str())
            .bind(topic.as_str())
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        Ok(messages(app, topic, rows))
    }

    async fn history_counts(
        &self,
        app: &AppId,
        topic: Option<&TopicName>,
        since_ms: i64,
    ) -> StoreResult<Vec<HistoryCount>> {
        // '' is no topic's name: it stands for "every topic".
        let only = topic.map_or("", TopicName::as_str);
        let rows: Vec<(String, i64, i64)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT topic, count(*), \
                 coalesce(sum(CASE WHEN published_at >= $2 THEN 1 ELSE 0 END), 0) \
                 FROM messages WHERE app_id = $1 AND ($3 = '' OR topic = $3) GROUP BY topic",
            )
            .bind(app.as_str())
            .bind(since_ms)
            .bind(only)
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        Ok(rows
            .into_iter()
            .map(|(topic, retained, since)| HistoryCount {
                topic,
                retained,
                since,
            })
            .collect())
    }

    async fn oldest_seq(&self, app: &AppId, topic: &TopicName) -> StoreResult<Option<i64>> {
        let row: (Option<i64>,) = on_pool!(&self.db, pool => {
            sqlx::query_as("SELECT min(seq) FROM messages WHERE app_id = $1 AND topic = $2")
                .bind(app.as_str())
                .bind(topic.as_str())
                .fetch_one(pool)
                .await
                .map_err(error::other)?
        });
        Ok(row.0)
    }

    async fn prune_messages(&self, now_ms: i64) -> StoreResult<u64> {
        let topics: Vec<(String, String, i64, Option<i64>, Option<i64>)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT app_id, name, last_seq, retention_max_messages, retention_max_age_secs \
                 FROM topics WHERE retention_max_messages IS NOT NULL \
                 OR retention_max_age_secs IS NOT NULL",
            )
            .fetch_all(pool)
            .await
            .map_err(error::other)?
        });
        let mut pruned = 0;
        for (app, topic, last_seq, max_messages, max_age) in topics {
            let keep_after_seq = max_messages.map_or(i64::MIN, |n| last_seq - n);
            let keep_after_ms = max_age.map_or(i64::MIN, |s| now_ms - s * 1000);
            pruned += on_pool!(&self.db, pool => {
                sqlx::query(
                    "DELETE FROM messages WHERE app_id = $1 AND topic = $2 \
                     AND (seq <= $3 OR published_at < $4)",
                )
                .bind(&app)
                .bind(&topic)
                .bind(keep_after_seq)
                .bind(keep_after_ms)
                .execute(pool)
                .await
                .map_err(error::other)?
                .rows_affected()
            });
        }
        Ok(pruned)
    }
}

/// History rows (seq, payload, published_at) as messages.
fn messages(app: &AppId, topic: &TopicName, rows: Vec<(i64, String, i64)>) -> Vec<Message> {
    rows.into_iter()
        .map(|(seq, payload, published_at)| Message {
            app_id: app.clone(),
            topic: topic.clone(),
            seq: Some(seq),
            payload: Arc::from(payload),
            published_at,
            kind: Default::default(),
        })
        .collect()
}

async fn publish_sqlite(
    conn: &mut SqliteConnection,
    items: &[PublishItem],
) -> StoreResult<Committed> {
    use sqlx::Connection;
    let mut tx = conn.begin().await.map_err(error::other)?;
    let plan = Plan::new(items);
    let lasts = take_seqs_sqlite(&mut tx, &plan).await?;
    let seqs = plan.seqs(&lasts);
    insert_messages_sqlite(&mut tx, items, &seqs).await?;
    let deliveries = insert_deliveries_sqlite(&mut tx, &plan, &lasts, now_ms()).await?;
    tx.commit().await.map_err(error::other)?;
    Ok(Committed { seqs, deliveries })
}

/// A batch split by topic, in (app, topic) order: the lock order every batch follows.
struct Plan<'a> {
    groups: Vec<Group<'a>>,
}

impl<'a> Plan<'a> {
    fn new(items: &'a [PublishItem]) -> Self {
        Self {
            groups: group(items),
        }
    }

    /// Per item (in batch order): its group's index (group order) and its 1-based place `k`
    /// in that group. An item's seq is its group's `last_seq - n + k`.
    fn places(&self) -> Vec<(usize, i64)> {
        let total = self.groups.iter().map(|g| g.items.len()).sum();
        let mut places = vec![(0, 0); total];
        for (g, group) in self.groups.iter().enumerate() {
            for (place, &i) in group.items.iter().enumerate() {
                places[i] = (g, place as i64 + 1);
            }
        }
        places
    }

    /// Each item's seq, given each group's `last_seq` after the upsert (group order).
    fn seqs(&self, lasts: &[i64]) -> Vec<i64> {
        self.places()
            .into_iter()
            .map(|(g, k)| lasts[g] - self.groups[g].items.len() as i64 + k)
            .collect()
    }

    /// The distinct apps of the batch.
    fn apps(&self) -> Vec<&'a AppId> {
        let mut apps: Vec<_> = self.groups.iter().map(|g| g.app).collect();
        apps.dedup();
        apps
    }

    /// Matches the `RETURNING` rows (in no promised order) to the groups.
    fn order_lasts(&self, returned: Vec<(String, String, i64)>) -> StoreResult<Vec<i64>> {
        let mut by_topic: std::collections::HashMap<(String, String), i64> =
            returned.into_iter().map(|(a, t, l)| ((a, t), l)).collect();
        self.groups
            .iter()
            .map(|g| {
                by_topic
                    .remove(&(g.app.as_str().to_owned(), g.topic.as_str().to_owned()))
                    .ok_or_else(|| picloud_core::StoreError::Internal("a topic got no seq".into()))
            })
            .collect()
    }
}

async fn take_seqs_sqlite(tx: &mut SqliteConnection, plan: &Plan<'_>) -> StoreResult<Vec<i64>> {
    let now = now_ms();
    let mut q = QueryBuilder::<Sqlite>::new(TAKE_SEQS_HEAD);
    q.push_values(&plan.groups, |mut row, g| {
        row.push_bind(g.app.as_str())
            .push_bind(g.topic.as_str())
            .push("''")
            .push("FALSE")
            .push("'token'")
            .push_bind(Retention::DEFAULT.max_messages)
            .push_bind(Retention::DEFAULT.max_age_secs)
            .push_bind(g.items.len() as i64)
            .push_bind(now)
            .push_bind(now);
    });
    q.push(TAKE_SEQS_TAIL);
    let returned = q
        .build_query_as::<(String, String, i64)>()
        .fetch_all(&mut *tx)
        .await
        .map_err(error::other)?;
    plan.order_lasts(returned)
}

async fn insert_messages_sqlite(
    tx: &mut SqliteConnection,
    items: &[PublishItem],
    seqs: &[i64],
) -> StoreResult<()> {
    let rows: Vec<_> = items.iter().zip(seqs).collect();
    for chunk in rows.chunks(SQLITE_ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (app_id, topic, seq, payload, published_at) ",
        );
        q.push_values(chunk, |mut row, (item, seq)| {
            row.push_bind(item.app_id.as_str())
                .push_bind(item.topic.as_str())
                .push_bind(**seq)
                .push_bind(&*item.payload)
                .push_bind(item.published_at);
        });
        q.build().execute(&mut *tx).await.map_err(error::other)?;
    }
    Ok(())
}

/// One outbox row per (new message, matching enabled `pubsub` trigger) of the batch, in
/// the batch's transaction (so a trigger created concurrently is either seen here or
/// created after these messages); `lasts`: each group's `last_seq` after the upsert. The
/// match is SQL, the same text as PostgreSQL's statement. Returns the rows written.
async fn insert_deliveries_sqlite(
    tx: &mut SqliteConnection,
    plan: &Plan<'_>,
    lasts: &[i64],
    now: i64,
) -> StoreResult<u64> {
    let ranges: Vec<_> = plan
        .groups
        .iter()
        .zip(lasts)
        .map(|(g, &last)| (g, last - g.items.len() as i64 + 1, last))
        .collect();
    let mut written = 0;
    for chunk in ranges.chunks(SQLITE_ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new("WITH b (app_id, topic, lo, hi) AS (");
        q.push_values(chunk, |mut row, (g, lo, hi)| {
            row.push_bind(g.app.as_str())
                .push_bind(g.topic.as_str())
                .push_bind(*lo)
                .push_bind(*hi);
        });
        q.push(concat!(
            ") INSERT INTO outbox (app_id, trigger_id, event, next_attempt_at, created_at) \
             SELECT n.app_id, t.id, ",
            pubsub_event!(),
            ", "
        ));
        q.push_bind(now).push(", ").push_bind(now);
        q.push(concat!(
            " FROM b JOIN triggers t ON t.app_id = b.app_id AND ",
            pubsub_trigger!(),
            " JOIN messages n ON n.app_id = b.app_id AND n.topic = b.topic \
               AND n.seq BETWEEN b.lo AND b.hi AND ",
            pubsub_match!(),
            " ",
            pubsub_order!()
        ));
        written += q
            .build()
            .execute(&mut *tx)
            .await
            .map_err(error::other)?
            .rows_affected();
    }
    Ok(written)
}

/// PostgreSQL: the whole batch is one statement (data-modifying CTEs) in autocommit, so a
/// batch costs one round trip and one commit. Every list goes as an array: one fixed
/// statement text, prepared once per connection.
///
/// The batch arrives already grouped: one row per topic, in (app, topic) order (`Plan`),
/// and per item its group's place and its own 1-based place `k` in that group. So the
/// statement sorts and aggregates nothing, and joins items to their seqs by group number.
///
/// Steps, in the statement's order: take each topic's seqs with the upsert (rows in group
/// order: the lock order every batch follows), number each item `last_seq - n + k`,
/// insert the messages (no foreign key on PostgreSQL: the upsert just made sure of the
/// topic; migration 0004), insert one outbox row per matching enabled `pubsub` trigger of
/// the batch's apps, return the seqs in item order.
///
/// Measured against the earlier form (items grouped by `GROUP BY`, triggers probed once per
/// item): pgbench, 16 messages on 16 topics, eight rounds interleaved, 0.64 → 0.58 ms.
const PUBLISH_POSTGRES: &str = concat!(
    "WITH g AS ( \
       SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]) \
         WITH ORDINALITY AS g(app_id, topic, n, gi)), \
     seqs AS ( \
       INSERT INTO topics (app_id, name, description, external_subscribable, auth_mode, \
         retention_max_messages, retention_max_age_secs, last_seq, created_at, updated_at) \
       SELECT app_id, topic, '', FALSE, 'token', $4, $5, n, $6, $6 FROM g ORDER BY gi \
       ON CONFLICT (app_id, name) DO UPDATE SET last_seq = topics.last_seq + excluded.last_seq \
       RETURNING app_id, name, last_seq), \
     bases AS ( \
       SELECT g.gi, g.app_id, g.topic, s.last_seq - g.n AS base \
       FROM g JOIN seqs s ON s.app_id = g.app_id AND s.name = g.topic), \
     numbered AS ( \
       SELECT i.o, b.app_id, b.topic, i.payload, i.published_at, b.base + i.k AS seq \
       FROM UNNEST($7::text[], $8::bigint[], $9::bigint[], $10::bigint[]) \
         WITH ORDINALITY AS i(payload, published_at, gi, k, o) \
       JOIN bases b ON b.gi = i.gi), \
     msgs AS ( \
       INSERT INTO messages (app_id, topic, seq, payload, published_at) \
       SELECT app_id, topic, seq, payload, published_at FROM numbered), \
     deliveries AS ( \
       INSERT INTO outbox (app_id, trigger_id, event, next_attempt_at, created_at) \
       SELECT n.app_id, t.id, ",
    pubsub_event!(),
    ", $6, $6 \
       FROM numbered n JOIN triggers t ON t.app_id = n.app_id \
         AND t.app_id = ANY($11::text[]) AND ",
    pubsub_trigger!(),
    " AND ",
    pubsub_match!(),
    " ",
    pubsub_order!(),
    " RETURNING 1) \
     SELECT seq, (SELECT count(*) FROM deliveries) FROM numbered ORDER BY o"
);

async fn publish_postgres(
    conn: &mut sqlx::PgConnection,
    items: &[PublishItem],
) -> StoreResult<Committed> {
    let plan = Plan::new(items);
    let (gi, k): (Vec<i64>, Vec<i64>) = plan
        .places()
        .into_iter()
        .map(|(g, k)| (g as i64 + 1, k))
        .unzip();
    let group_apps: Vec<&str> = plan.groups.iter().map(|g| g.app.as_str()).collect();
    let group_topics: Vec<&str> = plan.groups.iter().map(|g| g.topic.as_str()).collect();
    let group_sizes: Vec<i64> = plan.groups.iter().map(|g| g.items.len() as i64).collect();
    let apps: Vec<&str> = plan.apps().into_iter().map(AppId::as_str).collect();
    let payloads: Vec<&str> = items.iter().map(|i| &*i.payload).collect();
    let published: Vec<i64> = items.iter().map(|i| i.published_at).collect();
    let rows: Vec<(i64, i64)> = sqlx::query_as(PUBLISH_POSTGRES)
        .bind(&group_apps)
        .bind(&group_topics)
        .bind(&group_sizes)
        .bind(Retention::DEFAULT.max_messages)
        .bind(Retention::DEFAULT.max_age_secs)
        .bind(now_ms())
        .bind(&payloads)
        .bind(&published)
        .bind(&gi)
        .bind(&k)
        .bind(&apps)
        .fetch_all(conn)
        .await
        .map_err(error::other)?;
    if rows.len() != items.len() {
        return Err(picloud_core::StoreError::Internal(
            "publish returned fewer seqs than items".into(),
        ));
    }
    let deliveries = rows.first().map_or(0, |r| r.1) as u64;
    Ok(Committed {
        seqs: rows.into_iter().map(|r| r.0).collect(),
        deliveries,
    })
}
