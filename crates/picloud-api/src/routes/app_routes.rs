//! `/api/v1/apps/{app}/routes`: which script answers which requests on the app's Host.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use picloud_core::capability::Capability;
use picloud_core::script::{NewRoute, RouteMethod, RoutePath, ScriptName};

use crate::auth::AdminAuth;
use crate::changes::Change;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::scripts::READ;
use crate::state::AppState;
use crate::wire_scripts::{CreateRoute, RouteBody, RouteList};

#[utoipa::path(post, path = "/api/v1/apps/{app}/routes", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    request_body = CreateRoute,
    security(("admin_key" = [])),
    responses((status = 201, body = RouteBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "The app has a route with that method and path", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_route(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<CreateRoute>,
) -> ApiResult<(StatusCode, ApiJson<RouteBody>)> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let new = NewRoute {
        method: RouteMethod::parse(&body.method)?,
        path: RoutePath::parse(&body.path)?,
        script: ScriptName::parse(&body.script)?,
    };
    let route = state.store.create_route(&app.id, new).await?;
    state
        .changed(Change::Routes {
            app: app.id.to_string(),
        })
        .await;
    Ok((StatusCode::CREATED, ApiJson(route.into())))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/routes", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, body = RouteList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_routes(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<RouteList>> {
    let app = auth.app_with_any(&app, READ).await?;
    let routes = state.store.list_routes(&app.id).await?;
    Ok(ApiJson(RouteList {
        routes: routes.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/apps/{app}/routes/{id}", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), ("id" = String, Path)),
    security(("admin_key" = [])),
    responses((status = 204),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_route(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    if !state.store.delete_route(&app.id, &id).await? {
        return Err(ApiError::not_found("route"));
    }
    state
        .changed(Change::Routes {
            app: app.id.to_string(),
        })
        .await;
    Ok(StatusCode::NO_CONTENT)
}
