//! Storage traits. `picloud-store` implements each for SQLite and PostgreSQL, and one
//! conformance suite (`picloud-store/tests/conformance.rs`) runs every method against both.
//!
//! Contracts common to all traits:
//! - Every method that touches tenant data takes the app id; none reads across apps.
//! - A unique-constraint violation is [`StoreError::Conflict`], never `Internal`.
//! - A database that cannot be reached is [`StoreError::Unavailable`]; callers map it to 503.
//! - Writes are atomic: a method either fully applies or leaves nothing behind.

use async_trait::async_trait;

use crate::admin_key::AdminKey;
use crate::app::{App, AppPatch, NewApp, Slug};
use crate::domain::Domain;
use crate::host::Host;
use crate::ids::AppId;
use crate::message::{Message, PublishItem};
use crate::secret::AppSecret;
use crate::topic::{NewTopic, Topic, TopicName, TopicPatch};
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
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// `Ok` when the database answers and every migration this binary knows is applied.
    async fn readiness(&self) -> StoreResult<()>;
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

#[async_trait]
pub trait MessageStore: Send + Sync {
    /// Commits every item in one transaction and returns their seqs, in item order.
    ///
    /// Contract: per topic, seqs are consecutive with no gaps, and a message with a higher
    /// seq is never visible (committed) before one with a lower seq: the topic row is locked
    /// from taking the seq until commit. A topic with no row is created internal
    /// (`external_subscribable = false`, default retention). One outbox delivery is written
    /// per item and matching enabled `pubsub` trigger, in the same transaction. All or nothing.
    async fn publish(&self, items: &[PublishItem]) -> StoreResult<Vec<i64>>;
    /// How many [`Self::publish`] batches may usefully run at once: 1 where the database
    /// has a single writer anyway (SQLite), more where commits overlap (PostgreSQL).
    /// Concurrent batches stay correct through the row-lock contract above.
    fn publish_concurrency(&self) -> usize {
        1
    }
    /// Up to `limit` messages of the topic with `seq > after`, oldest first.
    async fn read_after(
        &self,
        app: &AppId,
        topic: &TopicName,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;
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

/// Everything the server needs from storage, as one object.
pub trait Store:
    AppStore + DomainStore + AdminKeyStore + HealthStore + TopicStore + MessageStore + SecretStore
{
}

impl<T> Store for T where
    T: AppStore
        + DomainStore
        + AdminKeyStore
        + HealthStore
        + TopicStore
        + MessageStore
        + SecretStore
{
}
