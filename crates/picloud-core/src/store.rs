//! Storage traits. `picloud-store` implements each for SQLite and PostgreSQL, and one
//! conformance suite (`picloud-store/tests/conformance.rs`) runs every method against both.
//!
//! Contracts common to all traits:
//! - Every method that touches tenant data takes the app id; none reads across apps.
//! - A unique-constraint violation is [`StoreError::Conflict`], never `Internal`.
//! - A database that cannot be reached is [`StoreError::Unavailable`]; callers map it to 503.
//! - Writes are atomic: a method either fully applies or leaves nothing behind.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::admin_key::AdminKey;
use crate::app::{App, AppPatch, AppRef, NewApp, Slug};
use crate::data::{
    Collection, Doc, DocFilter, EnvName, FileMeta, FilePath, KvEntry, KvKey, StaticFile,
};
use crate::dispatch::{AppRuntime, DeadLetter, Delivery, Invocation};
use crate::domain::Domain;
use crate::host::Host;
use crate::ids::AppId;
use crate::message::{HistoryCount, Message, PublishItem};
use crate::script::{NewRoute, Route, ScriptInfo, ScriptName, ScriptVersion};
use crate::secret::AppSecret;
use crate::topic::{NewTopic, Topic, TopicName, TopicPatch};
use crate::trigger::{NewTrigger, Trigger, TriggerPatch};
use crate::StoreError;

pub type StoreResult<T> = Result<T, StoreError>;

/// A page request for list endpoints: items after `after` (exclusive) in the list's order.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: u32,
}

#[async_trait]
pub trait AppStore: Send + Sync {
    /// Creates an app. `Conflict("app slug")` when the slug is taken.
    async fn create_app(&self, new: NewApp) -> StoreResult<App>;
    async fn get_app(&self, id: &AppId) -> StoreResult<Option<App>>;
    async fn get_app_by_slug(&self, slug: &Slug) -> StoreResult<Option<App>>;
    /// Apps ordered by slug; `page.after` is a slug.
    async fn list_apps(&self, page: Page) -> StoreResult<Vec<App>>;
    /// Applies `patch` and bumps `updated_at`. `Ok(None)` when the app does not exist;
    /// `Conflict("app slug")` when renaming onto a taken slug.
    async fn update_app(&self, id: &AppId, patch: AppPatch) -> StoreResult<Option<App>>;
    /// Deletes the app and everything it owns (domains, …). `false` when it did not exist.
    async fn delete_app(&self, id: &AppId) -> StoreResult<bool>;
    /// Every app with its number of topics, ordered by slug.
    async fn apps_with_topic_counts(&self) -> StoreResult<Vec<(AppRef, i64)>>;
}

#[async_trait]
pub trait DomainStore: Send + Sync {
    /// Claims `host` for the app. `Conflict("domain")` when any app already has it.
    async fn add_domain(&self, app: &AppId, host: &Host) -> StoreResult<Domain>;
    /// The app's domains ordered by host.
    async fn list_domains(&self, app: &AppId) -> StoreResult<Vec<Domain>>;
    /// One of the app's domains, by id or by host. Another app's domain is `None`.
    async fn get_domain(&self, app: &AppId, id_or_host: &str) -> StoreResult<Option<Domain>>;
    /// Moves one of the app's domains to a new host. `Conflict("domain")` when taken.
    async fn update_domain(
        &self,
        app: &AppId,
        id: &str,
        host: &Host,
    ) -> StoreResult<Option<Domain>>;
    async fn delete_domain(&self, app: &AppId, id: &str) -> StoreResult<bool>;
    /// The app that owns `host` as a custom domain. The only cross-app read: it is how a
    /// request finds its tenant in the first place.
    async fn resolve_domain(&self, host: &Host) -> StoreResult<Option<AppId>>;
    /// Every app's domain hosts, ordered, at most `limit`.
    async fn all_domain_hosts(&self, limit: u32) -> StoreResult<Vec<String>>;
}

/// What is stored for an admin key: the key without its secret, plus the secret's hash.
#[derive(Debug, Clone)]
pub struct StoredAdminKey {
    pub key: AdminKey,
    pub secret_hash: Vec<u8>,
}

impl From<&crate::admin_key::IssuedKey> for StoredAdminKey {
    fn from(k: &crate::admin_key::IssuedKey) -> Self {
        Self {
            key: k.key.clone(),
            secret_hash: k.secret_hash.clone(),
        }
    }
}

#[async_trait]
pub trait AdminKeyStore: Send + Sync {
    async fn create_admin_key(&self, key: StoredAdminKey) -> StoreResult<()>;
    /// Creates `key` only if this instance was never bootstrapped, and marks it bootstrapped,
    /// atomically: of several nodes starting at once on one empty database, exactly one gets
    /// `true`.
    async fn create_bootstrap_admin_key(&self, key: StoredAdminKey) -> StoreResult<bool>;
    async fn find_admin_key(&self, id: &str) -> StoreResult<Option<StoredAdminKey>>;
    /// Keys ordered by creation (oldest first).
    async fn list_admin_keys(&self) -> StoreResult<Vec<AdminKey>>;
    async fn delete_admin_key(&self, id: &str) -> StoreResult<bool>;
    /// Records that the key was used at `at`; a later time already recorded is kept.
    async fn touch_admin_key(&self, id: &str, at: DateTime<Utc>) -> StoreResult<()>;
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// `Ok` when the database answers and every migration this binary knows is applied.
    async fn readiness(&self) -> StoreResult<()>;
    /// True from a write refused for lack of space until a probe write commits again.
    fn storage_full(&self) -> bool;
}

/// Online backups of the database itself (the files directory is the caller's part).
#[async_trait]
pub trait BackupStore: Send + Sync {
    /// True when [`BackupStore::snapshot_into`] works on this backend; PostgreSQL is backed up
    /// with its own tools (`pg_dump`), which know its roles, extensions and versions.
    fn can_snapshot(&self) -> bool;
    /// Writes a consistent copy of the whole database, as of one moment, to `dest` (a file
    /// that must not exist yet) while writes go on. Fails with `Internal` where
    /// `can_snapshot` is false.
    async fn snapshot_into(&self, dest: &std::path::Path) -> StoreResult<()>;
}

#[async_trait]
pub trait TopicStore: Send + Sync {
    /// `Conflict("topic")` when the app already has a topic of that name (including one
    /// created internal by a publish).
    async fn create_topic(&self, app: &AppId, new: NewTopic) -> StoreResult<Topic>;
    async fn get_topic(&self, app: &AppId, name: &TopicName) -> StoreResult<Option<Topic>>;
    /// The app's topics ordered by name.
    async fn list_topics(&self, app: &AppId) -> StoreResult<Vec<Topic>>;
    async fn update_topic(
        &self,
        app: &AppId,
        name: &TopicName,
        patch: TopicPatch,
    ) -> StoreResult<Option<Topic>>;
    /// Deletes the topic and its history. `false` when it did not exist.
    async fn delete_topic(&self, app: &AppId, name: &TopicName) -> StoreResult<bool>;
}

/// What a committed publish batch wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// One per item, in item order.
    pub seqs: Vec<i64>,
    /// Outbox deliveries written (matching `pubsub` triggers): only then has the
    /// dispatcher anything new to do.
    pub deliveries: u64,
}

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Commits every item in one transaction and returns their seqs, in item order.
    ///
    /// Contract: per topic, seqs are consecutive with no gaps, and a message with a higher
    /// seq is never visible (committed) before one with a lower seq: the topic row is locked
    /// from taking the seq until commit. A topic with no row is created internal
    /// (`external_subscribable = false`, default retention). One outbox delivery is written
    /// per item and matching enabled `pubsub` trigger, in the same transaction. All or nothing.
    async fn publish_batch(&self, items: &[PublishItem]) -> StoreResult<Committed>;
    /// Into how many lanes (by topic) publishers split their batches by default, each lane
    /// with one batch in flight (`PICLOUD_PUBLISH_LANES` overrides). Concurrent batches stay
    /// correct through the row-lock contract above. One for both databases: SQLite has one
    /// writer, and on PostgreSQL, measured end to end (S5, 16 one-message publishers), one
    /// lane did 12.4k/12.7k publishes/s against two lanes' 9.97k/9.93k: one lane's batches
    /// are twice as large (7.8 against 4.0 messages), and fewer statements leave more of the
    /// two cores to the server.
    fn publish_lanes(&self) -> usize {
        1
    }
    /// Each topic's last committed seq, in the order given (0 for a topic with no row): one
    /// read for every topic a cluster node watches, to catch a relay that lost a tail.
    async fn last_seqs(&self, topics: &[(AppId, TopicName)]) -> StoreResult<Vec<i64>>;
    /// Up to `limit` messages of the topic with `seq > after`, oldest first.
    async fn read_after(
        &self,
        app: &AppId,
        topic: &TopicName,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// Up to `limit` messages of the topic with `seq < before` (all, when `None`), newest
    /// first: history as a reader pages back through it.
    async fn read_before(
        &self,
        app: &AppId,
        topic: &TopicName,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
    /// Per topic of `app` with stored messages (only `topic`, when given): how many, and
    /// how many of them were published at or after `since_ms`.
    async fn history_counts(
        &self,
        app: &AppId,
        topic: Option<&TopicName>,
        since_ms: i64,
    ) -> StoreResult<Vec<HistoryCount>>;
    /// The oldest seq the topic's history still holds (where retention begins), if any.
    async fn oldest_seq(&self, app: &AppId, topic: &TopicName) -> StoreResult<Option<i64>>;
    /// Deletes messages beyond each topic's retention as of `now_ms`; returns how many.
    async fn prune_messages(&self, now_ms: i64) -> StoreResult<u64>;
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    /// All of the app's secrets, active and retired, oldest first.
    async fn list_secrets(&self, app: &AppId) -> StoreResult<Vec<AppSecret>>;
    async fn add_secret(&self, app: &AppId, secret: &AppSecret) -> StoreResult<()>;
    /// Marks one secret retired: tokens it signed stop verifying. `false` if unknown or
    /// already retired.
    async fn retire_secret(&self, app: &AppId, kid: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait ScriptStore: Send + Sync {
    /// Stores `source` as the script's next version and makes it active. The first deploy
    /// creates the script at version 1.
    async fn deploy_script(
        &self,
        app: &AppId,
        name: &ScriptName,
        source: &str,
    ) -> StoreResult<ScriptVersion>;
    /// The app's scripts ordered by name.
    async fn list_scripts(&self, app: &AppId) -> StoreResult<Vec<ScriptInfo>>;
    async fn get_script(&self, app: &AppId, name: &ScriptName) -> StoreResult<Option<ScriptInfo>>;
    /// Every version of a script, oldest first (sources included).
    async fn list_script_versions(
        &self,
        app: &AppId,
        name: &ScriptName,
    ) -> StoreResult<Vec<ScriptVersion>>;
    /// One version, or the active one when `version` is `None`.
    async fn get_script_version(
        &self,
        app: &AppId,
        name: &ScriptName,
        version: Option<i64>,
    ) -> StoreResult<Option<ScriptVersion>>;
    /// Makes an existing version active (rollback). `None` when script or version is unknown.
    async fn activate_script_version(
        &self,
        app: &AppId,
        name: &ScriptName,
        version: i64,
    ) -> StoreResult<Option<ScriptInfo>>;
    /// Deletes the script and its versions. `false` when it did not exist.
    async fn delete_script(&self, app: &AppId, name: &ScriptName) -> StoreResult<bool>;
}

#[async_trait]
pub trait RouteStore: Send + Sync {
    /// `Conflict("route")` when the app has a route with the same method and path.
    async fn create_route(&self, app: &AppId, new: NewRoute) -> StoreResult<Route>;
    /// The app's routes ordered by path, then method.
    async fn list_routes(&self, app: &AppId) -> StoreResult<Vec<Route>>;
    async fn delete_route(&self, app: &AppId, id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait TriggerStore: Send + Sync {
    async fn create_trigger(&self, app: &AppId, new: NewTrigger) -> StoreResult<Trigger>;
    /// The app's triggers, oldest first.
    async fn list_triggers(&self, app: &AppId) -> StoreResult<Vec<Trigger>>;
    async fn get_trigger(&self, app: &AppId, id: &str) -> StoreResult<Option<Trigger>>;
    async fn update_trigger(
        &self,
        app: &AppId,
        id: &str,
        patch: TriggerPatch,
    ) -> StoreResult<Option<Trigger>>;
    /// Deletes the trigger, its pending deliveries and its dead letters.
    async fn delete_trigger(&self, app: &AppId, id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait RuntimeStore: Send + Sync {
    /// The app's settings (defaults when never set).
    async fn get_runtime(&self, app: &AppId) -> StoreResult<AppRuntime>;
    async fn set_runtime(&self, app: &AppId, runtime: &AppRuntime) -> StoreResult<()>;
    /// The app's quota overrides (none when never set).
    async fn get_quotas(&self, app: &AppId) -> StoreResult<crate::quota::Quotas>;
    async fn set_quotas(&self, app: &AppId, quotas: &crate::quota::Quotas) -> StoreResult<()>;
    /// The app's env values ordered by name.
    async fn list_env(&self, app: &AppId) -> StoreResult<Vec<(String, String)>>;
    async fn get_env(&self, app: &AppId, name: &EnvName) -> StoreResult<Option<String>>;
    async fn set_env(&self, app: &AppId, name: &EnvName, value: &str) -> StoreResult<()>;
    async fn delete_env(&self, app: &AppId, name: &EnvName) -> StoreResult<bool>;
}

/// kv, docs and file metadata. Every write also writes one outbox delivery per matching
/// enabled trigger of its kind, in the same transaction (all or nothing).
#[async_trait]
pub trait DataStore: Send + Sync {
    /// An expired key reads as missing (the sweeper deletes it later).
    async fn kv_get(&self, app: &AppId, key: &KvKey, now_ms: i64) -> StoreResult<Option<KvEntry>>;
    /// `value` is compact JSON.
    async fn kv_set(
        &self,
        app: &AppId,
        key: &KvKey,
        value: &str,
        expires_at: Option<i64>,
    ) -> StoreResult<()>;
    async fn kv_delete(&self, app: &AppId, key: &KvKey) -> StoreResult<bool>;
    /// Live keys starting with `prefix`, ordered by key.
    async fn kv_list(
        &self,
        app: &AppId,
        prefix: &str,
        limit: u32,
        now_ms: i64,
    ) -> StoreResult<Vec<KvEntry>>;
    /// Deletes expired keys (no events: expiry is not a write); returns how many.
    async fn kv_sweep_expired(&self, now_ms: i64) -> StoreResult<u64>;

    /// `doc` is a compact JSON object.
    async fn docs_insert(
        &self,
        app: &AppId,
        coll: &Collection,
        id: &str,
        doc: &str,
    ) -> StoreResult<()>;
    async fn docs_get(&self, app: &AppId, coll: &Collection, id: &str) -> StoreResult<Option<Doc>>;
    async fn docs_update(
        &self,
        app: &AppId,
        coll: &Collection,
        id: &str,
        doc: &str,
    ) -> StoreResult<bool>;
    async fn docs_delete(&self, app: &AppId, coll: &Collection, id: &str) -> StoreResult<bool>;
    /// Documents whose top-level fields equal the filter's values, oldest id first.
    async fn docs_find(
        &self,
        app: &AppId,
        coll: &Collection,
        filter: &DocFilter,
        limit: u32,
    ) -> StoreResult<Vec<Doc>>;

    /// Records the file (its bytes are already in `blob`); returns the blob it replaced.
    async fn file_put(
        &self,
        app: &AppId,
        path: &FilePath,
        blob: &str,
        size: u64,
    ) -> StoreResult<Option<String>>;
    async fn file_get(&self, app: &AppId, path: &FilePath) -> StoreResult<Option<FileMeta>>;
    /// Returns the deleted file's blob.
    async fn file_delete(&self, app: &AppId, path: &FilePath) -> StoreResult<Option<String>>;
    /// Files under `prefix`, ordered by path.
    async fn file_list(&self, app: &AppId, prefix: &str, limit: u32) -> StoreResult<Vec<FileMeta>>;
    /// Whether some app's file uses `blob` (the sweeper keeps those).
    async fn blob_in_use(&self, blob: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Claims up to `limit` due deliveries (at most `per_app` per app, apps visited
    /// starting after `after_app` so that successive claims rotate across apps) for
    /// `owner` until `now_ms + lease_ms`, counting an attempt for each. A delivery whose
    /// lease expired is due again (that is how a crashed worker's work is rescued).
    async fn claim_deliveries(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
        per_app: u32,
        after_app: Option<&AppId>,
    ) -> StoreResult<Vec<Delivery>>;
    /// Extends the leases `owner` still holds; returns the ids it no longer holds.
    async fn renew_leases(&self, owner: &str, ids: &[i64], until_ms: i64) -> StoreResult<Vec<i64>>;
    /// Removes deliveries that ran successfully; returns the ids removed (a missing id:
    /// `owner` lost that lease).
    async fn complete_deliveries(&self, owner: &str, ids: &[i64]) -> StoreResult<Vec<i64>>;
    /// Schedules the next attempt. `false` when `owner` lost the lease.
    async fn retry_delivery(
        &self,
        owner: &str,
        id: i64,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<bool>;
    /// Gives a claimed delivery back without counting the attempt (its trigger is paused,
    /// or it could not be started): due again at `next_attempt_at`. `false` when `owner`
    /// lost the lease.
    async fn release_delivery(
        &self,
        owner: &str,
        id: i64,
        next_attempt_at: i64,
    ) -> StoreResult<bool>;
    /// Moves a delivery to `dead_letters` and writes one delivery per matching enabled
    /// `dead_letter` trigger (never the failed trigger itself), in one transaction.
    /// `None` when `owner` lost the lease.
    async fn dead_letter_delivery(
        &self,
        owner: &str,
        id: i64,
        error: &str,
    ) -> StoreResult<Option<DeadLetter>>;
    /// The app's dead letters, newest first.
    async fn list_dead_letters(&self, app: &AppId, limit: u32) -> StoreResult<Vec<DeadLetter>>;
    /// How many of the app's dead letters have not been replayed.
    async fn count_waiting_dead_letters(&self, app: &AppId) -> StoreResult<u64>;
    /// Queues the dead letter's event again for its trigger (attempts start over). `None`
    /// when unknown; returns the new delivery id.
    async fn replay_dead_letter(&self, app: &AppId, id: &str) -> StoreResult<Option<i64>>;
    /// For every enabled cron trigger, turns scheduled times in `(cursor, now]` (at most
    /// `max_catch_up` per trigger) into deliveries, each time once per cluster. Returns how
    /// many deliveries were written.
    async fn fire_cron(&self, now_ms: i64, max_catch_up: usize) -> StoreResult<u64>;
    /// Earliest `next_attempt_at` of any delivery, if any (the dispatcher sleeps until then).
    async fn next_due(&self) -> StoreResult<Option<i64>>;
}

#[async_trait]
pub trait InvocationStore: Send + Sync {
    /// Records runs (ids are assigned by the store; `Invocation::id` is ignored).
    async fn record_invocations(&self, items: &[(AppId, Invocation)]) -> StoreResult<()>;
    /// Newest first; `before` pages by id.
    async fn list_invocations(
        &self,
        app: &AppId,
        before: Option<i64>,
        limit: u32,
    ) -> StoreResult<Vec<Invocation>>;
    /// Deletes records older than `before_ms` and, per app, all but the newest
    /// `keep_per_app`; returns how many.
    async fn prune_invocations(&self, keep_per_app: u32, before_ms: i64) -> StoreResult<u64>;
}

/// Everything the server needs from storage, as one object.
/// An app's static site. Blobs are written before `static_put` and removed after the row
/// that named them is gone (the caller deletes the blobs these calls return).
#[async_trait]
pub trait StaticStore: Send + Sync {
    /// Records `file` unless the app's static files would then hold more than `quota`
    /// bytes: `Ok(Err(total))` with the total it would have been, nothing changed.
    /// Otherwise the blobs of the file it replaced.
    async fn static_put(
        &self,
        app: &AppId,
        file: &StaticFile,
        quota: u64,
    ) -> StoreResult<Result<Vec<String>, u64>>;
    async fn static_get(&self, app: &AppId, path: &FilePath) -> StoreResult<Option<StaticFile>>;
    /// The deleted file's blobs; `None` when there was none.
    async fn static_delete(&self, app: &AppId, path: &FilePath)
        -> StoreResult<Option<Vec<String>>>;
    /// Every static file of the app, by path.
    async fn static_list(&self, app: &AppId) -> StoreResult<Vec<StaticFile>>;
}

pub trait Store:
    AppStore
    + DomainStore
    + AdminKeyStore
    + HealthStore
    + BackupStore
    + TopicStore
    + MessageStore
    + SecretStore
    + ScriptStore
    + RouteStore
    + TriggerStore
    + RuntimeStore
    + DataStore
    + OutboxStore
    + InvocationStore
    + StaticStore
{
}

impl<T> Store for T where
    T: AppStore
        + DomainStore
        + AdminKeyStore
        + HealthStore
        + BackupStore
        + TopicStore
        + MessageStore
        + SecretStore
        + ScriptStore
        + RouteStore
        + TriggerStore
        + RuntimeStore
        + DataStore
        + OutboxStore
        + InvocationStore
        + StaticStore
{
}
