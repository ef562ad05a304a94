//! `/api/v1/apps/{app}/static`: upload, list and delete the files of an app's static site
//! (served on its Host, `static_site.rs`).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use picloud_core::capability::Capability;
use picloud_core::data::FilePath;

use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::scripts::READ;
use crate::state::AppState;
use crate::static_site::{forget, prepare, read, MAX_STATIC_FILE_BYTES};
use crate::wire_scripts::{StaticFileBody, StaticFileList};

#[utoipa::path(put, path = "/api/v1/apps/{app}/static/{*path}", tag = "static",
    params(("app" = String, Path, description = "App slug or id"),
        ("path" = String, Path, description = "`a/b/c.txt`: segments of `[A-Za-z0-9_.-]`, no `.` or `..`")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "The file's bytes (at most 16 MiB); its content type comes from its extension"),
    security(("admin_key" = [])),
    responses((status = 201, description = "Created", body = StaticFileBody),
        (status = 200, description = "Replaced", body = StaticFileBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, description = "Over 16 MiB, or over the app's static quota (`quota_exceeded`)", body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 507, body = ErrorBody)))]
pub async fn put_static_file(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, path)): Path<(String, String)>,
    body: Body,
) -> ApiResult<(StatusCode, ApiJson<StaticFileBody>)> {
    // Serving files is deploying code to the app's Host.
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let path = FilePath::parse(&path)?;
    let bytes = axum::body::to_bytes(body, MAX_STATIC_FILE_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("a static file may be at most {MAX_STATIC_FILE_BYTES} bytes"),
            )
        })?;
    let blobs = state.invoker.deps().blobs.clone();
    let (app_id, now) = (app.id.clone(), chrono::Utc::now().timestamp_millis());
    let prepared = tokio::task::spawn_blocking(move || prepare(&blobs, &app_id, path, &bytes, now))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::StorageFull {
                return ApiError::storage_full();
            }
            tracing::error!(error = %e, "static file not written");
            ApiError::internal()
        })?;
    let file = prepared.file;
    let blobs = &state.invoker.deps().blobs;
    let quota = state.config.static_quota_bytes;
    let new_blobs: Vec<String> = file.blobs().map(str::to_owned).collect();
    let replaced = match state.store.static_put(&app.id, &file, quota).await {
        Ok(Ok(old)) => old,
        Ok(Err(total)) => {
            forget(blobs, &app.id, &new_blobs);
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "quota_exceeded",
                format!(
                    "the app's static files would hold {total} bytes; the quota is {quota} bytes"
                ),
            ));
        }
        Err(e) => {
            forget(blobs, &app.id, &new_blobs);
            return Err(e.into());
        }
    };
    let status = if replaced.is_empty() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    forget(blobs, &app.id, &replaced);
    Ok((status, ApiJson(file.into())))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/static", tag = "static",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, body = StaticFileList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_static_files(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<StaticFileList>> {
    let app = auth.app_with_any(&app, READ).await?;
    let files = state.store.static_list(&app.id).await?;
    Ok(ApiJson(StaticFileList {
        total_bytes: files.iter().map(|f| f.size).sum(),
        quota_bytes: state.config.static_quota_bytes,
        files: files.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/static/{*path}", tag = "static",
    params(("app" = String, Path, description = "App slug or id"), ("path" = String, Path)),
    security(("admin_key" = [])),
    responses((status = 200, description = "The file's bytes, with its content type (what `picloud app export` saves)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_static_file(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, path)): Path<(String, String)>,
) -> ApiResult<axum::response::Response> {
    let app = auth.app_with_any(&app, READ).await?;
    let path = FilePath::parse(&path).map_err(|_| ApiError::not_found("static file"))?;
    let file = state
        .store
        .static_get(&app.id, &path)
        .await?
        .ok_or_else(|| ApiError::not_found("static file"))?;
    let bytes = read(&state, &app.id, &file.blob).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, file.content_type)],
        bytes,
    )
        .into_response())
}

#[utoipa::path(delete, path = "/api/v1/apps/{app}/static/{*path}", tag = "static",
    params(("app" = String, Path, description = "App slug or id"), ("path" = String, Path)),
    security(("admin_key" = [])),
    responses((status = 204),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn delete_static_file(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, path)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let path = FilePath::parse(&path).map_err(|_| ApiError::not_found("static file"))?;
    let blobs = state
        .store
        .static_delete(&app.id, &path)
        .await?
        .ok_or_else(|| ApiError::not_found("static file"))?;
    forget(&state.invoker.deps().blobs, &app.id, &blobs);
    Ok(StatusCode::NO_CONTENT)
}
