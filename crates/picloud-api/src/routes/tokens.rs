//! `POST /api/v1/apps/{app}/tokens`: mint a subscriber token.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::DateTime;
use picloud_core::capability::Capability;
use picloud_realtime::token::MintError;

use crate::auth::AdminAuth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::{MintToken, MintedToken};

#[utoipa::path(post, path = "/api/v1/apps/{app}/tokens", tag = "tokens",
    params(("app" = String, Path, description = "App slug or id")),
    request_body = MintToken,
    security(("admin_key" = [])),
    responses((status = 201, body = MintedToken),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn mint_token(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<MintToken>,
) -> ApiResult<(StatusCode, ApiJson<MintedToken>)> {
    let app = auth.app_with(&app, Capability::AppPublish).await?;
    let (token, exp) = state
        .realtime
        .tokens
        .mint(
            &app.id,
            &body.topics,
            body.ttl_secs,
            body.subject,
            &body.publish,
        )
        .await
        .map_err(|e| match e {
            MintError::Validation(v) => ApiError::from(v),
            MintError::Store(s) => ApiError::from(s),
            MintError::Internal(reason) => {
                tracing::error!(%reason, "token signing failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        })?;
    Ok((
        StatusCode::CREATED,
        ApiJson(MintedToken {
            token,
            expires_at: DateTime::from_timestamp(exp, 0).unwrap_or_default(),
        }),
    ))
}
