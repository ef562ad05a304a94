//! `/api/v1/apps/{app}/secrets`: list (ids only), rotate, retire the keys that sign
//! subscriber tokens. Key material leaves the server once: in the answer to the rotation
//! that created it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use picloud_core::capability::Capability;

use crate::auth::AdminAuth;
use crate::changes::Change;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::{CreatedSecret, SecretList};

#[utoipa::path(get, path = "/api/v1/apps/{app}/secrets", tag = "secrets",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, body = SecretList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn list_secrets(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<SecretList>> {
    let app = auth.app_with(&app, Capability::SecretsManage).await?;
    let secrets = state.store.list_secrets(&app.id).await?;
    Ok(ApiJson(SecretList {
        secrets: secrets.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/apps/{app}/secrets/rotate", tag = "secrets",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 201, description = "A new active key; it signs new tokens, older keys still verify until retired", body = CreatedSecret),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn rotate_secret(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<(StatusCode, ApiJson<CreatedSecret>)> {
    let app = auth.app_with(&app, Capability::SecretsManage).await?;
    let secret = state.realtime.tokens.rotate(&app.id).await?;
    // Other nodes verify with the new key at once (this node's cache is already current).
    state
        .changed(Change::Tokens {
            app: app.id.to_string(),
            retired: None,
        })
        .await;
    tracing::info!(app = %app.slug, kid = %secret.kid, by = %auth.key.id, "app secret rotated");
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedSecret {
            kid: secret.kid,
            secret: URL_SAFE_NO_PAD.encode(&secret.secret),
            created_at: secret.created_at,
        }),
    ))
}

#[utoipa::path(post, path = "/api/v1/apps/{app}/secrets/{kid}/retire", tag = "secrets",
    params(("app" = String, Path, description = "App slug or id"), ("kid" = String, Path, description = "Key id")),
    security(("admin_key" = [])),
    responses((status = 204, description = "Retired: tokens it signed no longer verify"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "No such active key", body = ErrorBody)))]
pub async fn retire_secret(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, kid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = auth.app_with(&app, Capability::SecretsManage).await?;
    if !state.realtime.tokens.retire(&app.id, &kid).await? {
        return Err(ApiError::not_found("active secret"));
    }
    state
        .changed(Change::Tokens {
            app: app.id.to_string(),
            retired: Some(kid.clone()),
        })
        .await;
    tracing::info!(app = %app.slug, %kid, by = %auth.key.id, "app secret retired");
    Ok(StatusCode::NO_CONTENT)
}
