//! `/api/v1/apps/{app}/domains`: the Hosts an app answers on besides `<slug>.localhost`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use picloud_core::capability::Capability;
use picloud_core::domain::parse_domain_host;
use picloud_core::host::Host;

use crate::auth::AdminAuth;
use crate::changes::Change;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::{DomainBody, DomainInput, DomainList};

/// Parses a host to claim, refusing the control plane's own hosts.
fn claimable_host(state: &AppState, raw: &str) -> ApiResult<Host> {
    let host = parse_domain_host(raw)?;
    if state.config.admin_hosts.contains(&host) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
            "host: is an admin host of this instance",
        ));
    }
    Ok(host)
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/domains", tag = "domains",
    params(("app" = String, Path, description = "App slug or id")),
    security(("admin_key" = [])),
    responses((status = 200, body = DomainList),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn list_domains(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
) -> ApiResult<ApiJson<DomainList>> {
    let app = auth.app_with(&app, Capability::AppRead).await?;
    let domains = state.store.list_domains(&app.id).await?;
    Ok(ApiJson(DomainList {
        domains: domains.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/apps/{app}/domains", tag = "domains",
    params(("app" = String, Path, description = "App slug or id")),
    request_body = DomainInput,
    security(("admin_key" = [])),
    responses((status = 201, body = DomainBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, description = "Another app (or this one) has the host", body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn create_domain(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<DomainInput>,
) -> ApiResult<(StatusCode, ApiJson<DomainBody>)> {
    let app = auth.app_with(&app, Capability::AppWrite).await?;
    let host = claimable_host(&state, &body.host)?;
    let domain = state.store.add_domain(&app.id, &host).await?;
    state.changed(Change::Apps).await;
    Ok((StatusCode::CREATED, ApiJson(domain.into())))
}

#[utoipa::path(get, path = "/api/v1/apps/{app}/domains/{domain}", tag = "domains",
    params(("app" = String, Path, description = "App slug or id"),
        ("domain" = String, Path, description = "Domain id or host")),
    security(("admin_key" = [])),
    responses((status = 200, body = DomainBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_domain(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, domain)): Path<(String, String)>,
) -> ApiResult<ApiJson<DomainBody>> {
    let app = auth.app_with(&app, Capability::AppRead).await?;
    let key = normalised_key(&domain);
    let domain = state
        .store
        .get_domain(&app.id, &key)
        .await?
        .ok_or_else(|| ApiError::not_found("domain"))?;
    Ok(ApiJson(domain.into()))
}

#[utoipa::path(patch, path = "/api/v1/apps/{app}/domains/{domain}", tag = "domains",
    params(("app" = String, Path, description = "App slug or id"),
        ("domain" = String, Path, description = "Domain id or host")),
    request_body = DomainInput,
    security(("admin_key" = [])),
    responses((status = 200, body = DomainBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn update_domain(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, domain)): Path<(String, String)>,
    ApiJson(body): ApiJson<DomainInput>,
) -> ApiResult<ApiJson<DomainBody>> {
    let app = auth.app_with(&app, Capability::AppWrite).await?;
    let host = claimable_host(&state, &body.host)?;
    let existing = state
        .store
        .get_domain(&app.id, &normalised_key(&domain))
        .await?
        .ok_or_else(|| ApiError::not_found("domain"))?;
    let updated = state
        .store
        .update_domain(&app.id, &existing.id, &host)
        .await?
        .ok_or_else(|| ApiError::not_found("domain"))?;
    state.changed(Change::Apps).await;
    Ok(ApiJson(updated.into()))
}

#[utoipa::path(delete, path = "/api/v1/apps/{app}/domains/{domain}", tag = "domains",
    params(("app" = String, Path, description = "App slug or id"),
        ("domain" = String, Path, description = "Domain id or host")),
    security(("admin_key" = [])),
    responses((status = 204, description = "Deleted"),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn delete_domain(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path((app, domain)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = auth.app_with(&app, Capability::AppWrite).await?;
    let existing = state
        .store
        .get_domain(&app.id, &normalised_key(&domain))
        .await?
        .ok_or_else(|| ApiError::not_found("domain"))?;
    if !state.store.delete_domain(&app.id, &existing.id).await? {
        return Err(ApiError::not_found("domain"));
    }
    state.changed(Change::Apps).await;
    Ok(StatusCode::NO_CONTENT)
}

/// A `{domain}` segment is an id or a host; a host is looked up in its normalised form so
/// `Shop.Example.com.` finds `shop.example.com`.
fn normalised_key(segment: &str) -> String {
    Host::parse(segment).map_or_else(|_| segment.to_owned(), |h| h.as_str().to_owned())
}
