//! `/api/v1/admin-keys`: create (shown once), list, revoke (instance admins only); and
//! `/api/v1/me`, the calling key itself.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use picloud_core::admin_key;
use picloud_core::capability::Capability;

use crate::auth::AdminAuth;
use crate::changes::Change;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::{AdminKeyBody, AdminKeyList, CreateAdminKey, CreatedAdminKey};

fn require_instance_admin(auth: &AdminAuth) -> ApiResult<()> {
    auth.require(Capability::InstanceAdmin)?;
    auth.require_unbound("manage admin keys")
}

/// Any valid key may ask who it is: the dashboard shows only what the key may do.
#[utoipa::path(get, path = "/api/v1/me", tag = "admin-keys",
    security(("admin_key" = [])),
    responses((status = 200, description = "The key that made the request (no secret)", body = AdminKeyBody),
        (status = 401, body = ErrorBody)))]
pub async fn me(auth: AdminAuth) -> ApiJson<AdminKeyBody> {
    ApiJson(AdminKeyBody::from((*auth.key).clone()))
}

#[utoipa::path(get, path = "/api/v1/admin-keys", tag = "admin-keys",
    security(("admin_key" = [])),
    responses((status = 200, body = AdminKeyList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_keys(
    auth: AdminAuth,
    State(state): State<AppState>,
) -> ApiResult<ApiJson<AdminKeyList>> {
    require_instance_admin(&auth)?;
    let keys = state.store.list_admin_keys().await?;
    Ok(ApiJson(AdminKeyList {
        keys: keys.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/admin-keys", tag = "admin-keys",
    request_body = CreateAdminKey,
    security(("admin_key" = [])),
    responses((status = 201, description = "The key, shown this once", body = CreatedAdminKey),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, description = "Unknown app", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_key(
    auth: AdminAuth,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateAdminKey>,
) -> ApiResult<(StatusCode, ApiJson<CreatedAdminKey>)> {
    require_instance_admin(&auth)?;
    let capabilities = body
        .capabilities
        .iter()
        .map(|c| c.parse::<Capability>())
        .collect::<Result<Vec<_>, _>>()?;
    let app_id = match &body.app {
        Some(app) => Some(auth.app(app).await?.id),
        None => None,
    };
    let issued = admin_key::issue(capabilities, app_id, body.label.unwrap_or_default())?;
    state.store.create_admin_key((&issued).into()).await?;
    state.changed(Change::Keys { revoked: None }).await;
    let key = issued.key;
    tracing::info!(new_key = %key.id, by = %auth.key.id, "admin key created");
    Ok((
        StatusCode::CREATED,
        ApiJson(CreatedAdminKey {
            key: issued.plaintext,
            info: key.into(),
        }),
    ))
}

#[utoipa::path(delete, path = "/api/v1/admin-keys/{id}", tag = "admin-keys",
    params(("id" = String, Path, description = "Key id (the part after `pk_`)")),
    security(("admin_key" = [])),
    responses((status = 204, description = "Revoked"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_key(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    require_instance_admin(&auth)?;
    if !state.store.delete_admin_key(&id).await? {
        return Err(ApiError::not_found("admin key"));
    }
    state
        .changed(Change::Keys {
            revoked: Some(id.clone()),
        })
        .await;
    tracing::info!(revoked = %id, by = %auth.key.id, "admin key revoked");
    Ok(StatusCode::NO_CONTENT)
}
