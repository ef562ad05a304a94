//! `/api/v1/apps/{app}/runtime`, `/env`, `/dead-letters`, `/logs`: script settings, config
//! values, failed deliveries and the record of runs.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use picloud_core::capability::Capability;
use picloud_core::data::{EnvName, MAX_VALUE_BYTES};
use picloud_core::dispatch::{AppRuntime, APP_CONCURRENCY_CAP, MAX_CONCURRENCY};
use picloud_core::ValidationError;

use crate::auth::AdminAuth;
use crate::changes::Change;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::scripts::READ;
use crate::state::AppState;
use crate::wire_scripts::{
    DeadLetterCount, DeadLetterList, EnvList, EnvValue, InvocationList, LogQuery, Replayed,
    RuntimeBody,
};

fn body(rt: AppRuntime) -> RuntimeBody {
    let effective = picloud_runtime::Limits::from_overrides(&rt.limits)
        .ok()
        .and_then(|l| serde_json::to_value(l).ok())
        .unwrap_or_default();
    RuntimeBody {
        limits: rt.limits,
        max_concurrency: rt.max_concurrency,
        effective_limits: effective,
    }
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/runtime", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, body = RuntimeBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_runtime(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<RuntimeBody>> {
    let app = auth.app_with_any(&app, READ).await?;
    Ok(ApiJson(body(state.store.get_runtime(&app.id).await?)))
}

#[utoipa::path(put, path = "/api/v1/apps/{app}/runtime", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    request_body = RuntimeBody,
    security(("admin_key" = [])),
    responses((status = 200, body = RuntimeBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_runtime(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    ApiJson(input): ApiJson<RuntimeBody>,
) -> ApiResult<ApiJson<RuntimeBody>> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    picloud_runtime::Limits::from_overrides(&input.limits)
        .map_err(|m| ValidationError::new("limits", m))?;
    if !(1..=MAX_CONCURRENCY).contains(&input.max_concurrency) {
        return Err(ValidationError::new("max_concurrency", "must be 1 to 1024").into());
    }
    if input.max_concurrency > APP_CONCURRENCY_CAP && !auth.key.has(Capability::InstanceAdmin) {
        return Err(ApiError::forbidden(format!(
            "max_concurrency above {APP_CONCURRENCY_CAP} takes an InstanceAdmin key: the node's \
             script threads are shared by every app"
        )));
    }
    let rt = AppRuntime {
        limits: input.limits,
        max_concurrency: input.max_concurrency,
    };
    state.store.set_runtime(&app.id, &rt).await?;
    state
        .changed(Change::Settings {
            app: app.id.to_string(),
        })
        .await;
    Ok(ApiJson(body(rt)))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/env", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, body = EnvList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_env(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<EnvList>> {
    // Env values are often credentials: reading them takes the deploy capability.
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let env = state.store.list_env(&app.id).await?;
    Ok(ApiJson(EnvList {
        env: env.into_iter().map(|(k, v)| (k, v.into())).collect(),
    }))
}

#[utoipa::path(put, path = "/api/v1/apps/{app}/env/{name}", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), ("name" = String, Path)),
    request_body = EnvValue,
    security(("admin_key" = [])),
    responses((status = 204, description = "Set"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn set_env(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
    ApiJson(input): ApiJson<EnvValue>,
) -> ApiResult<StatusCode> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let name = EnvName::parse(&name)?;
    if input.value.len() > MAX_VALUE_BYTES {
        return Err(ValidationError::new("value", "at most 1 MiB").into());
    }
    state.store.set_env(&app.id, &name, &input.value).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/api/v1/apps/{app}/env/{name}", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), ("name" = String, Path)),
    security(("admin_key" = [])),
    responses((status = 204),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_env(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let name = EnvName::parse(&name).map_err(|_| ApiError::not_found("env value"))?;
    if !state.store.delete_env(&app.id, &name).await? {
        return Err(ApiError::not_found("env value"));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/dead-letters", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, description = "Newest first (at most 500)", body = DeadLetterList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_dead_letters(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<DeadLetterList>> {
    let app = auth.app_with_any(&app, READ).await?;
    let letters = state.store.list_dead_letters(&app.id, 500).await?;
    Ok(ApiJson(DeadLetterList {
        dead_letters: letters.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/dead-letters/count", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, description = "How many dead letters wait for a replay (the dashboard's navigation polls it)", body = DeadLetterCount),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn count_dead_letters(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<DeadLetterCount>> {
    let app = auth.app_with_any(&app, READ).await?;
    let waiting = state.store.count_waiting_dead_letters(&app.id).await?;
    Ok(ApiJson(DeadLetterCount { waiting }))
}

#[utoipa::path(post, path = "/api/v1/apps/{app}/dead-letters/{id}/replay", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), ("id" = String, Path)),
    security(("admin_key" = [])),
    responses((status = 202, description = "Queued again for its trigger, attempts start over", body = Replayed),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn replay_dead_letter(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, id)): Path<(String, String)>,
) -> ApiResult<(StatusCode, ApiJson<Replayed>)> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let delivery = state
        .store
        .replay_dead_letter(&app.id, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("dead letter"))?;
    state.invoker.deps().outbox_written.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        ApiJson(Replayed {
            delivery_id: delivery.to_string(),
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/logs", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), LogQuery),
    security(("admin_key" = [])),
    responses((status = 200, description = "Script runs, newest first, with their log lines", body = InvocationList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_logs(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<LogQuery>,
) -> ApiResult<ApiJson<InvocationList>> {
    let app = auth.app_with_any(&app, READ).await?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ValidationError::new("limit", "must be 1 to 500").into());
    }
    let items = state
        .store
        .list_invocations(&app.id, q.before, limit)
        .await?;
    let next_before = (items.len() == limit as usize)
        .then(|| items.last().map(|i| i.id))
        .flatten();
    Ok(ApiJson(InvocationList {
        invocations: items.into_iter().map(Into::into).collect(),
        next_before,
    }))
}
