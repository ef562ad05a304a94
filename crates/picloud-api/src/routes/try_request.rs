//! `POST /api/v1/apps/{app}/try`: sends a request to the app's script endpoints from the
//! admin API (the dashboard's "try it"), answering what a client on the app's Host would
//! get, with the record of the run it caused. The request takes the data plane's own path
//! through the route table and the invoker, so it runs the script for real.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use axum::response::IntoResponse;
use picloud_core::app::AppRef;
use picloud_core::capability::Capability;
use picloud_core::ValidationError;

use crate::auth::AdminAuth;
use crate::endpoint::{handle, RunCapture};
use crate::error::{ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire_scripts::{TryRequest, TryResponse};

/// Longest path and query together, as a browser would send them.
const MAX_TARGET_LEN: usize = 8 * 1024;

#[utoipa::path(post, path = "/api/v1/apps/{app}/try", tag = "scripts",
    params(("app" = String, Path, description = "App slug or id")),
    request_body = TryRequest,
    security(("admin_key" = [])),
    responses((status = 200, description = "The app's answer (any status) and the run's record", body = TryResponse),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 422, description = "A method, path, query or header that is not valid HTTP", body = ErrorBody)))]
pub async fn try_request(
    auth: AdminAuth,
    State(state): State<AppState>,
    Path(app): Path<String>,
    ApiJson(body): ApiJson<TryRequest>,
) -> ApiResult<ApiJson<TryResponse>> {
    // Running a script has effects (writes, publishes): it takes the deploy capability.
    let app = auth.app_with(&app, Capability::ScriptDeploy).await?;
    let mut request = build(body)?;
    let capture = RunCapture::default();
    request.extensions_mut().insert(capture.clone());
    let target = AppRef {
        id: app.id,
        slug: app.slug,
    };
    let mut label = "";
    let response = match handle(&state, &target, request, &mut label).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    let (parts, body) = response.into_parts();
    // A script's answer is built in memory under its limits; reading it whole is bounded.
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    Ok(ApiJson(TryResponse {
        status: parts.status.as_u16(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
                (k.as_str().to_owned(), value)
            })
            .collect(),
        body: String::from_utf8_lossy(&bytes).into_owned(),
        invocation: capture.0.get().cloned().map(Into::into),
    }))
}

fn build(input: TryRequest) -> Result<Request<Body>, ValidationError> {
    let method = Method::from_bytes(input.method.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| ValidationError::new("method", "must be an HTTP method such as GET"))?;
    if !input.path.starts_with('/') || input.path.contains(['?', '#']) {
        return Err(ValidationError::new(
            "path",
            "must start with '/' and hold no '?' or '#' (the query goes in `query`)",
        ));
    }
    let query = input.query.trim_start_matches('?');
    let target = if query.is_empty() {
        input.path
    } else {
        format!("{}?{query}", input.path)
    };
    if target.len() > MAX_TARGET_LEN {
        return Err(ValidationError::new(
            "path",
            "path and query may be at most 8192 characters",
        ));
    }
    let uri: Uri = target
        .parse()
        .map_err(|_| ValidationError::new("path", "is not a valid request target"))?;
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(input.body))
        .map_err(|_| ValidationError::new("path", "is not a valid request target"))?;
    for (name, value) in input.headers {
        let invalid = |what: &str| ValidationError::new("headers", format!("{name:?}: {what}"));
        let header = HeaderName::try_from(name.as_str())
            .map_err(|_| invalid("is not a valid header name"))?;
        let value = HeaderValue::try_from(value.as_str())
            .map_err(|_| invalid("has a value that is not valid in a header"))?;
        request.headers_mut().append(header, value);
    }
    Ok(request)
}
