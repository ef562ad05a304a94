//! JSON wire types of the admin API. Only this crate knows them; core types stay free of
//! serde so that a storage or domain change never silently changes the API.

use chrono::{DateTime, Utc};
use picloud_core::admin_key::AdminKey;
use picloud_core::app::App;
use picloud_core::domain::Domain;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Serialize, ToSchema)]
pub struct AppBody {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// Longest lifetime a subscriber token of this app may have (seconds, default 30 days).
    pub max_token_ttl_secs: i64,
    /// A single-page app: a `GET` on its Host for a path with no route and no static file
    /// answers its static `index.html`.
    pub static_spa: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<App> for AppBody {
    fn from(a: App) -> Self {
        Self {
            id: a.id.0,
            slug: a.slug.as_str().to_owned(),
            name: a.name,
            max_token_ttl_secs: a.max_token_ttl_secs,
            static_spa: a.static_spa,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// Lowercase `[a-z0-9-]`, 3–63 characters; the app also answers on `<slug>.localhost`.
    pub slug: String,
    /// Display name; defaults to the slug.
    pub name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    pub slug: Option<String>,
    pub name: Option<String>,
    /// Longest lifetime of a subscriber token, in seconds (60 to a year): tokens living
    /// longer are refused, whoever minted them.
    pub max_token_ttl_secs: Option<i64>,
    /// Serve the static `index.html` for unknown `GET` paths (a single-page app's routes).
    pub static_spa: Option<bool>,
}

/// An app's quotas, each per node (docs/protocol.md "Quotas").
#[derive(Serialize, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct QuotaValues {
    /// Open realtime connections of the app.
    pub connections: Option<u32>,
    /// Topics one connection may subscribe to (at most 100).
    pub topics_per_connection: Option<u32>,
    /// Durable publishes per second through the admin API (a batch counts each message).
    pub publishes_per_sec: Option<u32>,
    /// Ephemeral publishes per second through the admin API.
    pub ephemeral_per_sec: Option<u32>,
    /// Client events per second one WebSocket connection may send (bursts of twice that).
    pub client_events_per_sec: Option<u32>,
    /// Presence enters, updates and leaves per second per connection (bursts of twice that).
    pub presence_per_sec: Option<u32>,
}

impl From<picloud_core::quota::Quotas> for QuotaValues {
    fn from(q: picloud_core::quota::Quotas) -> Self {
        Self {
            connections: q.connections,
            topics_per_connection: q.topics_per_connection,
            publishes_per_sec: q.publishes_per_sec,
            ephemeral_per_sec: q.ephemeral_per_sec,
            client_events_per_sec: q.client_events_per_sec,
            presence_per_sec: q.presence_per_sec,
        }
    }
}

impl From<QuotaValues> for picloud_core::quota::Quotas {
    fn from(q: QuotaValues) -> Self {
        Self {
            connections: q.connections,
            topics_per_connection: q.topics_per_connection,
            publishes_per_sec: q.publishes_per_sec,
            ephemeral_per_sec: q.ephemeral_per_sec,
            client_events_per_sec: q.client_events_per_sec,
            presence_per_sec: q.presence_per_sec,
        }
    }
}

impl From<picloud_core::quota::Effective> for QuotaValues {
    fn from(e: picloud_core::quota::Effective) -> Self {
        Self {
            connections: Some(e.connections),
            topics_per_connection: Some(e.topics_per_connection),
            publishes_per_sec: Some(e.publishes_per_sec),
            ephemeral_per_sec: Some(e.ephemeral_per_sec),
            client_events_per_sec: Some(e.client_events_per_sec),
            presence_per_sec: Some(e.presence_per_sec),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct QuotasBody {
    /// What was set for this app (null: the default).
    pub overrides: QuotaValues,
    /// What applies.
    pub effective: QuotaValues,
}

#[derive(Serialize, ToSchema)]
pub struct AppList {
    pub apps: Vec<AppBody>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_after: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// Return items after this slug.
    pub after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct DomainBody {
    pub id: String,
    pub app_id: String,
    pub host: String,
    pub created_at: DateTime<Utc>,
}

impl From<Domain> for DomainBody {
    fn from(d: Domain) -> Self {
        Self {
            id: d.id,
            app_id: d.app_id.0,
            host: d.host.as_str().to_owned(),
            created_at: d.created_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DomainList {
    pub domains: Vec<DomainBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    /// A host name without port; normalised (lowercase, no trailing dot).
    pub host: String,
}

#[derive(Serialize, ToSchema)]
pub struct AdminKeyBody {
    pub id: String,
    pub capabilities: Vec<String>,
    /// The app the key is bound to; `null` for an instance-wide key. Always present.
    #[schema(required = true)]
    pub app_id: Option<String>,
    pub label: String,
    pub created_at: DateTime<Utc>,
    /// When a request last authenticated with the key, to within a minute; `null` if
    /// never. Always present.
    #[schema(required = true)]
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<AdminKey> for AdminKeyBody {
    fn from(k: AdminKey) -> Self {
        Self {
            id: k.id,
            capabilities: k.capabilities.iter().map(|c| c.to_string()).collect(),
            app_id: k.app_id.map(|a| a.0),
            label: k.label,
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AdminKeyList {
    pub keys: Vec<AdminKeyBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAdminKey {
    /// Capability names, e.g. `["AppRead", "AppPublish"]`.
    pub capabilities: Vec<String>,
    /// Bind the key to one app (slug or id).
    pub app: Option<String>,
    pub label: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedAdminKey {
    /// The key itself. Shown once: only its hash is stored.
    pub key: String,
    #[serde(flatten)]
    pub info: AdminKeyBody,
}

#[derive(Serialize, ToSchema)]
pub struct AppInfo {
    /// The slug of the app this Host resolved to.
    pub app: String,
    /// The PiCloud version serving it.
    pub version: &'static str,
}

#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, Default)]
#[serde(deny_unknown_fields, try_from = "RetentionObject")]
pub struct RetentionBody {
    /// Keep at most this many messages (null: no count limit).
    pub max_messages: Option<i64>,
    /// Keep messages at most this many seconds (null: no age limit).
    pub max_age_secs: Option<i64>,
}

/// [`RetentionBody`] as it is read: serde's derive also reads a struct from a JSON array
/// (`[10, null]`), which the document does not allow; only an object is accepted.
#[derive(Deserialize)]
struct RetentionObject(serde_json::Map<String, serde_json::Value>);

impl TryFrom<RetentionObject> for RetentionBody {
    type Error = serde_json::Error;

    fn try_from(RetentionObject(fields): RetentionObject) -> Result<Self, Self::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Fields {
            max_messages: Option<i64>,
            max_age_secs: Option<i64>,
        }
        let f: Fields = serde_json::from_value(serde_json::Value::Object(fields))?;
        Ok(Self {
            max_messages: f.max_messages,
            max_age_secs: f.max_age_secs,
        })
    }
}

#[derive(Serialize, ToSchema)]
pub struct TopicBody {
    pub name: String,
    pub description: String,
    /// Whether browsers may subscribe (`false`: internal, publish/trigger only).
    pub external_subscribable: bool,
    /// `public` or `token`.
    pub auth_mode: String,
    pub retention: RetentionBody,
    /// Whether WebSocket clients may send client events to it (with a token whose
    /// `publish` claim covers it).
    pub client_publish: bool,
    /// Whether clients may enter its presence (its subscribers get presence events).
    pub presence: bool,
    /// The topic's own per-connection limit on client events (null: the app's).
    pub client_event_limit: Option<RateLimitBody>,
    /// The newest seq published (0 before the first message).
    pub last_seq: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Activity now: on `GET` of one topic and of the list (absent in other answers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<TopicStats>,
}

/// A topic's activity at the time of the answer.
#[derive(Serialize, ToSchema)]
pub struct TopicStats {
    /// Durable messages history holds now.
    pub retained_messages: i64,
    /// Streams subscribed to the topic on the node that answered (admin tails included).
    pub live_subscribers: usize,
    /// Durable messages published in the last 60 s (ephemeral ones leave no trace to count).
    pub publishes_last_minute: i64,
}

impl From<picloud_core::topic::Topic> for TopicBody {
    fn from(t: picloud_core::topic::Topic) -> Self {
        Self {
            name: t.name.to_string(),
            description: t.description,
            external_subscribable: t.external_subscribable,
            auth_mode: t.auth_mode.as_str().to_owned(),
            retention: RetentionBody {
                max_messages: t.retention.max_messages,
                max_age_secs: t.retention.max_age_secs,
            },
            client_publish: t.client_publish,
            presence: t.presence,
            client_event_limit: t.client_event_limit.map(|l| RateLimitBody {
                count: l.count,
                per_secs: l.per_secs,
            }),
            last_seq: t.last_seq,
            created_at: t.created_at,
            updated_at: t.updated_at,
            stats: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TopicList {
    pub topics: Vec<TopicBody>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// 1–128 of `[A-Za-z0-9_-.:@]`, dot-separated segments; `*` is reserved.
    pub name: String,
    pub description: Option<String>,
    /// Default `false`.
    pub external_subscribable: Option<bool>,
    /// `public` or `token` (default).
    pub auth_mode: Option<String>,
    /// Default: 10,000 messages, 1 day.
    pub retention: Option<RetentionBody>,
    /// Default `false`.
    pub client_publish: Option<bool>,
    /// Default `false`.
    pub presence: Option<bool>,
    /// Default none (the app's `client_events_per_sec`).
    pub client_event_limit: Option<RateLimitBody>,
}

/// `count` events per `per_secs` seconds.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RateLimitBody {
    pub count: u32,
    pub per_secs: u32,
}

impl RateLimitBody {
    pub fn parse(self) -> Result<picloud_core::topic::RateLimit, picloud_core::ValidationError> {
        picloud_core::topic::RateLimit {
            count: self.count,
            per_secs: self.per_secs,
        }
        .validate()
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTopic {
    pub description: Option<String>,
    pub external_subscribable: Option<bool>,
    pub auth_mode: Option<String>,
    /// Replaces both limits.
    pub retention: Option<RetentionBody>,
    pub client_publish: Option<bool>,
    pub presence: Option<bool>,
    /// `null` removes the topic's own limit; absent keeps it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RateLimitBody>)]
    pub client_event_limit: Option<Option<RateLimitBody>>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct PublishedBody {
    pub topic: String,
    /// Absent for an ephemeral publish.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    pub published_at: crate::timestamp::UtcMillis,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBatch {
    /// 1 to 1,000 messages, on any topics of the app. Within a topic, seqs follow this order.
    pub messages: Vec<BatchMessage>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchMessage {
    pub topic: String,
    /// The message: any JSON value.
    #[schema(value_type = serde_json::Value)]
    pub data: Box<serde_json::value::RawValue>,
}

#[derive(Serialize, ToSchema)]
pub struct PublishedBatch {
    /// One entry per message, in request order.
    pub messages: Vec<PublishedBody>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Only messages with a lower seq (default: from the newest).
    pub before_seq: Option<i64>,
    /// Page size, 1–500 (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
}

/// A page of a topic's durable history, newest first.
#[derive(Serialize, ToSchema)]
pub struct HistoryPage {
    pub messages: Vec<HistoryMessage>,
    /// The oldest seq history still holds: where retention begins (absent when empty).
    pub oldest_seq: Option<i64>,
    /// `before_seq` for the next (older) page; absent on the last page.
    pub next_before_seq: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryMessage {
    pub seq: i64,
    /// The message as published.
    #[schema(value_type = serde_json::Value)]
    pub message: Box<serde_json::value::RawValue>,
    #[schema(value_type = String, format = DateTime)]
    pub published_at: crate::timestamp::UtcMillis,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublishQuery {
    /// `true`: live subscribers only; no storage, no seq, no triggers.
    pub ephemeral: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintToken {
    /// Topic names, or `prefix.*` for every topic under `prefix.`.
    pub topics: Vec<String>,
    /// Lifetime, 1 s to the app's `max_token_ttl_secs` (30 days unless changed).
    pub ttl_secs: i64,
    /// Subscriber id (`sub` claim): the presence member.
    pub subject: Option<String>,
    /// Topics (names or `prefix.*`) the holder may send client events to (`publish`
    /// claim).
    #[serde(default)]
    pub publish: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MintedToken {
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct SecretBody {
    /// Key id (the JWT `kid`). The key material is never returned.
    pub kid: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

impl From<picloud_core::secret::AppSecret> for SecretBody {
    fn from(s: picloud_core::secret::AppSecret) -> Self {
        Self {
            kid: s.kid,
            created_at: s.created_at,
            retired_at: s.retired_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SecretList {
    pub secrets: Vec<SecretBody>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedSecret {
    pub kid: String,
    /// The key material, base64url without padding. Shown this once, so a tenant backend
    /// can mint tokens with any JWT library (HS256, header `kid`).
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

/// `GET …/topics/{topic}/presence`.
#[derive(Serialize, ToSchema)]
pub struct PresenceList {
    pub topic: String,
    /// By sub.
    pub members: Vec<MemberBody>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberBody {
    /// The token's `sub`.
    pub sub: String,
    /// What the member entered or last updated (any JSON).
    #[schema(value_type = serde_json::Value)]
    pub data: serde_json::Value,
    /// Its open connections, on every node.
    pub connections: usize,
}

/// `GET …/topics/{topic}/subscribers`: this node's streams on the topic.
#[derive(Serialize, ToSchema)]
pub struct SubscriberList {
    /// Every stream on the topic on this node.
    pub count: usize,
    /// Whether `streams` holds only the newest of them.
    pub truncated: bool,
    /// Newest first.
    pub streams: Vec<SubscriberBody>,
}

#[derive(Serialize, ToSchema)]
pub struct SubscriberBody {
    /// This node's id for the stream (not stable across restarts).
    pub id: String,
    pub since: DateTime<Utc>,
    /// The last seq the stream sent on this topic.
    pub position: i64,
    /// The token's `sub`; `null` without one. Always present.
    #[schema(required = true)]
    pub subject: Option<String>,
    /// The address the connection came from (a proxy's, behind one); `null` when unknown.
    /// Always present.
    #[schema(required = true)]
    pub remote_addr: Option<String>,
    /// `subscriber` (the data plane) or `admin_tail` (the admin API's tail).
    #[schema(example = "subscriber")]
    pub kind: &'static str,
    /// How many topics the stream carries.
    pub topics: usize,
}

/// One event of a `text/event-stream` answer, as an EventSource client reads it. OpenAPI
/// 3.1 documents a stream by the schema of one event (3.2 names that `itemSchema`); which
/// JSON `data` holds for each `event` is in the operation's description.
#[derive(ToSchema)]
#[allow(dead_code)] // documents what the streams write; never built
pub struct ServerSentEvent {
    /// `event:`; absent for the default type, `message`.
    pub event: Option<String>,
    /// `data:`, JSON text.
    pub data: String,
    /// `id:`, where a reconnecting client resumes (`Last-Event-ID`).
    pub id: Option<String>,
}
