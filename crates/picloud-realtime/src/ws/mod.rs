//! The WebSocket endpoint (docs/protocol.md "WebSocket"): `GET /realtime/ws` on an app's
//! Host. The same topics, tokens, positions and resume rule as SSE (`catchup`), topics
//! subscribed and unsubscribed on the open connection, client events and presence.
//!
//! Before the upgrade: a `?token=` that does not verify → the generic 401; the app's
//! connection quota → 429. Then one task per connection ([`session`]).

mod request;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, Extension, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use moka::future::Cache;
use picloud_core::app::AppRef;
use picloud_core::ids::AppId;
use picloud_core::store::TopicStore;
use picloud_core::topic::{Topic, TopicName};
use picloud_core::StoreError;
use std::net::SocketAddr;

use crate::codes::Code;
use crate::sse::{error, quota_refusal, unavailable};
use crate::token::VerifyError;
use crate::Realtime;

/// The subprotocol the server speaks.
pub const PROTOCOL: &str = "picloud.v1";
/// Largest frame a client may send: a client event's payload limit with room for the
/// envelope. Larger closes the connection with 1009.
pub const MAX_FRAME: usize = 128 * 1024;

pub async fn connect(
    State(rt): State<Realtime>,
    Extension(app): Extension<AppRef>,
    RawQuery(query): RawQuery,
    remote: Option<Extension<ConnectInfo<SocketAddr>>>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let Ok(upgrade) = upgrade else {
        return error(
            StatusCode::BAD_REQUEST,
            Code::BadRequest,
            "a WebSocket upgrade is required",
        );
    };
    let token = query.as_deref().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let grant = match token {
        None => None,
        Some(t) => match rt.tokens.verify(&app.id, &t).await {
            Ok(g) => Some(g),
            Err(VerifyError::Invalid) => {
                return error(
                    StatusCode::UNAUTHORIZED,
                    Code::Unauthorized,
                    "a valid subscriber token is required",
                )
            }
            Err(VerifyError::Store(e)) => {
                tracing::warn!(error = %e, "secret lookup failed");
                return unavailable();
            }
        },
    };
    let permit = match rt.quotas.connect(&app.id, 0).await {
        Ok(p) => p,
        Err(refused) => return quota_refusal(&app, refused),
    };
    let quotas = match rt.quotas.effective(&app.id).await {
        Ok(q) => q,
        Err(e) => {
            tracing::warn!(error = %e, "quota lookup failed");
            return unavailable();
        }
    };
    let remote = remote.map(|Extension(ConnectInfo(a))| a);
    upgrade
        .protocols([PROTOCOL])
        .max_message_size(MAX_FRAME)
        .max_frame_size(MAX_FRAME)
        .on_upgrade(move |socket| {
            session::run(session::Opened {
                rt,
                app,
                socket,
                grant,
                permit,
                quotas,
                remote,
            })
        })
}

/// Topic settings as requests on open connections check them: read at most every
/// [`TOPIC_TTL`], so a client event costs no database read (a change applies within it).
#[derive(Clone)]
pub struct TopicCache {
    store: Arc<dyn TopicStore>,
    cache: Cache<(AppId, TopicName), Option<Arc<Topic>>>,
}

const TOPIC_TTL: Duration = Duration::from_secs(2);

impl TopicCache {
    pub(crate) fn new(store: Arc<dyn TopicStore>) -> Self {
        Self {
            store,
            cache: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(TOPIC_TTL)
                .build(),
        }
    }

    pub(crate) async fn get(
        &self,
        app: &AppId,
        topic: &TopicName,
    ) -> Result<Option<Arc<Topic>>, StoreError> {
        let load =
            async { Ok::<_, StoreError>(self.store.get_topic(app, topic).await?.map(Arc::new)) };
        self.cache
            .try_get_with((app.clone(), topic.clone()), load)
            .await
            .map_err(StoreError::from)
    }
}
