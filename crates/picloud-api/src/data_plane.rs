//! The data plane: requests on an app's Host, after [`crate::dispatch`] resolved the app.
//! `GET /` describes the app; `/realtime/...` subscribes over SSE (`picloud-realtime`).
//! Script routes plug in here next.

use std::time::Duration;

use axum::extract::Extension;
use axum::http::{header, HeaderName, Method};
use axum::routing::get;
use axum::Router;
use tower_http::cors::{Any, CorsLayer};

use crate::error::ApiError;
use crate::host::ResolvedApp;
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::AppInfo;

pub fn router(state: AppState) -> Router {
    let realtime = Router::new()
        .route(
            "/realtime/topics/{topic}",
            get(picloud_realtime::sse::subscribe_one),
        )
        .route("/realtime", get(picloud_realtime::sse::subscribe_many))
        .layer(realtime_cors());
    Router::new()
        .route("/", get(app_info))
        .merge(realtime)
        .route_layer(axum::middleware::from_fn_with_state(
            "app:",
            crate::metrics::label_route,
        ))
        .fallback(|| async { ApiError::not_found("route") })
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

async fn app_info(Extension(app): Extension<ResolvedApp>) -> ApiJson<AppInfo> {
    ApiJson(AppInfo {
        app: app.slug.to_string(),
        version: env!("CARGO_PKG_VERSION"),
    })
}
