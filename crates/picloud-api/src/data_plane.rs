//! The data plane: requests on an app's Host, after [`crate::dispatch`] resolved the app.
//! `/realtime/...` subscribes over SSE, `/realtime/ws` over WebSocket (`picloud-realtime`);
//! everything else goes to the
//! app's script routes ([`crate::endpoint`]), with `GET /` describing the app when no
//! route claims it.

use std::time::Duration;

use axum::http::{header, HeaderName, Method};
use axum::routing::get;
use axum::Router;
use tower_http::cors::{Any, CorsLayer};

use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let realtime = Router::new()
        .route(
            "/realtime/topics/{topic}",
            get(picloud_realtime::sse::subscribe_one),
        )
        .route("/realtime", get(picloud_realtime::sse::subscribe_many))
        .layer(realtime_cors());
    Router::new()
        .merge(realtime)
        .route("/realtime/ws", get(picloud_realtime::ws::connect))
        .fallback(crate::endpoint::serve)
        .with_state(state)
}

/// Tenants' front ends live on other origins and subscribe with `fetch` (to send
/// `Authorization`), so streams answer CORS for any origin. Credentials (cookies) are never
/// allowed: the only authority is a bearer token the page already holds, so a foreign page
/// gains nothing it could not get by copying the token.
fn realtime_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET])
        .allow_headers([
            header::AUTHORIZATION,
            header::CACHE_CONTROL,
            HeaderName::from_static("last-event-id"),
        ])
        .max_age(Duration::from_secs(86_400))
}
