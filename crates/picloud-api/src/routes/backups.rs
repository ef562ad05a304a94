//! `/api/v1/backups`: make a backup now, list them, download one, delete one (instance
//! admins only: a backup holds every app's data and secrets).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use picloud_core::capability::Capability;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::AdminAuth;
use crate::backups::{BackupError, BackupInfo, Backups};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct BackupList {
    /// Newest first.
    pub backups: Vec<BackupInfo>,
    /// False on PostgreSQL, backed up with `pg_dump` instead (docs/operations.md).
    pub supported: bool,
    /// Where backups are written on the server.
    pub dir: Option<String>,
    /// `PICLOUD_BACKUP_CRON`, when backups are scheduled.
    pub schedule: Option<String>,
    /// `PICLOUD_BACKUP_KEEP`: scheduled backups kept.
    pub keep: Option<u32>,
}

fn backups(auth: &AdminAuth, state: &AppState) -> ApiResult<std::sync::Arc<Backups>> {
    // InstanceAdmin is never bound to an app, so this also refuses app-bound keys.
    auth.require(Capability::InstanceAdmin)?;
    state.backups.get().cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "backup_unsupported",
            "this server has no backup directory",
        )
    })
}

impl From<BackupError> for ApiError {
    fn from(e: BackupError) -> Self {
        match e {
            BackupError::Unsupported => {
                ApiError::new(StatusCode::CONFLICT, "backup_unsupported", e.to_string())
            }
            BackupError::Running => {
                ApiError::new(StatusCode::CONFLICT, "backup_running", e.to_string())
            }
            BackupError::NoSpace => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "no space left for the backup; nothing was kept",
            ),
            BackupError::Store(e) => e.into(),
            BackupError::Io(e) => {
                tracing::error!(error = %e, "backup failed");
                ApiError::internal()
            }
        }
    }
}

fn io_error(e: std::io::Error) -> ApiError {
    tracing::error!(error = %e, "reading the backup directory failed");
    ApiError::internal()
}

/// Makes a consistent backup while the server goes on serving: the database as of one
/// commit and every file it names. Answers when the file is complete and synced.
#[utoipa::path(post, path = "/api/v1/backups", tag = "backups",
    security(("admin_key" = [])),
    responses((status = 201, description = "The backup, complete on disk", body = BackupInfo),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, description = "`backup_running`: one is being made; `backup_unsupported`: PostgreSQL (use pg_dump)", body = ErrorBody),
        (status = 503, body = ErrorBody),
        (status = 507, description = "No space left for it; nothing was kept", body = ErrorBody)))]
pub async fn create_backup(
    auth: AdminAuth,
    State(state): State<AppState>,
) -> ApiResult<(StatusCode, ApiJson<BackupInfo>)> {
    let backups = backups(&auth, &state)?;
    let made = backups.create(false).await?;
    tracing::info!(name = %made.name, by = %auth.key.id, "backup requested");
    Ok((StatusCode::CREATED, ApiJson(made)))
}

#[utoipa::path(get, path = "/api/v1/backups", tag = "backups",
    security(("admin_key" = [])),
    responses((status = 200, body = BackupList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn list_backups(
    auth: AdminAuth,
    State(state): State<AppState>,
) -> ApiResult<ApiJson<BackupList>> {
    let backups = backups(&auth, &state)?;
    let schedule = backups.schedule();
    Ok(ApiJson(BackupList {
        backups: backups.list().await.map_err(io_error)?,
        supported: backups.supported(),
        dir: backups
            .supported()
            .then(|| backups.dir().display().to_string()),
        schedule: schedule.map(|s| s.cron.as_str().to_owned()),
        keep: schedule.map(|s| u32::try_from(s.keep).unwrap_or(u32::MAX)),
    }))
}

/// The backup file (`application/gzip`), for `picloud backup restore`.
#[utoipa::path(get, path = "/api/v1/backups/{name}", tag = "backups",
    params(("name" = String, Path, description = "A backup's name, as listed")),
    security(("admin_key" = [])),
    responses((status = 200, description = "The backup file", content_type = "application/gzip", body = Vec<u8>),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn download_backup(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let backups = backups(&auth, &state)?;
    let path = backups
        .path(&name)
        .await
        .ok_or_else(|| ApiError::not_found("backup"))?;
    let file = tokio::fs::File::open(&path).await.map_err(io_error)?;
    let len = file.metadata().await.map_err(io_error)?.len();
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    Response::builder()
        .header(header::CONTENT_TYPE, "application/gzip")
        .header(header::CONTENT_LENGTH, len)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(body)
        .map_err(|_| ApiError::internal())
}

#[utoipa::path(delete, path = "/api/v1/backups/{name}", tag = "backups",
    params(("name" = String, Path, description = "A backup's name, as listed")),
    security(("admin_key" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_backup(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let backups = backups(&auth, &state)?;
    if backups.delete(&name).await.map_err(io_error)? {
        tracing::info!(%name, by = %auth.key.id, "backup deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("backup"))
    }
}
