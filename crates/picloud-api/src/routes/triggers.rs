//! `/api/v1/apps/{app}/triggers`: which events run which script, with what retry policy.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use picloud_core::capability::Capability;
use picloud_core::script::ScriptName;
use picloud_core::trigger::{NewTrigger, RetryPolicy, TriggerFilter, TriggerKind, TriggerPatch};
use picloud_core::ValidationError;

use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::scripts::READ;
use crate::state::AppState;
use crate::wire_scripts::{CreateTrigger, RetryBody, TriggerBody, TriggerList, UpdateTrigger};

fn retry(body: RetryBody) -> Result<RetryPolicy, ValidationError> {
    RetryPolicy {
        max_attempts: body.max_attempts,
        base_delay_ms: body.base_delay_ms,
        max_delay_ms: body.max_delay_ms,
    }
    .validate()
}

#[utoipa::path(post, path = "/api/v1/apps/{app}/triggers", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    request_body = CreateTrigger,
    security(("admin_key" = [])),
    responses((status = 201, body = TriggerBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_trigger(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<CreateTrigger>,
) -> ApiResult<(StatusCode, ApiJson<TriggerBody>)> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let kind = TriggerKind::parse(&body.kind)?;
    let filter = TriggerFilter::parse(kind, &body.filter.unwrap_or_default())?;
    if let TriggerFilter::DeadLetter { trigger: Some(t) } = &filter {
        if state.store.get_trigger(&app.id, t).await?.is_none() {
            return Err(
                ValidationError::new("filter.trigger", "no such trigger in this app").into(),
            );
        }
    }
    let new = NewTrigger {
        script: ScriptName::parse(&body.script)?,
        filter,
        enabled: body.enabled.unwrap_or(true),
        retry: body.retry.map_or(Ok(RetryPolicy::default()), retry)?,
    };
    let t = state.store.create_trigger(&app.id, new).await?;
    Ok((StatusCode::CREATED, ApiJson(t.into())))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/triggers", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, body = TriggerList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_triggers(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<TriggerList>> {
    let app = auth.app_with_any(&app, READ).await?;
    let triggers = state.store.list_triggers(&app.id).await?;
    Ok(ApiJson(TriggerList {
        triggers: triggers.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/triggers/{id}", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), ("id" = String, Path)),
    security(("admin_key" = [])),
    responses((status = 200, body = TriggerBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_trigger(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<ApiJson<TriggerBody>> {
    let app = auth.app_with_any(&app, READ).await?;
    let t = state
        .store
        .get_trigger(&app.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("trigger"))?;
    Ok(ApiJson(t.into()))
}

#[utoipa::path(patch, path = "/api/v1/apps/{app}/triggers/{id}", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), ("id" = String, Path)),
    request_body = UpdateTrigger,
    security(("admin_key" = [])),
    responses((status = 200, body = TriggerBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn update_trigger(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateTrigger>,
) -> ApiResult<ApiJson<TriggerBody>> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let current = state
        .store
        .get_trigger(&app.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("trigger"))?;
    let patch = TriggerPatch {
        script: body.script.as_deref().map(ScriptName::parse).transpose()?,
        filter: body
            .filter
            .map(|f| TriggerFilter::parse(current.filter.kind(), &f))
            .transpose()?,
        enabled: body.enabled,
        retry: body.retry.map(retry).transpose()?,
    };
    let t = state
        .store
        .update_trigger(&app.id, &id, patch)
        .await?
        .ok_or_else(|| ApiError::not_found("trigger"))?;
    Ok(ApiJson(t.into()))
}

#[utoipa::path(delete, path = "/api/v1/apps/{app}/triggers/{id}", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), ("id" = String, Path)),
    security(("admin_key" = [])),
    responses((status = 204, description = "Deleted with its pending deliveries and dead letters"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_trigger(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    if !state.store.delete_trigger(&app.id, &id).await? {
        return Err(ApiError::not_found("trigger"));
    }
    Ok(StatusCode::NO_CONTENT)
}
