//! `/api/v1/apps/{app}/scripts`: deploy (compile-checked, immutable numbered versions),
//! list, inspect, roll back, delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use picloud_core::capability::Capability;
use picloud_core::ids::AppId;
use picloud_core::script::{ScriptName, MAX_SOURCE_BYTES};
use picloud_runtime::Limits;

use crate::auth::AdminAuth;
use crate::changes::Change;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire_scripts::{
    CheckScript, CompileErrorBody, CompileErrorDetail, DeployScript, DeployedScript, Rollback,
    ScriptBody, ScriptCheck, ScriptDetail, ScriptList, ScriptVersionBody,
};

/// The path `POST …/scripts/check` takes: no script may have this name.
const CHECK: &str = "check";

pub(crate) const READ: &[Capability] = &[Capability::AppRead, Capability::ScriptDeploy];

/// A `{name}` path segment. An invalid name cannot exist, so it is a 404.
fn name_segment(s: &str) -> ApiResult<ScriptName> {
    ScriptName::parse(s).map_err(|_| ApiError::not_found("script"))
}

/// The limits a deploy is checked under: the app's, which its runs compile under too.
async fn app_limits(state: &AppState, app: &AppId) -> ApiResult<Limits> {
    let rt = state.store.get_runtime(app).await?;
    // Stored overrides were validated when set.
    Ok(Limits::from_overrides(&rt.limits).unwrap_or_default())
}

/// Checks a script as a deploy would, storing nothing: the editor's diagnostics.
#[utoipa::path(post, path = "/api/v1/apps/{app}/scripts/check", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    request_body = CheckScript,
    security(("admin_key" = [])),
    responses((status = 200, description = "What a deploy would refuse (empty: it would deploy)", body = ScriptCheck),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn check_script(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<CheckScript>,
) -> ApiResult<ApiJson<ScriptCheck>> {
    let app = auth.app_with_any(&app, READ).await?;
    let limits = app_limits(&state, &app.id).await?;
    let diagnostics = picloud_runtime::check_script(&body.source, &limits);
    Ok(ApiJson(ScriptCheck {
        diagnostics: diagnostics.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/apps/{app}/scripts", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    request_body = DeployScript,
    security(("admin_key" = [])),
    responses((status = 201, description = "Deployed as the next version, now active", body = DeployedScript),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, description = "Source over 256 KiB", body = ErrorBody),
        (status = 422, description = "Invalid name, or the source does not compile (with line and column)", body = CompileErrorBody)))]
pub async fn deploy_script(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<DeployScript>,
) -> ApiResult<Response> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let name = ScriptName::parse(&body.name)?;
    if name.as_str() == CHECK {
        return Err(picloud_core::ValidationError::new(
            "name",
            "`check` is reserved (POST …/scripts/check checks a script)",
        )
        .into());
    }
    if body.source.len() > MAX_SOURCE_BYTES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("a script may be at most {MAX_SOURCE_BYTES} bytes"),
        ));
    }
    let limits = app_limits(&state, &app.id).await?;
    if let Some(d) = picloud_runtime::check_script(&body.source, &limits)
        .into_iter()
        .next()
    {
        let body = CompileErrorBody {
            error: CompileErrorDetail {
                code: "compile_error",
                message: format!("line {}, column {}: {}", d.line, d.column, d.message),
                line: d.line,
                column: d.column,
            },
        };
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, ApiJson(body)).into_response());
    }
    let v = state
        .store
        .deploy_script(&app.id, &name, &body.source)
        .await?;
    state
        .changed(Change::Script {
            app: app.id.to_string(),
            name: name.to_string(),
        })
        .await;
    Ok((
        StatusCode::CREATED,
        ApiJson(DeployedScript {
            name: name.to_string(),
            version: v.version,
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/scripts", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, body = ScriptList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_scripts(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<ScriptList>> {
    let app = auth.app_with_any(&app, READ).await?;
    let scripts = state.store.list_scripts(&app.id).await?;
    Ok(ApiJson(ScriptList {
        scripts: scripts.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/scripts/{name}", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), ("name" = String, Path)),
    security(("admin_key" = [])),
    responses((status = 200, description = "The script and all its versions", body = ScriptDetail),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_script(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<ApiJson<ScriptDetail>> {
    let app = auth.app_with_any(&app, READ).await?;
    let name = name_segment(&name)?;
    let info = state
        .store
        .get_script(&app.id, &name)
        .await?
        .ok_or_else(|| ApiError::not_found("script"))?;
    let versions = state.store.list_script_versions(&app.id, &name).await?;
    Ok(ApiJson(ScriptDetail {
        script: info.into(),
        versions: versions.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/scripts/{name}/versions/{version}", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), ("name" = String, Path), ("version" = i64, Path)),
    security(("admin_key" = [])),
    responses((status = 200, body = ScriptVersionBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_script_version(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, name, version)): Path<(String, String, String)>,
) -> ApiResult<ApiJson<ScriptVersionBody>> {
    let app = auth.app_with_any(&app, READ).await?;
    let name = name_segment(&name)?;
    let version: i64 = version
        .parse()
        .map_err(|_| ApiError::not_found("script version"))?;
    let v = state
        .store
        .get_script_version(&app.id, &name, Some(version))
        .await?
        .ok_or_else(|| ApiError::not_found("script version"))?;
    Ok(ApiJson(v.into()))
}

#[utoipa::path(post, path = "/api/v1/apps/{app}/scripts/{name}/rollback", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), ("name" = String, Path)),
    request_body = Rollback,
    security(("admin_key" = [])),
    responses((status = 200, description = "That version is active again", body = ScriptBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such script or version", body = ErrorBody)))]
pub async fn rollback_script(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
    ApiJson(body): ApiJson<Rollback>,
) -> ApiResult<ApiJson<ScriptBody>> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let name = name_segment(&name)?;
    let info = state
        .store
        .activate_script_version(&app.id, &name, body.version)
        .await?
        .ok_or_else(|| ApiError::not_found("script version"))?;
    state
        .changed(Change::Script {
            app: app.id.to_string(),
            name: name.to_string(),
        })
        .await;
    Ok(ApiJson(info.into()))
}

#[utoipa::path(delete, path = "/api/v1/apps/{app}/scripts/{name}", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id"), ("name" = String, Path)),
    security(("admin_key" = [])),
    responses((status = 204, description = "Deleted with all its versions"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_script(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let name = name_segment(&name)?;
    if !state.store.delete_script(&app.id, &name).await? {
        return Err(ApiError::not_found("script"));
    }
    state
        .changed(Change::Script {
            app: app.id.to_string(),
            name: name.to_string(),
        })
        .await;
    Ok(StatusCode::NO_CONTENT)
}
