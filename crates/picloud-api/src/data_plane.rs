//! The data plane: requests on an app's Host, after [`crate::dispatch`] resolved the app.
//! `GET /` describes the app; `/realtime/...` subscribes over SSE (`picloud-realtime`).
//! Script routes plug in here next.

use axum::extract::Extension;
use axum::routing::get;
use axum::Router;

use crate::error::ApiError;
use crate::host::ResolvedApp;
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::AppInfo;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(app_info))
        .route(
            "/realtime/topics/{topic}",
            get(picloud_realtime::sse::subscribe_one),
        )
        .route("/realtime", get(picloud_realtime::sse::subscribe_many))
        .route_layer(axum::middleware::from_fn_with_state(
            "app:",
            crate::metrics::label_route,
        ))
        .fallback(|| async { ApiError::not_found("route") })
        .with_state(state)
}

async fn app_info(Extension(app): Extension<ResolvedApp>) -> ApiJson<AppInfo> {
    ApiJson(AppInfo {
        app: app.slug.to_string(),
        version: env!("CARGO_PKG_VERSION"),
    })
}
