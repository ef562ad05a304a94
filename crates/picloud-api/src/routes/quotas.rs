//! `/api/v1/apps/{app}/quotas`: how much of each node the app may take (connections,
//! topics per connection, publish rates through this API). Anyone who can read the app sees
//! them; only an instance admin sets them (they protect the other tenants).

use axum::extract::{Path, State};
use picloud_core::capability::Capability;
use picloud_core::quota::Quotas;

use crate::auth::AdminAuth;
use crate::changes::Change;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::{QuotaValues, QuotasBody};

fn body(q: Quotas) -> QuotasBody {
    QuotasBody {
        overrides: q.into(),
        effective: q.effective().into(),
    }
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/quotas", tag = "apps",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, body = QuotasBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn get_quotas(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<QuotasBody>> {
    let app = auth.app_with(&app, Capability::AppRead).await?;
    Ok(ApiJson(body(state.store.get_quotas(&app.id).await?)))
}

#[utoipa::path(put, path = "/api/v1/apps/{app}/quotas", tag = "apps",
    params(("app" = String, Path, description = "App slug or id")),
    request_body(content = QuotaValues, description = "The overrides; an absent or null field takes the default"),
    security(("admin_key" = [])),
    responses((status = 200, body = QuotasBody),
        (status = 401, body = ErrorBody), (status = 403, description = "Not an InstanceAdmin key", body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn set_quotas(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    ApiJson(input): ApiJson<QuotaValues>,
) -> ApiResult<ApiJson<QuotasBody>> {
    let app = auth.app_with(&app, Capability::AppRead).await?;
    if !auth.key.has(Capability::InstanceAdmin) {
        return Err(ApiError::forbidden(
            "quotas are set by an InstanceAdmin key: they protect the instance's other apps",
        ));
    }
    let quotas = Quotas::from(input);
    quotas.validate()?;
    state.store.set_quotas(&app.id, &quotas).await?;
    state
        .changed(Change::Quotas {
            app: app.id.to_string(),
        })
        .await;
    tracing::info!(app = %app.slug, by = %auth.key.id, "quotas set");
    Ok(ApiJson(body(quotas)))
}
