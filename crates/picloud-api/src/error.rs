//! The one error type every handler returns, rendered as `{"error":{"code","message"}}`.
//!
//! Codes are stable (clients and tests match on them); messages are for humans. Only
//! validation detail reaches the client: store and internal errors are logged server-side
//! and answered with a generic message.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use picloud_core::{StoreError, ValidationError};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, sent as `Retry-After` (429).
    pub retry_after: Option<u64>,
}

/// The JSON body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`, `conflict`, `invalid_body`.
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 429: over one of the app's quotas; nothing was done. `app` names it in the refusal
    /// counter (`picloud_quota_refusals_total`).
    pub fn over_quota(app: &str, refused: picloud_realtime::quota::Refused) -> Self {
        use picloud_realtime::quota::Refused;
        match refused {
            Refused::Over { limit, retry_after } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "quota_exceeded",
                    format!(
                        "over the app's {} quota; nothing was done. Retry after Retry-After seconds",
                        limit.as_str()
                    ),
                );
                e.retry_after = Some(picloud_realtime::quota::refusal(app, limit, retry_after));
                e
            }
            Refused::Store(e) => e.into(),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    /// The one answer to a missing, malformed, unknown or wrong key: nothing says which.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin key is required (Authorization: Bearer <key>)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// A durable write refused because the database has no space: nothing was stored.
    pub fn storage_full() -> Self {
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "storage_full",
            "the server's storage is full; nothing was stored. Retry once space is freed",
        )
    }

    /// A failure of the server's own (logged where it happens); the client learns nothing
    /// of its internals.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl From<ValidationError> for ApiError {
    fn from(e: ValidationError) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            e.to_string(),
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{what} already exists"),
            ),
            StoreError::Unavailable(reason) => {
                tracing::warn!(%reason, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the database is unavailable; retry shortly",
                )
            }
            // Reported once per change of state by the store's storage watch, not per
            // request (a full disk under load would otherwise flood the log).
            StoreError::StorageFull(reason) => {
                tracing::debug!(%reason, "write refused: storage full");
                Self::storage_full()
            }
            StoreError::Internal(reason) => {
                tracing::error!(%reason, "database error");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut res = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        res
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
