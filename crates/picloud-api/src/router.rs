//! Assembles the planes and the layers every request passes through.

use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::metrics::RouteLabels;
use crate::openapi::ApiDoc;
use crate::routes::{
    admin_keys, app_routes, apps, backups, domains, presence, publish, quotas, runtime, scripts,
    secrets, static_files, stats, subscribers, tokens, topics, triggers, try_request,
};
use crate::service::HttpService;
use crate::state::AppState;
use crate::{dashboard, data_plane, health, metrics};

/// The first bytes of the requests the accept loop serves on its lean paths: realtime
/// streams (`server::event_stream`) and the admin API's app-scoped POSTs, publishes above
/// all (`server::keep_alive`). Routes are this module's; the transport only matches bytes.
pub(crate) const STREAM_REQUESTS: &[u8] = b"GET /realtime";
pub(crate) const PUBLISH_REQUESTS: &[u8] = b"POST /api/v1/apps/";

/// The documented control-plane routes. Registering through `routes!` is what puts a
/// handler in the OpenAPI document.
pub fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(apps::list_apps, apps::create_app))
        .routes(routes!(apps::get_app, apps::update_app, apps::delete_app))
        .routes(routes!(domains::list_domains, domains::create_domain))
        .routes(routes!(
            domains::get_domain,
            domains::update_domain,
            domains::delete_domain
        ))
        .routes(routes!(admin_keys::list_keys, admin_keys::create_key))
        .routes(routes!(admin_keys::delete_key))
        .routes(routes!(admin_keys::me))
        .routes(routes!(backups::list_backups, backups::create_backup))
        .routes(routes!(backups::download_backup, backups::delete_backup))
        .routes(routes!(topics::list_topics, topics::create_topic))
        .routes(routes!(
            topics::get_topic,
            topics::update_topic,
            topics::delete_topic
        ))
        .routes(routes!(topics::topic_history))
        .routes(routes!(topics::tail_topic))
        .routes(routes!(subscribers::list_subscribers))
        .routes(routes!(presence::list_members))
        .routes(routes!(publish::publish))
        .routes(routes!(publish::publish_batch))
        .routes(routes!(tokens::mint_token))
        .routes(routes!(secrets::list_secrets))
        .routes(routes!(secrets::rotate_secret))
        .routes(routes!(secrets::retire_secret))
        .routes(routes!(health::realtime))
        .routes(routes!(stats::instance))
        .routes(routes!(stats::stats_stream))
        .routes(routes!(scripts::list_scripts, scripts::deploy_script))
        .routes(routes!(scripts::check_script))
        .routes(routes!(scripts::get_script, scripts::delete_script))
        .routes(routes!(scripts::get_script_version))
        .routes(routes!(scripts::rollback_script))
        .routes(routes!(try_request::try_request))
        .routes(routes!(static_files::list_static_files))
        .routes(routes!(
            static_files::put_static_file,
            static_files::get_static_file,
            static_files::delete_static_file
        ))
        .routes(routes!(app_routes::list_routes, app_routes::create_route))
        .routes(routes!(app_routes::delete_route))
        .routes(routes!(triggers::list_triggers, triggers::create_trigger))
        .routes(routes!(
            triggers::get_trigger,
            triggers::update_trigger,
            triggers::delete_trigger
        ))
        .routes(routes!(runtime::get_runtime, runtime::set_runtime))
        .routes(routes!(quotas::get_quotas, quotas::set_quotas))
        .routes(routes!(runtime::list_env))
        .routes(routes!(runtime::set_env, runtime::delete_env))
        .routes(routes!(runtime::list_dead_letters))
        .routes(routes!(runtime::count_dead_letters))
        .routes(routes!(runtime::replay_dead_letter))
        .routes(routes!(runtime::list_logs))
}

/// Admin routes outside the OpenAPI document.
const METRICS_PATH: &str = "/metrics";
const OPENAPI_PATH: &str = "/api/v1/openapi.json";
const DASHBOARD_FILES: &str = "/_/{*path}";

/// The whole HTTP service: the planes, behind [`HttpService`]'s one layer.
pub fn build(state: AppState) -> HttpService {
    let openapi_json = crate::openapi::document_json();
    let (api, doc) = api_routes().split_for_parts();
    let mut patterns: Vec<String> = doc.paths.paths.keys().cloned().collect();
    patterns.extend(
        [
            METRICS_PATH,
            OPENAPI_PATH,
            "/",
            "/_",
            dashboard::PATH,
            DASHBOARD_FILES,
        ]
        .map(str::to_owned),
    );
    let labels = RouteLabels::new(patterns.iter().map(String::as_str));
    let admin = api
        .route(METRICS_PATH, get(metrics::render))
        .route(
            OPENAPI_PATH,
            get(
                move || async move { ([(header::CONTENT_TYPE, "application/json")], openapi_json) },
            ),
        )
        .route("/", get(dashboard::to_dashboard))
        .route("/_", get(dashboard::to_dashboard))
        .route(dashboard::PATH, get(dashboard::index))
        .route(DASHBOARD_FILES, get(dashboard::asset))
        .fallback(
            |uri: axum::http::Uri, headers: axum::http::HeaderMap| async move {
                crate::wrong_plane::on_admin_host(uri.path(), &headers)
            },
        )
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .with_state(state.clone());
    let health = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state.clone());
    let data = data_plane::router(state.clone());
    HttpService::new(state, health, admin, data, labels)
}

#[cfg(test)]
mod tests {
    /// The direct publish is labelled without a match; its label must be the very one
    /// (same text, same address: the metrics key on it) that routing would give.
    #[test]
    fn the_direct_publish_label_is_the_routed_one() {
        let (_, doc) = super::api_routes().split_for_parts();
        let patterns: Vec<String> = doc.paths.paths.keys().cloned().collect();
        let labels = crate::metrics::RouteLabels::new(patterns.iter().map(String::as_str));
        let routed = labels.admin("/api/v1/apps/demo/topics/t/publish");
        assert_eq!(routed, "/api/v1/apps/{app}/topics/{topic}/publish");
        assert!(std::ptr::eq(routed, labels.publish()));
    }
}
