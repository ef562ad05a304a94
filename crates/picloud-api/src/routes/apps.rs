//! `/api/v1/apps`: create, list, get, update, delete apps.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use picloud_core::app::{validate_name, AppPatch, NewApp, Slug};
use picloud_core::capability::Capability;
use picloud_core::store::Page;

use crate::auth::AdminAuth;
use crate::changes::Change;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::{AppBody, AppList, CreateApp, ListQuery, UpdateApp};

#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", params(ListQuery),
    security(("admin_key" = [])),
    responses(
        (status = 200, description = "Apps ordered by slug", body = AppList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_apps(
    auth: AdminAuth,
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> ApiResult<ApiJson<AppList>> {
    auth.require(Capability::AppRead)?;
    // Refused out of range, as a topic's history and the logs do, rather than clamped.
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(picloud_core::ValidationError::new("limit", "must be 1 to 500").into());
    }
    let apps = match &auth.key.app_id {
        // An app-bound key lists exactly its own app.
        Some(id) => state.store.get_app(id).await?.into_iter().collect(),
        None => {
            state
                .store
                .list_apps(Page {
                    after: q.after,
                    limit,
                })
                .await?
        }
    };
    let next_after = (apps.len() == limit as usize)
        .then(|| apps.last().map(|a| a.slug.to_string()))
        .flatten();
    Ok(ApiJson(AppList {
        apps: apps.into_iter().map(Into::into).collect(),
        next_after,
    }))
}

#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", request_body = CreateApp,
    security(("admin_key" = [])),
    responses(
        (status = 201, description = "Created", body = AppBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "Slug taken", body = ErrorBody),
        (status = 422, description = "Invalid slug or name", body = ErrorBody)))]
pub async fn create_app(
    auth: AdminAuth,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateApp>,
) -> ApiResult<(StatusCode, ApiJson<AppBody>)> {
    auth.require(Capability::AppWrite)?;
    auth.require_unbound("create apps")?;
    let slug = Slug::parse(&body.slug)?;
    let name = validate_name(body.name.as_deref().unwrap_or(slug.as_str()))?;
    let app = state.store.create_app(NewApp { slug, name }).await?;
    // A miss for `<slug>.localhost` may be cached from before the app existed.
    state.changed(Change::Apps).await;
    tracing::info!(app = %app.slug, key = %auth.key.id, "app created");
    Ok((StatusCode::CREATED, ApiJson(app.into())))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, body = AppBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_app(auth: AdminAuth, Path(app): Path<String>) -> ApiResult<ApiJson<AppBody>> {
    let app = auth.app_with(&app, Capability::AppRead).await?;
    Ok(ApiJson(app.into()))
}

#[utoipa::path(patch, path = "/api/v1/apps/{app}", tag = "apps", request_body = UpdateApp,
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses(
        (status = 200, body = AppBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn update_app(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<UpdateApp>,
) -> ApiResult<ApiJson<AppBody>> {
    let app = auth.app_with(&app, Capability::AppWrite).await?;
    let patch = AppPatch {
        slug: body.slug.as_deref().map(Slug::parse).transpose()?,
        name: body.name.as_deref().map(validate_name).transpose()?,
        max_token_ttl_secs: body
            .max_token_ttl_secs
            .map(picloud_core::app::validate_max_token_ttl)
            .transpose()?,
        static_spa: body.static_spa,
    };
    let updated = state
        .store
        .update_app(&app.id, patch)
        .await?
        .ok_or_else(|| ApiError::not_found("app"))?;
    state.changed(Change::Apps).await;
    state
        .changed(Change::Tokens {
            app: app.id.to_string(),
            retired: None,
        })
        .await;
    Ok(ApiJson(updated.into()))
}

#[utoipa::path(delete, path = "/api/v1/apps/{app}", tag = "apps",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses(
        (status = 204, description = "Deleted with its domains and app-bound keys"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_app(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<StatusCode> {
    let app = auth.app_with(&app, Capability::AppWrite).await?;
    if !state.store.delete_app(&app.id).await? {
        return Err(ApiError::not_found("app"));
    }
    state
        .changed(Change::AppDeleted {
            app: app.id.to_string(),
        })
        .await;
    tracing::info!(app = %app.slug, key = %auth.key.id, "app deleted");
    Ok(StatusCode::NO_CONTENT)
}
